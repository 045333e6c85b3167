//! Terminals for processes that run on one: a pseudo-terminal pair of a given size, the
//! child's side made its controlling terminal, and its size set again later (the
//! terminal's foreground processes get `SIGWINCH`). Used by gVisor's sandboxes on the
//! host (the child is `runsc exec`, whose process inside takes the terminal as its own)
//! and by the guest agent in a microVM.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A terminal's size in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub rows: u16,
    pub cols: u16,
}

fn winsize(size: Size) -> libc::winsize {
    libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// A new terminal of `size`: (the controlling side, kept by whoever serves it; the
/// process's side, its stdin, stdout and stderr). Both close on exec.
pub fn open(size: Size) -> io::Result<(OwnedFd, OwnedFd)> {
    let (mut master, mut slave) = (-1, -1);
    let ws = winsize(size);
    // SAFETY: openpty writes two descriptors into the integers it is given, and reads the
    // window size; the name and termios pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &ws,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two descriptors just opened, owned by nothing else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    for fd in [&master, &slave] {
        // SAFETY: fcntl on a descriptor this function owns.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok((master, slave))
}

/// Sets the size of the terminal whose controlling side is `master`.
pub fn resize(master: &impl AsRawFd, size: Size) -> io::Result<()> {
    let ws = winsize(size);
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer it is given.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// In the child between fork and exec (async-signal-safe calls only): a new session
/// whose controlling terminal is its stdin (the process's side of [`open`]).
///
/// # Safety
/// Only to be called in a forked child before exec.
pub unsafe fn take_as_controlling() -> io::Result<()> {
    // SAFETY: setsid and ioctl are async-signal-safe system calls on the child's own state.
    unsafe {
        if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    #[test]
    fn a_child_on_a_terminal_sees_its_size_and_every_change_of_it() {
        let (master, slave) = open(Size {
            rows: 33,
            cols: 101,
        })
        .unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "stty size; read go; stty size"])
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: take_as_controlling runs in the forked child only.
        unsafe { cmd.pre_exec(|| take_as_controlling()) };
        let mut child = cmd.spawn().unwrap();
        drop(cmd);
        let mut term = std::fs::File::from(master);
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while !String::from_utf8_lossy(&seen).contains("33 101") {
            let n = term.read(&mut buf).unwrap();
            seen.extend_from_slice(&buf[..n]);
        }
        resize(
            &term,
            Size {
                rows: 44,
                cols: 120,
            },
        )
        .unwrap();
        term.write_all(b"go\n").unwrap();
        // The child's side closes when it exits: the read then fails (EIO).
        while let Ok(n) = term.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        assert!(child.wait().unwrap().success());
        let text = String::from_utf8_lossy(&seen);
        assert!(
            text.contains("33 101\r\n") && text.contains("44 120\r\n"),
            "{text:?}"
        );
    }

    #[test]
    fn a_size_is_refused_on_what_is_not_a_terminal() {
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(resize(&file, Size { rows: 1, cols: 1 }).is_err());
    }
}
