//! `GET /v1/stats` and `GET /metrics`.

use std::collections::HashMap;

use crate::extract::Query;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use time::OffsetDateTime;
use vulcan_domain::{Permission, Stats, Timeline};

use crate::auth::Caller;
use crate::{ApiError, AppState};

/// Figures over the caller's tenant (every tenant for admins).
#[utoipa::path(get, path = "/v1/stats", tag = "cluster", responses((status = 200, description = "OK", body = vulcan_domain::Stats), crate::error::Errors))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Stats>, ApiError> {
    caller.require(Permission::StatsRead)?;
    Ok(Json(state.engine.stats(caller.scope()).await?))
}

/// Workloads created per minute over the last `minutes` (1–1440, default 60), of the
/// caller's tenant (every tenant for admins): what the dashboard's chart starts from.
#[utoipa::path(get, path = "/v1/stats/timeline", tag = "cluster", params(("minutes" = Option<i32>, Query, minimum = 1, maximum = 1440, description = "1 to 1440 (default 60)")), responses((status = 200, description = "OK", body = vulcan_domain::Timeline), crate::error::Errors))]
pub async fn timeline(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Timeline>, ApiError> {
    caller.require(Permission::StatsRead)?;
    let minutes = match params.get("minutes") {
        None => 60,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1440).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "query parameter minutes={v:?} is not valid: use a whole number from 1 to 1440"
                ))
            })?,
    };
    let now = OffsetDateTime::now_utc();
    let window_start =
        now - time::Duration::seconds(i64::from(minutes - 1) * 60 + i64::from(now.second()));
    let counts = state
        .engine
        .created_per_minute(caller.scope(), window_start)
        .await?;
    Ok(Json(Timeline::assemble(now, minutes, &counts)))
}

/// Prometheus metrics, in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "cluster", responses((status = 200, description = "Prometheus metrics (OpenMetrics text)", content_type = "application/openmetrics-text", body = String), crate::error::Errors))]
pub async fn metrics(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Permission::StatsRead)?;
    Ok((
        [(header::CONTENT_TYPE, vulcan_engine::metrics::CONTENT_TYPE)],
        state.engine.render_metrics().await,
    ))
}
