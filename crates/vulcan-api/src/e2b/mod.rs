//! E2B compatibility: code written for E2B's SDKs (`e2b` on PyPI and npm) runs against
//! a Vulcan server unchanged, given `E2B_API_URL` and `E2B_SANDBOX_URL` (both this
//! server) and `E2B_API_KEY` (a Vulcan key).
//!
//! - [`control`]: the control plane (`/v2/sandboxes`, `/sandboxes/{id}/…`), behind the
//!   same keys as the rest of the API.
//! - [`envd`]: what E2B's in-sandbox daemon answers (processes over Connect, files), for
//!   every request carrying `E2b-Sandbox-Id`: [`dispatch`] sends those there.

pub mod connect;
pub mod control;
pub mod envd;
mod multipart;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tower_service::Service;

use crate::AppState;

pub(crate) use crate::request::sandboxes::form_pairs;

/// The control plane's routes (authenticated as every API route is).
pub fn control_routes() -> Router<AppState> {
    Router::new()
        .route("/v2/sandboxes", post(control::create).get(control::list))
        .route(
            "/sandboxes/{id}",
            get(control::show).delete(control::remove),
        )
        .route("/sandboxes/{id}/timeout", post(control::timeout))
        .route("/sandboxes/{id}/pause", post(control::pause))
        .route("/sandboxes/{id}/metrics", get(control::metrics))
        .route("/v2/sandboxes/{id}/connect", post(control::connect))
}

/// Sends requests that name a sandbox in `E2b-Sandbox-Id` to `envd` (already given its
/// state), whatever their path; the rest go on.
pub async fn dispatch(State(envd): State<Router>, req: Request, next: Next) -> Response {
    if req.headers().contains_key(envd::SANDBOX_HEADER) {
        let mut envd = envd;
        match envd.call(req).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    } else {
        next.run(req).await
    }
}
