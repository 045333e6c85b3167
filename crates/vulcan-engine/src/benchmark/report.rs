//! What a benchmark is asked (`POST /v1/benchmarks`) and what it answers: figures per
//! backend and mode, progress, the whole report.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use vulcan_domain::Isolation;

/// `POST /v1/benchmarks`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkRequest {
    /// Sequential warm runs per backend, and runs of the concurrent phase.
    #[serde(default = "default_iterations")]
    #[serde(deserialize_with = "vulcan_domain::whole::int")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub iterations: u32,
    /// Runs in flight during the throughput phase.
    #[serde(default = "default_concurrency")]
    #[serde(deserialize_with = "vulcan_domain::whole::int")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 64))]
    pub concurrency: u32,
    /// The image of the gvisor runs [default: the default image], and of the microvm runs
    /// when given (instead of the built-in python root).
    #[serde(default)]
    pub image: Option<String>,
    /// Backends to measure [default: every available one].
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<vulcan_domain::ConcreteIsolation>>))]
    pub backends: Option<Vec<Isolation>>,
    /// What the caller may have pulled for the gvisor runs; set from the caller, never
    /// from the body.
    #[serde(skip)]
    pub pulls: crate::ImagePulls,
}

fn default_iterations() -> u32 {
    20
}

fn default_concurrency() -> u32 {
    4
}

impl Default for BenchmarkRequest {
    fn default() -> Self {
        BenchmarkRequest {
            iterations: default_iterations(),
            concurrency: default_concurrency(),
            image: None,
            backends: None,
            pulls: crate::ImagePulls::default(),
        }
    }
}

/// Figures of one backend.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackendFigures {
    pub backend: Isolation,
    /// `workload` (one-shot runs) or `function` (invocations of a deployed function).
    #[serde(default = "workload_mode")]
    pub mode: String,
    /// What ran.
    pub workload: String,
    /// Why the backend was not measured, if it was not.
    pub skipped: Option<String>,
    pub cold_start_ms: Option<f64>,
    pub warm_start_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub throughput_per_s: Option<f64>,
    pub memory_per_workload_mb: Option<f64>,
    pub runs: u32,
    pub failed_runs: u32,
    pub first_error: Option<String>,
    /// How long the backend took to ready a sandbox, by how (microvm: `boot`, `restore`),
    /// median ms over its recent starts, as it reported them after this backend's runs.
    #[serde(default)]
    pub start_ms: std::collections::BTreeMap<String, f64>,
}

fn workload_mode() -> String {
    "workload".into()
}

impl BackendFigures {
    pub(super) fn new(backend: Isolation, mode: &str) -> Self {
        BackendFigures {
            backend,
            mode: mode.into(),
            workload: String::new(),
            skipped: None,
            cold_start_ms: None,
            warm_start_ms: None,
            p50_ms: None,
            p95_ms: None,
            throughput_per_s: None,
            memory_per_workload_mb: None,
            runs: 0,
            failed_runs: 0,
            first_error: None,
            start_ms: Default::default(),
        }
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Progress {
    pub done: u32,
    pub total: u32,
}

/// A benchmark, running or finished.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchmarkReport {
    pub id: String,
    /// `running`, `completed` or `failed`.
    pub status: String,
    pub node_id: String,
    pub cpus: usize,
    pub request: BenchmarkRequest,
    pub progress: Progress,
    pub results: Vec<BackendFigures>,
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}
