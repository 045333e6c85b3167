//! What a backend is asked to run, and what it answers.

use serde::{Deserialize, Serialize};

use crate::Code;

/// Resource limits of one workload, already validated against the server's limits.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    #[serde(deserialize_with = "crate::whole::int")]
    pub cpus: u32,
    #[serde(deserialize_with = "crate::whole::int")]
    pub mem_mb: u32,
    #[serde(deserialize_with = "crate::whole::int")]
    pub timeout_s: u32,
    /// A cap on the sandbox's network, each way, in megabits a second (with a network
    /// policy only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "crate::whole::opt")]
    pub net_mbps: Option<u32>,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpus: 1,
            mem_mb: 128,
            timeout_s: 30,
            net_mbps: None,
        }
    }
}

/// Everything a backend needs to run one workload. It is persisted with the workload so
/// that a workload accepted before a crash can be run after the restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadSpec {
    pub id: String,
    /// The tenant it belongs to: a backend that keeps a sandbox for later workloads keeps
    /// it for that tenant's only.
    #[serde(default)]
    pub tenant: String,
    /// What runs; its isolation is the one chosen for this run (never `auto`). For an
    /// invocation it is the version's (the stores keep an invocation's without its code,
    /// which a node that claims it from the store gets from the version).
    #[serde(flatten)]
    pub run: Code,
    #[serde(default)]
    pub input: serde_json::Value,
    /// A line for the workload's log when it starts, from routing (`auto` falling back
    /// to another backend, and why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Set for an invocation of a deployed function: which version, and how its instances
    /// are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation: Option<crate::Invocation>,
    /// For an async workload: its retries, age limit, failure queue and callback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub async_policy: Option<crate::AsyncPolicy>,
    /// The tenant's volumes it mounts (gvisor, microvm): it runs on their node, and holds
    /// them from its admission to its end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<crate::VolumeMount>,
    /// The node it runs on: its volumes' (none: any node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Its admission's trace context (a W3C `traceparent`), when traces are exported: the
    /// node that runs it continues that trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// Their files, filled in by the node that runs it just before its backend is called.
    #[serde(skip)]
    pub attached: Vec<crate::VolumeAttach>,
}

/// What came out of a run that the backend saw through to the end. A backend that could
/// not run the workload at all returns a [`crate::BackendError`] instead.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadResult {
    /// The process's exit code, where the workload is a process.
    pub exit_code: Option<i32>,
    /// The returned value's JSON for function-style code, stdout for programs.
    pub output: String,
    /// Why the workload failed, if it did.
    pub error: Option<String>,
    /// What the run used, where the backend could measure it.
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// What one run used, as the kernel counted it for its cgroup (the isolate's process, the
/// sandbox, the guest's workload group).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub cpu_time_ms: u64,
    pub peak_memory_bytes: u64,
    /// Most processes at once, where the backend can tell.
    pub max_processes: Option<u64>,
    /// Bytes the sandbox sent and received over its network, where it had one.
    #[serde(default)]
    pub net_tx_bytes: Option<u64>,
    #[serde(default)]
    pub net_rx_bytes: Option<u64>,
}

impl WorkloadResult {
    /// A run that failed with `error`, before or without any output.
    pub fn failed(error: impl Into<String>) -> WorkloadResult {
        WorkloadResult {
            exit_code: None,
            output: String::new(),
            error: Some(error.into()),
            usage: None,
        }
    }

    /// A run that ended well: no error and, for a process, exit code 0.
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.exit_code.unwrap_or(0) == 0
    }
}
