//! `GET /v1/nodes` and `GET /v1/nodes/{id}`: the nodes of this deployment. A node that
//! keeps its state in SQLite is a cluster of one: itself.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use crate::{ApiError, AppState};

#[derive(Debug, Serialize)]
pub struct NodeBackend {
    name: String,
    available: bool,
    /// Workloads waiting for a slot.
    queued: usize,
}

#[derive(Debug, Serialize)]
pub struct Node {
    id: String,
    hostname: String,
    version: &'static str,
    cpus: usize,
    memory_total_mb: u64,
    memory_used_mb: u64,
    /// Workloads accepted here and not ended (pending or running).
    active_workloads: usize,
    uptime_s: u64,
    backends: Vec<NodeBackend>,
}

/// (total, in use) in MiB from /proc/meminfo.
fn memory_mb() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
    };
    let (total, available) = (field("MemTotal:"), field("MemAvailable:"));
    (total / 1024, total.saturating_sub(available) / 1024)
}

fn this_node(state: &AppState) -> Node {
    let (memory_total_mb, memory_used_mb) = memory_mb();
    Node {
        id: state.engine.config().node_id.clone(),
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default(),
        version: env!("CARGO_PKG_VERSION"),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_total_mb,
        memory_used_mb,
        active_workloads: state.engine.active_count(),
        uptime_s: state.started.elapsed().as_secs(),
        backends: state
            .engine
            .registry()
            .list()
            .into_iter()
            .map(|b| NodeBackend {
                queued: b.name.parse().map_or(0, |i| state.engine.queued(i)),
                name: b.name,
                available: b.available,
            })
            .collect(),
    }
}

pub async fn list(State(state): State<AppState>) -> Json<Vec<Node>> {
    Json(vec![this_node(&state)])
}

pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Node>, ApiError> {
    let node = this_node(&state);
    if node.id != id {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("node {id} not found (this node is {})", node.id),
        ));
    }
    Ok(Json(node))
}
