//! A held sandbox's files and processes, through its agent's calls ([`super::link`]).

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use time::OffsetDateTime;
use tokio::sync::watch;
use vulcan_agent::held::{Entry, Failure, FailureKind, Op, Piece, MAX_CHUNK};
use vulcan_domain::{
    BackendError, FileEntry, FileError, FileErrorKind, FileEvent, FileReader, FileWatch,
    FileWriter, LiveProcess, ProcessExit, SandboxFiles,
};

use super::link::Calls;

fn file_error(failure: Failure) -> FileError {
    let kind = match failure.kind {
        FailureKind::Invalid => FileErrorKind::Invalid,
        FailureKind::NotFound => FileErrorKind::NotFound,
        FailureKind::Exists => FileErrorKind::Exists,
        FailureKind::NoSpace => FileErrorKind::NoSpace,
        FailureKind::Io | FailureKind::Process => FileErrorKind::Io,
    };
    FileError::new(kind, failure.message)
}

fn parsed<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, FileError> {
    serde_json::from_value(value).map_err(|e| {
        FileError::new(
            FileErrorKind::Io,
            format!("the sandbox's agent answered oddly: {e}"),
        )
    })
}

fn file_entry(entry: Entry) -> FileEntry {
    let nanos = i128::from(entry.modified_s) * 1_000_000_000 + i128::from(entry.modified_nanos);
    FileEntry {
        path: entry.path,
        name: entry.name,
        kind: entry.kind,
        size: entry.size,
        mode: format!("{:04o}", entry.mode),
        modified_at: OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        target: entry.target,
    }
}

/// The sandbox's files, as its processes see them; uploads are owned by its user.
pub(crate) struct VmFiles {
    pub calls: Arc<Calls>,
    pub owner: (u32, u32),
}

impl VmFiles {
    async fn entry(&self, op: Op) -> Result<FileEntry, FileError> {
        let value = self.calls.call(op).await.map_err(file_error)?;
        Ok(file_entry(parsed(value)?))
    }
}

#[async_trait]
impl SandboxFiles for VmFiles {
    async fn stat(&self, path: &str) -> Result<FileEntry, FileError> {
        self.entry(Op::Stat { path: path.into() }).await
    }

    async fn list(&self, path: &str, depth: u32) -> Result<Vec<FileEntry>, FileError> {
        let op = Op::List {
            path: path.into(),
            depth,
        };
        let value = self.calls.call(op).await.map_err(file_error)?;
        let entries: Vec<Entry> = parsed(value)?;
        Ok(entries.into_iter().map(file_entry).collect())
    }

    async fn open_read(&self, path: &str) -> Result<Box<dyn FileReader>, FileError> {
        let entry = self.stat(path).await?;
        if entry.kind != "file" {
            return Err(FileError::new(
                FileErrorKind::Invalid,
                format!("{path} is not a regular file"),
            ));
        }
        Ok(Box::new(Reader {
            calls: self.calls.clone(),
            path: path.to_owned(),
            size: entry.size,
            offset: 0,
        }))
    }

    async fn open_write(&self, path: &str) -> Result<Box<dyn FileWriter>, FileError> {
        let op = Op::WriteBegin {
            path: path.into(),
            uid: self.owner.0,
            gid: self.owner.1,
        };
        let value = self.calls.call(op).await.map_err(file_error)?;
        let token = value["token"].as_u64().ok_or_else(|| {
            FileError::new(
                FileErrorKind::Io,
                "the sandbox's agent gave no upload token",
            )
        })?;
        Ok(Box::new(Writer {
            calls: self.calls.clone(),
            token,
            finished: false,
        }))
    }

    async fn make_dir(&self, path: &str) -> Result<FileEntry, FileError> {
        self.entry(Op::MakeDir {
            path: path.into(),
            uid: self.owner.0,
            gid: self.owner.1,
        })
        .await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<FileEntry, FileError> {
        self.entry(Op::Rename {
            from: from.into(),
            to: to.into(),
        })
        .await
    }

    async fn remove(&self, path: &str) -> Result<(), FileError> {
        let op = Op::Remove { path: path.into() };
        self.calls.call(op).await.map(drop).map_err(file_error)
    }

    async fn watch(&self, path: &str, recursive: bool) -> Result<Box<dyn FileWatch>, FileError> {
        let (tx, changes) = tokio::sync::mpsc::unbounded_channel();
        let watch = self.calls.add_watch(tx);
        let op = Op::Watch {
            watch,
            path: path.into(),
            recursive,
        };
        if let Err(failure) = self.calls.call(op).await {
            self.calls.remove_watch(watch);
            return Err(file_error(failure));
        }
        Ok(Box::new(VmWatch {
            calls: self.calls.clone(),
            watch,
            changes,
        }))
    }
}

/// A watch of a directory in a held sandbox, ended (in the guest too) when dropped.
struct VmWatch {
    calls: Arc<Calls>,
    watch: u64,
    changes: tokio::sync::mpsc::UnboundedReceiver<Result<FileEvent, FileError>>,
}

#[async_trait]
impl FileWatch for VmWatch {
    async fn next(&mut self) -> Result<FileEvent, FileError> {
        match self.changes.recv().await {
            Some(change) => change,
            None => Err(FileError::new(
                FileErrorKind::NotFound,
                "the watch ended: the sandbox ended",
            )),
        }
    }
}

impl Drop for VmWatch {
    fn drop(&mut self) {
        self.calls.remove_watch(self.watch);
        let (calls, watch) = (self.calls.clone(), self.watch);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = calls.call(Op::Unwatch { watch }).await;
            });
        }
    }
}

struct Reader {
    calls: Arc<Calls>,
    path: String,
    size: u64,
    offset: u64,
}

#[async_trait]
impl FileReader for Reader {
    fn size(&self) -> u64 {
        self.size
    }

    async fn read(&mut self, max: usize) -> Result<Vec<u8>, FileError> {
        if self.offset >= self.size || max == 0 {
            return Ok(Vec::new());
        }
        let want = (self.size - self.offset)
            .min(max as u64)
            .min(u64::from(MAX_CHUNK));
        let op = Op::Read {
            path: self.path.clone(),
            offset: self.offset,
            len: want as u32,
        };
        let value = self.calls.call(op).await.map_err(file_error)?;
        let piece: Piece = parsed(value)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(piece.data)
            .map_err(|e| FileError::new(FileErrorKind::Io, format!("a bad piece: {e}")))?;
        // A file that shrank meanwhile ends where it ends now.
        if bytes.is_empty() {
            self.offset = self.size;
        }
        self.offset += bytes.len() as u64;
        Ok(bytes)
    }
}

struct Writer {
    calls: Arc<Calls>,
    token: u64,
    finished: bool,
}

#[async_trait]
impl FileWriter for Writer {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), FileError> {
        for piece in bytes.chunks(MAX_CHUNK as usize) {
            let op = Op::WriteChunk {
                token: self.token,
                data: base64::engine::general_purpose::STANDARD.encode(piece),
            };
            self.calls.call(op).await.map_err(file_error)?;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<FileEntry, FileError> {
        self.finished = true;
        let value = self
            .calls
            .call(Op::WriteEnd { token: self.token })
            .await
            .map_err(file_error)?;
        Ok(file_entry(parsed(value)?))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // An upload given up: its partial file goes.
        let (calls, token) = (self.calls.clone(), self.token);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = calls.call(Op::WriteAbort { token }).await;
            });
        }
    }
}

/// A process started in a held sandbox.
pub(crate) struct VmProcess {
    pub calls: Arc<Calls>,
    pub pid: u32,
    pub ended: watch::Receiver<Option<ProcessExit>>,
}

fn backend_error(failure: Failure) -> BackendError {
    BackendError(failure.message)
}

#[async_trait]
impl LiveProcess for VmProcess {
    fn pid(&self) -> u32 {
        self.pid
    }

    async fn write_stdin(&self, bytes: &[u8]) -> Result<(), BackendError> {
        for piece in bytes.chunks(MAX_CHUNK as usize) {
            let op = Op::Stdin {
                pid: self.pid,
                data: base64::engine::general_purpose::STANDARD.encode(piece),
            };
            self.calls.call(op).await.map_err(backend_error)?;
        }
        Ok(())
    }

    async fn close_stdin(&self) {
        let _ = self.calls.call(Op::CloseStdin { pid: self.pid }).await;
    }

    async fn signal(&self, signal: i32) -> Result<(), BackendError> {
        let op = Op::Signal {
            pid: self.pid,
            signal,
        };
        self.calls.call(op).await.map(drop).map_err(backend_error)
    }

    async fn resize(&self, size: vulcan_domain::PtySize) -> Result<(), BackendError> {
        let op = Op::Resize {
            pid: self.pid,
            rows: size.rows,
            cols: size.cols,
        };
        self.calls.call(op).await.map(drop).map_err(backend_error)
    }

    async fn wait(&self) -> ProcessExit {
        let mut ended = self.ended.clone();
        loop {
            if let Some(exit) = *ended.borrow_and_update() {
                return exit;
            }
            if ended.changed().await.is_err() {
                return ProcessExit {
                    exit_code: None,
                    signal: Some(libc::SIGKILL),
                };
            }
        }
    }
}
