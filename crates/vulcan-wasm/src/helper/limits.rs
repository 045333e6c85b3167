//! What one instance may take: its linear memory up to the run's `mem_mb` (growing past it
//! traps, saying so), a bounded table, one memory, one instance. The largest size the
//! memory reached is kept for the run's usage, where the run's owner can read it even
//! after the store is gone (a run stopped in a host call).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use wasmtime::ResourceLimiter;

/// Table elements one instance may have.
pub const MAX_TABLE_ELEMENTS: usize = 100_000;

/// One store's limits.
pub(super) struct Limits {
    pub max_memory: usize,
    /// The largest size the linear memory reached.
    pub peak_memory: Arc<AtomicUsize>,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            return Err(wasmtime::format_err!(
                "memory limit exceeded: the module grew its linear memory to {} MiB, past its limit of {} MiB (resources.mem_mb)",
                desired.div_ceil(1 << 20),
                self.max_memory >> 20
            ));
        }
        self.peak_memory.fetch_max(desired, Ordering::Relaxed);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        4
    }

    fn memories(&self) -> usize {
        1
    }
}
