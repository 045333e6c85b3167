//! What housekeeping writes for a node that was lost, the same in every store.

use time::OffsetDateTime;
use vulcan_domain::{TerminalUpdate, WorkloadStatus};

/// The error of a workload whose node was lost.
pub(crate) fn lost_error(node: &str, last_heartbeat: OffsetDateTime) -> String {
    format!(
        "node {node} was lost while running this workload (no heartbeat since {last_heartbeat}); it was not re-run because it may already have had effects"
    )
}

/// The terminal update of a workload whose node was lost.
pub(crate) fn lost_update(why: &str) -> TerminalUpdate {
    TerminalUpdate {
        status: WorkloadStatus::Failed,
        output: None,
        exit_code: None,
        error: Some(why.to_owned()),
        finished_at: OffsetDateTime::now_utc(),
        duration_ms: None,
        prepare_ms: None,
        usage: None,
        last_lines: Vec::new(),
    }
}
