//! How VMs came to be since the backend started: booted, restored, restores that failed,
//! snapshots made, and the last boots' and restores' durations.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::vm::Vm;

/// How VMs came to be, since the backend started.
#[derive(Default)]
pub(crate) struct Counters {
    pub booted: AtomicU64,
    pub restored: AtomicU64,
    pub restore_failed: AtomicU64,
    pub snapshots_made: AtomicU64,
    /// The last boots' and restores' durations, ms.
    pub recent: Mutex<(Recent, Recent)>,
}

/// The last [`Recent::KEEP`] durations of one kind.
#[derive(Default)]
pub(crate) struct Recent(std::collections::VecDeque<f64>);

impl Recent {
    const KEEP: usize = 64;

    pub fn push(&mut self, d: Duration) {
        if self.0.len() == Self::KEEP {
            self.0.pop_front();
        }
        self.0.push_back(d.as_secs_f64() * 1000.0);
    }

    pub fn median(&self) -> Option<f64> {
        let mut v: Vec<f64> = self.0.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    }
}

impl Counters {
    pub fn booted(&self, vm: &Vm) {
        self.booted.fetch_add(1, Ordering::Relaxed);
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .push(vm.boot_time);
    }

    pub fn restored(&self, vm: &Vm) {
        self.restored.fetch_add(1, Ordering::Relaxed);
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .push(vm.boot_time);
    }
}
