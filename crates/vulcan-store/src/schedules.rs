//! What both stores share about schedules and the runs they fire.

use vulcan_domain::{Overlap, StoreError, Trigger};

/// A workload's trigger from its two columns.
pub(crate) fn trigger_of(kind: Option<String>, id: Option<String>) -> Option<Trigger> {
    Some(Trigger {
        kind: kind?,
        id: id?,
    })
}

/// A tick another node claimed first (or a schedule disabled or changed meanwhile).
pub(crate) fn tick_taken(schedule: &str) -> StoreError {
    StoreError::Conflict(format!(
        "the tick of schedule {schedule} was already fired, or the schedule changed"
    ))
}

pub(crate) fn missing_schedule(id: &str) -> StoreError {
    StoreError::Missing(format!(
        "schedule {id} not found: GET /v1/schedules lists them"
    ))
}

pub(crate) fn too_many_schedules(tenant: &str, max: u32) -> StoreError {
    StoreError::Refused(vulcan_domain::Refusal::Forbidden(format!(
        "tenant {tenant} has {max} schedules, the most its quota allows (max_schedules): delete one first, or ask an admin to raise it (PUT /v1/tenants/{tenant}/quota)"
    )))
}

pub(crate) fn missing_secret(name: &str) -> StoreError {
    StoreError::Missing(format!(
        "secret {name} not found: PUT /v1/secrets/{name} stores it, GET /v1/secrets lists them"
    ))
}

pub(crate) const SCHEDULE_COLUMNS: &str = "id, tenant, function, cron, timezone, input, overlap, \
    enabled, next_run_at, last_run_at, last_workload_id, skipped_ticks, last_skipped_at, \
    last_skip_reason, created_at, updated_at";

/// A schedule's stored input (JSON text) and overlap back to their types.
pub(crate) fn parsed(
    input: &str,
    overlap: &str,
) -> Result<(serde_json::Value, Overlap), StoreError> {
    let input = serde_json::from_str(input)
        .map_err(|e| StoreError::Io(format!("a schedule's stored input is not JSON: {e}")))?;
    let overlap = Overlap::parse(overlap).ok_or_else(|| {
        StoreError::Io(format!(
            "a schedule's stored overlap {overlap:?} is not known"
        ))
    })?;
    Ok((input, overlap))
}
