//! The workload's place in the guest: the runtime's root filesystem (read-only) with a
//! tmpfs work directory holding its code, a cgroup bounding its memory and processes, and
//! the command that starts a program there — chrooted, as an unprivileged user.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use vulcan_agent::{Run, MAX_PROCESSES};
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
}

/// Makes the workload's cgroup (the same policy as on the host: memory bounded with no
/// swap, at most [`MAX_PROCESSES`], and the whole group killed on OOM); `None` if the guest
/// has no cgroup v2 or a bound cannot be set.
fn workload_cgroup(mem_mb: u32) -> Option<Cgroup> {
    if mount("cgroup2", cgroup::MOUNT, "cgroup2", 0, "").is_err() {
        return None;
    }
    let parent = CgroupParent::create(Path::new(""), true)
        .map_err(|e| log(&format!("no workload cgroup: {e}")))
        .ok()?;
    let group = parent.group("workload").ok()?;
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

/// Unpacks a base64 tar.gz into `dir` under the rules every code archive follows.
fn unpack(archive_b64: &str, dir: &Path) -> Result<(), String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(archive_b64)
        .map_err(|e| format!("the archive is not base64: {e}"))?;
    archive::unpack(dir, &bytes[..], Rules::code_archive())
        .map(drop)
        .map_err(|e| format!("\"code_archive\" was refused: {e}"))
}

/// Whether the runtime's root is mounted: by a pre-warm before a snapshot, or by an
/// earlier step of this boot.
static ROOT_MOUNTED: AtomicBool = AtomicBool::new(false);

/// Mounts the runtime's root filesystem (read-only, shared by every VM) at `/newroot`, with
/// its API filesystems, once per guest.
pub fn mount_root() -> Result<PathBuf, String> {
    let root = PathBuf::from("/newroot");
    if ROOT_MOUNTED.load(Ordering::SeqCst) {
        return Ok(root);
    }
    let mut mounted = Err(io::Error::other("no disk"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        mounted = mount("/dev/vda", "/newroot", "ext4", libc::MS_RDONLY, "");
        if mounted.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if let Err(e) = mounted {
        return Err(format!("cannot mount the runtime's root filesystem: {e}"));
    }
    for (fs_type, target) in [
        ("proc", "/newroot/proc"),
        ("sysfs", "/newroot/sys"),
        ("devtmpfs", "/newroot/dev"),
        ("tmpfs", "/newroot/tmp"),
        ("tmpfs", "/newroot/work"),
    ] {
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
    ROOT_MOUNTED.store(true, Ordering::SeqCst);
    Ok(root)
}

/// Before a snapshot is taken (`vulcan.prewarm=RUNTIME` on the kernel command line):
/// mounts the runtime's root and starts its interpreter once, as a workload would, so the
/// interpreter's files are in the page cache of every guest restored from the snapshot.
/// Nothing of it keeps running, and `/tmp` and `/work` are mounted afresh for the job.
pub fn prewarm(runtime: &str) {
    let args: &[&str] = match runtime {
        "python" => &["-c", "import json, os, sys, random, uuid, time"],
        "node" => &["-e", "require('fs'); require('crypto')"],
        _ => return,
    };
    let Ok(root) = mount_root() else {
        return;
    };
    let workspace = Workspace { root, group: None };
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
    let work = root.join("work");
    if let Some(code) = &job.code {
        fs::write(work.join(file), code).map_err(|e| format!("cannot write the code: {e}"))?;
    }
    if let Some(archive) = &job.archive {
        unpack(archive, &work)?;
    }
    // The work directory belongs to the workload's user.
    let _ = Command::new("/bin/busybox")
        .args([
            "chown",
            "-R",
            &WORKLOAD_UID.to_string(),
            &work.to_string_lossy(),
        ])
        .status();

    Ok(Workspace {
        root,
        group: workload_cgroup(job.mem_mb),
    })
}

impl Workspace {
    /// Waits for the workload's program. A fork bomb or a memory bomb is ended the moment
    /// the workload's cgroup reports one (past the counts it had when the wait began), not
    /// when the program's first process happens to exit — under emulation that took longer
    /// than a timeout.
    pub fn wait(&self, child: &mut std::process::Child) -> io::Result<std::process::ExitStatus> {
        let Some(group) = self.group.as_ref() else {
            return child.wait();
        };
        let before = group.events();
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !done.load(Ordering::SeqCst) {
                    let now = group.events();
                    if now.pids_refused > before.pids_refused || now.oom_kills > before.oom_kills {
                        // SAFETY: kill has no memory preconditions; from PID 1, -1 is every
                        // process but the agent.
                        unsafe { libc::kill(-1, libc::SIGKILL) };
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
            let status = child.wait();
            done.store(true, Ordering::SeqCst);
            status
        })
    }

    /// The command that starts `program` in the workspace: its cgroup joined, chrooted,
    /// in `/work`, as the workload's user with the process limit, with `env` and piped
    /// stdio. `results`, if given, becomes the program's fd 3 (a warm instance's answers).
    pub fn command(
        &self,
        program: &str,
        args: &[&str],
        env: &[(String, String)],
        results: Option<i32>,
    ) -> Command {
        let root_c = CString::new(self.root.to_string_lossy().as_bytes()).unwrap_or_default();
        // Joined between fork and exec, where only raw system calls may run.
        let procs = self
            .group
            .as_ref()
            .and_then(|g| g.procs_files().into_iter().next())
            .and_then(|f| CString::new(f.to_string_lossy().as_bytes()).ok());
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", "/work")
            .env("LANG", "C.UTF-8")
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
                if libc::chroot(root_c.as_ptr()) != 0 || libc::chdir(c"/work".as_ptr()) != 0 {
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
                    || libc::setgid(WORKLOAD_UID) != 0
                    || libc::setuid(WORKLOAD_UID) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }
}
