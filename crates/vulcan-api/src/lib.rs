//! Vulcan's HTTP API. One file per resource under [`request`]: parsing, validation and
//! error mapping for a route live together. The contract is in the README.
//!
//! Errors are always `{"error": "..."}` with a status that says whose fault it is.

pub mod auth;
mod error;
mod extract;
mod login_failures;
mod request;
mod telemetry;

use std::sync::Arc;
use std::time::Instant;

use axum::routing::get;
use axum::Router;
use vulcan_domain::AccessStore;
use vulcan_engine::{Benchmarks, Engine};

pub use auth::Auth;

pub use error::ApiError;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub benchmarks: Benchmarks,
    /// Keys, audit log and quotas.
    pub access: Arc<dyn AccessStore>,
    pub auth: Auth,
    pub started: Instant,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How often WebSocket clients are pinged; one silent for three pings is closed.
    pub ws_ping: std::time::Duration,
}

/// Builds the router with every route of the API.
pub fn router(state: AppState) -> Router {
    use axum::routing::{any, post, put};
    use request::{
        audit, backends, benchmarks, functions, health, images, keys, logs, nodes, schedules,
        secrets, stats, tenants, trigger, workloads, ws,
    };
    Router::new()
        .route(
            "/v1/workloads",
            get(workloads::list).post(workloads::create),
        )
        .route(
            "/v1/workloads/async",
            axum::routing::post(workloads::create_async),
        )
        .route(
            "/v1/workloads/{id}",
            get(workloads::show).delete(workloads::kill),
        )
        .route("/v1/workloads/{id}/logs", get(logs::stream))
        .route("/v1/workloads/{id}/logs/history", get(logs::history))
        .route("/v1/backends", get(backends::list))
        .route("/v1/images", get(images::list).post(images::pull))
        .route(
            "/v1/images/{*reference}",
            get(images::show).delete(images::remove),
        )
        .route("/v1/stats", get(stats::show))
        .route("/v1/nodes", get(nodes::list))
        .route("/v1/nodes/{id}", get(nodes::show))
        .route(
            "/v1/benchmarks",
            get(benchmarks::list).post(benchmarks::start),
        )
        .route("/v1/benchmarks/{id}", get(benchmarks::show))
        .route("/v1/keys", get(keys::list).post(keys::create))
        .route("/v1/keys/{id}", axum::routing::delete(keys::revoke))
        .route("/v1/audit", get(audit::list))
        .route("/v1/functions", get(functions::list))
        .route(
            "/v1/functions/{name}",
            get(functions::show)
                .put(functions::deploy)
                .delete(functions::remove),
        )
        .route("/v1/functions/{name}/versions", get(functions::versions))
        .route("/v1/functions/{name}/active", put(functions::activate))
        .route("/v1/functions/{name}/invoke", post(functions::invoke))
        .route(
            "/v1/schedules",
            get(schedules::list).post(schedules::create),
        )
        .route(
            "/v1/schedules/{id}",
            get(schedules::show)
                .patch(schedules::patch)
                .delete(schedules::remove),
        )
        .route("/v1/secrets", get(secrets::list))
        .route("/v1/secrets/rotate-key", post(secrets::rotate_key))
        .route(
            "/v1/secrets/{name}",
            put(secrets::put).delete(secrets::remove),
        )
        .route("/fn/{tenant}/{name}", any(trigger::call))
        .route("/fn/{tenant}/{name}/{*path}", any(trigger::call_path))
        .route(
            "/v1/tenants/{tenant}/quota",
            get(tenants::show).put(tenants::set),
        )
        .route("/ws/logs/{id}", get(ws::logs))
        .route("/ws/stats", get(ws::stats))
        .route("/ws/events", get(ws::events))
        .route("/healthz", get(health::show))
        .route("/metrics", get(stats::metrics))
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::access,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            telemetry::record,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(state.max_body_bytes))
        .with_state(state)
}
