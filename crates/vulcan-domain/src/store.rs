//! The port that keeps workloads, their log lines and their statistics.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::{
    InvalidTransition, Isolation, LogLine, LogStream, Stats, Workload, WorkloadSpec, WorkloadStatus,
};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("workload {0} not found")]
    NotFound(String),
    #[error(transparent)]
    InvalidTransition(#[from] InvalidTransition),
    #[error("workload {0} already exists")]
    Duplicate(String),
    #[error("store failure: {0}")]
    Io(String),
}

/// Filters and paging of `GET /v1/workloads`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this tenant's workloads (`None`: everyone's).
    pub tenant: Option<String>,
    pub status: Option<WorkloadStatus>,
    pub isolation: Option<Isolation>,
    pub limit: u32,
    pub offset: u64,
}

/// One page of workloads, newest first, and how many match in all.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadPage {
    pub workloads: Vec<Workload>,
    pub total: u64,
}

/// The fields a terminal transition sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalUpdate {
    pub status: WorkloadStatus,
    pub output: Option<String>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub finished_at: OffsetDateTime,
    /// Wall time from `running` to the end; `None` for a workload that never ran.
    pub duration_ms: Option<u64>,
    /// The part of it spent preparing (booting, pulling) before the code started.
    pub prepare_ms: Option<u64>,
}

/// Persistence of workloads. Every status change goes through [`WorkloadStore::start`] or
/// [`WorkloadStore::finish`], which apply it only if the stored status still allows it:
/// a stale writer can never overwrite a terminal state.
#[async_trait]
pub trait WorkloadStore: Send + Sync {
    /// Records a new `pending` workload together with the spec that will run it.
    async fn insert(&self, workload: &Workload, spec: &WorkloadSpec) -> Result<(), StoreError>;

    async fn get(&self, id: &str) -> Result<Workload, StoreError>;

    async fn spec(&self, id: &str) -> Result<WorkloadSpec, StoreError>;

    async fn list(&self, filter: &ListFilter) -> Result<WorkloadPage, StoreError>;

    /// pending → running.
    async fn start(&self, id: &str, started_at: OffsetDateTime) -> Result<Workload, StoreError>;

    /// pending | running → completed | failed | killed.
    async fn finish(&self, id: &str, update: &TerminalUpdate) -> Result<Workload, StoreError>;

    /// Appends lines in order. Lines already stored (same seq) are ignored.
    async fn append_logs(&self, id: &str, lines: &[LogLine]) -> Result<(), StoreError>;

    /// A workload's log lines in order, optionally of one stream only.
    async fn logs(&self, id: &str, stream: Option<LogStream>) -> Result<Vec<LogLine>, StoreError>;

    /// Figures over every workload, or over one tenant's.
    async fn stats(&self, tenant: Option<&str>) -> Result<Stats, StoreError>;

    /// Workloads of `node_id` that are not terminal, oldest first: what a restart recovers.
    async fn unfinished(&self, node_id: &str) -> Result<Vec<Workload>, StoreError>;

    /// Keeps a benchmark report (JSON) under its id, replacing an earlier version.
    async fn save_benchmark(&self, id: &str, report: &str) -> Result<(), StoreError>;

    /// One stored benchmark report (JSON).
    async fn benchmark(&self, id: &str) -> Result<String, StoreError>;

    /// Stored benchmark reports (JSON), newest first.
    async fn benchmarks(&self, limit: u32) -> Result<Vec<String>, StoreError>;
}
