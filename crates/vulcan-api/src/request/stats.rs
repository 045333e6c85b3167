//! `GET /v1/stats` and `GET /metrics`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use vulcan_domain::Stats;

use crate::{ApiError, AppState};

pub async fn show(State(state): State<AppState>) -> Result<Json<Stats>, ApiError> {
    Ok(Json(state.engine.store().stats().await?))
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.engine.metrics().render(),
    )
}
