//! `GET /v1/audit`: the audit log, newest first, filtered. Admins only.

use std::collections::HashMap;

use crate::extract::Query;
use axum::extract::State;
use axum::{Extension, Json};
use vulcan_domain::{AuditEntry, AuditFilter, Permission};

use crate::auth::Caller;
use crate::{ApiError, AppState};

/// `?actor=&action=&tenant=&outcome=&limit=&offset=` (limit 1–1000, default 100).
/// What became of an audited action (`?outcome=`).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum AuditOutcome {
    Ok,
    Denied,
    Failed,
}

#[utoipa::path(get, path = "/v1/audit", tag = "access", params(("actor" = Option<String>, Query), ("action" = Option<String>, Query), ("tenant" = Option<String>, Query), ("outcome" = Option<AuditOutcome>, Query), ("limit" = Option<i32>, Query, minimum = 1, maximum = 1000, description = "1 to 1000 (default 100)"), ("offset" = Option<i64>, Query, minimum = 0)), responses((status = 200, description = "OK", body = Vec<vulcan_domain::AuditEntry>), crate::error::Errors))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    caller.require(Permission::AuditRead)?;
    let number = |name: &str, default: u64, max: u64| -> Result<u64, ApiError> {
        match params.get(name) {
            None => Ok(default),
            Some(v) => v.parse::<u64>().ok().filter(|n| *n <= max).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "query parameter {name}={v:?} is not valid: use a whole number up to {max}"
                ))
            }),
        }
    };
    let limit = number("limit", 100, 1000)?;
    if limit == 0 {
        return Err(ApiError::bad_request(
            "query parameter limit=0 is not valid: use 1 to 1000",
        ));
    }
    let limit = limit as u32;
    let offset = number("offset", 0, i64::MAX as u64)?;
    if let Some(outcome) = params
        .get("outcome")
        .filter(|o| !["ok", "denied", "failed"].contains(&o.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "query parameter outcome={outcome:?} is not valid: use ok, denied or failed"
        )));
    }
    let text = |name: &str| params.get(name).filter(|v| !v.is_empty()).cloned();
    let filter = AuditFilter {
        actor: text("actor"),
        action: text("action"),
        tenant: text("tenant"),
        outcome: text("outcome"),
        limit,
        offset,
    };
    // Failed logins counted so far are written first: a reader is never behind.
    crate::auth::flush_aggregates(&state, true).await;
    Ok(Json(state.engine.audit(&filter).await?))
}
