//! The `microvm` backend: each workload gets its own Linux kernel in a QEMU `microvm`,
//! with Vulcan's guest agent as init ([`vulcan_agent`]).
//!
//! The host side, in reading order: [`vmm`] (how a VM is started; QEMU today, a
//! Firecracker driver would implement the same trait), [`vm`] (boot, hand over one
//! workload, follow it; the guest is untrusted), [`accel`] (KVM where it can really boot a
//! guest, TCG otherwise), then this file (a VM for each workload: restored or booted),
//! `restore` with [`snapshot`] (VMs restored from snapshots of booted guests), `pool` (VMs
//! made ahead of time per runtime, each used once), `served` (warm instances of deployed
//! functions), `networked` (a VM with a NIC on a tap, for a workload with a network), `counters` (how VMs came to be, for `/v1/backends` and `/metrics`).
//!
//! `tests/backend.rs` drives this backend as a library (a recording sink in place of
//! the engine): the place to pin a change to what `execute` answers or emits.
//!
//! Workload forms: `code` is `main.py` (python) or `main.js` (node); `code_archive` is a
//! tar.gz unpacked into `/work` (the working directory) whose entrypoint is `main.py`,
//! `main.js`, or for `go` a static binary `main`. `input` is JSON on stdin; stdout is the
//! output. The program runs as an unprivileged user with at most
//! [`vulcan_agent::MAX_PROCESSES`] processes, in the runtime's read-only root filesystem
//! with tmpfs at `/tmp` and `/work`.

pub mod accel;
mod counters;
mod from_image;
mod networked;
mod pool;
mod qmp;
mod restore;
mod sandboxes;
pub use sandboxes::MicrovmSandboxes;
mod served;
pub mod snapshot;
mod templates;
pub mod vm;
pub mod vmm;
mod volumes;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use tokio::sync::Notify;
use vulcan_agent::Run;
use vulcan_domain::{
    Availability, Backend, BackendCapabilities, BackendError, Isolation, LogSink, LogStream,
    Preparation, Resources, Runtime, WorkloadResult, WorkloadSpec,
};

use std::sync::atomic::Ordering;

use vulcan_sandbox::archive::Rules;
use vulcan_sandbox::instances::Instances;

use crate::counters::Counters;
use crate::restore::NotRestored;
use crate::snapshot::Snapshots;
use crate::templates::{Template, Templates};
use crate::vm::Vm;
use crate::vmm::{Accel, QemuMicrovm, VmSpec, Vmm};

/// How long saving a booted guest into a snapshot may take (≈ 0.7 s under TCG).
const SAVE_TIMEOUT: Duration = Duration::from_secs(30);

/// Memory the guest kernel and agent need on top of the workload's `mem_mb`.
pub const GUEST_OVERHEAD_MB: u32 = 64;

/// How the accelerator is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelChoice {
    /// KVM if a probe guest boots under it, else TCG.
    Auto,
    Kvm,
    Tcg,
}

#[derive(Clone)]
pub struct MicrovmConfig {
    pub qemu: Option<PathBuf>,
    /// Where `scripts/guest.sh` put vmlinuz, initramfs.cpio and rootfs.ext4.
    pub assets: PathBuf,
    /// Replaces the assets' initramfs (a custom agent, or a test's hostile guest).
    pub initramfs: Option<PathBuf>,
    /// Per-VM directories (channel socket, console log, pid file).
    pub work_dir: PathBuf,
    pub accel: AccelChoice,
    /// VMs kept booted per runtime; 0 disables the pool for that runtime.
    pub pool: HashMap<Runtime, usize>,
    /// The resources pooled VMs are booted with: the defaults.
    pub pool_resources: Resources,
    pub max_concurrency: u32,
    pub max_output_bytes: usize,
    pub boot_timeout: Duration,
    /// Restore VMs from snapshots of booted guests instead of booting them
    /// ([`snapshot`]); snapshots live in `work_dir/snapshots`.
    pub snapshots: bool,
    /// Turns Go source into the static binary the guest runs (a gVisor sandbox builds it);
    /// without one, `runtime: go` takes a prebuilt `main` only.
    pub builder: Option<Arc<dyn vulcan_domain::Builder>>,
    /// Where networks come from for workloads with an egress policy (a tap each);
    /// `None`: a workload asking for a network is refused.
    pub egress: Option<Arc<vulcan_sandbox::network::Egress>>,
    /// Where image roots come from for workloads that name an image ([`templates`]);
    /// `None`: such a workload is refused.
    pub images: Option<Arc<dyn vulcan_domain::ImageRoots>>,
    /// The disk converted image roots and their snapshots may take, in bytes.
    pub template_disk_bytes: u64,
}

impl MicrovmConfig {
    pub fn new(qemu: Option<PathBuf>, assets: PathBuf, work_dir: PathBuf) -> Self {
        MicrovmConfig {
            qemu,
            assets,
            initramfs: None,
            work_dir,
            accel: AccelChoice::Auto,
            pool: [(Runtime::Python, 1), (Runtime::Node, 1), (Runtime::Go, 1)].into(),
            pool_resources: Resources::default(),
            max_concurrency: 4,
            max_output_bytes: 1024 * 1024,
            boot_timeout: Duration::from_secs(20),
            snapshots: true,
            builder: None,
            egress: None,
            images: None,
            template_disk_bytes: 8 << 30,
        }
    }
}

pub struct MicrovmBackend {
    inner: Arc<Inner>,
}

struct Inner {
    config: MicrovmConfig,
    state: Result<Ready, String>,
    /// Warm instances of deployed functions: VMs whose agent keeps a handler loaded.
    instances: Arc<Instances<Vm>>,
    idle: Mutex<HashMap<Runtime, Vec<Vm>>>,
    /// VMs with a NIC made ahead, each on a network of its own with no policy yet, for the
    /// runtimes that have run a networked workload (see `networked`).
    networked: Mutex<pool::NetworkedPool>,
    wanted: Notify,
    stopping: std::sync::atomic::AtomicBool,
    /// Opened at the first need (the assets' digest reads the root filesystem once).
    snapshots: tokio::sync::OnceCell<Result<Arc<Snapshots>, String>>,
    /// One snapshot is made at a time: boots compete for the CPUs.
    making: tokio::sync::Mutex<()>,
    counters: Counters,
    /// Image roots converted for VMs (with an image store).
    templates: Option<Arc<Templates>>,
}

struct Ready {
    vmm: Box<dyn Vmm>,
    accel: Accel,
    accel_note: String,
    kernel: PathBuf,
    kernel_version: String,
    initramfs: PathBuf,
    rootfs: PathBuf,
    qemu_version: String,
    /// Accelerator-specific kernel arguments.
    cmdline_extra: String,
}

/// `cmdline` for a guest with a NIC: its agent loads the driver before it is Ready.
fn with_nic(cmdline: &str) -> String {
    format!("{cmdline} vulcan.nic=1").trim().to_owned()
}

fn runtime_rootfs(runtime: Runtime) -> bool {
    matches!(runtime, Runtime::Python | Runtime::Node)
}

impl Inner {
    /// A VM for `runtime` in its own root filesystem, or in `template`'s root.
    fn spec(
        &self,
        ready: &Ready,
        runtime: Runtime,
        resources: Resources,
        template: Option<&Template>,
    ) -> VmSpec {
        let (rootfs, cmdline_extra) = match template {
            Some(t) => (
                Some(t.path.clone()),
                format!("{} {}", ready.cmdline_extra, vulcan_agent::OVERLAY_ARG)
                    .trim()
                    .to_owned(),
            ),
            None => (
                runtime_rootfs(runtime).then(|| ready.rootfs.clone()),
                ready.cmdline_extra.clone(),
            ),
        };
        VmSpec {
            kernel: ready.kernel.clone(),
            initramfs: ready.initramfs.clone(),
            rootfs,
            mem_mb: resources.mem_mb + GUEST_OVERHEAD_MB,
            cpus: resources.cpus,
            accel: ready.accel,
            channel: PathBuf::new(),
            console: PathBuf::new(),
            pidfile: PathBuf::new(),
            cmdline_extra,
            qmp: None,
            incoming: None,
            memory: None,
            nic: None,
            data_disk: None,
            volumes: Vec::new(),
        }
    }

    /// A fresh VM for one workload or the pool: restored from a snapshot where snapshots
    /// are on, booted otherwise or when that fails (a boot that does not reach the agent in
    /// time is retried once: emulated boots on a busy host occasionally stall). Returns the
    /// VM and how it came to be.
    async fn fresh(
        &self,
        runtime: Runtime,
        resources: Resources,
        logs: Option<&dyn LogSink>,
    ) -> Result<(Vm, String), String> {
        self.fresh_with(runtime, resources, logs, None, None).await
    }

    /// [`Inner::fresh`], with `nic` if given, in `template`'s root if given.
    async fn fresh_with(
        &self,
        runtime: Runtime,
        resources: Resources,
        logs: Option<&dyn LogSink>,
        nic: Option<vmm::Nic>,
        template: Option<&Template>,
    ) -> Result<(Vm, String), String> {
        let emit = |line: String| {
            if let Some(logs) = logs {
                logs.emit(LogStream::Backend, line);
            }
        };
        let mut retry = true;
        if self.config.snapshots {
            match self
                .restore(runtime, resources, logs, nic.clone(), template)
                .await
            {
                Ok((vm, name)) => return Ok((vm, format!("a VM restored from snapshot {name}"))),
                Err(NotRestored::Restore(e)) => {
                    self.counters.restore_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%runtime, error = %e, "a microVM did not restore");
                    emit(format!("restoring the VM failed ({e}); booting one"));
                }
                Err(NotRestored::Snapshot(e)) => {
                    emit(format!("no snapshot could be made ({e}); booting the VM"));
                    retry = false;
                }
            }
        }
        let vm = match self
            .boot_with(runtime, resources, nic.clone(), template)
            .await
        {
            Ok(vm) => vm,
            Err(first) if retry => {
                emit(format!("the VM did not boot ({first}); trying a new one"));
                self.boot_with(runtime, resources, nic, template).await?
            }
            Err(e) => return Err(e),
        };
        self.counters.booted(&vm);
        Ok((vm, "a new VM".into()))
    }

    /// Boots a VM, with `nic` if given, in `template`'s root if given.
    async fn boot_with(
        &self,
        runtime: Runtime,
        resources: Resources,
        nic: Option<vmm::Nic>,
        template: Option<&Template>,
    ) -> Result<Vm, String> {
        let ready = self.state.as_ref().map_err(Clone::clone)?;
        let mut spec = self.spec(ready, runtime, resources, template);
        if nic.is_some() {
            spec.cmdline_extra = with_nic(&spec.cmdline_extra);
        }
        let spec = VmSpec { nic, ..spec };
        Vm::boot(
            ready.vmm.as_ref(),
            spec,
            &self.config.work_dir.join("vms"),
            self.config.boot_timeout,
        )
        .await
    }
}

/// Kills VMM processes and removes VM directories a previous server left behind.
fn sweep(vms: &Path) {
    let Ok(entries) = std::fs::read_dir(vms) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let pid = std::fs::read_to_string(dir.join("qemu.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok());
        if let Some(pid) = pid {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let ours = String::from_utf8_lossy(&cmdline).contains(&*dir.to_string_lossy());
            if ours {
                // SAFETY: kill has no memory preconditions; the pid runs our VM.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn qemu_version(qemu: &Path) -> Result<String, String> {
    let out = std::process::Command::new(qemu)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", qemu.display()))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|l| l.trim().to_owned())
        .filter(|_| out.status.success())
        .ok_or_else(|| format!("{} --version failed", qemu.display()))
}

impl MicrovmBackend {
    /// Checks QEMU and the guest assets, picks the accelerator, cleans up after a crash
    /// and starts the warm pool. Never fails: an unusable backend is listed with the reason.
    pub async fn start(config: MicrovmConfig) -> Self {
        let state = Self::prepare(&config).await;
        if let Err(reason) = &state {
            tracing::warn!(%reason, "microvm backend unavailable");
        }
        let ready = state.is_ok();
        let instances = Instances::reaped();
        let templates = match &config.images {
            Some(images) if ready => Templates::open(
                config.work_dir.join("templates"),
                config.template_disk_bytes,
                images.clone(),
            )
            .map_err(|e| tracing::warn!(error = %e, "microVM templates unavailable"))
            .ok()
            .map(Arc::new),
            _ => None,
        };
        let inner = Arc::new(Inner {
            config,
            state,
            instances,
            idle: Mutex::new(HashMap::new()),
            networked: Mutex::default(),
            wanted: Notify::new(),
            stopping: std::sync::atomic::AtomicBool::new(false),
            snapshots: tokio::sync::OnceCell::new(),
            making: tokio::sync::Mutex::new(()),
            counters: Counters::default(),
            templates,
        });
        if ready && inner.config.pool.values().any(|n| *n > 0) {
            tokio::spawn(inner.clone().refill());
        }
        if inner.templates.is_some() {
            tokio::spawn(inner.clone().sweep_templates());
        }
        MicrovmBackend { inner }
    }

    async fn prepare(config: &MicrovmConfig) -> Result<Ready, String> {
        let qemu = config.qemu.clone().ok_or(
            "qemu-system-x86_64 not found: run scripts/setup.sh (it installs Debian's qemu-system-x86), or set VULCAN_QEMU_BIN",
        )?;
        let qemu_version = qemu_version(&qemu)?;
        let asset = |name: &str| {
            let p = config.assets.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(format!(
                    "guest asset {} is missing: run scripts/guest.sh (scripts/setup.sh runs it)",
                    p.display()
                ))
            }
        };
        let kernel = asset("vmlinuz")?;
        let rootfs = asset("rootfs.ext4")?;
        let initramfs = match &config.initramfs {
            Some(p) if p.is_file() => p.clone(),
            Some(p) => {
                return Err(format!(
                    "VULCAN_MICROVM_INITRAMFS {} does not exist",
                    p.display()
                ))
            }
            None => asset("initramfs.cpio")?,
        };
        let kernel_version = std::fs::read_to_string(config.assets.join("kernel.version"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let vms = config.work_dir.join("vms");
        std::fs::create_dir_all(&vms)
            .map_err(|e| format!("cannot create {}: {e}", vms.display()))?;
        sweep(&vms);
        // Snapshots a crash left half-written go now; the rest are checked at first use.
        snapshot::sweep_partials(&config.work_dir.join("snapshots"));
        let vmm: Box<dyn Vmm> = Box::new(QemuMicrovm { bin: qemu });
        let (accel, accel_note) =
            accel::choose(config, vmm.as_ref(), &kernel, &initramfs, &vms).await;
        tracing::info!(accel = accel.as_str(), note = %accel_note, "microvm accelerator");
        Ok(Ready {
            cmdline_extra: vmm::accel_cmdline(accel),
            vmm,
            accel,
            accel_note,
            kernel,
            kernel_version,
            initramfs,
            rootfs,
            qemu_version,
        })
    }

    fn ready(&self) -> Result<&Ready, BackendError> {
        self.inner
            .state
            .as_ref()
            .map_err(|r| BackendError(format!("the microvm backend is unavailable: {r}")))
    }

    /// A VM booted to its agent: from the warm pool, or booted now (a boot that does not
    /// reach the agent in time is retried once: emulated boots on a busy host occasionally
    /// stall). Says which, and how long the boot took, in the workload's log.
    async fn vm_for(
        &self,
        runtime: Runtime,
        resources: Resources,
        logs: &dyn LogSink,
        template: Option<&Template>,
    ) -> Result<(Vm, Preparation), BackendError> {
        let accel = self.ready()?.accel.as_str();
        let warm = match template {
            None => self.inner.take_warm(runtime, resources),
            Some(_) => None,
        };
        let (vm, how) = match warm {
            Some(vm) => (vm, "a warm VM".to_owned()),
            None => self
                .inner
                .fresh_with(runtime, resources, Some(logs), None, template)
                .await
                .map_err(|e| BackendError(format!("the VM did not boot: {e}")))?,
        };
        let verb = if vm.restored {
            "restored"
        } else {
            "booted to its agent"
        };
        let prepared = match (how.as_str(), vm.restored) {
            ("a warm VM", _) => Preparation::Pool,
            (_, true) => Preparation::Restore,
            (_, false) => Preparation::Boot,
        };
        logs.emit(
            LogStream::Backend,
            format!(
                "{how}: {verb} in {} ms ({accel}, guest uptime {} ms, kernel {})",
                vm.boot_time.as_millis(),
                vm.ready.uptime_ms,
                vm.ready.kernel
            ),
        );
        Ok((vm, prepared))
    }
}

impl MicrovmBackend {
    /// What a VM is handed to run `spec` (with `serve`, to keep its handler loaded): Go
    /// source built first (see [`MicrovmConfig::builder`]), an archive checked, then
    /// encoded once; with an image, its template made ready (`from_image`).
    /// `Ok(Err(..))` is the result the run ends with (a failed build).
    pub(crate) async fn job_for(
        &self,
        spec: &WorkloadSpec,
        serve: bool,
        logs: &Arc<dyn LogSink>,
    ) -> Result<Result<Job, WorkloadResult>, BackendError> {
        let runtime = spec.run.runtime;
        let built;
        let spec = match &self.inner.config.builder {
            Some(builder) if runtime == Runtime::Go => {
                match builder.build(spec.clone(), logs).await {
                    Ok(spec) => {
                        built = spec;
                        &built
                    }
                    Err(failed) => return Ok(Err(failed)),
                }
            }
            _ => spec,
        };
        if runtime == Runtime::Go && spec.run.code.is_some() {
            return Err(BackendError(
                "runtime go takes a \"code_archive\" holding a static binary named main (build it with CGO_ENABLED=0 go build -o main)".into(),
            ));
        }
        if let Some(archive) = &spec.run.code_archive {
            check_archive(archive.clone()).await?;
        }
        let mut run = Run {
            runtime: runtime.to_string(),
            code: spec.run.code.clone(),
            archive: spec
                .run
                .code_archive
                .as_ref()
                .map(|a| base64::engine::general_purpose::STANDARD.encode(a)),
            input: spec.input.clone(),
            env: spec.run.env.clone().into_iter().collect(),
            rootfs: runtime_rootfs(runtime),
            mem_mb: spec.run.resources.mem_mb,
            serve,
            seed: None,
            network: None,
            image: None,
            sandbox: false,
            volumes: Vec::new(),
        };
        let template = match spec.run.image.as_deref() {
            Some(reference) => Some(self.run_in_image(reference, spec, &mut run, logs).await?),
            None => None,
        };
        Ok(Ok(Job { run, template }))
    }
}

/// What a VM is handed, and the template whose root it needs (held until the VM is made).
pub(crate) struct Job {
    pub run: Run,
    pub template: Option<Template>,
}

/// Refuses an archive that breaks the code-archive rules (an entry leaving the work
/// directory, more than the size budget) before a VM is spent on it; the agent applies the
/// same rules when it unpacks. Off the async runtime: it decompresses everything.
async fn check_archive(archive: Vec<u8>) -> Result<(), BackendError> {
    tokio::task::spawn_blocking(move || {
        vulcan_sandbox::archive::check(&archive[..], Rules::code_archive())
            .map(drop)
            .map_err(|e| BackendError(format!("\"code_archive\" was refused: {e}")))
    })
    .await
    .map_err(|e| BackendError(format!("checking the archive failed: {e}")))?
}

#[async_trait]
impl Backend for MicrovmBackend {
    fn isolation(&self) -> Isolation {
        Isolation::Microvm
    }

    fn capabilities(&self) -> BackendCapabilities {
        BackendCapabilities {
            name: "microvm (QEMU microvm + vulcan-agent)".into(),
            supported_runtimes: vec![Runtime::Python, Runtime::Node, Runtime::Go, Runtime::Oci],
            supported_isolations: vec![Isolation::Microvm],
            max_concurrency: self.inner.config.max_concurrency,
        }
    }

    /// At worst: a snapshot made (a boot and a save), a restore that fails, then two boots
    /// (a stalled one is retried once), and the hand-over.
    fn preparation_timeout(&self) -> Duration {
        self.inner.config.boot_timeout * 4 + SAVE_TIMEOUT + Duration::from_secs(15)
    }

    fn enforces_egress(&self) -> bool {
        self.inner.config.egress.is_some() && self.inner.state.is_ok()
    }

    fn availability(&self) -> Availability {
        match &self.inner.state {
            Ok(ready) => {
                let idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
                let pool: HashMap<String, serde_json::Value> = self
                    .inner
                    .config
                    .pool
                    .iter()
                    .map(|(rt, size)| {
                        (
                            rt.to_string(),
                            serde_json::json!({
                                "size": size,
                                "idle": idle.get(rt).map_or(0, Vec::len),
                                "idle_with_a_nic": self.inner.networked_idle(*rt),
                            }),
                        )
                    })
                    .collect();
                let opened = self.inner.snapshots.get().and_then(|s| s.as_ref().ok());
                let snapshots = opened.map(|s| s.list()).unwrap_or_default();
                let c = &self.inner.counters;
                let templates = self
                    .inner
                    .templates
                    .as_ref()
                    .map(|t| t.details(opened.map(|s| &**s)));
                Availability::ready(serde_json::json!({
                    "templates": templates,
                    "snapshots": {
                        "enabled": self.inner.config.snapshots,
                        "list": snapshots,
                        "restored": c.restored.load(Ordering::Relaxed),
                        "booted": c.booted.load(Ordering::Relaxed),
                        "restore_failed": c.restore_failed.load(Ordering::Relaxed),
                        "made": c.snapshots_made.load(Ordering::Relaxed),
                    },
                    "vmm": ready.vmm.name(),
                    "qemu": ready.qemu_version,
                    "accelerator": ready.accel.as_str(),
                    "accelerator_note": ready.accel_note,
                    "guest_kernel": ready.kernel_version,
                    "warm_pool": pool,
                }))
            }
            Err(reason) => Availability::unavailable(reason.clone()),
        }
    }

    async fn execute(
        &self,
        spec: WorkloadSpec,
        logs: Arc<dyn LogSink>,
    ) -> Result<WorkloadResult, BackendError> {
        self.ready()?;
        let runtime = spec.run.runtime;
        let runs = match runtime {
            Runtime::Python | Runtime::Node | Runtime::Go => true,
            Runtime::Oci => spec.run.image.is_some(),
            Runtime::Wasm => false,
        };
        if !runs {
            return Err(BackendError(format!(
                "the microvm backend does not run {runtime}"
            )));
        }
        if !spec.attached.is_empty() {
            return self.execute_with_volumes(spec, logs).await;
        }
        if !spec.run.network.is_none() {
            return self.execute_networked(spec, logs).await;
        }
        // A handler to call (python, node), or a warm VM to run a program in again (go): a
        // warm instance has the job already, so it is made only to start one.
        if let Some(invocation) = spec.invocation.as_ref().filter(|i| i.handler || i.reuse) {
            return self.invoke_served(invocation, &spec, logs).await;
        }
        let Job { run, template } = match self.job_for(&spec, false, &logs).await? {
            Ok(job) => job,
            Err(failed) => return Ok(failed),
        };
        let (vm, prepared) = self
            .vm_for(
                runtime,
                spec.run.resources,
                logs.as_ref(),
                template.as_ref(),
            )
            .await?;
        drop(template);
        logs.code_started(prepared);
        vm.run(
            &run,
            logs,
            self.inner.config.max_output_bytes,
            spec.run.resources.mem_mb,
        )
        .await
    }

    fn warm_instances(&self) -> HashMap<String, usize> {
        self.inner.instances.counts()
    }

    fn retire(&self, prefix: &str) {
        drop(self.inner.instances.retire(prefix));
    }

    /// The resident memory of every live VM's QEMU process (the guest's RAM as touched).
    fn counters(&self) -> Vec<(&'static str, u64)> {
        let c = &self.inner.counters;
        vec![
            ("booted", c.booted.load(Ordering::Relaxed)),
            ("restored", c.restored.load(Ordering::Relaxed)),
            ("restore_failed", c.restore_failed.load(Ordering::Relaxed)),
            ("snapshot_made", c.snapshots_made.load(Ordering::Relaxed)),
            (
                "template_converted",
                self.inner
                    .templates
                    .as_ref()
                    .map_or(0, |t| t.converted.load(Ordering::Relaxed)),
            ),
        ]
    }

    fn start_times(&self) -> Vec<(&'static str, f64)> {
        let recent = self
            .inner
            .counters
            .recent
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        [("boot", recent.0.median()), ("restore", recent.1.median())]
            .into_iter()
            .filter_map(|(how, ms)| Some((how, ms?)))
            .collect()
    }

    fn memory_in_use(&self) -> Option<u64> {
        self.inner.state.as_ref().ok()?;
        let entries = std::fs::read_dir(self.inner.config.work_dir.join("vms")).ok()?;
        let total_kb: u64 = entries
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("qemu.pid")).ok())
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).ok())
            .filter_map(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .sum();
        Some(total_kb * 1024)
    }

    async fn cleanup(&self, _workload_id: &str) -> Result<(), BackendError> {
        // A VM is destroyed (process killed, directory removed) when its run ends or is
        // dropped; nothing is shared between workloads.
        Ok(())
    }

    async fn shutdown(&self) {
        self.inner
            .stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.wanted.notify_waiters();
        self.inner
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let networked = self.inner.drain_networked();
        let _ = tokio::task::spawn_blocking(move || {
            for pool::NetworkedVm { vm, network } in networked {
                drop(vm);
                network.remove();
            }
        })
        .await;
        drop(self.inner.instances.retire(""));
    }
}
