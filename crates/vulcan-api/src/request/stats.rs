//! `GET /v1/stats` and `GET /metrics`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use vulcan_domain::{Permission, Stats};

use crate::auth::Caller;
use crate::{ApiError, AppState};

/// Figures over the caller's tenant (every tenant for admins).
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Stats>, ApiError> {
    caller.require(Permission::StatsRead)?;
    Ok(Json(state.engine.store().stats(caller.scope()).await?))
}

/// Prometheus text exposition.
pub async fn metrics(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Permission::StatsRead)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.engine.metrics().render(),
    ))
}
