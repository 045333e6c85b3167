//! What both stores share of the sandboxes' table: a record is kept whole as JSON beside
//! the columns lists filter on (tenant, node, state), and changed only through these.

use time::OffsetDateTime;
use vulcan_domain::{Sandbox, SandboxFilter, SandboxPage, SandboxState, StoreError};

/// Rows read at a time while a list filters on metadata.
pub(crate) const BATCH: u32 = 200;

/// `sandbox` moved from `from` to `to` (ended now, for a final state), or why not.
pub(crate) fn moved(
    mut sandbox: Sandbox,
    from: SandboxState,
    to: SandboxState,
    reason: Option<&str>,
) -> Result<Sandbox, StoreError> {
    if sandbox.state != from {
        return Err(StoreError::Conflict(format!(
            "sandbox {} is {}, not {}",
            sandbox.id,
            sandbox.state.as_str(),
            from.as_str()
        )));
    }
    sandbox.state = to;
    if to.is_final() {
        sandbox.ended_at = Some(OffsetDateTime::now_utc());
        sandbox.end_reason = reason.map(str::to_owned);
    }
    Ok(sandbox)
}

/// `sandbox` with deadline `end_at`, or why not (it ended).
pub(crate) fn deadline(
    mut sandbox: Sandbox,
    end_at: OffsetDateTime,
) -> Result<Sandbox, StoreError> {
    if sandbox.state.is_final() {
        return Err(StoreError::Conflict(format!(
            "sandbox {} has {}: its deadline cannot move",
            sandbox.id,
            if sandbox.state == SandboxState::Lost {
                "been lost"
            } else {
                "ended"
            }
        )));
    }
    sandbox.end_at = end_at;
    Ok(sandbox)
}

/// Whether `sandbox` has every metadata pair the filter asks for.
pub(crate) fn has_metadata(filter: &SandboxFilter, sandbox: &Sandbox) -> bool {
    filter
        .metadata
        .iter()
        .all(|(k, v)| sandbox.metadata.get(k) == Some(v))
}

pub(crate) fn to_json(sandbox: &Sandbox) -> Result<String, StoreError> {
    serde_json::to_string(sandbox).map_err(|e| StoreError::Io(e.to_string()))
}

pub(crate) fn from_json(json: &str) -> Result<Sandbox, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Io(format!("a sandbox's record: {e}")))
}

/// Why a tenant with `max` live sandboxes cannot have another.
pub(crate) fn too_many(tenant: &str, max: u32) -> StoreError {
    StoreError::Refused(vulcan_domain::Refusal::OverQuota {
        message: format!(
            "tenant {tenant} has {max} running or paused sandboxes, the most allowed (VULCAN_SANDBOX_MAX_PER_TENANT): delete one first"
        ),
        retry_after_s: 30,
    })
}

/// The first `limit` of `found` (newest first), and a cursor if there were more.
pub(crate) fn page(mut found: Vec<Sandbox>, limit: u32) -> SandboxPage {
    let next = (found.len() > limit as usize).then(|| {
        found.truncate(limit as usize);
        found.last().map(|s| s.id.clone()).unwrap_or_default()
    });
    SandboxPage {
        sandboxes: found,
        next,
    }
}
