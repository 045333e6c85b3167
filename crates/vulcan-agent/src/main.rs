//! Vulcan's guest agent: the microVM's init (PID 1).
//!
//! It mounts what the guest needs, loads the virtio modules listed in
//! `/etc/vulcan/modules`, opens the `vulcan.0` virtio-serial port, says it is ready,
//! takes one workload, runs it (in the runtime's root filesystem from the first disk, as an
//! unprivileged user, with a process limit), streams its stdout and stderr lines back,
//! reports how it ended, and powers the VM off. It never runs a second workload.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use vulcan_agent::{
    read_frame, write_frame, Exit, Kind, Ready, Run, MAX_LINE, MAX_PROCESSES, PORT_NAME,
};
use vulcan_sandbox::archive::{self, Rules};
use vulcan_sandbox::capture::LineSplitter;
use vulcan_sandbox::cgroup::{self, Cgroup, CgroupParent};

/// The unprivileged user workloads run as.
const WORKLOAD_UID: u32 = 1000;

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

fn log(message: &str) {
    // The serial console: visible in the VM's console log, never on the channel.
    if let Ok(mut console) = OpenOptions::new().write(true).open("/dev/console") {
        let _ = writeln!(console, "vulcan-agent: {message}");
    }
}

fn mount(
    source: &str,
    target: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> io::Result<()> {
    let _ = fs::create_dir_all(target);
    let c = |s: &str| CString::new(s).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e));
    let (source, target_c, fstype, data) = (c(source)?, c(target)?, c(fstype)?, c(data)?);
    // SAFETY: every pointer is a valid NUL-terminated string living across the call.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target_c.as_ptr(),
            fstype.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn load_modules() {
    let Ok(list) = fs::read_to_string("/etc/vulcan/modules") else {
        return;
    };
    for path in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Ok(file) = File::open(path) else {
            log(&format!("module {path} missing"));
            continue;
        };
        use std::os::fd::AsRawFd;
        let empty = CString::default();
        // SAFETY: finit_module reads the open file and the empty parameter string.
        let rc =
            unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), empty.as_ptr(), 0) };
        if rc != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EEXIST) {
                log(&format!("cannot load {path}: {err}"));
            }
        }
    }
}

/// The device of the port named `vulcan.0`, once it appears.
fn find_port(deadline: Instant) -> Option<PathBuf> {
    while Instant::now() < deadline {
        if let Ok(entries) = fs::read_dir("/sys/class/virtio-ports") {
            for entry in entries.flatten() {
                let name = fs::read_to_string(entry.path().join("name")).unwrap_or_default();
                if name.trim() == PORT_NAME {
                    let dev = Path::new("/dev").join(entry.file_name());
                    if dev.exists() {
                        return Some(dev);
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

fn uptime_ms() -> u64 {
    fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0, |s| (s * 1000.0) as u64)
}

fn oom_kills() -> u64 {
    fs::read_to_string("/proc/vmstat")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn power_off() -> ! {
    // SAFETY: sync and reboot have no memory preconditions; PID 1 may power off.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

type Port = Arc<Mutex<File>>;

fn send(port: &Port, kind: Kind, payload: &[u8]) {
    let mut port = port.lock().unwrap_or_else(|p| p.into_inner());
    let _ = write_frame(&mut *port, kind, payload);
}

/// Sends each line of `reader` as one frame of `kind`.
fn pump(mut reader: impl Read, port: Port, kind: Kind) {
    let mut lines = LineSplitter::new(MAX_LINE);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => lines.feed(&buf[..n], |line| send(&port, kind, line)),
        }
    }
    lines.finish(|line| send(&port, kind, line));
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

fn run(port: &Port, job: Run) -> Exit {
    let root = if job.rootfs {
        // The runtime's root filesystem, read-only, shared by every VM.
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
            return Exit {
                error: Some(format!("cannot mount the runtime's root filesystem: {e}")),
                ..Exit::default()
            };
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
        PathBuf::from("/newroot")
    } else {
        let _ = mount("tmpfs", "/work", "tmpfs", 0, "mode=1777");
        PathBuf::from("/")
    };
    let work = root.join("work");
    let (program, args): (&str, Vec<&str>) = match job.runtime.as_str() {
        "python" => ("python3", vec!["main.py"]),
        "node" => ("node", vec!["main.js"]),
        "go" => ("./main", vec![]),
        other => {
            return Exit {
                error: Some(format!("the agent does not run {other}")),
                ..Exit::default()
            }
        }
    };
    if let Some(code) = &job.code {
        let file = if job.runtime == "python" {
            "main.py"
        } else {
            "main.js"
        };
        if let Err(e) = fs::write(work.join(file), code) {
            return Exit {
                error: Some(format!("cannot write the code: {e}")),
                ..Exit::default()
            };
        }
    }
    if let Some(archive) = &job.archive {
        if let Err(e) = unpack(archive, &work) {
            return Exit {
                error: Some(e),
                ..Exit::default()
            };
        }
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

    let root_c = CString::new(root.to_string_lossy().as_bytes()).unwrap_or_default();
    let group = workload_cgroup(job.mem_mb);
    // Joined between fork and exec, where only raw system calls may run.
    let procs = group
        .as_ref()
        .and_then(|g| g.procs_files().into_iter().next())
        .and_then(|f| CString::new(f.to_string_lossy().as_bytes()).ok());
    let mut cmd = Command::new(program);
    cmd.args(&args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", "/work")
        .env("LANG", "C.UTF-8")
        .envs(job.env.iter().map(|(k, v)| (k, v)))
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
            if libc::chroot(root_c.as_ptr()) != 0 || libc::chdir(c"/work".as_ptr()) != 0 {
                return Err(io::Error::last_os_error());
            }
            let nproc = libc::rlimit {
                rlim_cur: MAX_PROCESSES,
                rlim_max: MAX_PROCESSES,
            };
            libc::setrlimit(libc::RLIMIT_NPROC, &nproc);
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(WORKLOAD_UID) != 0
                || libc::setuid(WORKLOAD_UID) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let oom_before = oom_kills();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Exit {
                error: Some(format!("cannot start {program}: {e}")),
                ..Exit::default()
            }
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let input = job.input.clone();
        std::thread::spawn(move || {
            if !input.is_null() {
                let mut bytes = serde_json::to_vec(&input).unwrap_or_default();
                bytes.push(b'\n');
                let _ = stdin.write_all(&bytes);
            }
        });
    }
    let out = child.stdout.take().map(|o| {
        let port = port.clone();
        std::thread::spawn(move || pump(o, port, Kind::Stdout))
    });
    let err = child.stderr.take().map(|e| {
        let port = port.clone();
        std::thread::spawn(move || pump(e, port, Kind::Stderr))
    });
    let status = child.wait();
    // Whatever the program left running (orphans hold its pipes open) goes with it:
    // from PID 1, kill(-1) reaches every process but the agent.
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(-1, libc::SIGKILL) };
    for t in [out, err].into_iter().flatten() {
        let _ = t.join();
    }
    let events = group.map(|g| g.events()).unwrap_or_default();
    match status {
        Ok(s) => Exit {
            code: s.code(),
            signal: s.signal(),
            oom: oom_kills() > oom_before || events.oom_kills > 0,
            pids_limited: events.pids_refused > 0,
            error: None,
        },
        Err(e) => Exit {
            error: Some(format!("waiting for the program failed: {e}")),
            ..Exit::default()
        },
    }
}

fn main() {
    let _ = mount("proc", "/proc", "proc", 0, "");
    let _ = mount("sysfs", "/sys", "sysfs", 0, "");
    let _ = mount("devtmpfs", "/dev", "devtmpfs", 0, "");
    let _ = mount("tmpfs", "/tmp", "tmpfs", 0, "mode=1777");
    // The agent is the last thing the OOM killer may take.
    let _ = fs::write("/proc/self/oom_score_adj", "-1000");
    load_modules();
    let Some(dev) = find_port(Instant::now() + Duration::from_secs(20)) else {
        log("the vulcan.0 port did not appear");
        power_off();
    };
    let file = match OpenOptions::new().read(true).write(true).open(&dev) {
        Ok(f) => f,
        Err(e) => {
            log(&format!("cannot open {}: {e}", dev.display()));
            power_off();
        }
    };
    let mut reader = match file.try_clone() {
        Ok(r) => r,
        Err(_) => power_off(),
    };
    let port: Port = Arc::new(Mutex::new(file));
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let ready = Ready {
        kernel,
        uptime_ms: uptime_ms(),
    };
    send(
        &port,
        Kind::Ready,
        &serde_json::to_vec(&ready).unwrap_or_default(),
    );
    let exit = match read_frame(&mut reader) {
        Ok((Kind::Run, payload)) => match serde_json::from_slice::<Run>(&payload) {
            Ok(job) => run(&port, job),
            Err(e) => Exit {
                error: Some(format!("the agent got an invalid job: {e}")),
                ..Exit::default()
            },
        },
        Ok((kind, _)) => Exit {
            error: Some(format!("the agent expected a job, got {kind:?}")),
            ..Exit::default()
        },
        Err(_) => power_off(),
    };
    send(
        &port,
        Kind::Exit,
        &serde_json::to_vec(&exit).unwrap_or_default(),
    );
    power_off();
}
