//! `GET /healthz`.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::AppState;

pub async fn show(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "node_id": state.engine.config().node_id,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": state.started.elapsed().as_secs(),
        "active_workloads": state.engine.active_count(),
    }))
}
