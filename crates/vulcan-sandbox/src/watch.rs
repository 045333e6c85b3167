//! Watches of a sandbox's directories from the host: inotify on the directory as
//! [`crate::files::RootedFiles`] resolves it (inside the root, never out of it), and, when
//! recursive, on every directory below it, those made later included.
//!
//! No descriptor stays open: each directory is opened (through the caller's opener, which
//! resolves inside the sandbox), watched and closed at once. A watch holds no mount busy,
//! so the sandbox's removal unmounts as ever, and the watch ends then.

use std::collections::{HashMap, VecDeque};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use async_trait::async_trait;
use tokio::io::unix::AsyncFd;
use vulcan_domain::{FileError, FileErrorKind, FileEvent, FileEventKind, FileWatch};

/// Directories one recursive watch follows at most.
pub const MAX_WATCHED_DIRS: usize = 4096;

use crate::files::UPLOAD_PREFIX;

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

pub struct DirWatch {
    inotify: AsyncFd<OwnedFd>,
    /// Each watched directory's path below the watched one (`""` for itself) and inside
    /// the sandbox.
    dirs: HashMap<i32, (String, String)>,
    opener: Opener,
    root_wd: i32,
    recursive: bool,
    pending: VecDeque<FileEvent>,
    /// The last event given: repeats of it (a write in many pieces) are given once.
    last: Option<FileEvent>,
    shown: String,
}

fn io_error(shown: &str, e: io::Error) -> FileError {
    let kind = match e.raw_os_error() {
        Some(libc::ENOENT) => FileErrorKind::NotFound,
        Some(libc::ENOTDIR) => FileErrorKind::Invalid,
        _ => FileErrorKind::Io,
    };
    FileError::new(kind, format!("watching {shown}: {e}"))
}

impl DirWatch {
    /// Watches directory `inside` (a path inside the sandbox, opened with `opener`).
    pub fn new(opener: Opener, inside: &str, recursive: bool) -> Result<DirWatch, FileError> {
        let shown = inside;
        // SAFETY: inotify_init1 takes flags and returns a new descriptor or -1.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io_error(shown, io::Error::last_os_error()));
        }
        // SAFETY: the descriptor was just made and is owned by nobody else.
        let inotify = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the AsyncFd owns the descriptor, which stays open (and the same) until
        // it is dropped.
        let inotify =
            unsafe { AsyncFd::register_with_interest(inotify, tokio::io::Interest::READABLE) }
                .map_err(|e| io_error(shown, io::Error::other(e.to_string())))?;
        let mut watch = DirWatch {
            inotify,
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
            watch.add_below(watch.root_wd)?;
        }
        Ok(watch)
    }

    /// Watches directory `inside`, known as `name` below the watched one.
    fn add(&mut self, inside: String, name: String) -> Result<i32, FileError> {
        let dir = (self.opener)(&inside).map_err(|e| io_error(&inside, e))?;
        let through = CString::new(format!("/proc/self/fd/{}", dir.as_raw_fd()))
            .map_err(|_| FileError::new(FileErrorKind::Io, "a descriptor path with NUL"))?;
        // SAFETY: the path is a NUL-terminated string that lives across the call.
        let wd = unsafe {
            libc::inotify_add_watch(self.inotify.get_ref().as_raw_fd(), through.as_ptr(), MASK)
        };
        if wd < 0 {
            return Err(io_error(&self.shown, io::Error::last_os_error()));
        }
        self.dirs.insert(wd, (name, inside));
        Ok(wd)
    }

    /// Watches every directory below watched directory `wd` (links are not followed).
    fn add_below(&mut self, wd: i32) -> Result<(), FileError> {
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
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let child = entry.file_name().to_string_lossy().into_owned();
                if let Ok(new) = self.add(join_inside(&inside, &child), join(&name, &child)) {
                    todo.push(new);
                }
            }
        }
        Ok(())
    }

    /// Takes the events in `buf` (whole `inotify_event` records).
    fn take(&mut self, buf: &[u8]) -> Result<(), FileError> {
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
                return Err(FileError::new(
                    FileErrorKind::Io,
                    format!(
                        "too many changes in {} at once: some were not seen",
                        self.shown
                    ),
                ));
            }
            if mask & (libc::IN_IGNORED | libc::IN_UNMOUNT | libc::IN_DELETE_SELF) != 0 {
                if mask & libc::IN_IGNORED != 0 {
                    self.dirs.remove(&event.wd);
                }
                if event.wd == self.root_wd {
                    return Err(FileError::new(
                        FileErrorKind::NotFound,
                        format!("{} is gone (removed, or the sandbox ended)", self.shown),
                    ));
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
                FileEventKind::Create
            } else if mask & libc::IN_MODIFY != 0 {
                FileEventKind::Write
            } else if mask & libc::IN_DELETE != 0 {
                FileEventKind::Remove
            } else if mask & libc::IN_MOVED_FROM != 0 {
                FileEventKind::Rename
            } else if mask & libc::IN_ATTRIB != 0 {
                FileEventKind::Chmod
            } else {
                continue;
            };
            if self.recursive
                && mask & libc::IN_ISDIR != 0
                && kind == FileEventKind::Create
                && self.dirs.len() < MAX_WATCHED_DIRS
            {
                if let Ok(wd) = self.add(child_inside, name.clone()) {
                    self.add_below(wd)?;
                }
            }
            let event = FileEvent { name, kind };
            if self.last.as_ref() != Some(&event) || kind != FileEventKind::Write {
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

#[async_trait]
impl FileWatch for DirWatch {
    async fn next(&mut self) -> Result<FileEvent, FileError> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            let mut ready = self
                .inotify
                .readable()
                .await
                .map_err(|e| io_error(&self.shown, e))?;
            let read = ready.try_io(|fd| {
                // SAFETY: read writes at most buf.len() bytes into buf.
                let n = unsafe {
                    libc::read(fd.get_ref().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match read {
                Ok(Ok(n)) => {
                    let got = buf[..n].to_vec();
                    self.take(&got)?;
                }
                Ok(Err(e)) => return Err(io_error(&self.shown, e)),
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// An opener of paths beneath `root` (the tests' stand-in for a sandbox's root).
    fn opener(root: &std::path::Path) -> Opener {
        let root = root.to_path_buf();
        Box::new(move |inside: &str| {
            std::fs::File::open(root.join(inside.trim_start_matches('/'))).map(OwnedFd::from)
        })
    }

    async fn next(watch: &mut DirWatch) -> FileEvent {
        tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("an event in time")
            .expect("an event")
    }

    #[tokio::test]
    async fn changes_are_seen_by_name_and_kind_below_when_recursive() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("old")).unwrap();
        let mut watch = DirWatch::new(opener(dir.path()), "/", true).unwrap();
        std::fs::write(dir.path().join("a.txt"), "x").unwrap();
        assert_eq!(
            next(&mut watch).await,
            FileEvent {
                name: "a.txt".into(),
                kind: FileEventKind::Create
            }
        );
        assert_eq!(next(&mut watch).await.kind, FileEventKind::Write);
        // A directory there before the watch, and one made after it, are watched too.
        std::fs::write(dir.path().join("old/b.txt"), "y").unwrap();
        assert_eq!(next(&mut watch).await.name, "old/b.txt");
        assert_eq!(next(&mut watch).await.kind, FileEventKind::Write);
        std::fs::create_dir(dir.path().join("new")).unwrap();
        assert_eq!(next(&mut watch).await.name, "new");
        std::fs::write(dir.path().join("new/c.txt"), "z").unwrap();
        assert_eq!(next(&mut watch).await.name, "new/c.txt");
        assert_eq!(next(&mut watch).await.kind, FileEventKind::Write);
        std::fs::rename(dir.path().join("a.txt"), dir.path().join("d.txt")).unwrap();
        assert_eq!(
            next(&mut watch).await,
            FileEvent {
                name: "a.txt".into(),
                kind: FileEventKind::Rename
            }
        );
        assert_eq!(
            next(&mut watch).await,
            FileEvent {
                name: "d.txt".into(),
                kind: FileEventKind::Create
            }
        );
        std::fs::remove_file(dir.path().join("d.txt")).unwrap();
        assert_eq!(
            next(&mut watch).await,
            FileEvent {
                name: "d.txt".into(),
                kind: FileEventKind::Remove
            }
        );
    }

    #[tokio::test]
    async fn the_watch_ends_when_its_directory_goes() {
        let dir = tempfile::tempdir().unwrap();
        let watched = dir.path().join("w");
        std::fs::create_dir(&watched).unwrap();
        let mut watch = DirWatch::new(opener(dir.path()), "/w", false).unwrap();
        std::fs::remove_dir(&watched).unwrap();
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Err(e) = watch.next().await {
                    return e;
                }
            }
        })
        .await
        .expect("the end in time");
        assert_eq!(end.kind, FileErrorKind::NotFound);
    }
}
