//! The calls a held sandbox's agent serves (a [`crate::Run`] with `sandbox` set).
//!
//! The host sends [`Kind::Call`](crate::Kind::Call) frames (JSON [`Call`]); the agent
//! answers each, in any order, with one [`Kind::Answer`](crate::Kind::Answer) (JSON
//! [`Answer`], the call's `id`). A process it started sends its output as
//! [`Kind::Output`](crate::Kind::Output) frames ([`output_frame`]: pid, stream, bytes) and,
//! once it has ended and its output is read, one [`Kind::Ended`](crate::Kind::Ended) (JSON
//! [`ProcEnded`]); a watched directory's changes come as
//! [`Kind::Changed`](crate::Kind::Changed) frames (JSON [`Changed`]). Paths are absolute paths in the sandbox's root; the agent resolves them
//! there (a process of its own, chrooted), so neither `..` nor a link leads out of it.

use serde::{Deserialize, Serialize};

use crate::Seed;

/// The most bytes one [`Op::Read`] returns, or one [`Op::WriteChunk`] carries.
pub const MAX_CHUNK: u32 = 1024 * 1024;

/// Entries one [`Op::List`] returns at most.
pub const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    pub id: u64,
    #[serde(flatten)]
    pub op: Op,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Starts a process; answered `{"pid": n}`.
    Spawn(Spawn),
    /// Bytes (base64) for a process's stdin.
    Stdin {
        pid: u32,
        data: String,
    },
    CloseStdin {
        pid: u32,
    },
    Signal {
        pid: u32,
        signal: i32,
    },
    /// Writes everything cached out to the disks (the sandbox is about to end: its volumes
    /// outlive it).
    Sync,
    /// A new size for the terminal of a process started on one.
    Resize {
        pid: u32,
        rows: u16,
        cols: u16,
    },
    /// Answered with an [`Entry`].
    Stat {
        path: String,
    },
    /// Answered with a list of [`Entry`], `depth` levels down (1: the entries).
    List {
        path: String,
        depth: u32,
    },
    /// Answered with a [`Piece`].
    Read {
        path: String,
        offset: u64,
        len: u32,
    },
    /// Opens a file to write (its directories made, owned by `uid`:`gid`); nothing is at
    /// `path` until [`Op::WriteEnd`]. Answered `{"token": n}`.
    WriteBegin {
        path: String,
        uid: u32,
        gid: u32,
    },
    WriteChunk {
        token: u64,
        data: String,
    },
    /// Puts the written file at its path; answered with its [`Entry`].
    WriteEnd {
        token: u64,
    },
    WriteAbort {
        token: u64,
    },
    /// `mkdir -p`, what it makes owned by `uid`:`gid`; answered with an [`Entry`].
    MakeDir {
        path: String,
        uid: u32,
        gid: u32,
    },
    /// Answered with the [`Entry`] at `to`.
    Rename {
        from: String,
        to: String,
    },
    /// A file, or a directory with what is in it.
    Remove {
        path: String,
    },
    /// Watches directory `path` (and, `recursive`, below it): its changes come as
    /// [`Kind::Changed`](crate::Kind::Changed) frames ([`Changed`]) numbered `watch` (the
    /// host's number) until [`Op::Unwatch`] or an error ends it.
    Watch {
        watch: u64,
        path: String,
        recursive: bool,
    },
    Unwatch {
        watch: u64,
    },
    /// Answered with a [`Usage`].
    Usage,
    /// Sets the clock and reseeds the entropy pool (after a resume).
    Seed(Seed),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spawn {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    /// Whether its stdin is kept open for [`Op::Stdin`] (else it reads nothing).
    pub stdin: bool,
    /// Run on a terminal of this size (rows, cols): its input [`Op::Stdin`]'s, its output
    /// one stream ([`STDOUT`]), its size set again by [`Op::Resize`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pty: Option<(u16, u16)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub id: u64,
    #[serde(default)]
    pub ok: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
}

impl Answer {
    pub fn ok(id: u64, value: impl Serialize) -> Answer {
        Answer {
            id,
            ok: serde_json::to_value(value).unwrap_or_default(),
            error: None,
        }
    }

    pub fn failed(id: u64, failure: Failure) -> Answer {
        Answer {
            id,
            ok: serde_json::Value::Null,
            error: Some(failure),
        }
    }
}

/// Why a call was not done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
        }
    }

    /// An I/O error on `path`, by its kind (as the host's own sandbox files say it).
    pub fn io(path: &str, e: &std::io::Error) -> Failure {
        let kind = match e.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR) => FailureKind::NotFound,
            Some(libc::EEXIST | libc::ENOTEMPTY) => FailureKind::Exists,
            Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG) => FailureKind::NoSpace,
            Some(libc::ELOOP | libc::EXDEV | libc::EISDIR | libc::EINVAL) => FailureKind::Invalid,
            _ if e.kind() == std::io::ErrorKind::NotFound => FailureKind::NotFound,
            _ => FailureKind::Io,
        };
        let message = match kind {
            FailureKind::NotFound => format!("{path} does not exist in the sandbox"),
            FailureKind::NoSpace => format!(
                "the sandbox's disk is full writing {path}: free space in it or give it a larger disk_mb"
            ),
            _ => format!("{path}: {e}"),
        };
        Failure { kind, message }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    Invalid,
    NotFound,
    Exists,
    NoSpace,
    Io,
    /// A process that is not there (ended), or could not start.
    Process,
}

/// What a path is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    pub name: String,
    /// `file`, `dir`, `symlink` or `other`.
    pub kind: String,
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    pub modified_s: i64,
    pub modified_nanos: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// A piece of a file, and the file's size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    /// Base64; empty at the end.
    pub data: String,
    pub size: u64,
}

/// What the sandbox uses now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub cpu_ms: u64,
    pub memory_bytes: u64,
    pub disk_bytes: u64,
}

/// A change in a watched directory, or (`error`) the end of the watch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changed {
    pub watch: u64,
    /// The path changed, below the watched directory.
    #[serde(default)]
    pub name: String,
    /// `create`, `write`, `remove`, `rename` or `chmod`.
    #[serde(default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcEnded {
    pub pid: u32,
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

/// Stdout and stderr in [`output_frame`]s.
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;

/// The payload of an Output frame: the pid (4 bytes, big-endian), the stream, the bytes.
pub fn output_frame(pid: u32, stream: u8, bytes: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(bytes.len() + 5);
    frame.extend_from_slice(&pid.to_be_bytes());
    frame.push(stream);
    frame.extend_from_slice(bytes);
    frame
}

/// The pid, stream and bytes of an Output frame's payload.
pub fn parse_output(payload: &[u8]) -> Option<(u32, u8, &[u8])> {
    let pid = u32::from_be_bytes(payload.get(..4)?.try_into().ok()?);
    let stream = *payload.get(4)?;
    Some((pid, stream, &payload[5..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_and_output_frames_round_trip() {
        let call = Call {
            id: 7,
            op: Op::Read {
                path: "/a".into(),
                offset: 3,
                len: 10,
            },
        };
        let text = serde_json::to_string(&call).unwrap();
        assert!(text.contains("\"op\":\"read\""), "{text}");
        assert_eq!(serde_json::from_str::<Call>(&text).unwrap(), call);
        let usage: Call = serde_json::from_str(r#"{"id":1,"op":"usage"}"#).unwrap();
        assert_eq!(usage.op, Op::Usage);
        let frame = output_frame(42, STDERR, b"oops");
        assert_eq!(parse_output(&frame), Some((42, STDERR, &b"oops"[..])));
        assert_eq!(parse_output(&frame[..3]), None);
    }

    #[test]
    fn io_errors_keep_their_kind() {
        let full = std::io::Error::from_raw_os_error(28);
        assert_eq!(Failure::io("/f", &full).kind, FailureKind::NoSpace);
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        let failure = Failure::io("/f", &missing);
        assert_eq!(failure.kind, FailureKind::NotFound);
        assert!(failure.message.contains("/f"));
    }
}
