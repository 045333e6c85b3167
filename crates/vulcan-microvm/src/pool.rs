//! The warm pool: VMs made ahead of time per runtime (restored or booted, with the default
//! resources), each used once and made again in the background, one at a time (VMs
//! compete for the CPUs).

use std::sync::Arc;
use std::time::Duration;

use vulcan_domain::{Resources, Runtime};

use crate::vm::Vm;
use crate::Inner;

impl Inner {
    pub(crate) fn take_warm(&self, runtime: Runtime, resources: Resources) -> Option<Vm> {
        if resources != self.config.pool_resources {
            return None;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let vms = idle.get_mut(&runtime)?;
        let mut taken = None;
        while let Some(mut vm) = vms.pop() {
            // A VM whose process is gone is dropped (and cleaned up), not handed out.
            if vm.alive() {
                taken = Some(vm);
                break;
            }
        }
        drop(idle);
        self.wanted.notify_one();
        taken
    }

    /// Keeps each runtime's pool full, one boot at a time (boots compete for the CPUs).
    pub(crate) async fn refill(self: Arc<Self>) {
        loop {
            if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            let missing = {
                let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                self.config
                    .pool
                    .iter()
                    .find(|(rt, size)| idle.get(rt).map_or(0, Vec::len) < **size)
                    .map(|(rt, _)| *rt)
            };
            match missing {
                Some(runtime) => {
                    match self.fresh(runtime, self.config.pool_resources, None).await {
                        Ok((vm, _)) => {
                            if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                                return;
                            }
                            self.idle
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .entry(runtime)
                                .or_default()
                                .push(vm);
                        }
                        Err(e) => {
                            tracing::warn!(%runtime, error = %e, "could not boot a warm VM");
                            tokio::time::sleep(Duration::from_secs(5)).await;
                        }
                    }
                }
                None => self.wanted.notified().await,
            }
        }
    }
}
