//! Sandboxes that live across many steps: what one is ([`Sandbox`]), where it is kept
//! ([`SandboxStore`]), and the port a backend offers to hold one ([`SandboxDriver`],
//! [`LiveSandbox`], [`LiveProcess`], [`SandboxFiles`]).
//!
//! Lifecycle: created → `running` → (`paused` → `running`)* → `ended` (deleted, or its
//! deadline passed) or `lost` (its node died, or the server was killed under it). A record
//! is kept after the end, so a client asking later is told what happened.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{Availability, BackendError, Isolation, LogStream, StoreError, Volume};

/// Where a sandbox is in its life.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxState {
    Running,
    Paused,
    /// Deleted, or its deadline passed (`end_reason` says which).
    Ended,
    /// Its node stopped without pausing it (killed, or gone).
    Lost,
}

impl SandboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxState::Running => "running",
            SandboxState::Paused => "paused",
            SandboxState::Ended => "ended",
            SandboxState::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Option<SandboxState> {
        Some(match s {
            "running" => SandboxState::Running,
            "paused" => SandboxState::Paused,
            "ended" => SandboxState::Ended,
            "lost" => SandboxState::Lost,
            _ => return None,
        })
    }

    /// Whether nothing more can happen to it.
    pub fn is_final(self) -> bool {
        matches!(self, SandboxState::Ended | SandboxState::Lost)
    }
}

/// What a sandbox does when its deadline passes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    #[default]
    Kill,
    Pause,
}

/// How a paused sandbox is kept.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PauseMode {
    /// Saved whole to disk (memory and processes): it holds no memory, and a restart of
    /// the server keeps it.
    Saved,
    /// Frozen where it is, in memory: a gVisor sandbox paused while a process Vulcan
    /// follows runs (its pipes are the host's, which a save cannot take along). It keeps
    /// its memory (counted against the tenant's), and a stop of the server ends it `lost`.
    Frozen,
}

impl PauseMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PauseMode::Saved => "saved",
            PauseMode::Frozen => "frozen",
        }
    }

    pub fn parse(s: &str) -> Option<PauseMode> {
        match s {
            "saved" => Some(PauseMode::Saved),
            "frozen" => Some(PauseMode::Frozen),
            _ => None,
        }
    }
}

/// One sandbox, as the API shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sandbox {
    pub id: String,
    pub tenant: String,
    /// The node it lives on: every request about it is served there.
    pub node_id: String,
    pub isolation: Isolation,
    /// The registered image its root comes from.
    pub image: String,
    pub resources: SandboxResources,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    pub state: SandboxState,
    /// How it is kept while `paused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_mode: Option<PauseMode>,
    /// Why it ended or was lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
    pub on_timeout: OnTimeout,
    /// Whether a request that needs it running resumes it when it is paused (else `409`).
    #[serde(default)]
    pub auto_resume: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// Its deadline: it is killed (or paused) then unless `POST …/timeout` moves it.
    #[serde(with = "time::serde::rfc3339")]
    pub end_at: OffsetDateTime,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub ended_at: Option<OffsetDateTime>,
    /// The volumes mounted in it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<crate::VolumeMount>,
    /// The token its E2B-compatible envd routes take (`X-Access-Token`): whoever holds
    /// it may run processes and touch files in this sandbox alone.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub access_token: String,
}

impl Sandbox {
    /// Whether it holds its memory: running, or paused frozen.
    pub fn holds_memory(&self) -> bool {
        self.state == SandboxState::Running || self.pause_mode == Some(PauseMode::Frozen)
    }
}

/// A sandbox's bounds: CPUs, memory, and the disk its writes may fill.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxResources {
    pub cpus: u32,
    pub mem_mb: u32,
    pub disk_mb: u32,
}

/// A page of sandboxes, newest first; `next` is the cursor of the following page.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxPage {
    pub sandboxes: Vec<Sandbox>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Which sandboxes a list shows.
#[derive(Debug, Clone, Default)]
pub struct SandboxFilter {
    /// `None`: every tenant's (an admin's view).
    pub tenant: Option<String>,
    pub state: Option<SandboxState>,
    /// Every pair must be in the sandbox's metadata.
    pub metadata: BTreeMap<String, String>,
    pub limit: u32,
    /// Sandboxes older than this id (ids sort by creation).
    pub before: Option<String>,
}

/// What one tenant's sandboxes may hold together: checked, in the transaction that records
/// a new one, against its sandboxes already live (across the cluster).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxRoom {
    /// Running and paused sandboxes.
    pub max_live: u32,
    /// Memory (MiB) of its running sandboxes and its frozen ones (a saved one holds none).
    pub max_mem_mb: u32,
    /// Disk (MiB) of its running and paused sandboxes.
    pub max_disk_mb: u32,
}

/// Where sandboxes are kept.
#[async_trait]
pub trait SandboxStore: Send + Sync {
    /// Records a new sandbox, refused (`Refused`, over quota) when its tenant has no `room`
    /// for it beside its running and paused ones, and (`Conflict`) when a volume it mounts
    /// read-write is mounted by one of them, or one it mounts is mounted read-write.
    async fn insert_sandbox(&self, sandbox: &Sandbox, room: &SandboxRoom)
        -> Result<(), StoreError>;

    async fn sandbox(&self, id: &str) -> Result<Sandbox, StoreError>;

    async fn sandboxes(&self, filter: &SandboxFilter) -> Result<SandboxPage, StoreError>;

    /// Moves sandbox `id` from `from` to `to`; `Conflict` if it was not in `from`. `note`
    /// is why, for a final state (its end time is recorded too), and how it is kept
    /// ([`PauseMode::as_str`], `saved` if absent) for `paused`.
    async fn set_sandbox_state(
        &self,
        id: &str,
        from: SandboxState,
        to: SandboxState,
        note: Option<&str>,
    ) -> Result<Sandbox, StoreError>;

    /// A new deadline for a sandbox that has not ended.
    async fn set_sandbox_deadline(
        &self,
        id: &str,
        end_at: OffsetDateTime,
    ) -> Result<Sandbox, StoreError>;

    /// Records a new volume; `Conflict` if the tenant has one of that name, `Refused`
    /// when it has `max_per_tenant` already.
    async fn insert_volume(&self, volume: &Volume, max_per_tenant: u32) -> Result<(), StoreError>;

    async fn volume(&self, tenant: &str, name: &str) -> Result<Volume, StoreError>;

    /// A tenant's volumes (every tenant's for `None`), by name.
    async fn volumes(&self, tenant: Option<&str>) -> Result<Vec<Volume>, StoreError>;

    /// Removes a volume's record, answered as it was; `Conflict` while a running or paused
    /// sandbox mounts it (checked in the same transaction).
    async fn delete_volume(&self, tenant: &str, name: &str) -> Result<Volume, StoreError>;

    /// Sandboxes of node `node` in `state`.
    async fn sandboxes_on(
        &self,
        node: &str,
        state: SandboxState,
    ) -> Result<Vec<Sandbox>, StoreError>;
}

/// What a backend is asked to start.
#[derive(Debug, Clone)]
pub struct SandboxLaunch {
    pub id: String,
    /// The image's reference (pulled first if this node does not have it).
    pub image: String,
    pub resources: SandboxResources,
    /// The environment every process starts with (image's, then the request's).
    pub env: BTreeMap<String, String>,
    /// Volumes to mount, their files on this node.
    pub volumes: Vec<crate::VolumeAttach>,
}

/// One process to start in a sandbox.
#[derive(Debug, Clone, Default)]
pub struct ProcessLaunch {
    /// The program and its arguments.
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Working directory; the image's when `None`.
    pub cwd: Option<String>,
    /// A user name or uid of the sandbox; the image's when `None`.
    pub user: Option<String>,
    /// Whether the process reads a stdin the client writes (else it reads nothing).
    pub stdin: bool,
    /// Run on a terminal of this size (its input the client's, its output one stream).
    pub pty: Option<PtySize>,
}

/// A terminal's size.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PtySize {
    #[serde(deserialize_with = "crate::whole::int")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub rows: u16,
    #[serde(deserialize_with = "crate::whole::int")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub cols: u16,
}

impl PtySize {
    /// The largest side a terminal may have.
    pub const MAX: u16 = 1000;

    /// Why this size is not one, if it is not.
    pub fn check(self) -> Result<(), String> {
        if (1..=Self::MAX).contains(&self.rows) && (1..=Self::MAX).contains(&self.cols) {
            return Ok(());
        }
        Err(format!(
            "a terminal of {} rows and {} cols is not one: give each 1-{}",
            self.rows,
            self.cols,
            Self::MAX
        ))
    }
}

/// How a process ended.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessExit {
    /// Its exit code, if it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
}

/// Where a process's output goes, chunk by chunk, as it is written.
pub trait ProcessOutput: Send + Sync {
    fn chunk(&self, stream: LogStream, bytes: &[u8]);
}

/// A backend that can hold sandboxes open.
#[async_trait]
pub trait SandboxDriver: Send + Sync {
    fn isolation(&self) -> Isolation;

    fn availability(&self) -> Availability;

    /// Starts a sandbox; it runs until destroyed.
    async fn create(&self, launch: SandboxLaunch) -> Result<Box<dyn LiveSandbox>, BackendError>;

    /// Takes back a sandbox the last run of the server paused before it stopped.
    async fn adopt(&self, sandbox: &Sandbox) -> Result<Box<dyn LiveSandbox>, BackendError> {
        let _ = sandbox;
        Err(BackendError(
            "this isolation cannot keep sandboxes across a restart".into(),
        ))
    }

    /// Removes whatever sandboxes of an earlier run of the server left on this node, but
    /// those in `keep` (adopted).
    async fn sweep(&self, keep: &[String]);

    /// Waits for the removal of the sandboxes destroyed so far (the server is stopping).
    async fn settle(&self) {}
}

/// A running sandbox.
#[async_trait]
pub trait LiveSandbox: Send + Sync {
    /// Whether it still runs.
    fn alive(&self) -> bool;

    /// Starts a process; its output goes to `output` as it is written.
    async fn spawn(
        &self,
        process: &ProcessLaunch,
        output: std::sync::Arc<dyn ProcessOutput>,
    ) -> Result<Box<dyn LiveProcess>, BackendError>;

    /// Its files, as its processes see them.
    fn files(&self) -> &dyn SandboxFiles;

    /// Memory and CPU used now.
    fn usage(&self) -> SandboxUsage;

    /// Whether [`LiveSandbox::pause`] takes along the processes started through
    /// [`LiveSandbox::spawn`] (their output and stdin go on after the resume); if not,
    /// a sandbox is not paused while one of them runs.
    fn pauses_followed_processes(&self) -> bool {
        false
    }

    /// Saves it whole (memory, processes) to disk and stops it: it holds no memory until
    /// [`LiveSandbox::resume`]; its files stay where they are.
    async fn pause(&self) -> Result<(), BackendError> {
        Err(BackendError("this isolation cannot pause a sandbox".into()))
    }

    /// Stops every process in it where it is, in memory ([`PauseMode::Frozen`]): a pause
    /// that keeps the processes [`LiveSandbox::pause`] cannot take along, until
    /// [`LiveSandbox::thaw`].
    async fn freeze(&self) -> Result<(), BackendError> {
        Err(BackendError(
            "this isolation cannot freeze a sandbox".into(),
        ))
    }

    /// Lets a frozen sandbox's processes go on.
    async fn thaw(&self) -> Result<(), BackendError> {
        Err(BackendError("this isolation cannot thaw a sandbox".into()))
    }

    /// Starts it again from what [`LiveSandbox::pause`] saved: its processes go on.
    async fn resume(&self) -> Result<(), BackendError> {
        Err(BackendError(
            "this isolation cannot resume a sandbox".into(),
        ))
    }

    /// Why it stopped by itself (a limit it reached), if the backend can tell.
    fn stopped_because(&self) -> Option<String> {
        None
    }

    /// Kills everything in it at once; what it wrote is removed (perhaps after this
    /// returns: [`SandboxDriver::settle`] waits for that).
    async fn destroy(&self);

    /// Lets go of a paused sandbox, keeping it on disk for the next server to adopt.
    fn release(&self) {}
}

/// What a sandbox uses, now.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxUsage {
    pub cpu_ms: u64,
    pub memory_bytes: u64,
    pub disk_bytes: u64,
}

/// What a sandbox used at one moment, and its CPU since the sample before.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UsageSample {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub cpu_ms: u64,
    /// CPU time over wall time since the sample before: 100 is one whole CPU.
    pub cpu_pct: f64,
    pub memory_bytes: u64,
    pub disk_bytes: u64,
}

/// What a sandbox uses now, and what it used over the last hour (oldest first).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxMetrics {
    pub cpu_ms: u64,
    pub memory_bytes: u64,
    pub disk_bytes: u64,
    /// One sample every few seconds while it runs (none while it is paused).
    pub samples: Vec<UsageSample>,
}

/// A process started in a sandbox.
#[async_trait]
pub trait LiveProcess: Send + Sync {
    /// Its pid inside the sandbox.
    fn pid(&self) -> u32;

    async fn write_stdin(&self, bytes: &[u8]) -> Result<(), BackendError>;

    async fn close_stdin(&self);

    async fn signal(&self, signal: i32) -> Result<(), BackendError>;

    /// Sets the size of its terminal (it gets `SIGWINCH`); an error if it has none.
    async fn resize(&self, size: PtySize) -> Result<(), BackendError> {
        let _ = size;
        Err(BackendError("it was not started on a terminal".into()))
    }

    /// Waits for it to end (and for its output to be read to the end).
    async fn wait(&self) -> ProcessExit;
}

/// A file operation's failure, by whose fault and how to answer it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FileError {
    pub kind: FileErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileErrorKind {
    /// The path is not one to use (relative, `..`, a NUL byte, a directory to download).
    Invalid,
    NotFound,
    Exists,
    /// The sandbox's disk is full.
    NoSpace,
    Io,
}

impl FileError {
    pub fn new(kind: FileErrorKind, message: impl Into<String>) -> Self {
        FileError {
            kind,
            message: message.into(),
        }
    }
}

/// What a path is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// The absolute path inside the sandbox.
    pub path: String,
    pub name: String,
    /// `file`, `dir`, `symlink` or `other`.
    #[serde(rename = "type")]
    pub kind: String,
    pub size: u64,
    /// Permission bits, as octal text (`0644`).
    pub mode: String,
    #[serde(with = "time::serde::rfc3339")]
    pub modified_at: OffsetDateTime,
    /// Where a symbolic link points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Reads a file in pieces.
#[async_trait]
pub trait FileReader: Send {
    fn size(&self) -> u64;

    /// The next piece, at most `max` bytes; empty at the end.
    async fn read(&mut self, max: usize) -> Result<Vec<u8>, FileError>;
}

/// Writes a file in pieces: nothing is at the path until [`FileWriter::finish`].
#[async_trait]
pub trait FileWriter: Send {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), FileError>;

    async fn finish(self: Box<Self>) -> Result<FileEntry, FileError>;
}

/// A sandbox's files. Paths are absolute paths inside the sandbox; none leads out of it.
#[async_trait]
pub trait SandboxFiles: Send + Sync {
    async fn stat(&self, path: &str) -> Result<FileEntry, FileError>;

    /// What is in directory `path`, down to `depth` levels (1: its entries).
    async fn list(&self, path: &str, depth: u32) -> Result<Vec<FileEntry>, FileError>;

    async fn open_read(&self, path: &str) -> Result<Box<dyn FileReader>, FileError>;

    /// Opens `path` for writing (its directories made as needed).
    async fn open_write(&self, path: &str) -> Result<Box<dyn FileWriter>, FileError>;

    /// `mkdir -p`.
    async fn make_dir(&self, path: &str) -> Result<FileEntry, FileError>;

    async fn rename(&self, from: &str, to: &str) -> Result<FileEntry, FileError>;

    /// Removes a file, or a directory with what is in it.
    async fn remove(&self, path: &str) -> Result<(), FileError>;

    /// What changes in directory `path` (and, `recursive`, below it) from now on.
    async fn watch(&self, path: &str, recursive: bool) -> Result<Box<dyn FileWatch>, FileError> {
        let _ = (path, recursive);
        Err(FileError::new(
            FileErrorKind::Invalid,
            "watching directories is not served by this sandbox's backend",
        ))
    }
}

/// A change in a watched directory.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEvent {
    /// The path changed, relative to the watched directory (`a.txt`, `sub/b.txt`).
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FileEventKind,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileEventKind {
    /// It appeared (made, or moved in).
    Create,
    /// Its content changed.
    Write,
    Remove,
    /// It was moved away (its new name, if still watched, comes as a `create`).
    Rename,
    /// Its mode or owner changed.
    Chmod,
}

/// The changes of one watched directory, as they happen.
#[async_trait]
pub trait FileWatch: Send {
    /// The next change, waiting for it; an error ends the watch (the directory went, or
    /// the sandbox).
    async fn next(&mut self) -> Result<FileEvent, FileError>;
}
