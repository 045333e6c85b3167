//! Vulcan's execution engine.
//!
//! It owns the life of a workload once the API has parsed it: routing to a backend
//! ([`BackendRegistry`]), persisting it, running it under a per-backend concurrency bound
//! with a timeout, killing it on request, fanning its log lines out to live subscribers
//! ([`LogBroker`]) while persisting them in order, and recovering whatever a crash left
//! unfinished. It knows nothing of HTTP.

mod admission;
pub mod benchmark;
mod broker;
mod config;
mod engine;
pub mod metrics;
mod registry;
mod sink;
mod slots;
mod submission;

pub use benchmark::{BenchmarkError, BenchmarkReport, BenchmarkRequest, Benchmarks};
pub use broker::{LogBroker, LogEvent, Subscription};
pub use config::{EngineConfig, Limits, LogLimits};
pub use engine::{Engine, KillError};
pub use metrics::Metrics;
pub use registry::{BackendRegistry, Route, RouteError};
pub use submission::{ImagePulls, Submission, SubmitError};
