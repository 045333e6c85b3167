//! The control socket of a running sandbox: the calls `runsc exec` makes, made directly.
//!
//! `runsc exec` is a Go program of ~30 MB that reads the container's state, connects to the
//! sandbox's control socket (the abstract unix socket `@runsc-sandbox.<id>`), asks it to start
//! a process with the caller's stdio (`containerManager.ExecuteAsync`, the descriptors passed
//! with `SCM_RIGHTS`) and waits for it (`containerManager.WaitPID`): 25–35 ms here, nearly
//! all of it runsc's own start. Making the same two calls from the server takes a few
//! milliseconds. The protocol is gVisor's urpc: one JSON object `{"method", "arg"}` per call,
//! answered by one `{"success", "err", "result"}`, on a stream socket.
//!
//! It is runsc's internal interface, so every caller keeps `runsc exec` as the way back:
//! [`ControlError::Unreachable`] says the socket or the method is not there (another runsc
//! build), and the caller then runs `runsc exec` as before.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why a call to a sandbox's control socket did not start the process.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The socket, or the method, is not there: use `runsc exec`.
    #[error("the sandbox's control socket cannot be used: {0}")]
    Unreachable(String),
    /// The sandbox refused the process (no such program, a bad directory…).
    #[error("{0}")]
    Refused(String),
}

/// A process to start in a container, as `runsc exec` would from an OCI process.
pub struct Exec<'a> {
    pub container: &'a str,
    pub argv: &'a [String],
    pub env: &'a [String],
    pub cwd: &'a str,
    pub uid: u32,
    pub gid: u32,
    pub extra_gids: &'a [u32],
    /// Its capabilities (permitted, effective and bounding), a bit per capability number.
    pub capabilities: u64,
    /// Its stdin, stdout and stderr.
    pub stdio: [BorrowedFd<'a>; 3],
}

#[derive(Serialize)]
#[allow(non_snake_case)] // the sandbox's names
struct ExecArgs<'a> {
    filename: &'a str,
    argv: &'a [String],
    envv: &'a [String],
    wd: &'a str,
    KUID: u32,
    KGID: u32,
    ExtraKGIDs: &'a [u32],
    Capabilities: Capabilities,
    StdioIsPty: bool,
    ContainerID: &'a str,
}

#[derive(Serialize)]
#[allow(non_snake_case)]
struct Capabilities {
    PermittedCaps: u64,
    InheritableCaps: u64,
    EffectiveCaps: u64,
    BoundingCaps: u64,
    AmbientCaps: u64,
}

#[derive(Serialize)]
#[allow(non_snake_case)]
struct WaitArgs<'a> {
    PID: u32,
    CID: &'a str,
}

#[derive(Serialize)]
struct Call<T> {
    method: &'static str,
    arg: T,
}

#[derive(Deserialize)]
struct Answer {
    success: bool,
    #[serde(default)]
    err: String,
    #[serde(default)]
    result: serde_json::Value,
}

/// The socket's address: an abstract name, NUL-terminated as runsc binds it.
fn address(container: &str) -> io::Result<SocketAddr> {
    let mut name = format!("runsc-sandbox.{container}").into_bytes();
    name.push(0);
    SocketAddr::from_abstract_name(name)
}

fn unreachable(e: impl std::fmt::Display) -> ControlError {
    ControlError::Unreachable(e.to_string())
}

/// What the sandbox answered `method`, or why not.
fn outcome(method: &str, answer: Answer) -> Result<serde_json::Value, ControlError> {
    if answer.success {
        return Ok(answer.result);
    }
    if answer.err.contains("unknown method") {
        return Err(unreachable(format!("{method}: {}", answer.err)));
    }
    Err(ControlError::Refused(answer.err))
}

/// Starts `exec` in its container; its pid as the sandbox numbers it.
///
/// Blocking, briefly: a connection and one call on a local socket.
pub fn execute(exec: &Exec) -> Result<u32, ControlError> {
    const METHOD: &str = "containerManager.ExecuteAsync";
    let capabilities = exec.capabilities;
    let call = Call {
        method: METHOD,
        arg: ExecArgs {
            filename: "",
            argv: exec.argv,
            envv: exec.env,
            wd: exec.cwd,
            KUID: exec.uid,
            KGID: exec.gid,
            ExtraKGIDs: exec.extra_gids,
            Capabilities: Capabilities {
                PermittedCaps: capabilities,
                InheritableCaps: 0,
                EffectiveCaps: capabilities,
                BoundingCaps: capabilities,
                AmbientCaps: 0,
            },
            StdioIsPty: false,
            ContainerID: exec.container,
        },
    };
    let body = serde_json::to_vec(&call).map_err(unreachable)?;
    let mut socket = UnixStream::connect_addr(&address(exec.container).map_err(unreachable)?)
        .map_err(unreachable)?;
    let fds = exec.stdio.map(|fd| fd.as_raw_fd());
    send_with_fds(&socket, &body, &fds).map_err(unreachable)?;
    let answer = read_answer(&mut socket).map_err(unreachable)?;
    let pid = outcome(METHOD, answer)?;
    pid.as_u64()
        .and_then(|pid| u32::try_from(pid).ok())
        .ok_or_else(|| unreachable(format!("{METHOD} answered {pid} for a pid")))
}

/// Waits for process `pid` of `container` to end: its wait status, as Linux words it.
pub async fn wait(container: &str, pid: u32) -> Result<u32, ControlError> {
    const METHOD: &str = "containerManager.WaitPID";
    let body = serde_json::to_vec(&Call {
        method: METHOD,
        arg: WaitArgs {
            PID: pid,
            CID: container,
        },
    })
    .map_err(unreachable)?;
    let mut socket = UnixStream::connect_addr(&address(container).map_err(unreachable)?)
        .and_then(|s| {
            s.set_nonblocking(true)?;
            tokio::net::UnixStream::from_std(s)
        })
        .map_err(unreachable)?;
    socket.write_all(&body).await.map_err(unreachable)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = socket.read(&mut chunk).await.map_err(unreachable)?;
        if n == 0 {
            return Err(unreachable("the sandbox closed its control socket"));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(answer) = parse(&buf).map_err(unreachable)? {
            let status = outcome(METHOD, answer)?;
            return status
                .as_u64()
                .and_then(|s| u32::try_from(s).ok())
                .ok_or_else(|| unreachable(format!("{METHOD} answered {status}")));
        }
    }
}

/// How a wait status ended its process: (exit code, signal), one of them.
pub fn ended(status: u32) -> (Option<i32>, Option<i32>) {
    let signal = (status & 0x7f) as i32;
    if signal == 0 {
        (Some(((status >> 8) & 0xff) as i32), None)
    } else {
        (None, Some(signal))
    }
}

/// The answer in `buf`, once it is all there.
fn parse(buf: &[u8]) -> Result<Option<Answer>, serde_json::Error> {
    let mut values = serde_json::Deserializer::from_slice(buf).into_iter::<Answer>();
    match values.next() {
        Some(Ok(answer)) => Ok(Some(answer)),
        Some(Err(e)) if e.is_eof() => Ok(None),
        Some(Err(e)) => Err(e),
        None => Ok(None),
    }
}

fn read_answer(socket: &mut UnixStream) -> io::Result<Answer> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = socket.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the sandbox closed its control socket",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(answer) = parse(&buf)? {
            return Ok(answer);
        }
    }
}

/// Writes `body` to `socket`, `fds` passed with its first bytes.
fn send_with_fds(socket: &UnixStream, body: &[u8], fds: &[i32]) -> io::Result<()> {
    let space = {
        // SAFETY: CMSG_SPACE only computes a size.
        unsafe { libc::CMSG_SPACE(std::mem::size_of_val(fds) as u32) as usize }
    };
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: body.as_ptr() as *mut libc::c_void,
        iov_len: body.len(),
    };
    // SAFETY: msghdr is plain data; every pointer set below outlives the sendmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space;
    // SAFETY: the control buffer has room for one header and `fds` (CMSG_SPACE above).
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&msg);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as usize;
        std::ptr::copy_nonoverlapping(
            fds.as_ptr() as *const u8,
            libc::CMSG_DATA(header),
            std::mem::size_of_val(fds),
        );
    }
    // SAFETY: msg points at live buffers (above); the socket is open.
    let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    // The descriptors went with the first bytes; the rest, if any, follows plainly.
    let mut socket = socket;
    socket.write_all(&body[sent as usize..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_status_is_read_as_linux_words_it() {
        assert_eq!(ended(0), (Some(0), None));
        assert_eq!(ended(7 << 8), (Some(7), None));
        assert_eq!(ended(9), (None, Some(9)));
        assert_eq!(
            ended(15 | 0x80),
            (None, Some(15)),
            "a core dump flag is not the signal"
        );
    }

    #[test]
    fn an_answer_is_read_once_it_is_whole() {
        let whole = br#"{"success":true,"err":"","result":32}"#;
        assert!(parse(&whole[..10]).unwrap().is_none());
        let answer = parse(whole).unwrap().unwrap();
        assert!(answer.success);
        assert_eq!(answer.result, 32);
        assert!(parse(b"{\"success\":tru!").is_err());
    }

    #[test]
    fn an_unknown_method_sends_the_caller_back_to_runsc() {
        let unknown = Answer {
            success: false,
            err: "unknown method".into(),
            result: serde_json::Value::Null,
        };
        assert!(matches!(
            outcome("x", unknown),
            Err(ControlError::Unreachable(_))
        ));
        let refused = Answer {
            success: false,
            err: "no such file or directory".into(),
            result: serde_json::Value::Null,
        };
        assert!(
            matches!(outcome("x", refused), Err(ControlError::Refused(e)) if e.contains("no such"))
        );
    }
}
