//! What both stores share about follow-ups ([`vulcan_domain::FollowupStore`]): the table,
//! and how a row becomes a [`Followup`].

use vulcan_domain::{AsyncPolicy, Followup, FollowupKind, StoreError, WorkloadSpec};

/// The follow-ups' table: SQLite's migration 15 and PostgreSQL's 11, the same SQL for both.
/// A workload's row has the workload's id and its policy; a POST's has the url and body.
/// Once shipped, never edited: a change is a migration of its own.
pub(crate) const SCHEMA: &str = r#"
    CREATE TABLE followups (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        kind TEXT NOT NULL,
        policy TEXT,
        url TEXT,
        body TEXT,
        private_ok BIGINT NOT NULL DEFAULT 0,
        due_at BIGINT NOT NULL,
        expires_at BIGINT,
        attempts BIGINT NOT NULL DEFAULT 0,
        retry_id TEXT,
        last_error TEXT
    );
    CREATE INDEX followups_by_due ON followups (due_at);
    "#;

/// The condition of a row that may be taken at `now` (the first parameter of the
/// statement, written `{now}`): a POST whose time has come, or a workload's that ended or
/// still waits past its age limit. `w` is the workload joined on the row's id.
pub(crate) fn due_sql(now: &str) -> String {
    format!(
        "f.due_at <= {now} AND (f.kind = 'post'
           OR w.status IN ('completed', 'failed', 'killed')
           OR (w.status = 'pending' AND f.expires_at <= {now}))"
    )
}

/// The columns a taken row is read from, in this order.
pub(crate) const TAKEN_COLUMNS: &str = "id, tenant, kind, policy, url, body, private_ok, attempts";

/// What the admission of a workload stores of its follow-up: (policy JSON, expires_at ms).
pub(crate) fn policy_row(spec: &WorkloadSpec) -> Result<Option<(String, Option<i64>)>, StoreError> {
    let Some(policy) = &spec.async_policy else {
        return Ok(None);
    };
    let json = serde_json::to_string(policy)
        .map_err(|e| StoreError::Io(format!("an async policy: {e}")))?;
    Ok(Some((json, policy.expires_at().map(crate::sqlite::to_ms))))
}

/// One taken row, from the columns of [`TAKEN_COLUMNS`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn followup(
    id: String,
    tenant: String,
    kind: &str,
    policy: Option<String>,
    url: Option<String>,
    body: Option<String>,
    private_ok: i64,
    attempts: i64,
) -> Result<Followup, StoreError> {
    let bad = |what: &str| StoreError::Io(format!("follow-up {id}: {what}"));
    let kind = match kind {
        "workload" => {
            let policy: AsyncPolicy =
                serde_json::from_str(policy.as_deref().ok_or_else(|| bad("no policy"))?)
                    .map_err(|e| bad(&format!("its policy is not one: {e}")))?;
            FollowupKind::Workload {
                policy: Box::new(policy),
            }
        }
        "post" => FollowupKind::Post {
            url: url.ok_or_else(|| bad("no url"))?,
            body: body.unwrap_or_default(),
            private_ok: private_ok != 0,
        },
        other => return Err(bad(&format!("unknown kind {other:?}"))),
    };
    Ok(Followup {
        attempts: attempts.clamp(0, u32::MAX.into()) as u32,
        id,
        tenant,
        kind,
    })
}
