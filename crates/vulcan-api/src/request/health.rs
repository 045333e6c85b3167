//! `GET /healthz`.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use crate::AppState;

/// The server is up.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`.
    status: &'static str,
    node_id: String,
    version: &'static str,
    uptime_s: u64,
    active_workloads: usize,
}

#[utoipa::path(get, path = "/healthz", tag = "cluster", security(()), responses((status = 200, description = "OK", body = Health)))]
pub async fn show(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        node_id: state.engine.config().node_id.clone(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: state.started.elapsed().as_secs(),
        active_workloads: state.engine.active_count(),
    })
}
