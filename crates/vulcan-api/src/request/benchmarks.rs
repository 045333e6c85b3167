//! `/v1/benchmarks`: start the built-in benchmark, follow it, read kept reports.

use crate::extract::{Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use vulcan_domain::{Permission, StoreError};
use vulcan_engine::{BenchmarkError, BenchmarkReport, BenchmarkRequest};

use crate::auth::{AuditTarget, Caller};
use crate::extract::JsonBody;
use crate::{ApiError, AppState};

fn parse(json: &str) -> Result<BenchmarkReport, ApiError> {
    serde_json::from_str(json).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("a stored benchmark report is unreadable: {e}"),
        )
    })
}

/// `POST /v1/benchmarks`: `202` with the running report; poll `GET /v1/benchmarks/{id}`.
#[utoipa::path(post, path = "/v1/benchmarks", tag = "cluster", request_body = vulcan_engine::BenchmarkRequest, responses((status = 202, description = "Accepted", body = vulcan_engine::BenchmarkReport), crate::error::Errors))]
pub async fn start(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(mut request): JsonBody<BenchmarkRequest>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<BenchmarkReport>), ApiError> {
    caller.require(Permission::BenchmarksRun)?;
    request.pulls = caller.image_pulls();
    match state.benchmarks.start(request) {
        Ok(report) => Ok((
            StatusCode::ACCEPTED,
            Extension(AuditTarget(report.id.clone())),
            Json(report),
        )),
        Err(BenchmarkError::Invalid(m)) => Err(ApiError::bad_request(m)),
        Err(e @ BenchmarkError::Busy(_)) => Err(ApiError::new(StatusCode::CONFLICT, e.to_string())),
        Err(BenchmarkError::Store(e)) => Err(e.into()),
    }
}

#[utoipa::path(get, path = "/v1/benchmarks/{id}", tag = "cluster", params(("id" = String, Path)), responses((status = 200, description = "OK", body = vulcan_engine::BenchmarkReport), crate::error::Errors))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<BenchmarkReport>, ApiError> {
    caller.require(Permission::StatsRead)?;
    if let Some(report) = state.benchmarks.live(&id) {
        return Ok(Json(report));
    }
    match state.engine.benchmark_report(&id).await {
        Ok(json) => Ok(Json(parse(&json)?)),
        Err(StoreError::NotFound(_)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("benchmark {id} not found"),
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<u32>,
}

/// Kept reports, newest first (`?limit=`, default 20, at most 100).
#[utoipa::path(get, path = "/v1/benchmarks", tag = "cluster", params(("limit" = Option<i32>, Query, minimum = 1, maximum = 100, description = "1 to 100 (default 20)")), responses((status = 200, description = "OK", body = Vec<vulcan_engine::BenchmarkReport>), crate::error::Errors))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<BenchmarkReport>>, ApiError> {
    caller.require(Permission::StatsRead)?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "query parameter limit={limit} is out of range: use 1 to 100"
        )));
    }
    let stored = state.engine.benchmark_reports(limit).await?;
    let mut reports: Vec<BenchmarkReport> =
        stored.iter().map(|j| parse(j)).collect::<Result<_, _>>()?;
    for live in state.benchmarks.live_all() {
        reports.insert(0, live);
    }
    Ok(Json(reports))
}
