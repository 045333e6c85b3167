//! `GET /v1/backends`.

use axum::extract::State;
use axum::Json;
use vulcan_domain::BackendInfo;

use crate::AppState;

/// Every configured backend, with `available: false` and the reason where it cannot run.
#[utoipa::path(get, path = "/v1/backends", tag = "cluster", responses((status = 200, description = "OK", body = Vec<vulcan_domain::BackendInfo>), crate::error::Errors))]
pub async fn list(State(state): State<AppState>) -> Json<Vec<BackendInfo>> {
    Json(state.engine.registry().list())
}
