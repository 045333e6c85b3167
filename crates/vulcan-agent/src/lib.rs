//! The frame protocol between Vulcan (host) and its guest agent, over a virtio-serial port.
//!
//! A frame is a 4-byte big-endian length `n`, then `n` bytes: one type byte and the
//! payload. Both sides refuse a frame longer than [`MAX_FRAME`]: the host treats anything it
//! cannot parse as the workload's failure, never its own.
//!
//! Guest → host: [`Kind::Ready`] (JSON [`Ready`]) once booted, [`Kind::Stdout`] /
//! [`Kind::Stderr`] (one line each, without its newline), [`Kind::Exit`] (JSON [`Exit`]).
//! Host → guest: [`Kind::Run`] (JSON [`Run`]).
//!
//! A warm instance of a deployed function (`Run::serve`) answers the Run with
//! [`Kind::Loaded`] (JSON [`Served`]: an error if loading failed), then serves each
//! [`Kind::Invoke`] (the input's JSON) with its lines and one [`Kind::Result`] (JSON
//! [`Served`]), until the host stops the VM.
//!
//! A sandbox (`Run::sandbox`) is held instead: the agent answers the Run with
//! [`Kind::Loaded`], then serves [`Kind::Call`]s ([`held`]) until the host stops the VM.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

pub mod held;

/// Largest frame either side accepts (type byte and payload).
pub const MAX_FRAME: usize = 8 * 1024 * 1024;

/// Longest line the agent sends; the rest of a longer line is dropped.
pub const MAX_LINE: usize = vulcan_sandbox::capture::MAX_LINE_BYTES;

/// Processes (tasks) a workload may have inside its VM: the fork-bomb bound (its cgroup's
/// `pids.max`, and the user's `RLIMIT_NPROC` where cgroups are missing).
pub const MAX_PROCESSES: u64 = 64;

/// The name of the virtio-serial port the agent looks for.
pub const PORT_NAME: &str = "vulcan.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Ready = 1,
    Stdout = 2,
    Stderr = 3,
    Exit = 4,
    Loaded = 5,
    Result = 6,
    Answer = 7,
    Output = 8,
    Ended = 9,
    Changed = 10,
    Run = 16,
    Invoke = 17,
    Call = 18,
}

impl Kind {
    pub fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Ready,
            2 => Kind::Stdout,
            3 => Kind::Stderr,
            4 => Kind::Exit,
            5 => Kind::Loaded,
            6 => Kind::Result,
            7 => Kind::Answer,
            8 => Kind::Output,
            9 => Kind::Ended,
            10 => Kind::Changed,
            16 => Kind::Run,
            17 => Kind::Invoke,
            18 => Kind::Call,
            _ => return None,
        })
    }
}

/// Sent by the agent once it can take a workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ready {
    pub kernel: String,
    /// Guest uptime when the agent was ready, in milliseconds.
    pub uptime_ms: u64,
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// `python`, `node` or `go`.
    pub runtime: String,
    /// The program's text (`main.py`, `main.js`).
    pub code: Option<String>,
    /// Base64 of a tar.gz unpacked into the work directory.
    pub archive: Option<String>,
    /// JSON written to the program's stdin.
    pub input: serde_json::Value,
    pub env: Vec<(String, String)>,
    /// Whether the runtime's root filesystem is attached as the first disk.
    pub rootfs: bool,
    /// The workload's memory bound in MiB (a cgroup inside the guest); 0: none.
    #[serde(default)]
    pub mem_mb: u32,
    /// Keep the function loaded and serve invocations ([`Kind::Invoke`]) instead of
    /// running it once.
    #[serde(default)]
    pub serve: bool,
    /// The host's clock and fresh entropy, taken as the job is sent ([`Seed`]).
    #[serde(default)]
    pub seed: Option<Seed>,
    /// The VM's NIC, when it has one ([`GuestNetwork`]); none: the guest has no network.
    #[serde(default)]
    pub network: Option<GuestNetwork>,
    /// The root is an image's ([`FromImage`]): how its configuration says to run in it.
    #[serde(default)]
    pub image: Option<FromImage>,
    /// Hold the VM as a sandbox ([`held`]): no program runs until one is called for.
    #[serde(default)]
    pub sandbox: bool,
    /// Volumes (a held sandbox's, a workload's): disks to mount in its root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<HeldVolume>,
}

/// A volume of a held sandbox: the disk whose serial is `serial`, mounted at `path` in
/// the sandbox's root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldVolume {
    pub serial: String,
    pub path: String,
    pub read_only: bool,
}

/// The serial number of a sandbox's `n`th volume's disk.
pub fn volume_serial(n: usize) -> String {
    format!("{VOLUME_SERIAL_PREFIX}{n}")
}

/// What every volume disk's serial starts with (a disk without one of Vulcan's serials is
/// the root).
pub const VOLUME_SERIAL_PREFIX: &str = "vulcan-vol-";

/// On the kernel command line of a sandbox's guest, whose second disk (serial
/// [`DATA_DISK_SERIAL`]) is its own: the image's overlay writes there, not to RAM.
pub const DATA_DISK_ARG: &str = "vulcan.disk=1";

/// The serial number of a sandbox's own disk, by which the agent finds it.
pub const DATA_DISK_SERIAL: &str = "vulcan-data";

/// On the kernel command line of a guest whose first disk is an image's root: the agent
/// mounts it read-only (no setuid, no devices) under a throw-away overlay in guest RAM.
pub const OVERLAY_ARG: &str = "vulcan.overlay=1";

/// A run in an image's root (a template): the image's environment, and for runtime `oci`
/// the program, directory and user its configuration names (resolved by the host).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FromImage {
    /// The image's `Env` (`NAME=value`), before the workload's own `env`.
    pub env: Vec<String>,
    /// Runtime `oci`: the program and its arguments (entrypoint, then command or cmd).
    #[serde(default)]
    pub argv: Vec<String>,
    /// Runtime `oci`: the working directory (absolute).
    #[serde(default)]
    pub cwd: String,
    /// Runtime `oci`: the user and group the program runs as.
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
}

/// How the agent configures the VM's NIC (`eth0`, a virtio-net device on the host's tap)
/// before the code starts: its address, its default route through the host's end, and the
/// resolver in `/etc/resolv.conf`. The host filters what the NIC sends, whatever the guest
/// does with its configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestNetwork {
    pub address: std::net::Ipv4Addr,
    pub prefix: u8,
    pub gateway: std::net::Ipv4Addr,
    pub resolver: std::net::Ipv4Addr,
}

/// What the guest cannot know by itself: the time (it has no RTC, so it would start in
/// 1970) and randomness no other guest has (VMs of one image, booted alike, or restored
/// from one snapshot, would otherwise start from similar pools). The agent sets the clock
/// and mixes the bytes into the kernel's pool (`RNDADDENTROPY`) before the code starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seed {
    /// Wall-clock time: seconds and nanoseconds since the Unix epoch.
    pub unix_s: i64,
    pub unix_nanos: u32,
    /// Base64 of [`SEED_BYTES`] bytes from the host's CSPRNG.
    pub entropy: String,
}

/// Bytes of host entropy in each [`Seed`].
pub const SEED_BYTES: usize = 64;

/// What a warm instance says of its loading, or of one invocation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Served {
    /// The returned value's JSON (python, node), or what the program printed (go).
    #[serde(default)]
    pub output: Option<String>,
    pub error: Option<String>,
    /// A go program's exit code.
    #[serde(default)]
    pub code: Option<i32>,
    #[serde(default)]
    pub oom: bool,
    #[serde(default)]
    pub pids_limited: bool,
    /// The instance cannot serve again (its process died): the host stops the VM.
    #[serde(default)]
    pub broken: bool,
    /// What the invocation used.
    #[serde(default)]
    pub used: Option<Used>,
}

/// What a run used, from the guest's workload cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Used {
    pub cpu_time_ms: u64,
    pub peak_memory_bytes: u64,
    #[serde(default)]
    pub max_processes: Option<u64>,
}

/// How the program ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// The guest kernel killed a process for lack of memory during the run.
    pub oom: bool,
    /// The workload hit its process limit.
    #[serde(default)]
    pub pids_limited: bool,
    /// The agent could not run the program at all.
    pub error: Option<String>,
    /// What the run used.
    #[serde(default)]
    pub used: Option<Used>,
}

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, kind: Kind, payload: &[u8]) -> io::Result<()> {
    let len = payload.len() + 1;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame too large",
        ));
    }
    let mut buf = Vec::with_capacity(len + 4);
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    buf.push(kind as u8);
    buf.extend_from_slice(payload);
    w.write_all(&buf)?;
    w.flush()
}

/// Why a frame could not be read.
#[derive(Debug)]
pub enum FrameError {
    /// The stream ended cleanly between frames.
    Closed,
    Io(io::Error),
    /// The peer broke the protocol; the message says how.
    Invalid(String),
}

/// Reads one frame, refusing oversized or unknown ones.
pub fn read_frame(r: &mut impl Read) -> Result<(Kind, Vec<u8>), FrameError> {
    let mut header = [0u8; 4];
    match r.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(FrameError::Io(e)),
    }
    let len = u32::from_be_bytes(header) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(FrameError::Invalid(format!(
            "a frame of {len} bytes (the limit is {MAX_FRAME})"
        )));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).map_err(FrameError::Io)?;
    let kind = Kind::from_byte(body[0])
        .ok_or_else(|| FrameError::Invalid(format!("a frame of unknown type {}", body[0])))?;
    body.remove(0);
    Ok((kind, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, Kind::Stdout, b"hello").unwrap();
        write_frame(&mut buf, Kind::Exit, b"{}").unwrap();
        let mut r = &buf[..];
        assert_eq!(
            read_frame(&mut r).unwrap(),
            (Kind::Stdout, b"hello".to_vec())
        );
        assert_eq!(read_frame(&mut r).unwrap(), (Kind::Exit, b"{}".to_vec()));
        assert!(matches!(read_frame(&mut r), Err(FrameError::Closed)));
    }

    #[test]
    fn garbage_is_refused_without_allocating_it() {
        let huge = [0xff, 0xff, 0xff, 0xff, 1];
        assert!(
            matches!(read_frame(&mut &huge[..]), Err(FrameError::Invalid(m)) if m.contains("limit"))
        );
        let unknown = [0, 0, 0, 2, 99, 0];
        assert!(
            matches!(read_frame(&mut &unknown[..]), Err(FrameError::Invalid(m)) if m.contains("unknown type 99"))
        );
        let empty = [0, 0, 0, 0];
        assert!(matches!(
            read_frame(&mut &empty[..]),
            Err(FrameError::Invalid(_))
        ));
    }
}
