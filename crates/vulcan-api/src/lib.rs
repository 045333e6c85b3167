//! Vulcan's HTTP API. One file per resource under [`request`]: parsing, validation and
//! error mapping for a route live together. The contract is in docs/api.md.
//!
//! Errors are always `{"error": "..."}` with a status that says whose fault it is.

pub mod auth;
mod client;
pub mod dashboard;
pub mod e2b;
mod error;
mod extract;
mod forward;
mod login_failures;
pub mod openapi;
mod public_calls;
mod request;
mod telemetry;

use std::time::Instant;

use axum::Router;
use vulcan_engine::{Benchmarks, Engine};

pub use auth::Auth;
pub use client::TrustedProxies;
pub use request::ws::Seats as WsSeats;

pub use error::ApiError;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub benchmarks: Benchmarks,
    pub auth: Auth,
    pub started: Instant,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How often WebSocket clients are pinged; one silent for three pings is closed.
    pub ws_ping: std::time::Duration,
    /// Where functions' HTTP triggers are served when not on this listener
    /// (`VULCAN_TRIGGER_ADDR`): here they answer 404 saying so.
    pub triggers_at: Option<std::net::SocketAddr>,
    /// Open WebSockets per key, bounded.
    pub ws_seats: std::sync::Arc<WsSeats>,
}

/// Every route of the API, listed as it is added (see [`openapi`]).
pub(crate) fn routes() -> openapi::Routes {
    use request::{
        audit, backends, benchmarks, functions, health, images, keys, logs, me, nodes, queues,
        sandboxes, schedules, secrets, stats, tenants, topics, trigger, volumes, workloads, ws,
    };
    openapi::Routes::new()
        .get("/v1/workloads", workloads::list)
        .post("/v1/workloads", workloads::create)
        .post("/v1/workloads/async", workloads::create_async)
        .get("/v1/workloads/{id}", workloads::show)
        .get("/v1/workloads/{id}/spec", workloads::spec)
        .delete("/v1/workloads/{id}", workloads::kill)
        .get("/v1/workloads/{id}/logs", logs::stream)
        .get("/v1/workloads/{id}/logs/history", logs::history)
        .get("/v1/backends", backends::list)
        .get("/v1/images", images::list)
        .post("/v1/images", images::pull)
        .get("/v1/images/{*reference}", images::show)
        .delete("/v1/images/{*reference}", images::remove)
        .get("/v1/stats", stats::show)
        .get("/v1/stats/timeline", stats::timeline)
        .get("/v1/me", me::show)
        .get("/v1/nodes", nodes::list)
        .get("/v1/nodes/{id}", nodes::show)
        .get("/v1/benchmarks", benchmarks::list)
        .post("/v1/benchmarks", benchmarks::start)
        .get("/v1/benchmarks/{id}", benchmarks::show)
        .get("/v1/keys", keys::list)
        .post("/v1/keys", keys::create)
        .delete("/v1/keys/{id}", keys::revoke)
        .get("/v1/audit", audit::list)
        .get("/v1/functions", functions::list)
        .get("/v1/functions/{name}", functions::show)
        .put("/v1/functions/{name}", functions::deploy)
        .delete("/v1/functions/{name}", functions::remove)
        .get("/v1/functions/{name}/versions", functions::versions)
        .put("/v1/functions/{name}/active", functions::activate)
        .post("/v1/functions/{name}/invoke", functions::invoke)
        .post("/v1/functions/{name}/invoke/async", functions::invoke_async)
        .get("/v1/schedules", schedules::list)
        .post("/v1/schedules", schedules::create)
        .get("/v1/schedules/{id}", schedules::show)
        .patch("/v1/schedules/{id}", schedules::patch)
        .delete("/v1/schedules/{id}", schedules::remove)
        .get("/v1/secrets", secrets::list)
        .post("/v1/secrets/rotate-key", secrets::rotate_key)
        .put("/v1/secrets/{name}", secrets::put)
        .delete("/v1/secrets/{name}", secrets::remove)
        .any("/fn/{tenant}/{name}", trigger::call)
        .any("/fn/{tenant}/{name}/{*path}", trigger::call_path)
        .get("/v1/volumes", volumes::list)
        .post("/v1/volumes", volumes::create)
        .get("/v1/volumes/{name}", volumes::show)
        .delete("/v1/volumes/{name}", volumes::remove)
        .get("/v1/queues", queues::list)
        .post("/v1/queues", queues::create)
        .get("/v1/queues/{name}", queues::show)
        .put("/v1/queues/{name}", queues::put)
        .delete("/v1/queues/{name}", queues::remove)
        .post("/v1/queues/{name}/purge", queues::purge)
        .post("/v1/queues/{name}/messages", queues::send)
        .post("/v1/queues/{name}/receive", queues::receive)
        .post("/v1/queues/{name}/ack", queues::ack)
        .post("/v1/queues/{name}/nack", queues::nack)
        .get("/v1/topics", topics::list)
        .post("/v1/topics", topics::create)
        .get("/v1/topics/{name}", topics::show)
        .delete("/v1/topics/{name}", topics::remove)
        .post("/v1/topics/{name}/subscriptions", topics::subscribe)
        .delete("/v1/topics/{name}/subscriptions/{id}", topics::unsubscribe)
        .post("/v1/topics/{name}/publish", topics::publish)
        .get("/v1/sandboxes", sandboxes::list)
        .post("/v1/sandboxes", sandboxes::create)
        .get("/v1/sandboxes/{id}", sandboxes::show)
        .delete("/v1/sandboxes/{id}", sandboxes::remove)
        .post("/v1/sandboxes/{id}/timeout", sandboxes::timeout)
        .post("/v1/sandboxes/{id}/pause", sandboxes::pause)
        .post("/v1/sandboxes/{id}/resume", sandboxes::resume)
        .get("/v1/sandboxes/{id}/metrics", sandboxes::metrics)
        .get("/v1/sandboxes/{id}/processes", sandboxes::processes)
        .post("/v1/sandboxes/{id}/processes", sandboxes::start_process)
        .get("/v1/sandboxes/{id}/processes/{pid}", sandboxes::process)
        .get(
            "/v1/sandboxes/{id}/processes/{pid}/output",
            sandboxes::output,
        )
        .post("/v1/sandboxes/{id}/processes/{pid}/input", sandboxes::input)
        .post(
            "/v1/sandboxes/{id}/processes/{pid}/signal",
            sandboxes::signal,
        )
        .post(
            "/v1/sandboxes/{id}/processes/{pid}/resize",
            sandboxes::resize,
        )
        .get("/v1/sandboxes/{id}/files", sandboxes::download)
        .put("/v1/sandboxes/{id}/files", sandboxes::upload)
        .delete("/v1/sandboxes/{id}/files", sandboxes::remove_file)
        .get("/v1/sandboxes/{id}/files/stat", sandboxes::stat)
        .get("/v1/sandboxes/{id}/files/list", sandboxes::list_files)
        .post("/v1/sandboxes/{id}/files/mkdir", sandboxes::mkdir)
        .post("/v1/sandboxes/{id}/files/move", sandboxes::move_file)
        .get("/v1/tenants/{tenant}/quota", tenants::show)
        .put("/v1/tenants/{tenant}/quota", tenants::set)
        .get("/ws/logs/{id}", ws::logs)
        .get("/ws/stats", ws::stats)
        .get("/ws/events", ws::events)
        .get("/ws/sandboxes/{id}/processes/{pid}", ws::sandbox_process)
        .get("/ws/sandboxes/{id}/files/watch", ws::sandbox_watch)
        .get("/healthz", health::show)
        .get("/metrics", stats::metrics)
        .get("/openapi.json", openapi::document)
}

/// Every route the API serves: (method, path as the router spells it).
pub fn served_routes() -> Vec<(axum::http::Method, String)> {
    routes().listed()
}

/// Builds the router with every route of the API.
pub fn router(state: AppState) -> Router {
    let envd = e2b::envd::router().with_state(state.clone());
    let api = routes().into_router().merge(e2b::control_routes());
    layered(api, Some(dashboard::router()), Some(envd), state)
}

/// Builds the router of a listener of functions' HTTP triggers alone
/// (`VULCAN_TRIGGER_ADDR`): no API, no dashboard, so that pages functions answer with are
/// on an origin of their own.
pub fn trigger_router(mut state: AppState) -> Router {
    state.triggers_at = None;
    let triggers = routes()
        .retain(|path| path.starts_with("/fn/"))
        .into_router();
    layered(triggers, None, None, state)
}

/// `routes` behind authentication, then `open` (pages that need no key), `envd` (E2B's
/// in-sandbox routes, for requests naming a sandbox), with the telemetry and body limit
/// every request goes through.
fn layered(
    routes: Router<AppState>,
    open: Option<Router<AppState>>,
    envd: Option<Router>,
    state: AppState,
) -> Router {
    let routes = routes
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::access,
        ));
    let app = open.into_iter().fold(routes, Router::merge);
    let app = match envd {
        Some(envd) => app
            .layer(axum::middleware::from_fn_with_state(envd, e2b::dispatch))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                forward::forward,
            )),
        None => app,
    };
    app.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        telemetry::record,
    ))
    .layer(axum::extract::DefaultBodyLimit::max(state.max_body_bytes))
    .with_state(state)
}
