//! What the API reads, through the engine: workloads and their specs, their log lines,
//! the figures, and benchmark reports. Reads only: every change goes through the engine's
//! own operations (submit, kill, deploy, …), never a store port in a handler's hands.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use vulcan_domain::{
    ListFilter, LogLine, LogStream, Stats, StoreError, Workload, WorkloadPage, WorkloadSpec,
};

use crate::Engine;

impl Engine {
    /// One workload, wherever it runs.
    pub async fn workload(&self, id: &str) -> Result<Workload, StoreError> {
        self.inner.store.get(id).await
    }

    /// What a workload was asked to run.
    pub async fn workload_spec(&self, id: &str) -> Result<WorkloadSpec, StoreError> {
        self.inner.store.spec(id).await
    }

    /// A page of workloads, newest first, and how many match.
    pub async fn workloads(&self, filter: &ListFilter) -> Result<WorkloadPage, StoreError> {
        self.inner.store.list(filter).await
    }

    /// A workload's stored log lines, in order (optionally of one stream).
    pub async fn logs(
        &self,
        id: &str,
        stream: Option<LogStream>,
    ) -> Result<Vec<LogLine>, StoreError> {
        self.inner.logs.logs(id, stream).await
    }

    /// A workload's stored lines after `seq` (following a run on another node).
    pub async fn logs_after(&self, id: &str, seq: u64) -> Result<Vec<LogLine>, StoreError> {
        self.inner.logs.logs_after(id, seq).await
    }

    /// Figures over everyone's workloads, or one tenant's.
    pub async fn stats(&self, tenant: Option<&str>) -> Result<Stats, StoreError> {
        self.inner.stats.stats(tenant).await
    }

    /// Workloads created per minute since `since` (one tenant's, or all).
    pub async fn created_per_minute(
        &self,
        tenant: Option<&str>,
        since: OffsetDateTime,
    ) -> Result<BTreeMap<i64, u64>, StoreError> {
        self.inner.stats.created_per_minute(tenant, since).await
    }

    /// One kept benchmark report (JSON).
    pub async fn benchmark_report(&self, id: &str) -> Result<String, StoreError> {
        self.inner.benchmarks.benchmark(id).await
    }

    /// Kept benchmark reports (JSON), newest first.
    pub async fn benchmark_reports(&self, limit: u32) -> Result<Vec<String>, StoreError> {
        self.inner.benchmarks.benchmarks(limit).await
    }
}
