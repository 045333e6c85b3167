//! `/v1/tenants/{tenant}/quota`: a tenant's quota. Read by its own keys and admins; set
//! by admins.

use crate::extract::Path;
use axum::extract::State;
use axum::{Extension, Json};
use serde::Serialize;
use vulcan_domain::{Permission, Quota};

use crate::auth::{AuditTarget, Caller};
use crate::extract::JsonBody;
use crate::{ApiError, AppState};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantQuota {
    tenant: String,
    /// Whether this is the server's default (no quota of its own).
    default: bool,
    #[serde(flatten)]
    quota: Quota,
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/quota", tag = "access", params(("tenant" = String, Path)), responses((status = 200, description = "OK", body = TenantQuota), crate::error::Errors))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tenant): Path<String>,
) -> Result<Json<TenantQuota>, ApiError> {
    caller.require(Permission::StatsRead)?;
    crate::request::keys::valid_name("tenant", &tenant)?;
    if caller.scope().is_some_and(|own| own != tenant) {
        caller.require(Permission::AllTenants)?;
    }
    let own = state.engine.quota(&tenant).await?;
    Ok(Json(TenantQuota {
        default: own.is_none(),
        quota: state.engine.quota_of(&tenant).await?,
        tenant,
    }))
}

#[utoipa::path(put, path = "/v1/tenants/{tenant}/quota", tag = "access", params(("tenant" = String, Path)), request_body = vulcan_domain::Quota, responses((status = 200, description = "OK", body = TenantQuota), crate::error::Errors))]
pub async fn set(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tenant): Path<String>,
    JsonBody(quota): JsonBody<Quota>,
) -> Result<(Extension<AuditTarget>, Json<TenantQuota>), ApiError> {
    caller.require(Permission::AllTenants)?;
    crate::request::keys::valid_name("tenant", &tenant)?;
    if quota.max_concurrent == 0
        || quota.per_minute == 0
        || quota.max_cpus == 0
        || quota.max_mem_mb == 0
    {
        return Err(ApiError::bad_request(
            "every quota field (max_concurrent, per_minute, max_cpus, max_mem_mb) must be at least 1",
        ));
    }
    if quota.min_schedule_interval_s == Some(0) {
        return Err(ApiError::bad_request(
            "\"min_schedule_interval_s\" must be at least 1 (a tick a second is the most a cron can do)",
        ));
    }
    if quota.egress_allow.len() > 256 {
        return Err(ApiError::bad_request(
            "\"egress_allow\" lists more than 256 rules: use CIDRs or wildcards",
        ));
    }
    state.engine.set_quota(&tenant, &quota).await?;
    Ok((
        Extension(AuditTarget(tenant.clone())),
        Json(TenantQuota {
            default: false,
            quota: state.engine.quota_of(&tenant).await?,
            tenant,
        }),
    ))
}
