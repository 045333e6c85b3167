//! The `gvisor` backend: OCI images run under gVisor's `runsc`.
//!
//! Images are pulled with the OCI distribution protocol, verified blob by blob, stored
//! content-addressed and unpacked once ([`image`]). Each run gets its own bundle: the
//! image root read-only, a tmpfs at `/tmp` as the only writable place, no network but
//! loopback, `cpus`/`mem_mb`/a pids limit as cgroup limits ([`bundle`]), run by
//! `runsc run` ([`runsc`]) with `input` as JSON on stdin; stdout and stderr lines are
//! streamed as logs and stdout is the output ([`output`]). Nothing outlives a run: runsc
//! deletes a container that exits, and `cleanup` destroys one that was killed.
//!
//! `tests/backend.rs` drives this backend as a library (a recording sink in place of
//! the engine): the place to pin a change to what `execute` answers or emits.

pub mod bundle;
pub mod control;
pub mod gobuild;
pub mod image;
pub mod output;
pub mod pods;
mod prepare;
pub mod reaper;
pub mod runsc;
pub mod sandbox_cgroups;
pub mod sandboxes;
#[cfg(feature = "testing")]
pub mod testing;
pub mod warm;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use vulcan_domain::{
    Availability, Backend, BackendCapabilities, BackendError, Invocation, Isolation, LogSink,
    LogStream, Preparation, Runtime, WorkloadResult, WorkloadSpec,
};
use vulcan_sandbox::cgroup::{Events, UsageMark};
use vulcan_sandbox::instances::Instances;
use vulcan_sandbox::network::{Egress, SandboxNetwork};

pub use crate::image::ImageStore;
use crate::pods::{Pod, Pods};
use crate::runsc::Runsc;
use crate::sandbox_cgroups::CgroupBase;

/// Configuration of the gvisor backend.
#[derive(Debug, Clone)]
pub struct GvisorConfig {
    /// The runsc binary; `None` if none was found.
    pub runsc: Option<PathBuf>,
    /// Where runsc's state and the per-run bundles live.
    pub work_dir: PathBuf,
    /// runsc `--platform`: `ptrace` works on any host; `systrap` or `kvm` where supported.
    pub platform: String,
    /// Where networks come from for workloads with an egress policy; `None`: every
    /// workload has loopback only, and one asking for a network is refused.
    pub egress: Option<Arc<Egress>>,
    pub max_concurrency: u32,
    /// Largest stdout kept as output; a workload printing more fails.
    pub max_output_bytes: usize,
    /// Host tasks one sandbox may have (gVisor's own threads included).
    pub pids_limit: u32,
    /// How long pulling the image and making the sandbox may take before the code starts.
    pub preparation_timeout: Duration,
}

impl GvisorConfig {
    pub fn new(runsc: Option<PathBuf>, work_dir: PathBuf) -> Self {
        GvisorConfig {
            runsc,
            work_dir,
            platform: "ptrace".into(),
            egress: None,
            max_concurrency: 8,
            max_output_bytes: 1024 * 1024,
            pids_limit: 512,
            preparation_timeout: Duration::from_secs(630),
        }
    }
}

/// The gvisor backend. See the crate documentation.
pub struct GvisorBackend {
    config: GvisorConfig,
    images: ImageStore,
    state: Result<Ready, String>,
    /// Runs whose container runsc has already deleted (they exited on their own).
    exited: Mutex<HashSet<String>>,
    /// Warm sandboxes of deployed functions.
    instances: Arc<Instances<warm::Sandbox>>,
    /// Networked sandboxes booted ahead (with egress, where runsc runs).
    pods: Option<Arc<Pods>>,
}

struct Ready {
    runsc: Runsc,
    version: String,
    cgroups: CgroupBase,
}

impl GvisorBackend {
    /// Checks runsc and removes what a previous run of the server left behind. Never
    /// fails: a backend that cannot run here is listed as unavailable with the reason.
    pub fn start(config: GvisorConfig, images: ImageStore) -> Self {
        let state = Self::prepare(&config);
        if let Err(reason) = &state {
            tracing::warn!(%reason, "gvisor backend unavailable");
        }
        let instances = Instances::reaped();
        let pods = match (&state, &config.egress) {
            (Ok(ready), Some(egress)) => Pods::new(
                ready.runsc.clone(),
                ready.cgroups.clone(),
                egress.clone(),
                config.work_dir.join("pod-root"),
                config.work_dir.join("bundles"),
                config.pids_limit,
            )
            .map_err(|e| tracing::warn!(error = %e, "networked workloads boot their sandbox"))
            .ok(),
            _ => None,
        };
        GvisorBackend {
            config,
            images,
            state,
            exited: Mutex::new(HashSet::new()),
            instances,
            pods,
        }
    }

    fn prepare(config: &GvisorConfig) -> Result<Ready, String> {
        let bin = config.runsc.clone().ok_or(
            "runsc not found: run scripts/setup.sh (it installs Debian's runsc), or set VULCAN_RUNSC_BIN",
        )?;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("runsc needs root to create sandboxes; run vulcan as root".into());
        }
        // runsc's sandboxes outlive the command that starts them: their ends are reaped here.
        reaper::start();
        let runsc = Runsc {
            bin,
            state_dir: config.work_dir.join("state"),
            platform: config.platform.clone(),
            shared_root: false,
        };
        let version = runsc.version()?;
        for dir in [&runsc.state_dir, &config.work_dir.join("bundles")] {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        // Containers and bundles of a server that died: only ours live in this root.
        let stale = runsc.list();
        for id in &stale {
            runsc.destroy(id);
        }
        if !stale.is_empty() {
            tracing::info!(
                count = stale.len(),
                "removed sandboxes left by the last run"
            );
        }
        if let Ok(entries) = std::fs::read_dir(config.work_dir.join("bundles")) {
            for entry in entries.flatten() {
                sandboxes::remove_bundle(&entry.path());
            }
        }
        warm::install_hold(&config.work_dir.join("hold"))
            .map_err(|e| format!("cannot write the warm sandboxes' init: {e}"))?;
        let cgroups = CgroupBase::detect()?;
        cgroups.sweep();
        Ok(Ready {
            runsc,
            version,
            cgroups,
        })
    }

    fn ready(&self) -> Result<&Ready, BackendError> {
        self.state
            .as_ref()
            .map_err(|reason| BackendError(format!("the gvisor backend is unavailable: {reason}")))
    }

    fn bundle_dir(&self, id: &str) -> PathBuf {
        self.config.work_dir.join("bundles").join(id)
    }

    fn exited(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.exited.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Numbers warm sandboxes.
static NEXT_SANDBOX: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl GvisorBackend {
    /// Feeds the input to a started process, streams its output and waits for it: the
    /// result, judged with what `group` counted since `before`, and those counts.
    async fn collect(
        &self,
        mut child: tokio::process::Child,
        spec: &WorkloadSpec,
        logs: Arc<dyn LogSink>,
        group: &vulcan_sandbox::cgroup::Cgroup,
        before: (Events, UsageMark),
    ) -> Result<(WorkloadResult, Events), BackendError> {
        let (before, mark) = before;
        let stdin = child.stdin.take();
        let input = spec.input.clone();
        let feed = async move {
            if let Some(mut stdin) = stdin {
                if !input.is_null() {
                    let mut bytes = serde_json::to_vec(&input).unwrap_or_default();
                    bytes.push(b'\n');
                    // A workload that never reads stdin closes it early: not an error.
                    let _ = stdin.write_all(&bytes).await;
                }
            }
        };
        let keep = self.config.max_output_bytes;
        let stdout = child
            .stdout
            .take()
            .map(|o| output::pump(o, LogStream::Stdout, logs.clone(), keep));
        let stderr = child
            .stderr
            .take()
            .map(|e| output::pump(e, LogStream::Stderr, logs.clone(), 0));
        let (_, out, err, status) = tokio::join!(
            feed,
            async {
                match stdout {
                    Some(f) => f.await,
                    None => output::Captured::default(),
                }
            },
            async {
                match stderr {
                    Some(f) => f.await,
                    None => output::Captured::default(),
                }
            },
            child.wait()
        );
        let status = status.map_err(|e| BackendError(format!("waiting for runsc failed: {e}")))?;
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(-1);
        let usage = group.usage_since(mark);
        let now = group.events();
        let events = Events {
            oom_kills: now.oom_kills.saturating_sub(before.oom_kills),
            pids_refused: now.pids_refused.saturating_sub(before.pids_refused),
        };
        let error = if events.oom_kills > 0 {
            Some(format!(
                "memory limit exceeded: the workload needed more than its {} MB",
                spec.run.resources.mem_mb
            ))
        } else if events.pids_refused > 0 && code != 0 {
            Some(format!(
                "process limit reached: the sandbox may have at most {} tasks (a fork bomb?); exited with code {code}",
                self.config.pids_limit
            ))
        } else if out.kept.overflowed() {
            Some(format!(
                "output is over the limit of {keep} bytes (the workload printed {} bytes)",
                out.kept.total()
            ))
        } else if code != 0 {
            let last = err.tail.last_line();
            Some(if last.is_empty() {
                format!("exited with code {code}")
            } else {
                format!("exited with code {code}: {last}")
            })
        } else {
            None
        };
        let result = WorkloadResult {
            exit_code: Some(code),
            output: if out.kept.overflowed() {
                String::new()
            } else {
                out.kept.text()
            },
            error,
            usage: Some(vulcan_domain::Usage {
                cpu_time_ms: usage.cpu_time_ms,
                peak_memory_bytes: usage.peak_memory_bytes,
                // The sandbox's host tasks are gVisor's threads, not the workload's processes.
                max_processes: None,
                net_tx_bytes: None,
                net_rx_bytes: None,
            }),
        };
        Ok((result, events))
    }

    /// Serves an invocation from a warm sandbox of its function version: an idle one, or
    /// one started now if fewer than `max_instances` exist (waited for otherwise). The
    /// invocation's process is executed into it; a sandbox whose invocation timed out, was
    /// killed, ran out of memory or hit the process limit is destroyed, and only that
    /// invocation fails.
    async fn invoke_warm(
        &self,
        ready: &Ready,
        invocation: &Invocation,
        spec: &WorkloadSpec,
        logs: Arc<dyn LogSink>,
    ) -> Result<WorkloadResult, BackendError> {
        // The invocation has no container of its own for cleanup to remove.
        self.exited().insert(spec.id.clone());
        let mut lease = self
            .instances
            .lease(
                &invocation.instance_key(),
                invocation.max_instances as usize,
                Duration::from_secs(invocation.idle_timeout_s.into()),
            )
            .await;
        let (sandbox, prepared) = match lease.take().filter(warm::Sandbox::alive) {
            Some(sandbox) => (sandbox, Preparation::Warm),
            None => {
                // No workload id contains it (cleanup matches ids by substring).
                let id = format!(
                    "warm-{}-{}",
                    std::process::id(),
                    NEXT_SANDBOX.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                );
                let bundle = self.bundle(&id, spec, &logs, true, None, None).await?;
                let group = ready
                    .cgroups
                    .create(&id, bundle.memory_limit, self.config.pids_limit)
                    .map_err(|e| {
                        BackendError(format!("cannot set up the sandbox's cgroup: {e}"))
                    })?;
                let started = warm::Sandbox::start(
                    ready.runsc.clone(),
                    id,
                    bundle.dir,
                    group,
                    ready.cgroups.clone(),
                    Some(bundle.image),
                    false,
                )
                .await
                .map_err(BackendError)?;
                logs.emit(
                    LogStream::Backend,
                    format!("started warm sandbox {}", started.id),
                );
                (started, Preparation::Boot)
            }
        };
        logs.code_started(prepared);
        let before = (sandbox.events(), sandbox.group.mark());
        let child = sandbox
            .exec()
            .spawn()
            .map_err(|e| BackendError(format!("cannot start runsc exec: {e}")))?;
        let (result, events) = self
            .collect(child, spec, logs, &sandbox.group, before)
            .await?;
        if events == Events::default() && sandbox.alive() {
            lease.give_back(sandbox);
        }
        Ok(result)
    }
}

/// Removes a run's network (off the caller's path), its bytes counted on the result.
fn count_traffic(
    ran: &mut Result<(WorkloadResult, Events), BackendError>,
    network: SandboxNetwork,
) {
    let traffic = network.close();
    if let Ok((result, _)) = ran {
        if let Some(usage) = result.usage.as_mut() {
            usage.net_tx_bytes = Some(traffic.tx_bytes);
            usage.net_rx_bytes = Some(traffic.rx_bytes);
        }
    }
}

#[async_trait]
impl Backend for GvisorBackend {
    fn isolation(&self) -> Isolation {
        Isolation::Gvisor
    }

    fn capabilities(&self) -> BackendCapabilities {
        BackendCapabilities {
            name: "gvisor (OCI images under runsc)".into(),
            supported_runtimes: vec![Runtime::Oci],
            supported_isolations: vec![Isolation::Gvisor],
            max_concurrency: self.config.max_concurrency,
        }
    }

    fn preparation_timeout(&self) -> Duration {
        self.config.preparation_timeout
    }

    fn enforces_egress(&self) -> bool {
        self.config.egress.is_some() && self.state.is_ok()
    }

    fn availability(&self) -> Availability {
        match &self.state {
            Ok(ready) => Availability::ready(serde_json::json!({
                "runsc": ready.version,
                "runsc_path": ready.runsc.bin,
                "platform": ready.runsc.platform,
                "egress": self.config.egress.is_some(),
                "images_on_disk": self.images.roots_on_disk(),
            })),
            Err(reason) => Availability::unavailable(reason.clone()),
        }
    }

    async fn execute(
        &self,
        spec: WorkloadSpec,
        logs: Arc<dyn LogSink>,
    ) -> Result<WorkloadResult, BackendError> {
        let ready = self.ready()?;
        // A function with a network runs cold: a warm sandbox would hold a network open
        // between invocations.
        let warm = spec.run.network.is_none();
        if let Some(invocation) = spec.invocation.as_ref().filter(|i| i.reuse && warm) {
            return self.invoke_warm(ready, invocation, &spec, logs).await;
        }
        // A pod's sandbox was made without the workload's volumes.
        if !spec.run.network.is_none() && spec.attached.is_empty() {
            if let Some(pod) = self.pods.as_ref().and_then(Pods::take) {
                return self.run_in_pod(ready, pod, &spec, logs).await;
            }
        }
        let network = match (&self.config.egress, spec.run.network.is_none()) {
            (_, true) => None,
            (Some(egress), false) => Some(
                egress
                    .open(&spec.run.network, spec.run.resources.net_mbps)
                    .await
                    .map_err(BackendError)?,
            ),
            (None, false) => {
                return Err(BackendError(
                    "this node gives workloads no network (VULCAN_EGRESS=off)".into(),
                ))
            }
        };
        let bundle = self
            .bundle(&spec.id, &spec, &logs, false, network.as_ref(), None)
            .await?;
        let group = ready
            .cgroups
            .create(&spec.id, bundle.memory_limit, self.config.pids_limit)
            .map_err(|e| BackendError(format!("cannot set up the sandbox's cgroup: {e}")))?;
        let mark = group.mark();
        logs.code_started(Preparation::Boot);
        let mut command = match &network {
            Some(_) => ready.runsc.run_networked(&bundle.dir, &spec.id),
            None => ready.runsc.run(&bundle.dir, &spec.id),
        };
        let child = command
            .spawn()
            .map_err(|e| BackendError(format!("cannot start runsc: {e}")))?;
        let mut ran = self
            .collect(child, &spec, logs, &group, (Events::default(), mark))
            .await;
        if let Some(network) = network {
            count_traffic(&mut ran, network);
        }
        // `runsc run` deletes the container once it has exited; what it wrote to its
        // volumes is on their disks once they are unmounted.
        self.exited().insert(spec.id.clone());
        if !spec.attached.is_empty() {
            let dir = bundle.dir.clone();
            let _ = tokio::task::spawn_blocking(move || sandboxes::unmount_volumes(&dir)).await;
        }
        drop(bundle.image);
        Ok(ran?.0)
    }

    /// Destroys the idle warm sandboxes before the server exits (a sandbox outlives the
    /// process that started it; one serving is destroyed when its run is stopped).
    async fn shutdown(&self) {
        let idle = self.instances.retire("");
        let pods = self.pods.as_ref().map(|p| p.drain()).unwrap_or_default();
        let _ = tokio::task::spawn_blocking(move || {
            for mut sandbox in idle {
                sandbox.destroy();
            }
            for Pod {
                mut sandbox,
                network,
            } in pods
            {
                sandbox.destroy();
                network.remove();
            }
        })
        .await;
    }

    fn warm_instances(&self) -> std::collections::HashMap<String, usize> {
        self.instances.counts()
    }

    fn retire(&self, prefix: &str) {
        drop(self.instances.retire(prefix));
    }

    fn memory_in_use(&self) -> Option<u64> {
        self.state.as_ref().ok()?.cgroups.usage()
    }

    async fn cleanup(&self, workload_id: &str) -> Result<(), BackendError> {
        let Ok(ready) = self.ready() else {
            return Ok(());
        };
        let exited = self.exited().remove(workload_id);
        let runsc = ready.runsc.clone();
        let id = workload_id.to_owned();
        let bundle = self.bundle_dir(workload_id);
        let cgroups = ready.cgroups.clone();
        tokio::task::spawn_blocking(move || {
            if !exited && runsc.exists(&id) {
                runsc.destroy(&id);
            }
            sandboxes::remove_bundle(&bundle);
            cgroups.remove(&id);
        })
        .await
        .map_err(|e| BackendError(format!("cleanup failed: {e}")))
    }
}

/// A spec as the JSON file runsc reads (the OCI types serialize infallibly).
pub(crate) fn json_of(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}
