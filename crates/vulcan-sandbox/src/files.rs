//! A sandbox's files, reached from the host through the directory that is its root
//! ([`RootedFiles`]).
//!
//! Every path is an absolute path inside the sandbox. It is resolved by the kernel with
//! `openat2(RESOLVE_IN_ROOT)`: `/`, `..` and absolute symbolic links mean the sandbox's
//! root, never the host's, whatever links the sandbox planted; magic links
//! (`/proc/self/...`) are refused. A path written with `..` is refused outright (a client
//! that sends one has a bug worth hearing about). The last component is never followed
//! where that would write through a link: an upload goes to a new file in the resolved
//! directory and is renamed over the name (so a link there is replaced, not written
//! through, and nothing half-written is ever at the path), removal and rename act on the
//! link itself.
//!
//! Files the host creates belong to the sandbox's user, as if its process had made them.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use vulcan_domain::{
    FileEntry, FileError, FileErrorKind, FileReader, FileWatch, FileWriter, SandboxFiles,
};

use crate::paths::UPLOAD_PREFIX;

/// Entries a list answers at most (deeper or larger trees are cut there).
pub const MAX_ENTRIES: usize = 10_000;

/// Numbers uploads in progress (their temporary names).
static NEXT_UPLOAD: AtomicU64 = AtomicU64::new(1);

/// The files beneath `root`, owned by `uid`:`gid` when the host creates them.
#[derive(Debug, Clone)]
pub struct RootedFiles {
    root: PathBuf,
    uid: u32,
    gid: u32,
}

/// A path inside the sandbox, checked: its components below `/`, none `.` or `..`.
struct Inside {
    /// The path as the client gave it, normalised (`/a/b`).
    shown: String,
    parts: Vec<String>,
}

impl Inside {
    fn parse(path: &str) -> Result<Inside, FileError> {
        let parts =
            crate::paths::parts(path).map_err(|why| FileError::new(FileErrorKind::Invalid, why))?;
        Ok(Inside {
            shown: format!("/{}", parts.join("/")),
            parts,
        })
    }

    fn is_root(&self) -> bool {
        self.parts.is_empty()
    }

    /// The directory it is in and its name (`None` for `/`).
    fn split(&self) -> Option<(Inside, &str)> {
        let (name, parent) = self.parts.split_last()?;
        Some((
            Inside {
                shown: format!("/{}", parent.join("/")),
                parts: parent.to_vec(),
            },
            name,
        ))
    }

    fn relative(&self) -> String {
        if self.parts.is_empty() {
            ".".to_owned()
        } else {
            self.parts.join("/")
        }
    }
}

fn error(path: &str, e: io::Error) -> FileError {
    let kind = match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => FileErrorKind::NotFound,
        Some(libc::EEXIST) | Some(libc::ENOTEMPTY) => FileErrorKind::Exists,
        Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EFBIG) => FileErrorKind::NoSpace,
        Some(libc::ELOOP) | Some(libc::EXDEV) | Some(libc::EISDIR) | Some(libc::EINVAL) => {
            FileErrorKind::Invalid
        }
        _ => FileErrorKind::Io,
    };
    let message = match kind {
        FileErrorKind::NotFound => format!("{path} does not exist in the sandbox"),
        FileErrorKind::Exists => format!("{path}: {e}"),
        FileErrorKind::NoSpace => {
            format!("the sandbox's disk is full writing {path}: free space in it or give it a larger disk_mb")
        }
        _ => format!("{path}: {e}"),
    };
    FileError::new(kind, message)
}

impl RootedFiles {
    pub fn new(root: PathBuf, uid: u32, gid: u32) -> Self {
        RootedFiles { root, uid, gid }
    }

    /// `path` opened with `flags`, resolved inside the root.
    fn open_at(&self, path: &Inside, flags: i32) -> io::Result<OwnedFd> {
        let root = File::open(&self.root)?;
        let relative = CString::new(path.relative()).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: open_how is plain integers; all zeroes is a valid value.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = (flags | libc::O_CLOEXEC) as u64;
        how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
        // SAFETY: openat2 reads the path and the open_how struct it is given (with its
        // size) and returns a new descriptor or -1; nothing else is touched.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root.as_raw_fd(),
                relative.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the descriptor was just opened and is owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }

    /// The directory `path` is in, resolved, and the host path of its last component
    /// seen through that directory (a link there is not followed by the path itself).
    fn parent(&self, path: &Inside) -> Result<(OwnedFd, PathBuf), FileError> {
        let (dir, name) = path
            .split()
            .ok_or_else(|| FileError::new(FileErrorKind::Invalid, "/ itself cannot be changed"))?;
        let fd = self
            .open_at(&dir, libc::O_PATH | libc::O_DIRECTORY)
            .map_err(|e| error(&dir.shown, e))?;
        let through = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())).join(name);
        Ok((fd, through))
    }

    /// The host path of directory or file `path`, resolved (links followed inside).
    fn resolved(&self, path: &Inside, flags: i32) -> Result<(OwnedFd, PathBuf), FileError> {
        let fd = self
            .open_at(path, flags)
            .map_err(|e| error(&path.shown, e))?;
        let through = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        Ok((fd, through))
    }

    fn own(&self, path: &Path) -> io::Result<()> {
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid))
    }

    fn stat_now(&self, path: &Inside) -> Result<FileEntry, FileError> {
        if path.is_root() {
            let meta = std::fs::metadata(&self.root).map_err(|e| error("/", e))?;
            return Ok(entry("/".to_owned(), &meta, None));
        }
        let (_dir, through) = self.parent(path)?;
        let meta = std::fs::symlink_metadata(&through).map_err(|e| error(&path.shown, e))?;
        let target = meta
            .file_type()
            .is_symlink()
            .then(|| std::fs::read_link(&through).ok())
            .flatten();
        Ok(entry(path.shown.clone(), &meta, target))
    }

    fn list_now(&self, path: &Inside, depth: u32) -> Result<Vec<FileEntry>, FileError> {
        let (_fd, through) = self.resolved(path, libc::O_PATH | libc::O_DIRECTORY)?;
        let mut out = Vec::new();
        walk(&through, &path.shown, depth.max(1), &mut out).map_err(|e| error(&path.shown, e))?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn make_dir_now(&self, path: &Inside) -> Result<FileEntry, FileError> {
        for n in 1..=path.parts.len() {
            let prefix = Inside {
                shown: format!("/{}", path.parts[..n].join("/")),
                parts: path.parts[..n].to_vec(),
            };
            match self.open_at(&prefix, libc::O_PATH | libc::O_DIRECTORY) {
                Ok(_) => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    let (_dir, through) = self.parent(&prefix)?;
                    std::fs::create_dir(&through).map_err(|e| error(&prefix.shown, e))?;
                    self.own(&through).map_err(|e| error(&prefix.shown, e))?;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                    return Err(FileError::new(
                        FileErrorKind::Exists,
                        format!("{} exists and is not a directory", prefix.shown),
                    ))
                }
                Err(e) => return Err(error(&prefix.shown, e)),
            }
        }
        self.stat_now(path)
    }

    fn rename_now(&self, from: &Inside, to: &Inside) -> Result<FileEntry, FileError> {
        let (_a, source) = self.parent(from)?;
        let (_b, target) = self.parent(to)?;
        std::fs::symlink_metadata(&source).map_err(|e| error(&from.shown, e))?;
        std::fs::rename(&source, &target).map_err(|e| error(&to.shown, e))?;
        self.stat_now(to)
    }

    fn remove_now(&self, path: &Inside) -> Result<(), FileError> {
        let (_dir, through) = self.parent(path)?;
        let meta = std::fs::symlink_metadata(&through).map_err(|e| error(&path.shown, e))?;
        if meta.is_dir() {
            std::fs::remove_dir_all(&through)
        } else {
            std::fs::remove_file(&through)
        }
        .map_err(|e| error(&path.shown, e))
    }

    fn open_read_now(&self, path: &Inside) -> Result<Reader, FileError> {
        let meta = self.stat_now(path).ok();
        if meta.as_ref().is_some_and(|m| m.kind == "dir") {
            return Err(FileError::new(
                FileErrorKind::Invalid,
                format!(
                    "{} is a directory: download a file, or list the directory (GET …/files/list?path=)",
                    path.shown
                ),
            ));
        }
        let fd = self
            .open_at(path, libc::O_RDONLY | libc::O_NOCTTY | libc::O_NONBLOCK)
            .map_err(|e| error(&path.shown, e))?;
        let file = File::from(fd);
        let meta = file.metadata().map_err(|e| error(&path.shown, e))?;
        if !meta.is_file() {
            return Err(FileError::new(
                FileErrorKind::Invalid,
                format!("{} is not a regular file", path.shown),
            ));
        }
        Ok(Reader {
            file: Some(file),
            size: meta.len(),
            shown: path.shown.clone(),
        })
    }

    fn open_write_now(&self, path: &Inside) -> Result<Writer, FileError> {
        if let Some((dir, _)) = path.split() {
            self.make_dir_now(&dir)?;
        }
        let (dir, through) = self.parent(path)?;
        if std::fs::symlink_metadata(&through).is_ok_and(|m| m.is_dir()) {
            return Err(FileError::new(
                FileErrorKind::Invalid,
                format!("{} is a directory: upload to a path inside it", path.shown),
            ));
        }
        let temp = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(format!(
            "{UPLOAD_PREFIX}{}-{}",
            std::process::id(),
            NEXT_UPLOAD.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temp)
            .map_err(|e| error(&path.shown, e))?;
        let writer = Writer {
            file: Some(file),
            dir,
            temp,
            target: through,
            shown: path.shown.clone(),
            files: self.clone(),
            path: Inside::parse(&path.shown)?,
            finished: false,
        };
        writer
            .files
            .own(&writer.temp)
            .map_err(|e| error(&path.shown, e))?;
        Ok(writer)
    }
}

fn entry(path: String, meta: &std::fs::Metadata, target: Option<PathBuf>) -> FileEntry {
    let kind = if meta.file_type().is_symlink() {
        "symlink"
    } else if meta.is_dir() {
        "dir"
    } else if meta.is_file() {
        "file"
    } else {
        "other"
    };
    let name = path.rsplit('/').next().unwrap_or("").to_owned();
    FileEntry {
        name: if name.is_empty() { "/".into() } else { name },
        path,
        kind: kind.to_owned(),
        size: meta.len(),
        mode: format!("{:04o}", meta.permissions().mode() & 0o7777),
        modified_at: time::OffsetDateTime::from_unix_timestamp(meta.mtime())
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
        target: target.map(|t| t.to_string_lossy().into_owned()),
    }
}

/// The entries of `dir` (seen as `shown`), and theirs down to `depth` levels; links are
/// listed, never entered.
fn walk(dir: &Path, shown: &str, depth: u32, out: &mut Vec<FileEntry>) -> io::Result<()> {
    for item in std::fs::read_dir(dir)? {
        if out.len() >= MAX_ENTRIES {
            return Ok(());
        }
        let item = item?;
        let name = item.file_name().to_string_lossy().into_owned();
        let path = format!("{}/{name}", shown.trim_end_matches('/'));
        let meta = item.path().symlink_metadata()?;
        let target = meta
            .file_type()
            .is_symlink()
            .then(|| std::fs::read_link(item.path()).ok())
            .flatten();
        let is_dir = meta.is_dir();
        out.push(entry(path.clone(), &meta, target));
        if is_dir && depth > 1 {
            walk(&item.path(), &path, depth - 1, out)?;
        }
    }
    Ok(())
}

/// Runs blocking file work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, FileError> + Send + 'static,
) -> Result<T, FileError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| FileError::new(FileErrorKind::Io, format!("file work failed: {e}")))?
}

#[async_trait]
impl SandboxFiles for RootedFiles {
    async fn stat(&self, path: &str) -> Result<FileEntry, FileError> {
        let (files, path) = (self.clone(), Inside::parse(path)?);
        blocking(move || files.stat_now(&path)).await
    }

    async fn list(&self, path: &str, depth: u32) -> Result<Vec<FileEntry>, FileError> {
        let (files, path) = (self.clone(), Inside::parse(path)?);
        blocking(move || files.list_now(&path, depth)).await
    }

    async fn open_read(&self, path: &str) -> Result<Box<dyn FileReader>, FileError> {
        let (files, path) = (self.clone(), Inside::parse(path)?);
        Ok(Box::new(
            blocking(move || files.open_read_now(&path)).await?,
        ))
    }

    async fn open_write(&self, path: &str) -> Result<Box<dyn FileWriter>, FileError> {
        let (files, path) = (self.clone(), Inside::parse(path)?);
        Ok(Box::new(
            blocking(move || files.open_write_now(&path)).await?,
        ))
    }

    async fn make_dir(&self, path: &str) -> Result<FileEntry, FileError> {
        let (files, path) = (self.clone(), Inside::parse(path)?);
        blocking(move || files.make_dir_now(&path)).await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<FileEntry, FileError> {
        let (files, from, to) = (self.clone(), Inside::parse(from)?, Inside::parse(to)?);
        blocking(move || files.rename_now(&from, &to)).await
    }

    async fn remove(&self, path: &str) -> Result<(), FileError> {
        let (files, path) = (self.clone(), Inside::parse(path)?);
        blocking(move || files.remove_now(&path)).await
    }

    async fn watch(&self, path: &str, recursive: bool) -> Result<Box<dyn FileWatch>, FileError> {
        let path = Inside::parse(path)?;
        let files = self.clone();
        // Each directory opened as any path here: resolved inside the root.
        let opener: crate::watch::Opener = Box::new(move |inside: &str| {
            let inside = Inside::parse(inside)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.message))?;
            files.open_at(&inside, libc::O_PATH | libc::O_DIRECTORY)
        });
        let shown = path.shown;
        let watch = blocking(move || crate::watch::DirWatch::new(opener, &shown, recursive));
        Ok(Box::new(watch.await?))
    }
}

struct Reader {
    file: Option<File>,
    size: u64,
    shown: String,
}

#[async_trait]
impl FileReader for Reader {
    fn size(&self) -> u64 {
        self.size
    }

    async fn read(&mut self, max: usize) -> Result<Vec<u8>, FileError> {
        let Some(mut file) = self.file.take() else {
            return Ok(Vec::new());
        };
        let shown = self.shown.clone();
        let (file, bytes) = blocking(move || {
            let mut bytes = vec![0; max];
            let n = file.read(&mut bytes).map_err(|e| error(&shown, e))?;
            bytes.truncate(n);
            Ok((file, bytes))
        })
        .await?;
        if !bytes.is_empty() {
            self.file = Some(file);
        }
        Ok(bytes)
    }
}

/// An upload in progress: a new file beside its target, renamed over it when finished
/// and removed if it never is.
struct Writer {
    file: Option<File>,
    /// Keeps the directory's descriptor (the paths below go through it) open.
    dir: OwnedFd,
    temp: PathBuf,
    target: PathBuf,
    shown: String,
    files: RootedFiles,
    path: Inside,
    /// Renamed into place: nothing to remove.
    finished: bool,
}

#[async_trait]
impl FileWriter for Writer {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), FileError> {
        let Some(mut file) = self.file.take() else {
            return Err(FileError::new(
                FileErrorKind::Io,
                "the upload was abandoned",
            ));
        };
        let (bytes, shown) = (bytes.to_vec(), self.shown.clone());
        let file = blocking(move || {
            file.write_all(&bytes).map_err(|e| error(&shown, e))?;
            Ok(file)
        })
        .await?;
        self.file = Some(file);
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<FileEntry, FileError> {
        let Some(file) = self.file.take() else {
            return Err(FileError::new(
                FileErrorKind::Io,
                "the upload was abandoned",
            ));
        };
        blocking(move || {
            file.sync_all().map_err(|e| error(&self.shown, e))?;
            drop(file);
            std::fs::rename(&self.temp, &self.target).map_err(|e| error(&self.shown, e))?;
            self.finished = true;
            self.files.stat_now(&self.path)
        })
        .await
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Not finished (a failed or abandoned upload): nothing of it stays. The path
        // goes through the directory's descriptor, still open here.
        if !self.finished {
            let _ = std::fs::remove_file(&self.temp);
        }
        let _ = &self.dir;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> (tempfile::TempDir, RootedFiles) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/hostname"), b"sandbox").unwrap();
        std::fs::write(dir.path().join("host-secret"), b"host").unwrap();
        // SAFETY: getuid and getgid have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let files = RootedFiles::new(root, uid, gid);
        (dir, files)
    }

    async fn read_all(files: &RootedFiles, path: &str) -> Result<Vec<u8>, FileError> {
        let mut reader = files.open_read(path).await?;
        let mut all = Vec::new();
        loop {
            let piece = reader.read(3).await?;
            if piece.is_empty() {
                return Ok(all);
            }
            all.extend(piece);
        }
    }

    #[tokio::test]
    async fn an_upload_lands_whole_and_is_read_back_in_pieces() {
        let (_dir, files) = files();
        let mut writer = files.open_write("/home/user/data.txt").await.unwrap();
        writer.write(b"hello ").await.unwrap();
        writer.write(b"world").await.unwrap();
        assert!(
            files.stat("/home/user/data.txt").await.is_err(),
            "nothing is at the path until the upload finishes"
        );
        let entry = writer.finish().await.unwrap();
        assert_eq!((entry.kind.as_str(), entry.size), ("file", 11));
        assert_eq!(
            read_all(&files, "/home/user/data.txt").await.unwrap(),
            b"hello world"
        );
        let listed = files.list("/home", 2).await.unwrap();
        let paths: Vec<_> = listed.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/home/user", "/home/user/data.txt"]);
    }

    #[tokio::test]
    async fn an_abandoned_upload_leaves_nothing() {
        let (dir, files) = files();
        let mut writer = files.open_write("/tmp/big").await.unwrap();
        writer.write(b"partial").await.unwrap();
        drop(writer);
        let left: Vec<_> = std::fs::read_dir(dir.path().join("root/tmp"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[tokio::test]
    async fn no_path_or_link_leads_out_of_the_root() {
        let (dir, files) = files();
        let root = dir.path().join("root");
        std::os::unix::fs::symlink("/", root.join("to-root")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("up")).unwrap();
        std::os::unix::fs::symlink("/proc/self/root/etc", root.join("magic")).unwrap();
        let invalid = files.stat("/../../etc/shadow").await.unwrap_err();
        assert_eq!(invalid.kind, FileErrorKind::Invalid, "{invalid}");
        assert_eq!(
            files.stat("relative").await.unwrap_err().kind,
            FileErrorKind::Invalid
        );
        // Links resolve inside: `/` and `..` are the sandbox's root.
        assert_eq!(
            read_all(&files, "/to-root/etc/hostname").await.unwrap(),
            b"sandbox"
        );
        assert_eq!(
            read_all(&files, "/up/etc/hostname").await.unwrap(),
            b"sandbox"
        );
        assert!(read_all(&files, "/up/host-secret").await.is_err());
        assert!(read_all(&files, "/magic/hostname").await.is_err());
        // Writing through a link at the last component replaces the link.
        std::os::unix::fs::symlink(dir.path().join("host-secret"), root.join("planted")).unwrap();
        let mut writer = files.open_write("/planted").await.unwrap();
        writer.write(b"mine").await.unwrap();
        writer.finish().await.unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("host-secret")).unwrap(),
            b"host"
        );
        // Removing a link to a host directory removes the link only.
        std::os::unix::fs::symlink(dir.path(), root.join("host-dir")).unwrap();
        files.remove("/host-dir").await.unwrap();
        assert!(dir.path().join("host-secret").exists());
    }

    #[tokio::test]
    async fn directories_are_made_moved_and_removed_and_not_downloaded() {
        let (_dir, files) = files();
        let made = files.make_dir("/a/b/c").await.unwrap();
        assert_eq!(made.kind, "dir");
        assert_eq!(
            files.open_read("/a/b").await.err().map(|e| e.kind),
            Some(FileErrorKind::Invalid)
        );
        let moved = files.rename("/a/b", "/a/d").await.unwrap();
        assert_eq!(moved.path, "/a/d");
        assert!(files.stat("/a/d/c").await.is_ok());
        files.remove("/a").await.unwrap();
        assert_eq!(
            files.stat("/a").await.unwrap_err().kind,
            FileErrorKind::NotFound
        );
        assert_eq!(
            files.remove("/").await.unwrap_err().kind,
            FileErrorKind::Invalid
        );
    }
}
