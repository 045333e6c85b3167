//! Long-lived sandboxes ([`vulcan_domain::SandboxDriver`]) on gVisor.
//!
//! A sandbox is a runsc container whose init is the hold program (see [`crate::warm`]),
//! and into which each process a user starts is executed with `runsc exec`. Its root is
//! writable everywhere: on the host it is an overlay mount whose lower half is the image's
//! unpacked root (shared, read-only) and whose upper half lies on the sandbox's own disk,
//! an ext4 file of `disk_mb` loop-mounted (so a disk filler meets ENOSPC at its size, and
//! nothing it writes reaches the host's disk beyond that). runsc runs it with
//! `--file-access=shared`, so files the host writes into that root (uploads, see
//! [`vulcan_sandbox::files`]) are seen inside at once.
//!
//! Everything of sandbox `id` is under `<work dir>/sandboxes/<id>/`: `disk.img`, its mount
//! `disk/` (`upper/`, `work/`), the merged root `root/`, the bundle `bundle/`, and each
//! volume it mounts, loop-mounted at `volumes/<n>/` and bound into the container. Destroying it
//! kills the container and removes all of that; a server that starts sweeps what an
//! earlier one left.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vulcan_domain::{
    Availability, BackendError, ImageConfig, Isolation, LiveProcess, LiveSandbox, LogStream,
    ProcessExit, ProcessLaunch, ProcessOutput, SandboxDriver, SandboxFiles, SandboxLaunch,
    SandboxUsage, VolumeAttach,
};
use vulcan_sandbox::cgroup::UsageMark;
use vulcan_sandbox::files::RootedFiles;
use vulcan_sandbox::pty;

use crate::bundle;
use crate::control::{self, ControlError};
use crate::image::catalog::RootLease;
use crate::runsc::Runsc;
use crate::sandbox_cgroups::CgroupBase;
use crate::warm;
use crate::{json_of, GvisorBackend, ImageStore};

/// How long a process's pid may take to appear after `runsc exec` started.
const PID_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the output of a process on a terminal that ended may still be read.
const TERMINAL_GRACE: Duration = Duration::from_millis(500);

/// Bytes read from a process's pipe at a time.
const CHUNK: usize = 64 * 1024;

/// Numbers the processes of every sandbox (their spec files).
static NEXT_PROCESS: AtomicU64 = AtomicU64::new(1);

/// Removals under way: a sandbox is killed at once and removed off the request's path
/// (`runsc delete` alone takes about a second).
type Removals = Arc<Mutex<Vec<std::thread::JoinHandle<()>>>>;

/// gVisor's sandboxes on this node.
pub struct GvisorSandboxes {
    state: Result<Ready, String>,
    removals: Removals,
    images: ImageStore,
    /// `<work dir>/sandboxes`.
    dir: PathBuf,
    pids_limit: u32,
}

struct Ready {
    runsc: Runsc,
    cgroups: CgroupBase,
    hold: PathBuf,
}

impl GvisorSandboxes {
    /// The sandboxes of `backend`'s node (unavailable where the backend is).
    pub fn new(backend: &GvisorBackend) -> Self {
        let dir = backend.config.work_dir.join("sandboxes");
        let state = match &backend.state {
            Ok(ready) => Ok(Ready {
                runsc: Runsc {
                    state_dir: dir.join("state"),
                    shared_root: true,
                    ..ready.runsc.clone()
                },
                cgroups: ready.cgroups.clone(),
                hold: backend.config.work_dir.join("hold"),
            }),
            Err(reason) => Err(reason.clone()),
        };
        GvisorSandboxes {
            state,
            removals: Removals::default(),
            images: backend.images.clone(),
            dir,
            pids_limit: backend.config.pids_limit,
        }
    }

    fn ready(&self) -> Result<&Ready, BackendError> {
        self.state
            .as_ref()
            .map_err(|reason| BackendError(format!("gVisor sandboxes are unavailable: {reason}")))
    }
}

/// Runs `program` with `args`, or says what it answered.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{program} {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

/// Lays out sandbox `dir`'s disk and root: `disk_mb` of ext4, an overlay of `lower` on it.
fn make_root(dir: &Path, lower: &Path, disk_mb: u32) -> Result<PathBuf, String> {
    let (image, disk, root) = (dir.join("disk.img"), dir.join("disk"), dir.join("root"));
    for d in [&disk, &root] {
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    vulcan_sandbox::disk::make_ext4(&image, disk_mb)?;
    run(
        "mount",
        &["-o", "loop,nosuid,nodev", text(&image), text(&disk)],
    )?;
    let (upper, work) = (disk.join("upper"), disk.join("work"));
    for d in [&upper, &work] {
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    run(
        "mount",
        &["-t", "overlay", "overlay", "-o", &options, text(&root)],
    )?;
    // The sandbox's /tmp is on its disk (the spec binds it), sticky and open to all.
    let tmp = root.join("tmp");
    std::fs::create_dir_all(&tmp)
        .and_then(|()| {
            std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o1777))
        })
        .map_err(|e| format!("cannot make the sandbox's /tmp: {e}"))?;
    Ok(root)
}

/// Where sandbox `dir`'s volume `n` is mounted on the host.
fn volume_mount(dir: &Path, n: usize) -> PathBuf {
    dir.join("volumes").join(n.to_string())
}

/// Mounts the volumes of sandbox `dir` that are not mounted yet (each once per sandbox:
/// read-only ones without replaying a journal, so that nothing is written to them).
pub(crate) fn mount_volumes(dir: &Path, volumes: &[VolumeAttach]) -> Result<(), String> {
    for (n, volume) in volumes.iter().enumerate() {
        let at = volume_mount(dir, n);
        if is_mounted(&at) {
            continue;
        }
        std::fs::create_dir_all(&at).map_err(|e| format!("cannot create {}: {e}", at.display()))?;
        let options = if volume.read_only {
            "loop,nosuid,nodev,ro,noload"
        } else {
            "loop,nosuid,nodev"
        };
        run("mount", &["-o", options, text(&volume.file), text(&at)])
            .map_err(|e| format!("volume at {} could not be mounted: {e}", volume.path))?;
    }
    Ok(())
}

/// Unmounts sandbox `dir`'s volumes, waiting (a while) for its processes to let go.
pub(crate) fn unmount_volumes(dir: &Path) {
    let mounted: Vec<PathBuf> = std::fs::read_dir(dir.join("volumes"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| is_mounted(p))
        .collect();
    for mount in mounted {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while run("umount", &[text(&mount)]).is_err() {
            if std::time::Instant::now() > deadline {
                tracing::warn!(mount = %mount.display(), "a volume stayed busy: unmounted lazily");
                let _ = run("umount", &["-l", text(&mount)]);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Sandbox `dir`'s volumes as its spec binds them.
pub(crate) fn bound_volumes(dir: &Path, volumes: &[VolumeAttach]) -> Vec<(PathBuf, String, bool)> {
    volumes
        .iter()
        .enumerate()
        .map(|(n, v)| (volume_mount(dir, n), v.path.clone(), v.read_only))
        .collect()
}

/// Mounts sandbox `dir`'s disk and root again (after a reboot of the host), as
/// [`make_root`] made them.
fn remount(dir: &Path, lower: &Path) -> Result<(), String> {
    let (image, disk, root) = (dir.join("disk.img"), dir.join("disk"), dir.join("root"));
    if !is_mounted(&disk) {
        run(
            "mount",
            &["-o", "loop,nosuid,nodev", text(&image), text(&disk)],
        )?;
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        disk.join("upper").display(),
        disk.join("work").display()
    );
    run(
        "mount",
        &["-t", "overlay", "overlay", "-o", &options, text(&root)],
    )
}

/// Unmounts sandbox `dir`'s root and disk and removes the directory (what is not
/// mounted is skipped; a mount that will not go is logged and left).
fn remove_dir(dir: &Path) {
    let mut volumes: Vec<PathBuf> = std::fs::read_dir(dir.join("volumes"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    volumes.sort();
    for mount in volumes
        .into_iter()
        .chain([dir.join("root"), dir.join("disk")])
    {
        if is_mounted(&mount) && run("umount", &[text(&mount)]).is_err() {
            if let Err(e) = run("umount", &["-l", text(&mount)]) {
                tracing::warn!(error = %e, "a sandbox's mount could not be removed");
                return;
            }
        }
    }
    if let Err(e) = std::fs::remove_dir_all(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a sandbox's directory");
    }
}

/// Removes a workload's bundle `dir`, its volumes unmounted first (never their files
/// removed through a mount that stayed).
pub(crate) fn remove_bundle(dir: &Path) {
    unmount_volumes(dir);
    let stayed = std::fs::read_dir(dir.join("volumes"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| is_mounted(&e.path()));
    if stayed {
        tracing::warn!(dir = %dir.display(), "a volume is still mounted in a bundle: the bundle is left");
        return;
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn is_mounted(path: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return false;
    };
    let wanted = path.to_string_lossy();
    mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .any(|m| m == wanted)
}

#[async_trait]
impl SandboxDriver for GvisorSandboxes {
    fn isolation(&self) -> Isolation {
        Isolation::Gvisor
    }

    fn availability(&self) -> Availability {
        match &self.state {
            Ok(_) => Availability::ready(serde_json::json!({ "root": "overlay on an ext4 disk" })),
            Err(reason) => Availability::unavailable(reason.clone()),
        }
    }

    async fn create(&self, launch: SandboxLaunch) -> Result<Box<dyn LiveSandbox>, BackendError> {
        let ready = self.ready()?;
        let image = self
            .images
            .lease(&launch.image, |_| {})
            .await
            .map_err(|e| BackendError(e.to_string()))?;
        let dir = self.dir.join(&launch.id);
        let (lower, disk_mb) = (image.rootfs.clone(), launch.resources.disk_mb);
        let made = {
            let dir = dir.clone();
            let volumes = launch.volumes.clone();
            tokio::task::spawn_blocking(move || {
                let root = make_root(&dir, &lower, disk_mb)?;
                mount_volumes(&dir, &volumes)?;
                Ok::<_, String>(root)
            })
            .await
            .map_err(|e| BackendError(format!("making the sandbox's disk failed: {e}")))?
        };
        let root = match made {
            Ok(root) => root,
            Err(e) => {
                let dir = dir.clone();
                let _ = tokio::task::spawn_blocking(move || remove_dir(&dir)).await;
                return Err(BackendError(format!("cannot make the sandbox's disk: {e}")));
            }
        };
        let started = self.start(ready, &launch, image, &dir, root).await;
        if started.is_err() {
            let dir = dir.clone();
            let _ = tokio::task::spawn_blocking(move || remove_dir(&dir)).await;
        }
        started
    }

    async fn settle(&self) {
        let removals =
            std::mem::take(&mut *self.removals.lock().unwrap_or_else(|p| p.into_inner()));
        let _ = tokio::task::spawn_blocking(move || {
            for removal in removals {
                let _ = removal.join();
            }
        })
        .await;
    }

    async fn adopt(
        &self,
        sandbox: &vulcan_domain::Sandbox,
    ) -> Result<Box<dyn LiveSandbox>, BackendError> {
        let ready = self.ready()?;
        let dir = self.dir.join(&sandbox.id);
        let kept: serde_json::Value = std::fs::read(dir.join("sandbox.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| BackendError("its record on this node is gone".into()))?;
        if !dir.join("checkpoint/checkpoint.img").exists() {
            return Err(BackendError("its saved state on this node is gone".into()));
        }
        let reference = kept["image"].as_str().unwrap_or(&sandbox.image).to_owned();
        let image = self
            .images
            .lease(&reference, |_| {})
            .await
            .map_err(|e| BackendError(e.to_string()))?;
        let (lower, root) = (image.rootfs.clone(), dir.join("root"));
        let volumes: Vec<VolumeAttach> =
            serde_json::from_value(kept["volumes"].clone()).unwrap_or_default();
        {
            let (dir, mounted) = (dir.clone(), is_mounted(&root));
            tokio::task::spawn_blocking(move || {
                if !mounted {
                    remount(&dir, &lower)?;
                }
                mount_volumes(&dir, &volumes)
            })
            .await
            .map_err(|e| BackendError(e.to_string()))?
            .map_err(BackendError)?;
        }
        let env: BTreeMap<String, String> =
            serde_json::from_value(kept["env"].clone()).unwrap_or_default();
        let (uid, gid) = (
            kept["uid"].as_u64().unwrap_or(0) as u32,
            kept["gid"].as_u64().unwrap_or(0) as u32,
        );
        let group = ready
            .cgroups
            .create(
                &sandbox.id,
                bundle::memory_limit_bytes(sandbox.resources.mem_mb),
                self.pids_limit,
            )
            .map_err(|e| BackendError(format!("cannot set up the sandbox's cgroup: {e}")))?;
        let mark = group.mark();
        let config = image.record.config.clone();
        let held = warm::Sandbox::saved(
            ready.runsc.clone(),
            sandbox.id.clone(),
            dir.join("bundle"),
            group,
            ready.cgroups.clone(),
            Some(image),
        );
        Ok(Box::new(GvisorSandbox {
            removals: self.removals.clone(),
            runsc: ready.runsc.clone(),
            id: sandbox.id.clone(),
            dir,
            files: RootedFiles::new(root.clone(), uid, gid),
            root,
            config,
            env,
            mark,
            sandbox: Mutex::new(Some(held)),
            frozen: false.into(),
        }))
    }

    async fn sweep(&self, keep: &[String]) {
        let keep = keep.to_vec();
        let Ok(ready) = self.ready() else {
            return;
        };
        let (runsc, cgroups, dir) = (ready.runsc.clone(), ready.cgroups.clone(), self.dir.clone());
        let _ = tokio::task::spawn_blocking(move || {
            for id in runsc.list() {
                if !keep.contains(&id) {
                    runsc.destroy(&id);
                    cgroups.remove(&id);
                }
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                return;
            };
            for entry in entries.flatten() {
                let id = entry.file_name().to_string_lossy().into_owned();
                if id != "state" && !keep.contains(&id) {
                    tracing::info!(sandbox = %id, "removing a sandbox left by the last run");
                    remove_dir(&entry.path());
                    cgroups.remove(&id);
                }
            }
        })
        .await;
    }
}

impl GvisorSandboxes {
    async fn start(
        &self,
        ready: &Ready,
        launch: &SandboxLaunch,
        image: RootLease,
        dir: &Path,
        root: PathBuf,
    ) -> Result<Box<dyn LiveSandbox>, BackendError> {
        let config = image.record.config.clone();
        let (uid, gid) = bundle::user(&root, &config.user).map_err(BackendError)?;
        let bundle_dir = dir.join("bundle");
        // What a later server needs to take the sandbox back after a pause.
        let kept = serde_json::json!({
            "image": launch.image, "env": launch.env, "uid": uid, "gid": gid,
            "volumes": launch.volumes,
        });
        std::fs::write(dir.join("sandbox.json"), kept.to_string())
            .map_err(|e| BackendError(format!("cannot write the sandbox's record: {e}")))?;
        let resources = vulcan_domain::Resources {
            cpus: launch.resources.cpus,
            mem_mb: launch.resources.mem_mb,
            ..vulcan_domain::Resources::default()
        };
        let cgroup = CgroupBase::runsc_path(&launch.id);
        let run = bundle::RunSpec {
            rootfs: &root,
            image: &config,
            command: None,
            env: &launch.env,
            resources,
            pids_limit: self.pids_limit,
            cgroup: &cgroup,
            work: None,
            hold: Some(&ready.hold),
            network: None,
            pod: None,
        };
        let spec = bundle::sandbox_config(&run, uid, gid, &bound_volumes(dir, &launch.volumes))
            .map_err(BackendError)?;
        std::fs::create_dir_all(&bundle_dir)
            .and_then(|()| std::fs::write(bundle_dir.join("config.json"), json_of(&spec)))
            .map_err(|e| BackendError(format!("cannot write the sandbox's bundle: {e}")))?;
        let group = ready
            .cgroups
            .create(
                &launch.id,
                bundle::memory_limit_bytes(launch.resources.mem_mb),
                self.pids_limit,
            )
            .map_err(|e| BackendError(format!("cannot set up the sandbox's cgroup: {e}")))?;
        let mark = group.mark();
        let sandbox = warm::Sandbox::start(
            ready.runsc.clone(),
            launch.id.clone(),
            bundle_dir,
            group,
            ready.cgroups.clone(),
            Some(image),
            false,
        )
        .await
        .map_err(BackendError)?;
        Ok(Box::new(GvisorSandbox {
            removals: self.removals.clone(),
            runsc: ready.runsc.clone(),
            id: launch.id.clone(),
            dir: dir.to_path_buf(),
            files: RootedFiles::new(root.clone(), uid, gid),
            root,
            config,
            env: launch.env.clone(),
            mark,
            sandbox: Mutex::new(Some(sandbox)),
            frozen: false.into(),
        }))
    }
}

/// One running sandbox.
struct GvisorSandbox {
    removals: Removals,
    runsc: Runsc,
    id: String,
    dir: PathBuf,
    root: PathBuf,
    files: RootedFiles,
    config: ImageConfig,
    /// The sandbox's environment (every process starts with it).
    env: BTreeMap<String, String>,
    mark: UsageMark,
    /// `None` once destroyed.
    sandbox: Mutex<Option<warm::Sandbox>>,
    /// Whether it is frozen (`runsc pause`): it must be thawed to be killed.
    frozen: std::sync::atomic::AtomicBool,
}

impl GvisorSandbox {
    fn held(&self) -> std::sync::MutexGuard<'_, Option<warm::Sandbox>> {
        self.sandbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Freezes the sandbox in memory, or lets it go on (`runsc pause`, `runsc resume`).
    async fn set_frozen(&self, frozen: bool) -> Result<(), BackendError> {
        if !self.alive() {
            return Err(BackendError("the sandbox is no longer running".into()));
        }
        let out = tokio::process::Command::from(self.runsc.freeze(&self.id, frozen))
            .output()
            .await
            .map_err(|e| BackendError(format!("cannot run runsc: {e}")))?;
        if out.status.success() {
            self.frozen.store(frozen, Ordering::Release);
            return Ok(());
        }
        Err(BackendError(format!(
            "runsc could not {} the sandbox: {}",
            if frozen { "freeze" } else { "thaw" },
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }

    /// The OCI process of `launch`: its user (a name of the sandbox's or a uid), its
    /// directory (the image's by default) and the environment on top of the sandbox's.
    fn process_spec(&self, launch: &ProcessLaunch) -> Result<oci_spec::runtime::Process, String> {
        let user = launch.user.as_deref().unwrap_or(&self.config.user);
        let (uid, gid) = bundle::user(&self.root, user)?;
        let mut env = self.env.clone();
        env.extend(launch.env.clone());
        let cwd = match &launch.cwd {
            Some(cwd) => cwd.clone(),
            None if self.config.working_dir.starts_with('/') => self.config.working_dir.clone(),
            None => "/".to_owned(),
        };
        if !cwd.starts_with('/') {
            return Err(format!("cwd {cwd:?} must be an absolute path"));
        }
        bundle::process_of(
            launch.argv.clone(),
            bundle::environment(&self.config, &env),
            &cwd,
            uid,
            gid,
        )
    }

    /// Starts `process` through the sandbox's control socket (see [`crate::control`]) with
    /// pipes of the server's as its stdio.
    async fn spawn_direct(
        &self,
        launch: &ProcessLaunch,
        process: &oci_spec::runtime::Process,
        output: Arc<dyn ProcessOutput>,
    ) -> Result<Box<dyn LiveProcess>, ControlError> {
        let (out_read, out_write) = pipe()?;
        let (err_read, err_write) = pipe()?;
        let (stdin_read, stdin_write) = if launch.stdin {
            let (read, write) = pipe()?;
            (read, Some(write))
        } else {
            let null = std::fs::File::open("/dev/null")
                .map_err(|e| ControlError::Unreachable(format!("cannot open /dev/null: {e}")))?;
            (OwnedFd::from(null), None)
        };
        let container = self.id.clone();
        let argv = process.args().clone().unwrap_or_default();
        let env = process.env().clone().unwrap_or_default();
        let cwd = process.cwd().to_string_lossy().into_owned();
        let (uid, gid) = (process.user().uid(), process.user().gid());
        let capabilities = bundle::capability_bits();
        // The sandbox keeps copies of the process's ends: ours go when the call is made.
        let pid = tokio::task::spawn_blocking(move || {
            control::execute(&control::Exec {
                container: &container,
                argv: &argv,
                env: &env,
                cwd: &cwd,
                uid,
                gid,
                extra_gids: &[],
                capabilities,
                stdio: [stdin_read.as_fd(), out_write.as_fd(), err_write.as_fd()],
            })
        })
        .await
        .map_err(|e| ControlError::Unreachable(e.to_string()))??;
        let receive = |fd: OwnedFd| -> Option<Pipe> {
            tokio::net::unix::pipe::Receiver::from_owned_fd(fd)
                .ok()
                .map(|p| Box::new(p) as Pipe)
        };
        let readers = follow(receive(out_read), receive(err_read), &output);
        let stdin = stdin_write.and_then(|fd| {
            tokio::net::unix::pipe::Sender::from_owned_fd(fd)
                .ok()
                .map(|p| Box::new(p) as Input)
        });
        let (done, exit) = tokio::sync::watch::channel(None);
        let sandbox = self.id.clone();
        tokio::spawn(async move {
            let ended = match control::wait(&sandbox, pid).await {
                Ok(status) => {
                    let (exit_code, signal) = control::ended(status);
                    ProcessExit { exit_code, signal }
                }
                Err(e) => {
                    tracing::debug!(%sandbox, pid, error = %e, "lost sight of a process");
                    ProcessExit {
                        exit_code: None,
                        signal: None,
                    }
                }
            };
            for reader in readers {
                let _ = reader.await;
            }
            let _ = done.send(Some(ended));
        });
        Ok(Box::new(GvisorProcess {
            runsc: self.runsc.clone(),
            sandbox: self.id.clone(),
            pid,
            stdin: tokio::sync::Mutex::new(stdin),
            terminal: None,
            exit,
        }))
    }
}

#[async_trait]
impl LiveSandbox for GvisorSandbox {
    fn alive(&self) -> bool {
        self.held().as_ref().is_some_and(warm::Sandbox::alive)
    }

    async fn spawn(
        &self,
        launch: &ProcessLaunch,
        output: Arc<dyn ProcessOutput>,
    ) -> Result<Box<dyn LiveProcess>, BackendError> {
        if !self.alive() {
            return Err(BackendError("the sandbox is no longer running".into()));
        }
        let mut process = self.process_spec(launch).map_err(BackendError)?;
        if launch.pty.is_none() {
            match self.spawn_direct(launch, &process, output.clone()).await {
                Ok(started) => return Ok(started),
                Err(ControlError::Refused(why)) => {
                    return Err(BackendError(format!(
                        "the process could not start: {why} (is {:?} a program in the sandbox, and {:?} a directory?)",
                        launch.argv.first().map(String::as_str).unwrap_or(""),
                        process.cwd()
                    )))
                }
                Err(ControlError::Unreachable(why)) => {
                    tracing::debug!(sandbox = %self.id, %why, "starting the process with runsc exec");
                }
            }
        }
        process.set_terminal(Some(launch.pty.is_some()));
        let n = NEXT_PROCESS.fetch_add(1, Ordering::Relaxed);
        let bundle = self.dir.join("bundle");
        let (spec_file, pid_file) = (
            bundle.join(format!("process-{n}.json")),
            bundle.join(format!("process-{n}.pid")),
        );
        std::fs::write(&spec_file, json_of(&process))
            .map_err(|e| BackendError(format!("cannot write the process's spec: {e}")))?;
        let mut command = self.runsc.exec_noting_pid(&self.id, &spec_file, &pid_file);
        if !launch.stdin {
            command.stdin(Stdio::null());
        }
        // On a terminal, runsc's stdio is its process's side: the process inside takes it
        // as its terminal, and runsc (leading the terminal's session) passes the SIGWINCH
        // of a resize on to it.
        let terminal = match launch.pty {
            Some(size) => {
                let (master, slave) = pty::open(pty::Size {
                    rows: size.rows,
                    cols: size.cols,
                })
                .map_err(|e| BackendError(format!("cannot open a terminal: {e}")))?;
                let side = |fd: &OwnedFd| {
                    fd.try_clone()
                        .map(Stdio::from)
                        .map_err(|e| BackendError(format!("cannot open a terminal: {e}")))
                };
                command
                    .stdin(side(&slave)?)
                    .stdout(side(&slave)?)
                    .stderr(side(&slave)?);
                // SAFETY: take_as_controlling makes async-signal-safe calls only.
                unsafe { command.pre_exec(|| pty::take_as_controlling()) };
                Some(master)
            }
            None => None,
        };
        let mut child = command
            .spawn()
            .map_err(|e| BackendError(format!("cannot start runsc exec: {e}")))?;
        drop(command);
        let from_terminal = |master: &OwnedFd| -> Result<Pipe, BackendError> {
            let read = master
                .try_clone()
                .map_err(|e| BackendError(format!("cannot read the terminal: {e}")))?;
            Ok(Box::new(tokio::fs::File::from_std(std::fs::File::from(
                read,
            ))))
        };
        let (out, err) = match &terminal {
            Some(master) => (Some(from_terminal(master)?), None),
            None => (
                child.stdout.take().map(|p| Box::new(p) as Pipe),
                child.stderr.take().map(|p| Box::new(p) as Pipe),
            ),
        };
        let readers = follow(out, err, &output);
        let stdin: Option<Input> = match &terminal {
            Some(master) => Some(Box::new(tokio::fs::File::from_std(std::fs::File::from(
                master
                    .try_clone()
                    .map_err(|e| BackendError(format!("cannot write to the terminal: {e}")))?,
            )))),
            None => child.stdin.take().map(|p| Box::new(p) as Input),
        };
        // The pid appears once the process runs; a command that cannot start ends runsc.
        let deadline = tokio::time::Instant::now() + PID_TIMEOUT;
        let pid = loop {
            if let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok())
            {
                break pid;
            }
            if let Ok(Some(status)) = child.try_wait() {
                for reader in readers {
                    let _ = reader.await;
                }
                let _ = std::fs::remove_file(&spec_file);
                return Err(BackendError(format!(
                    "the process could not start ({status}): is {:?} a program in the sandbox, and {:?} a directory?",
                    launch.argv.first().map(String::as_str).unwrap_or(""),
                    process.cwd()
                )));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(BackendError(format!(
                    "the process did not start within {PID_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let (done, exit) = tokio::sync::watch::channel(None);
        let on_terminal = terminal.is_some();
        tokio::spawn(async move {
            let status = child.wait().await;
            for mut reader in readers {
                if on_terminal {
                    // A child it left holding the terminal would hold the end back for ever.
                    if tokio::time::timeout(TERMINAL_GRACE, &mut reader)
                        .await
                        .is_err()
                    {
                        reader.abort();
                    }
                } else {
                    let _ = reader.await;
                }
            }
            let _ = std::fs::remove_file(&spec_file);
            let _ = std::fs::remove_file(&pid_file);
            let _ = done.send(Some(exit_of(status)));
        });
        Ok(Box::new(GvisorProcess {
            runsc: self.runsc.clone(),
            sandbox: self.id.clone(),
            pid,
            stdin: tokio::sync::Mutex::new(stdin),
            terminal,
            exit,
        }))
    }

    fn files(&self) -> &dyn SandboxFiles {
        &self.files
    }

    fn usage(&self) -> SandboxUsage {
        let held = self.held();
        let Some(sandbox) = held.as_ref() else {
            return SandboxUsage::default();
        };
        let used = sandbox.group.usage_since(self.mark);
        SandboxUsage {
            cpu_ms: used.cpu_time_ms,
            memory_bytes: sandbox.group.usage().unwrap_or(0),
            disk_bytes: disk_used(&self.dir.join("disk")),
        }
    }

    async fn pause(&self) -> Result<(), BackendError> {
        let mut sandbox = self
            .held()
            .take()
            .ok_or_else(|| BackendError("the sandbox is no longer running".into()))?;
        let saved = sandbox.checkpoint(&self.dir.join("checkpoint")).await;
        *self.held() = Some(sandbox);
        saved.map_err(BackendError)
    }

    async fn resume(&self) -> Result<(), BackendError> {
        let mut sandbox = self
            .held()
            .take()
            .ok_or_else(|| BackendError("the sandbox is gone".into()))?;
        let checkpoint = self.dir.join("checkpoint");
        let restored = sandbox.restore(&checkpoint).await;
        *self.held() = Some(sandbox);
        // The saved state stays until the next pause overwrites it or the sandbox goes:
        // a restored sandbox may still read from it.
        restored.map_err(BackendError)
    }

    async fn freeze(&self) -> Result<(), BackendError> {
        self.set_frozen(true).await
    }

    async fn thaw(&self) -> Result<(), BackendError> {
        self.set_frozen(false).await
    }

    fn stopped_because(&self) -> Option<String> {
        let held = self.held();
        let events = held.as_ref()?.events();
        if events.oom_kills > 0 {
            Some("it ran out of memory: the sandbox's memory limit (mem_mb) was reached".into())
        } else if events.pids_refused > 0 {
            Some("its processes reached the sandbox's task limit (a fork bomb?), and gVisor's kernel stopped".into())
        } else {
            None
        }
    }

    fn release(&self) {
        if let Some(sandbox) = self.held().take() {
            sandbox.release();
        }
    }

    async fn destroy(&self) {
        if self.frozen.load(Ordering::Acquire) {
            // A frozen sandbox killed so would stay in runsc's state, `paused` for ever.
            let _ = self.set_frozen(false).await;
        }
        let Some(mut sandbox) = self.held().take() else {
            return;
        };
        sandbox.kill_now();
        // Its volumes are unmounted before this returns: written out, and free for the
        // next sandbox to mount (never two ext4 mounts of one at once).
        let volumes = self.dir.clone();
        let _ = tokio::task::spawn_blocking(move || unmount_volumes(&volumes)).await;
        let dir = self.dir.clone();
        let removal = std::thread::spawn(move || {
            sandbox.destroy();
            remove_dir(&dir);
        });
        let mut removals = self.removals.lock().unwrap_or_else(|p| p.into_inner());
        removals.retain(|r| !r.is_finished());
        removals.push(removal);
    }
}

impl Drop for GvisorSandbox {
    fn drop(&mut self) {
        // Destroyed already, or never told: either way nothing of it may stay.
        if let Some(mut sandbox) = self.held().take() {
            let dir = self.dir.clone();
            std::thread::spawn(move || {
                sandbox.destroy();
                remove_dir(&dir);
            });
        }
    }
}

/// Bytes used on the filesystem mounted at `mount`.
fn disk_used(mount: &Path) -> u64 {
    let Ok(path) = std::ffi::CString::new(mount.as_os_str().as_encoded_bytes()) else {
        return 0;
    };
    // SAFETY: statvfs is plain integers; all zeroes is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs reads the NUL-terminated path and fills the struct it is given.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    (st.f_blocks.saturating_sub(st.f_bfree)) * st.f_frsize
}

/// How `runsc exec` ended, as the process did: runsc exits with the process's code, or
/// 128 + the signal that killed it (as a shell reports it).
fn exit_of(status: std::io::Result<std::process::ExitStatus>) -> ProcessExit {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(status) => match status.code() {
            Some(code) if (129..=128 + 64).contains(&code) => ProcessExit {
                exit_code: Some(code),
                signal: Some(code - 128),
            },
            Some(code) => ProcessExit {
                exit_code: Some(code),
                signal: None,
            },
            None => ProcessExit {
                exit_code: None,
                signal: status.signal(),
            },
        },
        Err(_) => ProcessExit {
            exit_code: None,
            signal: None,
        },
    }
}

/// Where a process's input goes: its stdin pipe, or its terminal.
type Input = Box<dyn tokio::io::AsyncWrite + Send + Unpin>;

/// Where a process's output comes from.
type Pipe = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// Copies a process's stdout and stderr to `output` as they come, until each ends.
fn follow(
    out: Option<Pipe>,
    err: Option<Pipe>,
    output: &Arc<dyn ProcessOutput>,
) -> [tokio::task::JoinHandle<()>; 2] {
    [(out, LogStream::Stdout), (err, LogStream::Stderr)].map(|(pipe, stream)| {
        let output = output.clone();
        tokio::spawn(async move {
            let Some(mut pipe) = pipe else { return };
            let mut buf = vec![0; CHUNK];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                output.chunk(stream, &buf[..n]);
            }
        })
    })
}

/// A pipe whose ends the server reads or writes asynchronously: (read, write).
fn pipe() -> Result<(OwnedFd, OwnedFd), ControlError> {
    let (read, write) = std::io::pipe()
        .map_err(|e| ControlError::Unreachable(format!("cannot make a pipe: {e}")))?;
    Ok((read.into(), write.into()))
}

struct GvisorProcess {
    runsc: Runsc,
    sandbox: String,
    pid: u32,
    stdin: tokio::sync::Mutex<Option<Input>>,
    /// The controlling side of its terminal, if it runs on one.
    terminal: Option<OwnedFd>,
    exit: tokio::sync::watch::Receiver<Option<ProcessExit>>,
}

#[async_trait]
impl LiveProcess for GvisorProcess {
    fn pid(&self) -> u32 {
        self.pid
    }

    async fn write_stdin(&self, bytes: &[u8]) -> Result<(), BackendError> {
        let mut stdin = self.stdin.lock().await;
        let Some(pipe) = stdin.as_mut() else {
            return Err(BackendError(
                "the process has no stdin open: start it with \"stdin\": true, and do not close it first".into(),
            ));
        };
        pipe.write_all(bytes)
            .await
            .map_err(|e| BackendError(format!("the process's stdin is closed: {e}")))
    }

    async fn close_stdin(&self) {
        let mut stdin = self.stdin.lock().await;
        if self.terminal.is_some() {
            // A terminal is not closed: the end of its input is typed (^D).
            if let Some(term) = stdin.as_mut() {
                let _ = term.write_all(b"\x04").await;
            }
            return;
        }
        stdin.take();
    }

    async fn resize(&self, size: vulcan_domain::PtySize) -> Result<(), BackendError> {
        let master = self
            .terminal
            .as_ref()
            .ok_or_else(|| BackendError("it was not started on a terminal".into()))?;
        pty::resize(
            master,
            pty::Size {
                rows: size.rows,
                cols: size.cols,
            },
        )
        .map_err(|e| BackendError(format!("cannot resize the terminal: {e}")))
    }

    async fn signal(&self, signal: i32) -> Result<(), BackendError> {
        if self.exit.borrow().is_some() {
            return Err(BackendError(format!(
                "process {} has already ended",
                self.pid
            )));
        }
        let out = self
            .runsc
            .signal(&self.sandbox, self.pid, signal)
            .output()
            .await
            .map_err(|e| BackendError(format!("cannot run runsc kill: {e}")))?;
        if out.status.success() {
            return Ok(());
        }
        Err(BackendError(format!(
            "signal {signal} could not be sent to process {}: {}",
            self.pid,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }

    async fn wait(&self) -> ProcessExit {
        let mut exit = self.exit.clone();
        let ended = exit.wait_for(Option::is_some).await.ok().and_then(|v| *v);
        ended.unwrap_or(ProcessExit {
            exit_code: None,
            signal: None,
        })
    }
}
