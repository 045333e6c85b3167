//! The warm pool: VMs made ahead of time per runtime (restored or booted, with the default
//! resources), each used once and made again in the background, one at a time (VMs
//! compete for the CPUs). Beside it, for each runtime that has run a networked workload,
//! VMs with a NIC made ahead the same way, each on a network of its own that has no
//! policy yet (its chain refuses everything, no resolver answers) until a networked
//! workload takes it (see `networked`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use vulcan_domain::{Resources, Runtime};
use vulcan_sandbox::network::{Behind, SandboxNetwork, TAP};

use crate::vm::Vm;
use crate::vmm::Nic;
use crate::Inner;

/// VMs with a NIC kept ready per runtime that has asked for one (none for a runtime whose
/// warm pool is off: an operator who keeps no VM ahead keeps none with a NIC either).
pub const NETWORKED_POOL: usize = 1;

/// A VM with a NIC on its network's tap, made ahead.
pub(crate) struct NetworkedVm {
    pub vm: Vm,
    pub network: SandboxNetwork,
}

/// The VMs with a NIC made ahead, and the runtimes they are made for.
#[derive(Default)]
pub(crate) struct NetworkedPool {
    ready: HashMap<Runtime, Vec<NetworkedVm>>,
    /// Runtimes that have run a networked workload (in the pool's shape).
    wanted: Vec<Runtime>,
}

/// What the pools miss first.
enum Missing {
    Warm(Runtime),
    Networked(Runtime),
}

impl Inner {
    /// Whether a VM made ahead fits `resources`: its memory and CPUs are the pool's (a
    /// timeout or a network cap is the run's, not the VM's).
    fn pool_shape(&self, resources: Resources) -> bool {
        let pool = self.config.pool_resources;
        (resources.mem_mb, resources.cpus) == (pool.mem_mb, pool.cpus)
    }

    pub(crate) fn take_warm(&self, runtime: Runtime, resources: Resources) -> Option<Vm> {
        if !self.pool_shape(resources) {
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

    /// A VM with a NIC made ahead for `runtime`, if one is ready and the workload has the
    /// pool's resources; from now on the pool keeps one for `runtime`.
    pub(crate) fn take_networked(
        &self,
        runtime: Runtime,
        resources: Resources,
    ) -> Option<NetworkedVm> {
        if !self.pool_shape(resources) || self.networked_size(runtime) == 0 {
            return None;
        }
        let mut pool = self.networked.lock().unwrap_or_else(|p| p.into_inner());
        if !pool.wanted.contains(&runtime) {
            pool.wanted.push(runtime);
        }
        let vms = pool.ready.entry(runtime).or_default();
        // A VM whose process is gone is dropped (with its network), not handed out.
        let mut taken = None;
        while let Some(mut made) = vms.pop() {
            if made.vm.alive() {
                taken = Some(made);
                break;
            }
        }
        drop(pool);
        self.wanted.notify_one();
        taken
    }

    fn networked_size(&self, runtime: Runtime) -> usize {
        let warm = self.config.pool.get(&runtime).copied().unwrap_or(0);
        warm.min(NETWORKED_POOL)
    }

    /// VMs with a NIC ready for `runtime`.
    pub(crate) fn networked_idle(&self, runtime: Runtime) -> usize {
        let pool = self.networked.lock().unwrap_or_else(|p| p.into_inner());
        pool.ready.get(&runtime).map_or(0, Vec::len)
    }

    /// The VMs with a NIC made ahead, taken out (at shutdown).
    pub(crate) fn drain_networked(&self) -> Vec<NetworkedVm> {
        let mut pool = self.networked.lock().unwrap_or_else(|p| p.into_inner());
        pool.wanted.clear();
        pool.ready.drain().flat_map(|(_, vms)| vms).collect()
    }

    /// Makes a VM with a NIC for `runtime`: its network (no policy yet) and the VM on
    /// its tap, restored from the snapshot with a NIC where snapshots are on.
    async fn make_networked(&self, runtime: Runtime) -> Result<NetworkedVm, String> {
        let egress = self
            .config
            .egress
            .clone()
            .ok_or("this node gives workloads no network")?;
        let network = tokio::task::spawn_blocking(move || {
            let _behind = Behind::enter();
            egress.reserve_tap()
        })
        .await
        .map_err(|e| format!("making a VM's network failed: {e}"))??;
        let nic = Nic {
            namespace: network.namespace_path(),
            tap: TAP.into(),
        };
        let (vm, _) = self
            .fresh_with(runtime, self.config.pool_resources, None, Some(nic), None)
            .await?;
        Ok(NetworkedVm { vm, network })
    }

    fn missing(&self) -> Option<Missing> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let warm = self
            .config
            .pool
            .iter()
            .find(|(rt, size)| idle.get(rt).map_or(0, Vec::len) < **size)
            .map(|(rt, _)| Missing::Warm(*rt));
        drop(idle);
        warm.or_else(|| {
            let pool = self.networked.lock().unwrap_or_else(|p| p.into_inner());
            pool.wanted
                .iter()
                .find(|rt| pool.ready.get(rt).map_or(0, Vec::len) < self.networked_size(**rt))
                .map(|rt| Missing::Networked(*rt))
        })
    }

    /// Keeps each runtime's pools full, one boot at a time (boots compete for the CPUs).
    pub(crate) async fn refill(self: Arc<Self>) {
        loop {
            if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            match self.missing() {
                Some(Missing::Networked(runtime)) => match self.make_networked(runtime).await {
                    Ok(made) => {
                        let mut pool = self.networked.lock().unwrap_or_else(|p| p.into_inner());
                        if pool.wanted.contains(&runtime) {
                            pool.ready.entry(runtime).or_default().push(made);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%runtime, error = %e, "could not make a VM with a NIC ahead");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                },
                Some(Missing::Warm(runtime)) => {
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
