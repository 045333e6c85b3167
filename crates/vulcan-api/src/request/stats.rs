//! `GET /v1/stats` and `GET /metrics`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use vulcan_domain::{Permission, Stats};

use crate::auth::Caller;
use crate::{ApiError, AppState};

/// Figures over the caller's tenant (every tenant for admins).
#[utoipa::path(get, path = "/v1/stats", tag = "cluster", responses((status = 200, description = "OK", body = vulcan_domain::Stats), crate::openapi::Errors))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Stats>, ApiError> {
    caller.require(Permission::StatsRead)?;
    Ok(Json(state.engine.store().stats(caller.scope()).await?))
}

/// Prometheus metrics, in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "cluster", responses((status = 200, description = "Prometheus metrics (OpenMetrics text)", content_type = "application/openmetrics-text", body = String), crate::openapi::Errors))]
pub async fn metrics(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Permission::StatsRead)?;
    Ok((
        [(header::CONTENT_TYPE, vulcan_engine::metrics::CONTENT_TYPE)],
        state.engine.render_metrics(),
    ))
}
