//! `GET /v1/nodes` and `GET /v1/nodes/{id}`: every node of the cluster, as its last
//! heartbeat described it, with its state (`live`, `lost` past its lease, `left` after a
//! clean shutdown). A node on its own SQLite file is a cluster of one: itself.

use crate::extract::Path;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Serialize;
use time::OffsetDateTime;
use vulcan_domain::{NodeRecord, NodeState};

use crate::auth::Caller;
use crate::{ApiError, AppState};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Node {
    #[serde(flatten)]
    record: NodeRecord,
    state: NodeState,
    uptime_s: u64,
}

/// A node as `caller` sees it: its host's addresses for admins only.
fn view(state: &AppState, caller: &Caller, mut record: NodeRecord) -> Node {
    if caller.scope().is_some() {
        record.addresses.clear();
    }
    let lease = time::Duration::try_from(state.engine.config().lease)
        .unwrap_or(time::Duration::seconds(10));
    let now = OffsetDateTime::now_utc();
    Node {
        state: record.state(now, lease),
        uptime_s: (record.heartbeat_at - record.started_at)
            .whole_seconds()
            .max(0) as u64,
        record,
    }
}

#[utoipa::path(get, path = "/v1/nodes", tag = "cluster", responses((status = 200, description = "OK", body = Vec<Node>), crate::error::Errors))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<Node>>, ApiError> {
    let nodes = state.engine.nodes().await?;
    Ok(Json(
        nodes
            .into_iter()
            .map(|n| view(&state, &caller, n))
            .collect(),
    ))
}

#[utoipa::path(get, path = "/v1/nodes/{id}", tag = "cluster", params(("id" = String, Path)), responses((status = 200, description = "OK", body = Node), crate::error::Errors))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Node>, ApiError> {
    let node = state
        .engine
        .nodes()
        .await?
        .into_iter()
        .find(|n| n.id == id)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("node {id} not found: GET /v1/nodes lists them"),
            )
        })?;
    Ok(Json(view(&state, &caller, node)))
}
