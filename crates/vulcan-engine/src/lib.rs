//! Vulcan's execution engine.
//!
//! It owns the life of a workload once the API has parsed it: routing to a backend
//! ([`BackendRegistry`]), admitting it into the store's queue, claiming and running it
//! under a per-backend concurrency bound with a timeout, killing it on request, fanning
//! its log lines out to live subscribers ([`LogBroker`]) while persisting them in order,
//! and recovering whatever a crash left unfinished. Several nodes sharing one store form a
//! cluster: heartbeats, housekeeping and signals are in `cluster`. It knows nothing of
//! HTTP.
//!
//! Reading order: `engine` (the engine, wait, kill, recovery), `submit` (a workload's
//! way in), `dispatch` (claiming), `run` (one run), `cluster` (nodes), then `functions`,
//! `schedules`, `secrets`, `access` (keys, quotas, audit), `queries` (what the API
//! reads), and the helpers (`slots`, `sink`, `broker`, `watches`).

mod access;
mod audit;
pub mod benchmark;
mod broker;
mod callbacks;
mod cluster;
mod config;
mod consumers;
mod dispatch;
mod engine;
pub mod events;
mod followups;
mod functions;
pub mod metrics;
mod queries;
pub mod queues;
mod registry;
mod run;
pub mod sandboxes;
mod schedules;
pub mod secrets;
mod sink;
mod slots;
mod submission;
mod submit;
pub mod traces;
mod watches;

tokio::task_local! {
    /// The id of the API request being served (set by the API around each request): the
    /// workloads it creates record it.
    pub static REQUEST_ID: String;
}

/// The id of the request this task serves, if any.
pub fn request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

pub use access::{StoredKey, MISS_GAP, REREAD_EVERY};
pub use benchmark::{BenchmarkError, BenchmarkReport, BenchmarkRequest, Benchmarks};
pub use broker::{LogBroker, LogEvent, Subscription};
pub use config::{EgressMode, EngineConfig, Limits, LogLimits};
pub use engine::{Engine, EveryPort, KillError, Stores};
pub use functions::{DeployRequest, DEFAULT_IDLE_TIMEOUT_S, DEFAULT_MAX_INSTANCES};
pub use metrics::Metrics;
pub use registry::{BackendRegistry, Route, RouteError};
pub use sandboxes::{NewProcess, NewSandbox, ProcessResult, SandboxError, SandboxLimits};
pub use schedules::{time_zone_names, Cron, SchedulePatch, ScheduleRequest};
pub use submission::{CodeRequest, ImagePulls, Submission, SubmitError};
pub use watches::{Armed, Watch};
