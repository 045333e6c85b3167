//! Vulcan's guest agent: the microVM's init (PID 1).
//!
//! It mounts what the guest needs, loads the virtio modules listed in
//! `/etc/vulcan/modules`, opens the `vulcan.0` virtio-serial port, says it is ready,
//! takes one workload, runs it (in the runtime's root filesystem from the first disk, as an
//! unprivileged user, with a process limit), streams its stdout and stderr lines back,
//! reports how it ended, and powers the VM off. It never runs a second workload — but a
//! warm instance of a deployed function serves many invocations of that one function
//! ([`serve`]).
//!
//! Reading order: [`workspace`] (where the workload runs), [`network`] (the NIC, for a job
//! with a network), [`run`] (one program), [`serve`] (a warm instance), [`hold`] with
//! [`files`] (a sandbox held across many calls).

mod files;
mod hold;
mod network;
mod run;
mod serve;
mod workspace;

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use vulcan_agent::{
    read_frame, write_frame, Exit, Kind, Ready, Run, Seed, MAX_LINE, PORT_NAME, SEED_BYTES,
};
use vulcan_sandbox::capture::LineSplitter;

/// On the kernel command line of a guest that has a NIC.
const NIC_ARG: &str = "vulcan.nic=1";

pub(crate) fn log(message: &str) {
    // The serial console: visible in the VM's console log, never on the channel.
    if let Ok(mut console) = OpenOptions::new().write(true).open("/dev/console") {
        let _ = writeln!(console, "vulcan-agent: {message}");
    }
}

pub(crate) fn mount(
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

/// Loads the modules listed, one path a line, in `list`.
pub(crate) fn load_modules(list: &str) {
    let Ok(list) = fs::read_to_string(list) else {
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

pub(crate) fn oom_kills() -> u64 {
    fs::read_to_string("/proc/vmstat")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// What the workload cgroup used since `mark` (nothing without a cgroup).
pub(crate) fn used(
    group: Option<&vulcan_sandbox::cgroup::Cgroup>,
    mark: Option<vulcan_sandbox::cgroup::UsageMark>,
) -> Option<vulcan_agent::Used> {
    let usage = group?.usage_since(mark?);
    Some(vulcan_agent::Used {
        cpu_time_ms: usage.cpu_time_ms,
        peak_memory_bytes: usage.peak_memory_bytes,
        max_processes: usage.max_processes,
    })
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

pub(crate) type Port = Arc<Mutex<File>>;

pub(crate) fn send(port: &Port, kind: Kind, payload: &[u8]) {
    let mut port = port.lock().unwrap_or_else(|p| p.into_inner());
    let _ = write_frame(&mut *port, kind, payload);
}

/// Sends each line of `reader` as one frame of `kind`.
pub(crate) fn pump(mut reader: impl Read, port: Port, kind: Kind) {
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

/// Sets the clock from the host's, mixes the host's bytes into the entropy pool (crediting
/// them) and reseeds the kernel's generator from it; whether all of it took.
fn seed(seed: &Seed) -> bool {
    let now = libc::timespec {
        tv_sec: seed.unix_s,
        tv_nsec: i64::from(seed.unix_nanos.min(999_999_999)),
    };
    // SAFETY: a valid timespec, read only during the call.
    let clock = unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &now) } == 0;
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&seed.entropy) else {
        return false;
    };
    if bytes.len() != SEED_BYTES {
        return false;
    }
    /// `struct rand_pool_info` with its buffer inline.
    #[repr(C)]
    struct PoolInfo {
        entropy_count: libc::c_int,
        buf_size: libc::c_int,
        buf: [u8; SEED_BYTES],
    }
    let mut info = PoolInfo {
        entropy_count: (SEED_BYTES * 8) as libc::c_int,
        buf_size: SEED_BYTES as libc::c_int,
        buf: [0; SEED_BYTES],
    };
    info.buf.copy_from_slice(&bytes);
    /// `_IOW('R', 0x03, int[2])`.
    const RNDADDENTROPY: libc::c_ulong = 0x4008_5203;
    let Ok(random) = OpenOptions::new().write(true).open("/dev/urandom") else {
        return false;
    };
    // SAFETY: the descriptor is open, and `info` is a rand_pool_info the kernel reads
    // `buf_size` bytes of.
    let mixed = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&random),
            RNDADDENTROPY,
            &info as *const PoolInfo,
        )
    } == 0;
    // Mixed in is not yet used: the generator keeps its key (cloned with the rest of a
    // restored guest) until its next scheduled reseed. Reseed it now.
    /// `_IO('R', 0x07)`.
    const RNDRESEEDCRNG: libc::c_ulong = 0x5207;
    // SAFETY: an ioctl without an argument on an open descriptor.
    let reseeded =
        unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&random), RNDRESEEDCRNG) } == 0;
    clock && mixed && reseeded
}

fn main() {
    let _ = mount("proc", "/proc", "proc", 0, "");
    let _ = mount("sysfs", "/sys", "sysfs", 0, "");
    let _ = mount("devtmpfs", "/dev", "devtmpfs", 0, "");
    // Terminals for a held sandbox's processes that run on one.
    let _ = fs::create_dir_all("/dev/pts");
    let _ = mount("devpts", "/dev/pts", "devpts", 0, "ptmxmode=0666,mode=0620");
    let _ = mount("tmpfs", "/tmp", "tmpfs", 0, "mode=1777");
    // The agent is the last thing the OOM killer may take.
    let _ = fs::write("/proc/self/oom_score_adj", "-1000");
    load_modules("/etc/vulcan/modules");
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
    // What every job needs, made before Ready (and so in a snapshot): the cgroup parent.
    let _ = workspace::cgroup_parent();
    // A guest booted to be snapshotted warms its runtime first, and one with a NIC loads
    // its driver.
    let cmdline = fs::read_to_string("/proc/cmdline").unwrap_or_default();
    if cmdline.split_whitespace().any(|arg| arg == NIC_ARG) {
        network::load_driver();
    }
    if let Some(runtime) = cmdline
        .split_whitespace()
        .find_map(|arg| arg.strip_prefix("vulcan.prewarm="))
    {
        workspace::prewarm(runtime);
    }
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
            Ok(job) if job.seed.as_ref().is_some_and(|s| !seed(s)) => Exit {
                error: Some("the agent could not set the guest's clock and entropy".into()),
                ..Exit::default()
            },
            Ok(job) if job.sandbox => {
                hold::hold(&port, &mut reader, job);
                power_off();
            }
            Ok(job) if job.serve => serve::serve(&port, &mut reader, job),
            Ok(job) => run::run(&port, job),
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
