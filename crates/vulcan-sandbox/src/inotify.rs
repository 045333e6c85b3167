//! Watches of a sandbox's directories: inotify on the directory as the caller's opener
//! resolves it (inside the sandbox, never out of it), and, when recursive, on every
//! directory below it, those made later included. Synchronous (the guest agent runs it on
//! a thread); [`crate::watch`] drives it from an async runtime on the host.
//!
//! No descriptor stays open: each directory is opened, watched and closed at once. A
//! watch holds no mount busy, so the sandbox's removal unmounts as ever, and the watch
//! ends then.

use std::collections::{HashMap, VecDeque};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::paths::UPLOAD_PREFIX;

/// Directories one recursive watch follows at most.
pub const MAX_WATCHED_DIRS: usize = 4096;

const MASK: u32 = libc::IN_CREATE
    | libc::IN_MODIFY
    | libc::IN_DELETE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_ATTRIB
    | libc::IN_DELETE_SELF
    | libc::IN_ONLYDIR;

/// Opens a directory by its path inside the sandbox (`O_PATH` is enough).
pub type Opener = Box<dyn Fn(&str) -> io::Result<OwnedFd> + Send + Sync>;

/// A change in a watched directory: its path below it (`a.txt`, `sub/b.txt`), and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub name: String,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Create,
    Write,
    Remove,
    Rename,
    Chmod,
}

/// Why a watch could not start, or ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchFailure {
    /// The directory is not there (or went).
    pub not_found: bool,
    /// It is not a directory.
    pub invalid: bool,
    pub message: String,
}

fn io_failure(shown: &str, e: io::Error) -> WatchFailure {
    WatchFailure {
        not_found: e.raw_os_error() == Some(libc::ENOENT),
        invalid: e.raw_os_error() == Some(libc::ENOTDIR),
        message: format!("watching {shown}: {e}"),
    }
}

pub struct Watcher {
    fd: OwnedFd,
    /// Each watched directory's path below the watched one (`""` for itself) and inside
    /// the sandbox.
    dirs: HashMap<i32, (String, String)>,
    opener: Opener,
    root_wd: i32,
    recursive: bool,
    pending: VecDeque<Change>,
    /// The last change given: repeats of it (a write in many pieces) are given once.
    last: Option<Change>,
    shown: String,
}

impl Watcher {
    /// Watches directory `inside` (a path inside the sandbox, opened with `opener`).
    pub fn new(opener: Opener, inside: &str, recursive: bool) -> Result<Watcher, WatchFailure> {
        let shown = inside;
        // SAFETY: inotify_init1 takes flags and returns a new descriptor or -1.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io_failure(shown, io::Error::last_os_error()));
        }
        let mut watch = Watcher {
            // SAFETY: the descriptor was just made and is owned by nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            dirs: HashMap::new(),
            opener,
            root_wd: -1,
            recursive,
            pending: VecDeque::new(),
            last: None,
            shown: shown.to_owned(),
        };
        watch.root_wd = watch.add(inside.to_owned(), String::new())?;
        if recursive {
            watch.add_below(watch.root_wd, false)?;
        }
        Ok(watch)
    }

    /// The inotify descriptor (non-blocking), to wait on.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The next change already read, if any.
    pub fn pop(&mut self) -> Option<Change> {
        self.pending.pop_front()
    }

    /// Reads what the kernel has for this watch without blocking; whether there was any.
    pub fn read_available(&mut self) -> Result<bool, WatchFailure> {
        let mut buf = vec![0u8; 64 * 1024];
        // SAFETY: read writes at most buf.len() bytes into buf.
        let n = unsafe { libc::read(self.fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(false),
                _ => Err(io_failure(&self.shown, e)),
            };
        }
        self.take(&buf[..n as usize])?;
        Ok(true)
    }

    /// The next change, waiting up to `timeout_ms` for it (`None`: none came).
    pub fn wait(&mut self, timeout_ms: i32) -> Result<Option<Change>, WatchFailure> {
        if let Some(change) = self.pop() {
            return Ok(Some(change));
        }
        let mut fds = [libc::pollfd {
            fd: self.fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd entry.
        if unsafe { libc::poll(fds.as_mut_ptr(), 1, timeout_ms) } > 0 {
            self.read_available()?;
        }
        Ok(self.pop())
    }

    /// Watches directory `inside`, known as `name` below the watched one.
    fn add(&mut self, inside: String, name: String) -> Result<i32, WatchFailure> {
        let dir = (self.opener)(&inside).map_err(|e| io_failure(&inside, e))?;
        let through = CString::new(format!("/proc/self/fd/{}", dir.as_raw_fd()))
            .map_err(|_| io_failure(&inside, io::Error::other("a descriptor path with NUL")))?;
        // SAFETY: the path is a NUL-terminated string that lives across the call.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), through.as_ptr(), MASK) };
        if wd < 0 {
            return Err(io_failure(&self.shown, io::Error::last_os_error()));
        }
        self.dirs.insert(wd, (name, inside));
        Ok(wd)
    }

    /// Watches every directory below watched directory `wd` (links are not followed).
    /// With `new` (`wd` was just created), what is found in them is reported as created:
    /// it may have come before the watch did.
    fn add_below(&mut self, wd: i32, new: bool) -> Result<(), WatchFailure> {
        let mut todo = vec![wd];
        while let Some(wd) = todo.pop() {
            let Some((name, inside)) = self.dirs.get(&wd).cloned() else {
                continue;
            };
            let Ok(dir) = (self.opener)(&inside) else {
                continue;
            };
            let listing = std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()));
            for entry in listing.into_iter().flatten().flatten() {
                if self.dirs.len() >= MAX_WATCHED_DIRS {
                    return Ok(());
                }
                let child = entry.file_name().to_string_lossy().into_owned();
                if new && !child.starts_with(UPLOAD_PREFIX) {
                    self.pending.push_back(Change {
                        name: join(&name, &child),
                        kind: ChangeKind::Create,
                    });
                }
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                if let Ok(added) = self.add(join_inside(&inside, &child), join(&name, &child)) {
                    todo.push(added);
                }
            }
        }
        Ok(())
    }

    /// Takes the events in `buf` (whole `inotify_event` records).
    fn take(&mut self, buf: &[u8]) -> Result<(), WatchFailure> {
        let header = std::mem::size_of::<libc::inotify_event>();
        let mut at = 0;
        while at + header <= buf.len() {
            // SAFETY: the kernel writes whole records; the header is read unaligned.
            let event: libc::inotify_event =
                unsafe { std::ptr::read_unaligned(buf[at..].as_ptr().cast()) };
            let name_bytes = &buf[at + header..(at + header + event.len as usize).min(buf.len())];
            at += header + event.len as usize;
            let child = String::from_utf8_lossy(name_bytes)
                .trim_end_matches('\0')
                .to_owned();
            let mask = event.mask;
            if mask & libc::IN_Q_OVERFLOW != 0 {
                return Err(WatchFailure {
                    not_found: false,
                    invalid: false,
                    message: format!(
                        "too many changes in {} at once: some were not seen",
                        self.shown
                    ),
                });
            }
            if mask & (libc::IN_IGNORED | libc::IN_UNMOUNT | libc::IN_DELETE_SELF) != 0 {
                if mask & libc::IN_IGNORED != 0 {
                    self.dirs.remove(&event.wd);
                }
                if event.wd == self.root_wd {
                    return Err(WatchFailure {
                        not_found: true,
                        invalid: false,
                        message: format!("{} is gone (removed, or the sandbox ended)", self.shown),
                    });
                }
                continue;
            }
            let Some((dir_name, dir_inside)) = self.dirs.get(&event.wd) else {
                continue;
            };
            let child_inside = join_inside(dir_inside, &child);
            if child.is_empty() || child.starts_with(UPLOAD_PREFIX) {
                continue;
            }
            let name = join(dir_name, &child);
            let kind = if mask & (libc::IN_CREATE | libc::IN_MOVED_TO) != 0 {
                ChangeKind::Create
            } else if mask & libc::IN_MODIFY != 0 {
                ChangeKind::Write
            } else if mask & libc::IN_DELETE != 0 {
                ChangeKind::Remove
            } else if mask & libc::IN_MOVED_FROM != 0 {
                ChangeKind::Rename
            } else if mask & libc::IN_ATTRIB != 0 {
                ChangeKind::Chmod
            } else {
                continue;
            };
            if self.recursive
                && mask & libc::IN_ISDIR != 0
                && kind == ChangeKind::Create
                && self.dirs.len() < MAX_WATCHED_DIRS
            {
                if let Ok(wd) = self.add(child_inside, name.clone()) {
                    // Reported after the directory itself.
                    let event = Change { name, kind };
                    self.last = Some(event.clone());
                    self.pending.push_back(event);
                    self.add_below(wd, true)?;
                    continue;
                }
            }
            let event = Change { name, kind };
            if self.last.as_ref() != Some(&event) || kind != ChangeKind::Write {
                self.last = Some(event.clone());
                self.pending.push_back(event);
            }
        }
        Ok(())
    }
}

fn join_inside(dir: &str, child: &str) -> String {
    format!("{}/{child}", dir.trim_end_matches('/'))
}

fn join(dir: &str, child: &str) -> String {
    if dir.is_empty() {
        child.to_owned()
    } else {
        format!("{dir}/{child}")
    }
}
