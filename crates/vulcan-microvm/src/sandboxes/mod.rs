//! Long-lived sandboxes ([`vulcan_domain::SandboxDriver`]) in microVMs.
//!
//! A sandbox is a VM booted in its image's template root ([`crate::templates`]) with a
//! disk of its own (`disk_mb` of ext4, a sparse file) that the image's overlay writes to,
//! and its agent holding it ([`vulcan_agent::held`]): processes are started, fed and
//! signalled on call, their output streamed back ([`link`]); files are the agent's calls
//! too ([`files`]). Guest RAM is a file of the sandbox's, mapped shared: pausing saves
//! only the devices' state next to it, stops the VM and drops the RAM's pages from the
//! host's memory; resuming restores the VM from the two, its processes — followed ones
//! included — carrying on where they were.
//!
//! Everything of sandbox `id` is under `<work dir>/sandboxes/<id>/`: `disk.img`, `memory`,
//! `state` (while paused), `sandbox.json` (what a later server needs to take it back).
//! Destroying it kills the VM and removes the directory. A server that stops pauses its
//! sandboxes and the next one takes them back, still paused; what else an earlier server
//! left is removed.

mod files;
mod link;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;
use vulcan_agent::held::{Op, Spawn, Usage};
use vulcan_agent::{FromImage, Run, DATA_DISK_ARG};
use vulcan_domain::{
    Availability, BackendError, ImageConfig, Isolation, LeasedRoot, LiveProcess, LiveSandbox,
    LogSink, LogStream, ProcessLaunch, ProcessOutput, Resources, Runtime, Sandbox, SandboxDriver,
    SandboxFiles, SandboxLaunch, SandboxUsage,
};
use vulcan_sandbox::image_user;

use self::files::{VmFiles, VmProcess};
use self::link::{Calls, Follower};
use crate::snapshot::Shape;
use crate::templates::Template;
use crate::vm::Vm;
use crate::vmm::{GuestMemory, VmSpec};
use crate::{Inner, MicrovmBackend};

/// How long saving a sandbox's VM may take (its devices' state: RAM stays in its file).
const PAUSE_TIMEOUT: Duration = Duration::from_secs(60);

/// How often what a running sandbox uses is asked for.
const USAGE_EVERY: Duration = Duration::from_secs(2);

/// The microVM backend's sandboxes on this node.
pub struct MicrovmSandboxes {
    inner: Arc<Inner>,
    /// `<work dir>/sandboxes`.
    dir: PathBuf,
}

impl MicrovmBackend {
    /// The driver of this backend's sandboxes.
    pub fn sandboxes(&self) -> MicrovmSandboxes {
        MicrovmSandboxes {
            dir: self.inner.config.work_dir.join("sandboxes"),
            inner: self.inner.clone(),
        }
    }
}

/// Where a template's conversion reports (no workload log to write to).
struct Traced;

impl LogSink for Traced {
    fn emit(&self, _stream: LogStream, line: String) {
        tracing::info!(%line, "microVM sandbox");
    }
}

#[async_trait]
impl SandboxDriver for MicrovmSandboxes {
    fn isolation(&self) -> Isolation {
        Isolation::Microvm
    }

    fn availability(&self) -> Availability {
        match (&self.inner.state, &self.inner.templates) {
            (Err(reason), _) => Availability::unavailable(reason.clone()),
            (Ok(_), None) => Availability::unavailable(
                "microVM sandboxes start from images, and this node's microVMs have no image store",
            ),
            (Ok(ready), Some(_)) => Availability::ready(serde_json::json!({
                "root": "the image's template under an overlay on the sandbox's own ext4 disk",
                "accelerator": ready.accel.as_str(),
                "pause": "devices' state saved; RAM kept in a file of the sandbox's",
            })),
        }
    }

    async fn create(&self, launch: SandboxLaunch) -> Result<Box<dyn LiveSandbox>, BackendError> {
        let dir = self.dir.join(&launch.id);
        let started = self.start(&launch, &dir).await;
        if started.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        started
    }

    async fn adopt(&self, sandbox: &Sandbox) -> Result<Box<dyn LiveSandbox>, BackendError> {
        Ok(Box::new(self.take_back(sandbox).await?))
    }

    async fn sweep(&self, keep: &[String]) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

impl MicrovmSandboxes {
    async fn start(
        &self,
        launch: &SandboxLaunch,
        dir: &Path,
    ) -> Result<Box<dyn LiveSandbox>, BackendError> {
        let ready = self
            .inner
            .state
            .as_ref()
            .map_err(|r| BackendError(format!("the microvm backend is unavailable: {r}")))?;
        let templates = self
            .inner
            .templates
            .as_ref()
            .ok_or_else(|| BackendError("this node's microVMs have no image store".into()))?;
        let (template, lease) = templates
            .root(&launch.image, &Traced, None)
            .await
            .map_err(BackendError)?;
        let config = lease.record.config.clone();
        let owner = image_user::user(&lease.rootfs, &config.user).map_err(BackendError)?;
        std::fs::create_dir_all(dir)
            .map_err(|e| BackendError(format!("cannot create {}: {e}", dir.display())))?;
        let spec = self.spec_of(&launch.resources, &template, dir)?;
        let restored = match self.inner.config.snapshots {
            true => match self.restored(launch, &template, &spec).await {
                Ok(vm) => Some(vm),
                Err(e) => {
                    tracing::warn!(error = %e, "a microVM sandbox did not restore; booting it");
                    None
                }
            },
            false => None,
        };
        let mut vm = match restored {
            Some(vm) => vm,
            None => {
                let _ = std::fs::remove_file(dir.join("memory"));
                let (disk, disk_mb) = (dir.join("disk.img"), launch.resources.disk_mb);
                tokio::task::spawn_blocking(move || {
                    vulcan_sandbox::disk::make_ext4(&disk, disk_mb)
                })
                .await
                .map_err(|e| BackendError(e.to_string()))?
                .map_err(BackendError)?;
                Vm::boot(
                    ready.vmm.as_ref(),
                    spec.clone(),
                    &self.inner.config.work_dir.join("vms"),
                    self.inner.config.boot_timeout,
                )
                .await
                .map_err(|e| BackendError(format!("the sandbox's VM did not boot: {e}")))?
            }
        };
        let job = Run {
            runtime: Runtime::Oci.to_string(),
            code: None,
            archive: None,
            input: serde_json::Value::Null,
            env: Vec::new(),
            rootfs: true,
            mem_mb: launch.resources.mem_mb,
            serve: false,
            seed: None,
            network: None,
            image: Some(FromImage {
                env: config.env.clone(),
                argv: Vec::new(),
                cwd: config.working_dir.clone(),
                uid: owner.0,
                gid: owner.1,
            }),
            sandbox: true,
        };
        match vm.start_serving(&job, &Traced).await? {
            Ok(()) => {}
            Err(e) => return Err(BackendError(format!("the sandbox's agent refused it: {e}"))),
        }
        let (writer, frames) = vm.take_channel().map_err(BackendError)?;
        let kept = Kept {
            image: launch.image.clone(),
            template: template.file_name().to_owned(),
            env: launch.env.clone(),
            owner,
            ready: vm.ready.clone(),
        };
        std::fs::write(
            dir.join("sandbox.json"),
            serde_json::to_vec(&kept).unwrap_or_default(),
        )
        .map_err(|e| BackendError(format!("cannot write the sandbox's record: {e}")))?;
        let sandbox = self.holding(kept, dir, spec, Some(vm), lease, template);
        sandbox.held.calls.connect(writer, frames);
        Ok(Box::new(sandbox))
    }

    /// A VM for a new sandbox restored from the snapshot of its shape (made first if there
    /// is none): the snapshot's empty disk and its RAM copied into the sandbox's directory,
    /// the sandbox's own from then on (`spec` names them).
    async fn restored(
        &self,
        launch: &SandboxLaunch,
        template: &Template,
        spec: &VmSpec,
    ) -> Result<Vm, String> {
        let inner = &self.inner;
        let ready = inner.state.as_ref().map_err(Clone::clone)?;
        let snapshots = inner.snapshots().await?;
        let resources = Resources {
            cpus: launch.resources.cpus,
            mem_mb: launch.resources.mem_mb,
            ..Resources::default()
        };
        let shape = Shape {
            data_disk_mb: Some(launch.resources.disk_mb),
            ..Inner::shape(Runtime::Oci, resources, false, Some(template))
        };
        let found = match crate::restore::find(&snapshots, shape).await {
            Ok(Some(found)) => found,
            _ => {
                let made = inner
                    .make_snapshot(ready, &snapshots, shape, resources, Some(template))
                    .await?;
                if let Some(templates) = &inner.templates {
                    templates.settle(&snapshots).await;
                }
                made
            }
        };
        let (Some(disk), Some(memory)) = (spec.data_disk.clone(), spec.memory.clone()) else {
            return Err("a sandbox's VM has its own disk and memory file".into());
        };
        let snapshot_disk = found.state.with_file_name(crate::snapshot::DATA_DISK);
        let snapshot_memory = found.memory.clone();
        tokio::task::spawn_blocking(move || {
            crate::snapshot::copy_sparse(&snapshot_disk, &disk)
                .and_then(|()| crate::snapshot::copy_sparse(&snapshot_memory, &memory.file))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot copy the snapshot for the sandbox: {e}"))?;
        let restore = VmSpec {
            incoming: Some(found.state.clone()),
            ..spec.clone()
        };
        Vm::restore(
            ready.vmm.as_ref(),
            restore,
            &inner.config.work_dir.join("vms"),
            inner.config.boot_timeout,
            found.meta.ready.clone(),
        )
        .await
    }

    /// How sandbox `dir`'s VM is started (and restored): the template's root, its own disk,
    /// its RAM in a file of its own, a control socket.
    fn spec_of(
        &self,
        resources: &vulcan_domain::SandboxResources,
        template: &Template,
        dir: &Path,
    ) -> Result<VmSpec, BackendError> {
        let ready = self
            .inner
            .state
            .as_ref()
            .map_err(|r| BackendError(format!("the microvm backend is unavailable: {r}")))?;
        let resources = Resources {
            cpus: resources.cpus,
            mem_mb: resources.mem_mb,
            ..Resources::default()
        };
        let mut spec = self
            .inner
            .spec(ready, Runtime::Oci, resources, Some(template));
        spec.cmdline_extra = format!("{} {DATA_DISK_ARG}", spec.cmdline_extra);
        spec.data_disk = Some(dir.join("disk.img"));
        spec.memory = Some(GuestMemory {
            file: dir.join("memory"),
            shared: true,
        });
        spec.qmp = Some(PathBuf::new());
        Ok(spec)
    }

    /// The sandbox of `dir`: running with `vm`, or paused without one.
    fn holding(
        &self,
        kept: Kept,
        dir: &Path,
        spec: VmSpec,
        vm: Option<Vm>,
        lease: LeasedRoot,
        template: Template,
    ) -> MicrovmSandbox {
        let phase = if vm.is_some() {
            Phase::Running
        } else {
            Phase::Paused
        };
        let calls = Arc::new(Calls::default());
        let held = Arc::new(Held {
            inner: self.inner.clone(),
            dir: dir.to_path_buf(),
            spec,
            ready: kept.ready,
            vm: Mutex::new(vm),
            phase: Mutex::new(phase),
            calls: calls.clone(),
            usage: Mutex::new(SandboxUsage::default()),
        });
        tokio::spawn(sample(Arc::downgrade(&held)));
        MicrovmSandbox {
            files: VmFiles {
                calls,
                owner: kept.owner,
            },
            held,
            config: lease.record.config.clone(),
            env: kept.env,
            lease,
            _template: template,
        }
    }

    /// Takes back paused sandbox `sandbox` (after a restart of the server).
    async fn take_back(&self, sandbox: &Sandbox) -> Result<MicrovmSandbox, BackendError> {
        let dir = self.dir.join(&sandbox.id);
        let kept: Kept = std::fs::read(dir.join("sandbox.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| BackendError("its record on this node is gone".into()))?;
        for part in ["state", "memory", "disk.img"] {
            if !dir.join(part).is_file() {
                return Err(BackendError(format!(
                    "its saved state on this node is incomplete ({part} is gone)"
                )));
            }
        }
        let templates = self
            .inner
            .templates
            .as_ref()
            .ok_or_else(|| BackendError("this node's microVMs have no image store".into()))?;
        let template = templates.hold_existing(&kept.template).ok_or_else(|| {
            BackendError(format!("the root it ran in ({}) is gone", kept.template))
        })?;
        let images = self
            .inner
            .config
            .images
            .as_ref()
            .ok_or_else(|| BackendError("this node's microVMs have no image store".into()))?;
        let lease = images
            .lease_root(&kept.image, &|_| {})
            .await
            .map_err(|e| BackendError(e.to_string()))?;
        let spec = self.spec_of(&sandbox.resources, &template, &dir)?;
        Ok(self.holding(kept, &dir, spec, None, lease, template))
    }
}

/// What a later server needs to take a paused sandbox back (`sandbox.json`).
#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    image: String,
    /// The template root file its VM was started with.
    template: String,
    env: BTreeMap<String, String>,
    owner: (u32, u32),
    ready: vulcan_agent::Ready,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// Being saved, or started again: its VM is kept (in a process or on disk).
    Changing,
    Paused,
    Ended,
}

/// What the sandbox's tasks share.
struct Held {
    inner: Arc<Inner>,
    dir: PathBuf,
    /// How its VM was started (a resume starts it alike, from the saved state).
    spec: VmSpec,
    ready: vulcan_agent::Ready,
    /// `None` while paused, and once ended.
    vm: Mutex<Option<Vm>>,
    phase: Mutex<Phase>,
    calls: Arc<Calls>,
    usage: Mutex<SandboxUsage>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Held {
    fn phase(&self) -> Phase {
        *lock(&self.phase)
    }

    /// Marks it changing if it is `from`; whether it was.
    fn change(&self, from: Phase) -> bool {
        let mut phase = lock(&self.phase);
        if *phase != from {
            return false;
        }
        *phase = Phase::Changing;
        true
    }
}

/// Asks what the sandbox uses, every few seconds while it runs, until it ends.
async fn sample(held: std::sync::Weak<Held>) {
    loop {
        tokio::time::sleep(USAGE_EVERY).await;
        let Some(held) = held.upgrade() else { return };
        match held.phase() {
            Phase::Ended => return,
            Phase::Paused | Phase::Changing => continue,
            Phase::Running => {}
        }
        if let Ok(value) = held.calls.call(Op::Usage).await {
            if let Ok(usage) = serde_json::from_value::<Usage>(value) {
                *lock(&held.usage) = SandboxUsage {
                    cpu_ms: usage.cpu_ms,
                    memory_bytes: usage.memory_bytes,
                    disk_bytes: usage.disk_bytes,
                };
            }
        }
    }
}

/// One held sandbox.
struct MicrovmSandbox {
    held: Arc<Held>,
    files: VmFiles,
    config: ImageConfig,
    /// The sandbox's environment (every process starts with it).
    env: BTreeMap<String, String>,
    /// The image's unpacked root (user names are looked up in it).
    lease: LeasedRoot,
    /// Its root, kept (not removed) while the sandbox lives: a resume attaches it again.
    _template: Template,
}

impl MicrovmSandbox {
    /// What `launch` runs as, where, with what environment.
    fn spawn_of(&self, launch: &ProcessLaunch) -> Result<Spawn, BackendError> {
        let user = launch.user.as_deref().unwrap_or(&self.config.user);
        let (uid, gid) = image_user::user(&self.lease.rootfs, user).map_err(BackendError)?;
        let cwd = match &launch.cwd {
            Some(cwd) => cwd.clone(),
            None if self.config.working_dir.starts_with('/') => self.config.working_dir.clone(),
            None => "/".to_owned(),
        };
        if !cwd.starts_with('/') {
            return Err(BackendError(format!(
                "cwd {cwd:?} must be an absolute path"
            )));
        }
        let mut env = self.env.clone();
        env.extend(launch.env.clone());
        Ok(Spawn {
            argv: launch.argv.clone(),
            env: env.into_iter().collect(),
            cwd,
            uid,
            gid,
            stdin: launch.stdin,
        })
    }
}

#[async_trait]
impl LiveSandbox for MicrovmSandbox {
    fn alive(&self) -> bool {
        let held = &self.held;
        match held.phase() {
            Phase::Running => lock(&held.vm).as_mut().is_some_and(Vm::alive),
            Phase::Changing | Phase::Paused => true,
            Phase::Ended => false,
        }
    }

    async fn spawn(
        &self,
        launch: &ProcessLaunch,
        output: Arc<dyn ProcessOutput>,
    ) -> Result<Box<dyn LiveProcess>, BackendError> {
        if self.held.phase() != Phase::Running || !self.alive() {
            return Err(BackendError("the sandbox is no longer running".into()));
        }
        let spawn = self.spawn_of(launch)?;
        let (ended_tx, ended) = watch::channel(None);
        let follower = Follower {
            output,
            ended: ended_tx,
        };
        let value = self
            .held
            .calls
            .call_following(Op::Spawn(spawn), Some(follower))
            .await
            .map_err(|f| BackendError(f.message))?;
        let pid = value["pid"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .ok_or_else(|| BackendError("the sandbox's agent gave no pid".into()))?;
        Ok(Box::new(VmProcess {
            calls: self.held.calls.clone(),
            pid,
            ended,
        }))
    }

    fn files(&self) -> &dyn SandboxFiles {
        &self.files
    }

    fn usage(&self) -> SandboxUsage {
        *lock(&self.held.usage)
    }

    fn pauses_followed_processes(&self) -> bool {
        true
    }

    async fn pause(&self) -> Result<(), BackendError> {
        let held = &self.held;
        if !held.change(Phase::Running) {
            return Err(BackendError("the sandbox is not running".into()));
        }
        let Some(vm) = lock(&held.vm).take() else {
            *lock(&held.phase) = Phase::Ended;
            return Err(BackendError("the sandbox's VM is gone".into()));
        };
        let state = held.dir.join("state");
        // Nothing more is sent: a call made meanwhile fails, one sent waits for the resume.
        held.calls.disconnect();
        if let Err(e) = vm.save_keeping(&state, PAUSE_TIMEOUT).await {
            // Not saved: it runs on.
            if let Ok((writer, frames)) = reconnect(vm, held) {
                held.calls.connect(writer, frames);
            }
            *lock(&held.phase) = Phase::Running;
            let _ = std::fs::remove_file(&state);
            return Err(BackendError(e));
        }
        *lock(&held.phase) = Phase::Paused;
        drop(vm);
        // Its RAM is on disk: written out, and its pages let go of.
        let memory = held.dir.join("memory");
        tokio::task::spawn_blocking(move || release_pages(&memory))
            .await
            .map_err(|e| BackendError(e.to_string()))?
            .map_err(|e| BackendError(format!("cannot write the sandbox's memory out: {e}")))
    }

    async fn resume(&self) -> Result<(), BackendError> {
        let held = &self.held;
        let ready = held
            .inner
            .state
            .as_ref()
            .map_err(|r| BackendError(format!("the microvm backend is unavailable: {r}")))?;
        if !held.change(Phase::Paused) {
            return Err(BackendError("the sandbox is not paused".into()));
        }
        let state = held.dir.join("state");
        let spec = VmSpec {
            incoming: Some(state.clone()),
            ..held.spec.clone()
        };
        let started = Instant::now();
        let restored = Vm::restore(
            ready.vmm.as_ref(),
            spec,
            &held.inner.config.work_dir.join("vms"),
            held.inner.config.boot_timeout,
            held.ready.clone(),
        )
        .await;
        let vm = match restored {
            Ok(vm) => vm,
            Err(e) => {
                // Still on disk: it may be resumed again.
                *lock(&held.phase) = Phase::Paused;
                return Err(BackendError(format!(
                    "the sandbox's VM did not resume: {e}"
                )));
            }
        };
        let (writer, frames) = reconnect(vm, held).map_err(BackendError)?;
        held.calls.connect(writer, frames);
        *lock(&held.phase) = Phase::Running;
        let _ = std::fs::remove_file(&state);
        // Its clock stood still while it was paused.
        if let Ok(seed) = crate::vm::fresh_seed() {
            let _ = held.calls.call(Op::Seed(seed)).await;
        }
        tracing::debug!(
            ms = started.elapsed().as_millis() as u64,
            "a microVM sandbox resumed"
        );
        Ok(())
    }

    async fn destroy(&self) {
        let held = self.held.clone();
        *lock(&held.phase) = Phase::Ended;
        held.calls.end();
        let vm = lock(&held.vm).take();
        drop(vm);
        let dir = held.dir.clone();
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
    }
}

/// Takes `vm`'s channel and keeps the VM as `held`'s.
fn reconnect(
    mut vm: Vm,
    held: &Held,
) -> Result<(std::os::unix::net::UnixStream, crate::vm::Frames), String> {
    let channel = vm.take_channel();
    *lock(&held.vm) = Some(vm);
    channel
}

/// Writes a paused sandbox's RAM file out and drops its pages from the page cache.
fn release_pages(memory: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(memory)?;
    file.sync_data()?;
    // SAFETY: advice on an open descriptor; nothing is read or written through pointers.
    unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    Ok(())
}
