//! The workload record as it is stored and served.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{Isolation, Runtime, WorkloadStatus};

fn default_tenant() -> String {
    crate::DEFAULT_TENANT.to_owned()
}

/// One submitted piece of code and everything known about its run.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// A ULID: sortable by creation time.
    pub id: String,
    pub status: WorkloadStatus,
    /// The isolation actually used.
    pub isolation: Isolation,
    /// What the request asked for (`auto` or the same as `isolation`).
    pub requested_isolation: Isolation,
    pub runtime: Runtime,
    /// The node that claimed and ran it; `None` while it waits in the queue.
    pub node_id: Option<String>,
    /// The tenant whose key submitted it (`default` when auth is off).
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// The function it is an invocation of, and which version.
    #[serde(default)]
    pub function: Option<String>,
    #[serde(default)]
    pub function_version: Option<u32>,
    /// What started it, if not a request (`{"kind": "schedule", "id"}`).
    #[serde(default)]
    pub trigger: Option<crate::Trigger>,
    /// SHA-256 of the code, archive, image, command and input, hex-encoded.
    pub input_hash: String,
    pub output: Option<String>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub cpu_limit: u32,
    /// Memory limit in MiB.
    pub mem_limit: u32,
    pub timeout_s: u32,
    /// Wall time from `running` to the end, in ms; `None` if it never ran.
    pub duration_ms: Option<u64>,
    /// The part of `duration_ms` spent preparing the run (booting a VM, pulling an image,
    /// starting a process) before the code started; the timeout counts after it.
    #[serde(default)]
    pub prepare_ms: Option<u64>,
    /// CPU time the run used, in ms (where the backend measured it).
    #[serde(default)]
    pub cpu_time_ms: Option<u64>,
    /// The run's peak memory, in bytes.
    #[serde(default)]
    pub peak_memory_bytes: Option<u64>,
    /// Most processes at once, where the backend can tell.
    #[serde(default)]
    pub max_processes: Option<u64>,
    /// Bytes sent and received over the network, for a workload that had one.
    #[serde(default)]
    pub net_tx_bytes: Option<u64>,
    #[serde(default)]
    pub net_rx_bytes: Option<u64>,
    /// The id of the API request that created it.
    #[serde(default)]
    pub request_id: Option<String>,
    /// The trace it is part of (32 hex digits), when traces are exported.
    #[serde(default)]
    pub trace_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

impl Workload {
    /// A workload just accepted to run `run` (its isolation the one chosen; `requested` what
    /// was asked for): `pending`, claimed by no node, nothing run or measured yet.
    pub fn pending(
        id: String,
        tenant: String,
        run: &crate::Code,
        requested: Isolation,
        input_hash: String,
        created_at: OffsetDateTime,
        request_id: Option<String>,
    ) -> Workload {
        Workload {
            id,
            status: WorkloadStatus::Pending,
            isolation: run.isolation,
            requested_isolation: requested,
            runtime: run.runtime,
            node_id: None,
            tenant,
            function: None,
            function_version: None,
            trigger: None,
            input_hash,
            output: None,
            exit_code: None,
            error: None,
            cpu_limit: run.resources.cpus,
            mem_limit: run.resources.mem_mb,
            timeout_s: run.resources.timeout_s,
            duration_ms: None,
            prepare_ms: None,
            cpu_time_ms: None,
            peak_memory_bytes: None,
            max_processes: None,
            net_tx_bytes: None,
            net_rx_bytes: None,
            request_id,
            trace_id: None,
            created_at,
            started_at: None,
            finished_at: None,
        }
    }
}
