//! Vulcan's domain: what a workload is, how its status may change, and the ports every
//! adapter plugs into — [`Backend`] (runs code), [`WorkloadStore`], [`LogStore`],
//! [`StatsStore`], [`BenchmarkStore`], [`FunctionStore`], [`ScheduleStore`],
//! [`SecretStore`], [`AccessStore`], [`ImageIndex`], [`SandboxStore`], [`QueueStore`],
//! [`FollowupStore`] and
//! [`NodeStore`]
//! (keep state), [`SandboxDriver`] (holds sandboxes open),
//! [`SignalBus`] (tells the other nodes, and hears them).
//!
//! This crate does no I/O and depends on no runtime: adapters depend on it, never the
//! other way round.

mod access;
mod backend;
mod cluster;
mod code;
mod followup;
mod function;
mod images;
mod kinds;
mod log;
mod network;
mod queue;
mod sandbox;
mod schedule;
mod secret;
mod spec;
mod stats;
mod status;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod volume;
pub mod whole;
mod workload;

pub use access::{
    AccessStore, ApiKey, AuditEntry, AuditFilter, Permission, Quota, Role, DEFAULT_TENANT,
};
pub use backend::{
    Availability, Backend, BackendCapabilities, BackendError, BackendInfo, Builder, LogSink,
    Preparation,
};
pub use cluster::{
    Alone, Deliver, Housekept, NodeBackend, NodeRecord, NodeState, NodeStore, Signal, SignalBus,
};
pub use code::Code;
pub use followup::{
    check_url, AsyncOptions, AsyncPolicy, Followup, FollowupKind, FollowupStore, NewPost,
    OnFailure, Retry, Settle, SIGNING_SECRET,
};
pub use function::{
    valid_function_name, Deployed, Function, FunctionCode, FunctionStore, FunctionVersion,
    Invocation, QueueTrigger,
};
pub use images::{
    ImageCatalog, ImageConfig, ImageError, ImageIndex, ImageRecord, ImageRoots, LeasedRoot,
    NodeTemplate, PullRequest, TemplateOnNode,
};
#[cfg(feature = "openapi")]
pub use kinds::{ConcreteIsolation, SandboxIsolation};
pub use kinds::{Isolation, ParseKindError, Runtime};
pub use log::{LogLine, LogStream};
pub use network::{never_reachable, Egress, NetRule, NetworkPolicy, NEVER};
pub use queue::{
    missing_queue, missing_topic, Delivery, NewMessage, Queue, QueueConfig, QueueCounts,
    QueueStore, QueueView, Sent, Subscription, Topic, DEDUP_WINDOW_S,
};
pub use sandbox::{
    FileEntry, FileError, FileErrorKind, FileEvent, FileEventKind, FileReader, FileWatch,
    FileWriter, LiveProcess, LiveSandbox, OnTimeout, PauseMode, ProcessExit, ProcessLaunch,
    ProcessOutput, PtySize, Sandbox, SandboxDriver, SandboxFiles, SandboxFilter, SandboxLaunch,
    SandboxMetrics, SandboxPage, SandboxResources, SandboxRoom, SandboxState, SandboxStore,
    SandboxUsage, UsageSample,
};
pub use schedule::{Overlap, Schedule, ScheduleStore, Tick, Trigger};
pub use secret::{valid_secret_name, Sealed, SecretInfo, SecretStore};
pub use spec::{Resources, Usage, WorkloadResult, WorkloadSpec};
pub use stats::{BackendStats, MinuteCount, Stats, Timeline};
pub use status::{InvalidTransition, WorkloadStatus};
pub use store::{
    Admission, BenchmarkStore, Claimed, Expect, ListFilter, LogStore, Refusal, StatsStore,
    StoreError, TerminalUpdate, WorkloadPage, WorkloadStore,
};
pub use volume::{check_resource_name, Volume, VolumeAttach, VolumeMount};
pub use workload::Workload;
