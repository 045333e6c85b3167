//! Watches of a sandbox's directories from the host: [`crate::inotify`] driven by the
//! async runtime.

use std::os::fd::{AsRawFd, RawFd};

use async_trait::async_trait;
use tokio::io::unix::AsyncFd;
use vulcan_domain::{FileError, FileErrorKind, FileEvent, FileEventKind, FileWatch};

use crate::inotify::{Change, ChangeKind, WatchFailure, Watcher};
pub use crate::inotify::{Opener, MAX_WATCHED_DIRS};

/// The watcher's descriptor, borrowed: the watcher owns it and outlives the registration.
struct Borrowed(RawFd);

impl AsRawFd for Borrowed {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

pub struct DirWatch {
    /// Declared first: deregistered before the watcher closes the descriptor.
    ready: AsyncFd<Borrowed>,
    watcher: Watcher,
}

/// A watch's failure as a file error.
pub fn file_error(failure: WatchFailure) -> FileError {
    let kind = if failure.not_found {
        FileErrorKind::NotFound
    } else if failure.invalid {
        FileErrorKind::Invalid
    } else {
        FileErrorKind::Io
    };
    FileError::new(kind, failure.message)
}

/// A change as a file event.
pub fn file_event(change: Change) -> FileEvent {
    FileEvent {
        name: change.name,
        kind: match change.kind {
            ChangeKind::Create => FileEventKind::Create,
            ChangeKind::Write => FileEventKind::Write,
            ChangeKind::Remove => FileEventKind::Remove,
            ChangeKind::Rename => FileEventKind::Rename,
            ChangeKind::Chmod => FileEventKind::Chmod,
        },
    }
}

impl DirWatch {
    /// Watches directory `inside` (a path inside the sandbox, opened with `opener`).
    pub fn new(opener: Opener, inside: &str, recursive: bool) -> Result<DirWatch, FileError> {
        let watcher = Watcher::new(opener, inside, recursive).map_err(file_error)?;
        // SAFETY: the watcher owns the descriptor and keeps it open (and the same) until it
        // is dropped, after the registration (the fields' order).
        let ready = unsafe {
            AsyncFd::register_with_interest(Borrowed(watcher.fd()), tokio::io::Interest::READABLE)
        }
        .map_err(|e| FileError::new(FileErrorKind::Io, format!("watching {inside}: {e}")))?;
        Ok(DirWatch { ready, watcher })
    }
}

#[async_trait]
impl FileWatch for DirWatch {
    async fn next(&mut self) -> Result<FileEvent, FileError> {
        loop {
            if let Some(change) = self.watcher.pop() {
                return Ok(file_event(change));
            }
            let mut ready =
                self.ready.readable().await.map_err(|e| {
                    FileError::new(FileErrorKind::Io, format!("watching failed: {e}"))
                })?;
            if !self.watcher.read_available().map_err(file_error)? {
                ready.clear_ready();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;
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
        // What is made in a new directory before the watch reaches it is not missed.
        std::fs::create_dir_all(dir.path().join("burst/deep")).unwrap();
        std::fs::write(dir.path().join("burst/deep/e.txt"), "w").unwrap();
        for name in ["burst", "burst/deep", "burst/deep/e.txt"] {
            assert_eq!(
                next(&mut watch).await,
                FileEvent {
                    name: name.into(),
                    kind: FileEventKind::Create
                }
            );
        }
        std::fs::remove_dir_all(dir.path().join("burst")).unwrap();
        while next(&mut watch).await.name != "burst" {}
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
