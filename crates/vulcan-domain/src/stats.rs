//! Aggregate figures over all workloads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Duration figures of the finished workloads of one backend.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendStats {
    pub finished: u64,
    pub avg_duration_ms: f64,
    pub p50_duration_ms: f64,
    pub p95_duration_ms: f64,
    /// Runs whose usage was measured, and their averages.
    #[serde(default)]
    pub measured_runs: u64,
    #[serde(default)]
    pub avg_cpu_time_ms: Option<f64>,
    #[serde(default)]
    pub avg_peak_memory_bytes: Option<f64>,
}

/// `GET /v1/stats`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub total: u64,
    pub by_status: BTreeMap<String, u64>,
    pub by_isolation: BTreeMap<String, u64>,
    pub avg_duration_ms: f64,
    pub backends: BTreeMap<String, BackendStats>,
}
