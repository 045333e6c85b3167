//! The workload's place in the guest: the runtime's root filesystem (read-only) with a
//! tmpfs work directory holding its code, a cgroup bounding its memory and processes, and
//! the command that starts a program there — chrooted, as an unprivileged user.

use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use vulcan_agent::{
    HeldVolume, Run, DATA_DISK_ARG, DATA_DISK_SERIAL, MAX_PROCESSES, OVERLAY_ARG,
    VOLUME_SERIAL_PREFIX,
};
use vulcan_sandbox::archive::{self, Rules};
use vulcan_sandbox::cgroup::{self, Cgroup, CgroupParent};

use crate::{log, mount};

/// The unprivileged user workloads run as.
pub const WORKLOAD_UID: u32 = 1000;

/// Where a workload runs, prepared.
pub struct Workspace {
    /// The root the program sees (`/newroot` with a runtime root filesystem, else `/`).
    pub root: PathBuf,
    pub group: Option<Cgroup>,
    /// Who the program runs as, and where: the workload's user in `/work`, or what an
    /// image's configuration says (runtime `oci`).
    pub user: (u32, u32),
    pub cwd: String,
    /// The environment before the workload's own: defaults, then an image's `Env`.
    pub base_env: Vec<(String, String)>,
}

/// The capabilities a program running as root in an image keeps (as under gVisor): the
/// rest leave its bounding set. CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_KILL,
/// CAP_SETGID, CAP_SETUID.
const KEPT_CAPABILITIES: [libc::c_ulong; 6] = [0, 1, 3, 5, 6, 7];

/// The environment every program starts from, then `image_env` (`NAME=value`) over it.
fn base_env(home: &str, image_env: &[String]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("HOME", home),
        ("LANG", "C.UTF-8"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for pair in image_env {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        env.retain(|(k, _)| k != name);
        env.push((name.to_owned(), value.to_owned()));
    }
    env
}

/// The parent of the workload's cgroup: cgroup2 mounted and the controllers delegated,
/// once per guest (before Ready, so a job only makes its group); `None` if the guest has
/// no cgroup v2.
pub fn cgroup_parent() -> Option<&'static CgroupParent> {
    static PARENT: OnceLock<Option<CgroupParent>> = OnceLock::new();
    PARENT
        .get_or_init(|| {
            // `favordynmods`: moving a process into a group (the workload's, at every
            // start) then takes no RCU grace period — under emulation a wait of its own.
            // Forks and exits pay a little instead. Older kernels refuse it: mounted plain.
            let mounted = mount("cgroup2", cgroup::MOUNT, "cgroup2", 0, "favordynmods")
                .or_else(|_| mount("cgroup2", cgroup::MOUNT, "cgroup2", 0, ""));
            if mounted.is_err() {
                return None;
            }
            CgroupParent::create(Path::new(""), true)
                .map_err(|e| log(&format!("no workload cgroup: {e}")))
                .ok()
        })
        .as_ref()
}

/// Makes the workload's cgroup (the same policy as on the host: memory bounded with no
/// swap, at most [`MAX_PROCESSES`], and the whole group killed on OOM); `None` if the guest
/// has no cgroup v2 or a bound cannot be set.
pub(crate) fn workload_cgroup(mem_mb: u32) -> Option<Cgroup> {
    let group = cgroup_parent()?.group("workload").ok()?;
    let bounded = (mem_mb == 0
        || group
            .set_memory_max(u64::from(mem_mb) * 1024 * 1024)
            .is_ok())
        && group.set_pids_max(MAX_PROCESSES).is_ok()
        && group.kill_all_on_oom().is_ok();
    if !bounded {
        log("cannot bound the workload cgroup");
        return None;
    }
    Some(group)
}

/// Gives `path` and everything under it (symbolic links themselves, never what they point
/// to) to `uid`.
fn chown_tree(path: &Path, uid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid))?;
    if fs::symlink_metadata(path)?.is_dir() {
        for entry in fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid)?;
        }
    }
    Ok(())
}

/// How a workload's program ended.
pub enum Ended {
    Exited(ExitStatus),
    /// It wrote this exit code to its fd 3 and is ending.
    Reported(i32),
}

impl Ended {
    /// Its exit code and the signal that ended it (one of them, at most).
    pub fn code_and_signal(&self) -> (Option<i32>, Option<i32>) {
        use std::os::unix::process::ExitStatusExt;
        match self {
            Ended::Exited(s) => (s.code(), s.signal()),
            Ended::Reported(code) => (Some(*code), None),
        }
    }
}

/// A pipe, both ends close-on-exec: (read, write).
pub fn pipe() -> io::Result<(File, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just made and are owned by nothing else.
    Ok(unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A descriptor that becomes readable when process `pid` exits.
pub(crate) fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags, and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a descriptor the kernel just made for this process alone.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Reads what is there of an exit code report into `buf`: `None` while incomplete,
/// `Some(Some(code))` once a line has come, `Some(None)` at its end without one.
fn read_code(report: &mut File, buf: &mut Vec<u8>) -> Option<Option<i32>> {
    let mut chunk = [0u8; 64];
    match report.read(&mut chunk) {
        Ok(0) | Err(_) => Some(None),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            let line = buf
                .split(|b| *b == b'\n')
                .next()
                .filter(|_| buf.contains(&b'\n'))?;
            Some(
                std::str::from_utf8(line)
                    .ok()
                    .and_then(|l| l.trim().parse().ok()),
            )
        }
    }
}

/// Unpacks a base64 tar.gz into `dir` under the rules every code archive follows.
fn unpack(archive_b64: &str, dir: &Path) -> Result<(), String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(archive_b64)
        .map_err(|e| format!("the archive is not base64: {e}"))?;
    archive::unpack(dir, &bytes[..], Rules::code_archive())
        .map(drop)
        .map_err(|e| format!("\"code_archive\" was refused: {e}"))
}

/// Where a one-shot node workload's preload is, in its root: it writes the exit code to fd
/// 3 the moment node has it (see the file).
pub const NODE_PRELOAD: &str = "/run/vulcan/exit.js";
const NODE_EXIT_JS: &str = include_str!("node-exit.js");

/// Whether the runtime's root is mounted: by a pre-warm before a snapshot, or by an
/// earlier step of this boot.
static ROOT_MOUNTED: AtomicBool = AtomicBool::new(false);

/// Mounts the root filesystem (read-only, shared by every VM) at `/newroot`, with its API
/// filesystems, once per guest. An image's root ([`OVERLAY_ARG`] on the kernel command line)
/// is mounted without setuid or devices, under an overlay whose writable half is a tmpfs:
/// the run may write anywhere, and what it writes is gone with the VM.
pub fn mount_root() -> Result<PathBuf, String> {
    let root = PathBuf::from("/newroot");
    if ROOT_MOUNTED.load(Ordering::SeqCst) {
        return Ok(root);
    }
    let cmdline = fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let overlay = cmdline.split_whitespace().any(|arg| arg == OVERLAY_ARG);
    // A sandbox's overlay writes to its own disk, which outlives a pause; /tmp is there too.
    let data_disk = overlay && cmdline.split_whitespace().any(|arg| arg == DATA_DISK_ARG);
    let (disk_at, flags) = if overlay {
        crate::load_modules("/etc/vulcan/overlay-modules");
        ("/image", libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV)
    } else {
        ("/newroot", libc::MS_RDONLY)
    };
    let mut mounted = Err(io::Error::other("no disk"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let (root_dev, _) = disks();
        mounted = mount(&root_dev, disk_at, "ext4", flags, "");
        if mounted.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if let Err(e) = mounted {
        return Err(format!("cannot mount the root filesystem: {e}"));
    }
    if overlay {
        let nosuid = libc::MS_NOSUID | libc::MS_NODEV;
        let upper = match disks() {
            (_, Some(data)) if data_disk => mount(&data, "/overlay", "ext4", nosuid, ""),
            _ if data_disk => Err(io::Error::other("the sandbox's disk is missing")),
            _ => mount("tmpfs", "/overlay", "tmpfs", nosuid, "mode=0755"),
        };
        upper
            .and_then(|()| fs::create_dir_all("/overlay/upper"))
            .and_then(|()| fs::create_dir_all("/overlay/work"))
            .and_then(|()| {
                mount(
                    "overlay",
                    "/newroot",
                    "overlay",
                    nosuid,
                    "lowerdir=/image,upperdir=/overlay/upper,workdir=/overlay/work",
                )
            })
            .map_err(|e| format!("cannot mount the image's overlay: {e}"))?;
    }
    for (fs_type, target) in [
        ("proc", "/newroot/proc"),
        ("sysfs", "/newroot/sys"),
        ("devtmpfs", "/newroot/dev"),
        ("tmpfs", "/newroot/tmp"),
        ("tmpfs", "/newroot/work"),
    ] {
        if data_disk && fs_type == "tmpfs" {
            continue;
        }
        let flags = if fs_type == "sysfs" {
            libc::MS_RDONLY
        } else {
            0
        };
        let _ = mount(
            fs_type,
            target,
            fs_type,
            flags,
            if fs_type == "tmpfs" { "mode=1777" } else { "" },
        );
    }
    if data_disk {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::create_dir_all("/newroot/tmp")
            .and_then(|()| fs::set_permissions("/newroot/tmp", fs::Permissions::from_mode(0o1777)));
    }
    // The agent's own files for the workload (read-only to it): the node preload.
    if mount("tmpfs", "/newroot/run", "tmpfs", 0, "mode=0755").is_ok() {
        let _ = fs::create_dir_all("/newroot/run/vulcan");
        let _ = fs::write(format!("/newroot{NODE_PRELOAD}"), NODE_EXIT_JS);
        let _ = mount(
            "tmpfs",
            "/newroot/run",
            "tmpfs",
            libc::MS_REMOUNT | libc::MS_RDONLY,
            "",
        );
    }
    ROOT_MOUNTED.store(true, Ordering::SeqCst);
    Ok(root)
}

/// The root disk's device, and a sandbox's own disk's (the one whose serial is
/// [`DATA_DISK_SERIAL`]) if there is one.
fn disks() -> (String, Option<String>) {
    let mut names: Vec<String> = fs::read_dir("/sys/block")
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("vd"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let serial = |name: &String| {
        fs::read_to_string(format!("/sys/block/{name}/serial"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    let data = names
        .iter()
        .find(|n| serial(n) == DATA_DISK_SERIAL)
        .map(|n| format!("/dev/{n}"));
    // The root is the disk without a serial of Vulcan's (a sandbox's disk and volumes
    // have one).
    let root = names
        .iter()
        .find(|n| {
            let serial = serial(n);
            serial != DATA_DISK_SERIAL && !serial.starts_with(VOLUME_SERIAL_PREFIX)
        })
        .map_or_else(|| "/dev/vda".to_owned(), |n| format!("/dev/{n}"));
    (root, data)
}

/// Mounts a held sandbox's volumes in its root `root`, each disk found by its serial;
/// a read-only one without replaying its journal (nothing is written to it).
pub fn mount_volumes(root: &Path, volumes: &[HeldVolume]) -> Result<(), String> {
    for volume in volumes {
        let device = fs::read_dir("/sys/block")
            .into_iter()
            .flatten()
            .flatten()
            .find(|e| {
                fs::read_to_string(e.path().join("serial")).is_ok_and(|s| s.trim() == volume.serial)
            })
            .map(|e| format!("/dev/{}", e.file_name().to_string_lossy()))
            .ok_or_else(|| format!("the disk of the volume at {} is missing", volume.path))?;
        let at = root.join(volume.path.trim_start_matches('/'));
        fs::create_dir_all(&at)
            .map_err(|e| format!("cannot make {} for a volume: {e}", volume.path))?;
        let mut flags = libc::MS_NOSUID | libc::MS_NODEV;
        let mut options = "";
        if volume.read_only {
            flags |= libc::MS_RDONLY;
            options = "noload";
        }
        let at = at.to_string_lossy().into_owned();
        mount(&device, &at, "ext4", flags, options)
            .map_err(|e| format!("the volume at {} could not be mounted: {e}", volume.path))?;
    }
    Ok(())
}

/// Before a snapshot is taken (`vulcan.prewarm=RUNTIME` on the kernel command line):
/// mounts the runtime's root and starts its interpreter once, as a workload would, so the
/// interpreter's files are in the page cache of every guest restored from the snapshot.
/// Nothing of it keeps running, and `/tmp` and `/work` are mounted afresh for the job.
pub fn prewarm(runtime: &str) {
    let Ok(root) = mount_root() else {
        return;
    };
    let args: &[&str] = match runtime {
        "python" => &["-c", "import json, os, sys, random, uuid, time"],
        "node" => &["-r", NODE_PRELOAD, "-e", "require('fs'); require('crypto')"],
        // An image's own program (runtime oci) is never started before a snapshot.
        _ => return,
    };
    let workspace = Workspace {
        root,
        group: None,
        user: (WORKLOAD_UID, WORKLOAD_UID),
        cwd: "/work".into(),
        base_env: base_env("/work", &[]),
    };
    let program = if runtime == "python" {
        "python3"
    } else {
        "node"
    };
    let _ = workspace
        .command(program, args, &[], None)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    for target in ["/newroot/tmp", "/newroot/work"] {
        let _ = mount("tmpfs", target, "tmpfs", 0, "mode=1777");
    }
}

/// Mounts the root, writes the code into `/work` (as `file` for inline code) and unpacks the
/// archive there, and makes the cgroup. An error says why the workload cannot run.
pub fn prepare(job: &Run, file: &str) -> Result<Workspace, String> {
    let root = if job.rootfs {
        mount_root()?
    } else {
        let _ = mount("tmpfs", "/work", "tmpfs", 0, "mode=1777");
        PathBuf::from("/")
    };
    if let Some(net) = &job.network {
        crate::network::configure(net, &root)?;
    }
    mount_volumes(&root, &job.volumes)?;
    let work = root.join("work");
    if let Some(code) = &job.code {
        fs::write(work.join(file), code).map_err(|e| format!("cannot write the code: {e}"))?;
    }
    if let Some(archive) = &job.archive {
        unpack(archive, &work)?;
    }
    let (user, cwd, home) = match &job.image {
        Some(image) if job.runtime == "oci" => {
            let cwd = if job.archive.is_some() {
                "/work"
            } else if image.cwd.starts_with('/') {
                image.cwd.as_str()
            } else {
                "/"
            };
            // As a container runtime does: the directory is made if the image lacks it.
            let _ = fs::create_dir_all(root.join(cwd.trim_start_matches('/')));
            let home = if image.uid == 0 { "/root" } else { "/work" };
            ((image.uid, image.gid), cwd.to_owned(), home)
        }
        _ => ((WORKLOAD_UID, WORKLOAD_UID), "/work".to_owned(), "/work"),
    };
    // The work directory belongs to the workload's user.
    chown_tree(&work, user.0).map_err(|e| format!("cannot prepare the work directory: {e}"))?;
    let image_env = job.image.as_ref().map_or(&[][..], |i| &i.env[..]);
    Ok(Workspace {
        root,
        group: workload_cgroup(job.mem_mb),
        user,
        cwd,
        base_env: base_env(home, image_env),
    })
}

/// Where a held sandbox's processes run: the image's root on the sandbox's disk, one cgroup
/// for all of them, the image's environment.
pub fn prepare_held(job: &Run) -> Result<Workspace, String> {
    let root = mount_root()?;
    let image = job.image.clone().unwrap_or_default();
    let home = if image.uid == 0 { "/root" } else { "/" };
    Ok(Workspace {
        root,
        group: workload_cgroup(job.mem_mb),
        user: (image.uid, image.gid),
        cwd: "/".into(),
        base_env: base_env(home, &image.env),
    })
}

impl Workspace {
    /// Waits for the workload's program: until it exits, or — with `report`, the read end
    /// of its fd 3 — until it writes its exit code there (node's preload does, before the
    /// kernel has torn it down). A fork bomb or a memory bomb is ended the moment the
    /// workload's cgroup reports one (past the counts it had when the wait began), not when
    /// the program's first process happens to exit — under emulation that took longer than
    /// a timeout.
    pub fn wait(&self, child: &mut Child, report: Option<File>) -> io::Result<Ended> {
        let Some(pidfd) = pidfd_open(child.id()) else {
            return child.wait().map(Ended::Exited);
        };
        let before = self.group.as_ref().map(Cgroup::events);
        let mut report = report;
        let mut reported = Vec::new();
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: report.as_ref().map_or(-1, File::as_raw_fd),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: two valid pollfd entries (a negative fd is ignored by poll).
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, 20) };
            if ready < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return child.wait().map(Ended::Exited);
            }
            if fds[1].revents != 0 {
                if let Some(code) = report.as_mut().and_then(|r| read_code(r, &mut reported)) {
                    match code {
                        Some(code) => return Ok(Ended::Reported(code)),
                        // Closed with nothing valid: wait for the exit.
                        None => report = None,
                    }
                }
            }
            if fds[0].revents != 0 {
                return child.wait().map(Ended::Exited);
            }
            if let (Some(group), Some(before)) = (&self.group, &before) {
                let now = group.events();
                if now.pids_refused > before.pids_refused || now.oom_kills > before.oom_kills {
                    // SAFETY: kill has no memory preconditions; from PID 1, -1 is every
                    // process but the agent.
                    unsafe { libc::kill(-1, libc::SIGKILL) };
                }
            }
        }
    }

    /// The command that starts `program` in the workspace: its cgroup joined, chrooted,
    /// in its directory, as its user with the process limit, without a way to gain
    /// privileges, with `env` over the base environment and piped stdio. `results`, if given, becomes the program's fd 3 (a warm instance's answers).
    pub fn command(
        &self,
        program: &str,
        args: &[&str],
        env: &[(String, String)],
        results: Option<i32>,
    ) -> Command {
        self.command_as(program, args, env, results, self.user, &self.cwd)
    }

    /// [`Workspace::command`] as `user`, in `cwd`.
    pub fn command_as(
        &self,
        program: &str,
        args: &[&str],
        env: &[(String, String)],
        results: Option<i32>,
        user: (u32, u32),
        cwd: &str,
    ) -> Command {
        let root_c = CString::new(self.root.to_string_lossy().as_bytes()).unwrap_or_default();
        let cwd_c = CString::new(cwd.as_bytes()).unwrap_or_default();
        let (uid, gid) = user;
        // Joined between fork and exec, where only raw system calls may run.
        let procs = self
            .group
            .as_ref()
            .and_then(|g| g.procs_files().into_iter().next())
            .and_then(|f| CString::new(f.to_string_lossy().as_bytes()).ok());
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(self.base_env.iter().map(|(k, v)| (k, v)))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // The agent is shielded from the OOM killer; the workload must not be, or a
                // memory bomb would panic the guest instead of being killed.
                let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY);
                if fd >= 0 {
                    libc::write(fd, c"0".as_ptr().cast(), 1);
                    libc::close(fd);
                }
                if let Some(procs) = &procs {
                    let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                    if fd >= 0 {
                        libc::write(fd, c"0".as_ptr().cast(), 1);
                        libc::close(fd);
                    }
                }
                if let Some(fd) = results {
                    if libc::dup2(fd, 3) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                if libc::chroot(root_c.as_ptr()) != 0 || libc::chdir(cwd_c.as_ptr()) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // Nothing the program runs gains privileges (a setuid file included), and
                // one running as root keeps only the capabilities gVisor would give it.
                if uid == 0 {
                    for cap in 0..64 {
                        if !KEPT_CAPABILITIES.contains(&cap) {
                            libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
                        }
                    }
                }
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The cgroup's pids.max is the bound (and reports hitting it); the
                // user's process limit stands in where there is no cgroup.
                if procs.is_none() {
                    let nproc = libc::rlimit {
                        rlim_cur: MAX_PROCESSES,
                        rlim_max: MAX_PROCESSES,
                    };
                    libc::setrlimit(libc::RLIMIT_NPROC, &nproc);
                }
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }
}
