//! The ports that keep workloads: [`WorkloadStore`] (the records and their queue),
//! [`LogStore`] (their log lines), [`StatsStore`] (figures from counters) and
//! [`BenchmarkStore`] (benchmark reports).
//!
//! A workload's life in the store: `enqueue` (pending, admitted against its tenant's quota
//! and its backend's queue limit, claimed at once by the submitting node if it can run it)
//! → `claim` (pending, claimed by a node with a free slot: one claim, never two) → `start`
//! (running, only by the node that claimed it) → `finish` (terminal). Every status change
//! applies only if the stored status still allows it: a stale writer never overwrites an
//! ending.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::{
    InvalidTransition, Isolation, LogLine, LogStream, Quota, Stats, Workload, WorkloadSpec,
    WorkloadStatus,
};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("workload {0} not found")]
    NotFound(String),
    /// Something other than a workload is not there; the message says what.
    #[error("{0}")]
    Missing(String),
    #[error(transparent)]
    InvalidTransition(#[from] InvalidTransition),
    #[error("workload {0} already exists")]
    Duplicate(String),
    /// Another writer got there first (a schedule's tick already claimed); the message
    /// says what.
    #[error("{0}")]
    Conflict(String),
    /// The workload was not admitted; nothing was stored.
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("store failure: {0}")]
    Io(String),
}

/// Why a submission was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The tenant is at a quota; retry after the given seconds.
    #[error("{message}")]
    OverQuota { message: String, retry_after_s: u64 },
    /// The workload can never fit the tenant's quota.
    #[error("{0}")]
    Forbidden(String),
    /// The backend's queue is full (across the cluster); retry after the given seconds.
    #[error("{message}")]
    Overloaded { message: String, retry_after_s: u64 },
}

/// What a new workload is admitted against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admission {
    /// The tenant's quota (`None`: no quota, for admins and recovery).
    pub quota: Option<Quota>,
    /// Most workloads that may be pending for its backend (`None`: no limit).
    pub max_queue: Option<u64>,
    /// Claim it for this node and mark it `running` there at once (`started_at` =
    /// `created_at`), if no older workload of its backend is waiting: the node starts it
    /// without another transaction.
    pub claim_for: Option<String>,
    /// It is a schedule's tick: claim the tick in the same transaction, or store nothing
    /// ([`StoreError::Conflict`]) if another node claimed it first.
    pub fire: Option<crate::Tick>,
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
    /// Only workloads older than this id (a cursor: the page before's `next`).
    pub after: Option<String>,
    /// Only invocations of this function.
    pub function: Option<String>,
    /// Only runs fired by this schedule.
    pub schedule: Option<String>,
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
    /// What the run used, where the backend measured it.
    pub usage: Option<crate::Usage>,
    /// Its last log lines not yet stored: written in the same transaction, before the
    /// status turns terminal.
    pub last_lines: Vec<crate::LogLine>,
}

/// What a status change expects of the stored workload: it applies only if this still
/// holds when it is written (one read and one write, in one transaction), so a decision
/// made on a read is never applied to a workload that has moved on since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Not started anywhere (claimed or not): a kill before it started.
    Pending,
    /// Pending and claimed by this node: its start, or its failure before the start.
    ClaimedBy(String),
    /// Running on this node: the end of its run.
    RunningOn(String),
    /// Pending or running, anywhere: recovery of what a node left behind.
    Live,
}

impl Expect {
    /// Whether a workload with `status`, claimed by `claimed_by` and run by `node`, is
    /// what this expects.
    pub fn holds(
        &self,
        status: WorkloadStatus,
        claimed_by: Option<&str>,
        node: Option<&str>,
    ) -> bool {
        match self {
            Expect::Pending => status == WorkloadStatus::Pending,
            Expect::ClaimedBy(n) => {
                status == WorkloadStatus::Pending && claimed_by == Some(n.as_str())
            }
            Expect::RunningOn(n) => status == WorkloadStatus::Running && node == Some(n.as_str()),
            Expect::Live => !status.is_terminal(),
        }
    }
}

/// A workload claimed by a node, with the spec it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub workload: Workload,
    pub spec: WorkloadSpec,
}

/// Workloads and their queue. Every status change goes through [`WorkloadStore::start`] or
/// [`WorkloadStore::finish`], which apply it only if the stored status still allows it:
/// a stale writer can never overwrite a terminal state.
#[async_trait]
pub trait WorkloadStore: Send + Sync {
    /// Admits and records a new workload with the spec that will run it, in one
    /// transaction: the backend's queue limit and the tenant's quota hold across every node
    /// sharing the store. It is stored `pending`, or `running` on `admission.claim_for`
    /// when that node may start it at once; returns whether it was.
    async fn enqueue(
        &self,
        workload: &Workload,
        spec: &WorkloadSpec,
        admission: &Admission,
    ) -> Result<bool, StoreError>;

    async fn get(&self, id: &str) -> Result<Workload, StoreError>;

    async fn spec(&self, id: &str) -> Result<WorkloadSpec, StoreError>;

    async fn list(&self, filter: &ListFilter) -> Result<WorkloadPage, StoreError>;

    /// Claims the oldest unclaimed pending workload of `isolation` for `node`, if any, and
    /// answers it with its spec (one statement); two nodes never claim the same one.
    async fn claim(&self, node: &str, isolation: Isolation) -> Result<Option<Claimed>, StoreError>;

    /// pending → running, by the node that claimed it (any other gets an invalid transition).
    async fn start(
        &self,
        id: &str,
        node: &str,
        started_at: OffsetDateTime,
    ) -> Result<Workload, StoreError>;

    /// pending | running → completed | failed | killed, if the workload is still as
    /// `expect` says (else an invalid transition from what it is now, and nothing is
    /// written, `update.last_lines` included). Every node sharing the store hears of the
    /// end ([`crate::Signal::Ended`]) when it commits: the caller tells only its own.
    async fn finish(
        &self,
        id: &str,
        update: &TerminalUpdate,
        expect: &Expect,
    ) -> Result<Workload, StoreError>;

    /// Asks the node running `id` to stop it; returns the workload as it is now.
    async fn request_kill(&self, id: &str) -> Result<Workload, StoreError>;

    /// Workloads of `node` not yet terminal that someone asked to kill.
    async fn kill_requests(&self, node: &str) -> Result<Vec<String>, StoreError>;

    /// Gives back the pending workloads `node` claimed before `claimed_before` but is not
    /// running (`keep` are the ones it is): they go back to the queue. Returns how many.
    async fn unclaim(
        &self,
        node: &str,
        keep: &[String],
        claimed_before: OffsetDateTime,
    ) -> Result<u64, StoreError>;

    /// Workloads `node` was running (status `running` on it), oldest first: what a restart
    /// fails.
    async fn running_on(&self, node: &str) -> Result<Vec<Workload>, StoreError>;
}

/// Workloads' log lines.
#[async_trait]
pub trait LogStore: Send + Sync {
    /// Appends lines in order. Lines already stored (same seq) are ignored.
    async fn append_logs(&self, id: &str, lines: &[LogLine]) -> Result<(), StoreError>;

    /// A workload's log lines in order, optionally of one stream only.
    async fn logs(&self, id: &str, stream: Option<LogStream>) -> Result<Vec<LogLine>, StoreError>;

    /// Lines after `seq`, in order (following a workload another node runs).
    async fn logs_after(&self, id: &str, seq: u64) -> Result<Vec<LogLine>, StoreError>;
}

/// Figures over workloads, from counters kept beside the rows: never a scan.
#[async_trait]
pub trait StatsStore: Send + Sync {
    /// Figures over every workload, or over one tenant's.
    async fn stats(&self, tenant: Option<&str>) -> Result<Stats, StoreError>;

    /// Workloads created since `since` (of one tenant, or all), counted per minute: minute
    /// (milliseconds since the epoch / 60,000) → count. A range read of the time-ordered ids.
    async fn created_per_minute(
        &self,
        tenant: Option<&str>,
        since: OffsetDateTime,
    ) -> Result<std::collections::BTreeMap<i64, u64>, StoreError>;
}

/// Benchmark reports, kept whole as JSON.
#[async_trait]
pub trait BenchmarkStore: Send + Sync {
    /// Keeps a benchmark report (JSON) under its id, replacing an earlier version.
    async fn save_benchmark(&self, id: &str, report: &str) -> Result<(), StoreError>;

    /// One stored benchmark report (JSON).
    async fn benchmark(&self, id: &str) -> Result<String, StoreError>;

    /// Stored benchmark reports (JSON), newest first.
    async fn benchmarks(&self, limit: u32) -> Result<Vec<String>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use WorkloadStatus::*;

    #[test]
    fn an_expectation_holds_only_for_the_state_it_names() {
        let (a, b) = (Some("a"), Some("b"));
        assert!(Expect::Pending.holds(Pending, b, None));
        assert!(!Expect::Pending.holds(Running, b, b), "started meanwhile");
        let claimed = Expect::ClaimedBy("a".into());
        assert!(claimed.holds(Pending, a, None));
        assert!(
            !claimed.holds(Pending, b, None),
            "another node holds the claim"
        );
        assert!(!claimed.holds(Running, a, a));
        let running = Expect::RunningOn("a".into());
        assert!(running.holds(Running, a, a));
        assert!(!running.holds(Running, b, b));
        assert!(!running.holds(Pending, a, None));
        assert!(Expect::Live.holds(Running, b, b) && Expect::Live.holds(Pending, None, None));
        for done in [Completed, Failed, Killed] {
            for e in [
                Expect::Pending,
                claimed.clone(),
                running.clone(),
                Expect::Live,
            ] {
                assert!(!e.holds(done, a, a), "{e:?} {done}");
            }
        }
    }
}
