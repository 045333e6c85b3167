//! Long-lived sandboxes ([`vulcan_domain::SandboxDriver`]) in microVMs.
//!
//! A sandbox is a VM booted in its image's template root ([`crate::templates`]) with a
//! disk of its own (`disk_mb` of ext4, a sparse file) that the image's overlay writes to,
//! and its agent holding it ([`vulcan_agent::held`]): processes are started, fed and
//! signalled on call, their output streamed back ([`link`]); files are the agent's calls
//! too ([`files`]). How its VM comes to be (restored from a snapshot of its shape,
//! booted, or taken back after a restart) is [`start`]. Guest RAM is a file of the sandbox's, mapped shared: pausing saves
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
mod start;
pub(crate) use start::{held_volumes, volume_disks};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;
use vulcan_agent::held::{Op, Spawn, Usage};
use vulcan_domain::{
    Availability, BackendError, ImageConfig, Isolation, LeasedRoot, LiveProcess, LiveSandbox,
    LogSink, LogStream, ProcessLaunch, ProcessOutput, Sandbox, SandboxDriver, SandboxFiles,
    SandboxLaunch, SandboxUsage,
};
use vulcan_sandbox::image_user;

use self::files::{VmFiles, VmProcess};
use self::link::{Calls, Follower};
use crate::templates::Template;
use crate::vm::Vm;
use crate::vmm::VmSpec;
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
            pty: launch.pty.map(|size| (size.rows, size.cols)),
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
        // What it wrote to its volumes is on their disks before the VM goes (they outlive
        // it); its own disk goes with it.
        if !held.spec.volumes.is_empty() && held.phase() == Phase::Running {
            let _ = tokio::time::timeout(SYNC_TIMEOUT, held.calls.call(Op::Sync)).await;
        }
        *lock(&held.phase) = Phase::Ended;
        held.calls.end();
        let vm = lock(&held.vm).take();
        drop(vm);
        let dir = held.dir.clone();
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
    }
}

/// How long a sandbox being destroyed is given to write its volumes out.
const SYNC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

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
