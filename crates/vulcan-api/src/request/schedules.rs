//! `/v1/schedules`: a deployed function fired on a cron. Each fire is an invocation (a
//! workload with `trigger: {"kind": "schedule", "id"}`); `GET /v1/workloads?schedule=ID`
//! lists them. Schedules belong to the caller's tenant; an admin names another with
//! `?tenant=` when creating, and sees every tenant's.

use std::collections::HashMap;

use crate::extract::{Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use vulcan_domain::{Permission, Schedule};
use vulcan_engine::{SchedulePatch, ScheduleRequest};

use crate::auth::{AuditTarget, Caller};
use crate::extract::JsonBody;
use crate::request::functions::tenant_of;
use crate::{ApiError, AppState};

/// `POST /v1/schedules`: `201` with the schedule (its `id` and `next_run_at`).
#[utoipa::path(post, path = "/v1/schedules", tag = "schedules", params(("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), request_body = vulcan_engine::ScheduleRequest, responses((status = 201, description = "Created", body = vulcan_domain::Schedule), crate::error::Errors))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<HashMap<String, String>>,
    JsonBody(body): JsonBody<ScheduleRequest>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<Schedule>), ApiError> {
    caller.require(Permission::FunctionsWrite)?;
    let tenant = tenant_of(&caller, &params)?;
    let schedule = state.engine.create_schedule(&tenant, body).await?;
    let target = AuditTarget(format!("{tenant}/{}", schedule.id));
    Ok((StatusCode::CREATED, Extension(target), Json(schedule)))
}

#[utoipa::path(get, path = "/v1/schedules", tag = "schedules", responses((status = 200, description = "OK", body = Vec<vulcan_domain::Schedule>), crate::error::Errors))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<Schedule>>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    Ok(Json(state.engine.schedules(caller.scope()).await?))
}

#[utoipa::path(get, path = "/v1/schedules/{id}", tag = "schedules", params(("id" = String, Path)), responses((status = 200, description = "OK", body = vulcan_domain::Schedule), crate::error::Errors))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Schedule>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    Ok(Json(state.engine.schedule(caller.scope(), &id).await?))
}

/// `PATCH /v1/schedules/{id}`: enable, disable or change it.
#[utoipa::path(patch, path = "/v1/schedules/{id}", tag = "schedules", params(("id" = String, Path)), request_body = vulcan_engine::SchedulePatch, responses((status = 200, description = "OK", body = vulcan_domain::Schedule), crate::error::Errors))]
pub async fn patch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<SchedulePatch>,
) -> Result<(Extension<AuditTarget>, Json<Schedule>), ApiError> {
    caller.require(Permission::FunctionsWrite)?;
    let schedule = state
        .engine
        .patch_schedule(caller.scope(), &id, body)
        .await?;
    let target = AuditTarget(format!("{}/{id}", schedule.tenant));
    Ok((Extension(target), Json(schedule)))
}

#[utoipa::path(delete, path = "/v1/schedules/{id}", tag = "schedules", params(("id" = String, Path)), responses((status = 204, description = "Deleted; its runs stay"), crate::error::Errors))]
pub async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Extension<AuditTarget>), ApiError> {
    caller.require(Permission::FunctionsWrite)?;
    state.engine.delete_schedule(caller.scope(), &id).await?;
    Ok((StatusCode::NO_CONTENT, Extension(AuditTarget(id))))
}
