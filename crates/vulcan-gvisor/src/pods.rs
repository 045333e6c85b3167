//! Networked sandboxes booted ahead of their workloads ("pods").
//!
//! Most of what a network policy adds to a gVisor sandbox's start is runsc setting up the
//! sandbox's network stack: it binds packet sockets to the namespace's interface, and the
//! kernel waits for an RCU grace period for each. So once a server has run a networked
//! workload it keeps a few sandboxes booted ([`STOCK`]), each with a network of its own
//! that has no policy yet (its chain refuses everything, no resolver answers) and nothing
//! inside but a process that pauses. A networked workload takes one, gives its network the
//! workload's policy and its cgroup the workload's bounds, and runs as a second container
//! in it: runsc's multi-container sandboxes, where the container has its own root, mounts,
//! process tree and file server, and shares the pod's kernel and network stack.
//!
//! A pod serves one workload and is destroyed with it, whoever the next one is: nothing a
//! workload did is seen by another. Pods are booted one at a time off the workloads' path
//! (the network's tools at low priority; the sandbox itself at the workloads' priority,
//! which it keeps for the workload it will run).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use vulcan_domain::{BackendError, LogSink, LogStream, Preparation, WorkloadResult, WorkloadSpec};
use vulcan_sandbox::network::{Behind, Egress, SandboxNetwork};

use crate::bundle;
use crate::runsc::Runsc;
use crate::sandbox_cgroups::CgroupBase;
use crate::warm::Sandbox;
use crate::{count_traffic, GvisorBackend, Ready};

/// Pods kept booted ahead.
pub const STOCK: usize = 2;

/// A pod's memory bound while it waits (its sandbox's own needs); the workload's replaces it.
const WAITING_MB: u32 = 64;

/// Numbers pods.
static NEXT_POD: AtomicU64 = AtomicU64::new(1);

/// One pod: its sandbox (the pause process in it) and its network.
pub struct Pod {
    pub sandbox: Sandbox,
    pub network: SandboxNetwork,
}

/// The pods of one server.
pub struct Pods {
    runsc: Runsc,
    cgroups: CgroupBase,
    egress: Arc<Egress>,
    /// Every pod's root: the hold program at [`bundle::POD_INIT`] and a `/proc` to mount.
    root: PathBuf,
    bundles: PathBuf,
    pids_limit: u32,
    stock: Mutex<Stock>,
}

#[derive(Default)]
struct Stock {
    ready: Vec<Pod>,
    making: bool,
    /// The server is stopping: no more pods.
    closed: bool,
}

impl Pods {
    /// Pods booted by `runsc` with networks from `egress`, their bundles in `bundles`;
    /// writes their root into `root` (the hold program and nothing else).
    pub fn new(
        runsc: Runsc,
        cgroups: CgroupBase,
        egress: Arc<Egress>,
        root: PathBuf,
        bundles: PathBuf,
        pids_limit: u32,
    ) -> Result<Arc<Pods>, String> {
        std::fs::create_dir_all(root.join("proc"))
            .and_then(|()| crate::warm::install_hold(&root.join("hold")))
            .map_err(|e| format!("cannot write the pods' root {}: {e}", root.display()))?;
        Ok(Arc::new(Pods {
            runsc,
            cgroups,
            egress,
            root,
            bundles,
            pids_limit,
            stock: Mutex::default(),
        }))
    }

    fn stock(&self) -> std::sync::MutexGuard<'_, Stock> {
        self.stock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A pod booted ahead, if one is ready; more are booted behind it.
    pub fn take(self: &Arc<Self>) -> Option<Pod> {
        let pod = {
            let mut stock = self.stock();
            // A pod whose sandbox died (the host's OOM killer) is destroyed when dropped.
            std::iter::from_fn(|| stock.ready.pop()).find(|pod| pod.sandbox.alive())
        };
        self.restock();
        pod
    }

    /// Boots pods until [`STOCK`] are ready, unless that is under way.
    fn restock(self: &Arc<Self>) {
        {
            let mut stock = self.stock();
            if stock.making || stock.closed || stock.ready.len() >= STOCK {
                return;
            }
            stock.making = true;
        }
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let made = match me.boot().await {
                    Ok(pod) => pod,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not boot a gvisor pod ahead of time");
                        me.stock().making = false;
                        return;
                    }
                };
                let mut stock = me.stock();
                if stock.closed {
                    stock.making = false;
                    return;
                }
                stock.ready.push(made);
                if stock.ready.len() >= STOCK {
                    stock.making = false;
                    return;
                }
            }
        });
    }

    /// Boots one pod: its network (without a policy), its bundle, its cgroup, its sandbox.
    async fn boot(&self) -> Result<Pod, String> {
        let egress = self.egress.clone();
        let network = tokio::task::spawn_blocking(move || {
            let _behind = Behind::enter();
            egress.reserve()
        })
        .await
        .map_err(|e| format!("making a pod's network failed: {e}"))??;
        let id = format!(
            "pod-{}-{}",
            std::process::id(),
            NEXT_POD.fetch_add(1, Ordering::Relaxed)
        );
        let dir = self.bundles.join(&id);
        let memory = bundle::memory_limit_bytes(WAITING_MB);
        let spec = bundle::pod_config(
            &self.root,
            &network.namespace_path(),
            &CgroupBase::runsc_path(&id),
            self.pids_limit,
        )?;
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join("config.json"), crate::json_of(&spec)))
            .map_err(|e| format!("cannot write the pod's bundle: {e}"))?;
        let group = self
            .cgroups
            .create(&id, memory, self.pids_limit)
            .map_err(|e| format!("cannot set up the pod's cgroup: {e}"))?;
        let sandbox = Sandbox::start(
            self.runsc.clone(),
            id,
            dir,
            group,
            self.cgroups.clone(),
            None,
            true,
        )
        .await?;
        Ok(Pod { sandbox, network })
    }

    /// Stops booting pods and hands over the ready ones (at shutdown, to be destroyed).
    pub fn drain(&self) -> Vec<Pod> {
        let mut stock = self.stock();
        stock.closed = true;
        std::mem::take(&mut stock.ready)
    }
}

impl GvisorBackend {
    /// Runs a networked workload as a container in `pod` (see [`pods`]): the pod's network
    /// gets the workload's policy and its cgroup the workload's bounds first. The pod is
    /// destroyed with the workload, its network removed, both off the workload's path.
    pub(crate) async fn run_in_pod(
        &self,
        ready: &Ready,
        mut pod: Pod,
        spec: &WorkloadSpec,
        logs: Arc<dyn LogSink>,
    ) -> Result<WorkloadResult, BackendError> {
        let resources = spec.run.resources;
        pod.network
            .apply(&spec.run.network, resources.net_mbps)
            .await
            .map_err(BackendError)?;
        let bounds = pod
            .sandbox
            .group
            .set_memory_max(bundle::memory_limit_bytes(resources.mem_mb))
            .and_then(|()| ready.cgroups.set_cpus(&pod.sandbox.id, resources.cpus));
        bounds.map_err(|e| BackendError(format!("cannot bound the sandbox: {e}")))?;
        let bundle = self
            .bundle(
                &spec.id,
                spec,
                &logs,
                false,
                Some(&pod.network),
                Some(&pod.sandbox.id),
            )
            .await?;
        logs.emit(
            LogStream::Backend,
            format!(
                "runs in sandbox {}, booted ahead with its network",
                pod.sandbox.id
            ),
        );
        logs.code_started(Preparation::Pool);
        let before = (pod.sandbox.events(), pod.sandbox.group.mark());
        let child = ready
            .runsc
            .run(&bundle.dir, &spec.id)
            .spawn()
            .map_err(|e| BackendError(format!("cannot start runsc: {e}")))?;
        let Pod { sandbox, network } = pod;
        let mut ran = self
            .collect(child, spec, logs, &sandbox.group, before)
            .await;
        count_traffic(&mut ran, network);
        // `runsc run` deleted the container; the pod goes (off this path) when dropped.
        self.exited().insert(spec.id.clone());
        drop(sandbox);
        drop(bundle.image);
        Ok(ran?.0)
    }
}
