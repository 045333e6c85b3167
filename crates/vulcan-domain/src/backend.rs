//! The port every isolation backend implements.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{Isolation, LogStream, Runtime, WorkloadResult, WorkloadSpec};

/// What a backend can run.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendCapabilities {
    pub name: String,
    pub supported_runtimes: Vec<Runtime>,
    pub supported_isolations: Vec<Isolation>,
    pub max_concurrency: u32,
}

/// Whether a configured backend can run on this host, and if not, why.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Availability {
    pub available: bool,
    pub reason: Option<String>,
    /// Backend-specific facts worth showing (versions, accelerator, pool size...).
    pub details: serde_json::Value,
}

impl Availability {
    pub fn ready(details: serde_json::Value) -> Self {
        Availability {
            available: true,
            reason: None,
            details,
        }
    }

    pub fn unavailable(reason: impl Into<String>) -> Self {
        Availability {
            available: false,
            reason: Some(reason.into()),
            details: serde_json::Value::Null,
        }
    }
}

/// One entry of `GET /v1/backends`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendInfo {
    pub name: String,
    pub available: bool,
    pub reason: Option<String>,
    pub capabilities: BackendCapabilities,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

/// A failure of the backend itself (it could not start or follow the workload), as
/// opposed to the workload failing. The workload is marked failed with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// Receives a workload's log lines while it runs. Implementations must not block:
/// backends call this from their output-reading loops.
pub trait LogSink: Send + Sync {
    fn emit(&self, stream: LogStream, line: String);

    /// Marks the moment the workload's own code starts, once the backend has prepared it
    /// (booted or taken a VM, pulled an image, started a process). The workload's timeout
    /// counts from here; what came before is bounded by
    /// [`Backend::preparation_timeout`]. Every backend calls it exactly once per run,
    /// saying how it prepared the run.
    fn code_started(&self, _how: Preparation) {}
}

/// How a backend got a run ready, for the cold-start figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preparation {
    /// Started from nothing: a new process, sandbox or VM booted.
    Boot,
    /// A VM restored from a snapshot.
    Restore,
    /// Taken ready from a pool of ones started ahead of time.
    Pool,
    /// A function's instance kept from an earlier invocation.
    Warm,
}

impl Preparation {
    pub fn as_str(self) -> &'static str {
        match self {
            Preparation::Boot => "boot",
            Preparation::Restore => "restore",
            Preparation::Pool => "pool",
            Preparation::Warm => "warm",
        }
    }
}

/// Turns what a workload sent into what its backend runs, before the backend prepares it:
/// Go source into a static binary. A spec it has nothing to do for comes back as it was.
#[async_trait]
pub trait Builder: Send + Sync {
    /// The spec to run, or the result the workload ends with (a failed build: the error
    /// says why, the builder's output is already in `logs`).
    async fn build(
        &self,
        spec: WorkloadSpec,
        logs: &std::sync::Arc<dyn LogSink>,
    ) -> Result<WorkloadSpec, WorkloadResult>;
}

/// An isolation backend: something that can run a [`WorkloadSpec`] to completion.
///
/// Cancellation contract: when the engine times a workload out or kills it, it drops the
/// future returned by [`Backend::execute`]; dropping it must stop the workload's code
/// (kill the process, destroy the sandbox). [`Backend::cleanup`] is then called, as it is
/// after every run, and must be idempotent.
#[async_trait]
pub trait Backend: Send + Sync {
    /// The isolation this backend provides; it is registered under this name.
    fn isolation(&self) -> Isolation;

    fn capabilities(&self) -> BackendCapabilities;

    /// Whether this backend can run on this host right now.
    fn availability(&self) -> Availability;

    /// The longest a run may take to get its code started ([`LogSink::code_started`]):
    /// booting, pulling, starting a process. Past it the run fails with an error saying
    /// preparation took too long; the workload's own timeout starts only after it.
    fn preparation_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(60)
    }

    /// Runs the workload and returns once it has ended, streaming log lines to `logs`.
    async fn execute(
        &self,
        spec: WorkloadSpec,
        logs: std::sync::Arc<dyn LogSink>,
    ) -> Result<WorkloadResult, BackendError>;

    /// Releases whatever the workload left behind. Called after every run.
    async fn cleanup(&self, workload_id: &str) -> Result<(), BackendError>;

    /// Stops background work (warm pools) when the server shuts down.
    async fn shutdown(&self) {}

    /// Warm instances of deployed functions held now, per instance key
    /// ([`crate::Invocation::instance_key`]).
    fn warm_instances(&self) -> std::collections::HashMap<String, usize> {
        Default::default()
    }

    /// Stops the idle instances whose keys start with `prefix` (a function deleted or
    /// changed); serving ones are stopped when their invocation ends.
    fn retire(&self, _prefix: &str) {}

    /// Whether this backend gives a workload the network its policy allows (and nothing
    /// more); one that does not runs only workloads without a network.
    fn enforces_egress(&self) -> bool {
        false
    }

    /// Memory the kernel charges to this backend's workloads (and warm pool) right now, in
    /// bytes, where the backend can tell (its cgroups).
    fn memory_in_use(&self) -> Option<u64> {
        None
    }

    /// Counts of the backend's own events since it started (e.g. a microVM `restored`
    /// from a snapshot, or `restore_failed`), exported as `vulcan_backend_events_total`.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// Medians of how long the backend took to get a sandbox ready, by how, over its
    /// recent starts, in ms (e.g. a microVM `boot` and `restore`); for the benchmark.
    fn start_times(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
}
