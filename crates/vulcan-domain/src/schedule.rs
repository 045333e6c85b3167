//! Schedules: a function fired on a cron, each tick exactly once across the cluster.
//!
//! A tick is claimed by moving the schedule's `next_run_at` from that tick to the one after
//! it, in the same transaction that enqueues the invocation (or records the tick skipped):
//! only one node's move can succeed, and a crash loses neither half alone.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::StoreError;

/// What a tick does while the previous run of the same schedule is still going.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overlap {
    /// Record the tick as skipped.
    #[default]
    Skip,
    /// Start another run.
    Allow,
}

impl Overlap {
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Allow => "allow",
        }
    }

    pub fn parse(s: &str) -> Option<Overlap> {
        match s {
            "skip" => Some(Overlap::Skip),
            "allow" => Some(Overlap::Allow),
            _ => None,
        }
    }
}

/// A function fired on a cron.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub id: String,
    pub tenant: String,
    pub function: String,
    /// Five fields, or six with seconds first.
    pub cron: String,
    /// IANA name; ticks are computed in it.
    pub timezone: String,
    #[serde(default)]
    pub input: serde_json::Value,
    pub overlap: Overlap,
    pub enabled: bool,
    /// The next tick (`None` while disabled).
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_run_at: Option<OffsetDateTime>,
    /// The last tick that started a run, and that run.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_run_at: Option<OffsetDateTime>,
    pub last_workload_id: Option<String>,
    /// Ticks that started nothing (the previous run still going, a quota), the last one's
    /// time and why.
    pub skipped_ticks: u64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_skipped_at: Option<OffsetDateTime>,
    pub last_skip_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// One tick being claimed: the schedule's `next_run_at` moves from `at` to `next`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    pub schedule_id: String,
    pub at: OffsetDateTime,
    pub next: Option<OffsetDateTime>,
}

/// What started a workload other than a direct request.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    /// `schedule`.
    pub kind: String,
    pub id: String,
}

/// Keeps schedules. Firing a tick is [`crate::WorkloadStore::enqueue`] with
/// [`crate::Admission::fire`] set.
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Stores a new schedule, unless its tenant already has `max_per_tenant` (then
    /// [`crate::Refusal::Forbidden`], checked in the same transaction).
    async fn create_schedule(
        &self,
        schedule: &Schedule,
        max_per_tenant: u32,
    ) -> Result<(), StoreError>;

    /// One schedule (`tenant`: only if it is that tenant's).
    async fn schedule(&self, tenant: Option<&str>, id: &str) -> Result<Schedule, StoreError>;

    /// Schedules, one tenant's or everyone's, oldest first.
    async fn schedules(&self, tenant: Option<&str>) -> Result<Vec<Schedule>, StoreError>;

    /// Replaces what can change (function, cron, timezone, input, overlap, enabled,
    /// next_run_at) if its next tick is still `read_next` (what the caller read): false,
    /// changing nothing, if a node fired or skipped a tick since.
    async fn update_schedule(
        &self,
        schedule: &Schedule,
        read_next: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError>;

    async fn delete_schedule(&self, tenant: Option<&str>, id: &str) -> Result<(), StoreError>;

    /// Enabled schedules whose next tick is at or before `now`, taken fairly between
    /// tenants: every tenant's earliest first (earliest first among them), then every
    /// tenant's second, and so on; so one tenant's many schedules never hold back
    /// another's.
    async fn due_schedules(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Schedule>, StoreError>;

    /// The earliest next tick of any enabled schedule.
    async fn next_tick(&self) -> Result<Option<OffsetDateTime>, StoreError>;

    /// Claims `tick` as skipped for `reason`; false if another node claimed it first.
    async fn skip_tick(&self, tick: &Tick, reason: &str) -> Result<bool, StoreError>;
}
