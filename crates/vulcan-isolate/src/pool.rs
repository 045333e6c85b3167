//! The warm pool: Deno processes started ahead of time, each waiting for its one job.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::process::{DenoProcess, Launcher};

/// How long a new process may take to load the runner.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// Keeps `size` idle processes with a `heap_mb` heap, refilled in the background.
pub struct WarmPool {
    launcher: Arc<Launcher>,
    size: usize,
    heap_mb: u32,
    idle: Mutex<VecDeque<DenoProcess>>,
    wanted: Notify,
    closed: AtomicBool,
}

impl WarmPool {
    pub fn new(launcher: Arc<Launcher>, size: usize, heap_mb: u32) -> Arc<Self> {
        let pool = Arc::new(WarmPool {
            launcher,
            size,
            heap_mb,
            idle: Mutex::new(VecDeque::new()),
            wanted: Notify::new(),
            closed: AtomicBool::new(false),
        });
        if size > 0 {
            tokio::spawn(pool.clone().refill());
        }
        pool
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, VecDeque<DenoProcess>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn idle_count(&self) -> usize {
        self.idle().len()
    }

    /// A ready process with a `heap_mb` heap, if one is idle.
    pub fn take(&self, heap_mb: u32) -> Option<DenoProcess> {
        if heap_mb != self.heap_mb || self.size == 0 {
            return None;
        }
        let taken = loop {
            let Some(mut process) = self.idle().pop_front() else {
                break None;
            };
            if process.alive() {
                process.promote();
                break Some(process);
            }
        };
        self.wanted.notify_one();
        taken
    }

    /// Stops refilling and kills the idle processes.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.idle().clear();
        self.wanted.notify_one();
    }

    async fn refill(self: Arc<Self>) {
        while !self.closed.load(Ordering::SeqCst) {
            if self.idle().len() >= self.size {
                self.wanted.notified().await;
                continue;
            }
            let started = self.launcher.spawn(self.heap_mb, true);
            let outcome = match started {
                Ok(mut process) => match process.ready(READY_WITHIN).await {
                    Ok(()) => {
                        process.settle().await;
                        if !self.closed.load(Ordering::SeqCst) {
                            self.idle().push_back(process);
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(format!("cannot start deno: {e}")),
            };
            if let Err(e) = outcome {
                tracing::warn!(error = %e, "isolate warm pool could not start a process");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
