//! E2B's in-sandbox daemon ("envd"), served by Vulcan itself on top of its sandbox
//! processes and files: requests that carry `E2b-Sandbox-Id` come here, whatever their
//! path. Each proves itself with the sandbox's `X-Access-Token` (what `POST
//! /v2/sandboxes` answered as `envdAccessToken`); API keys play no part.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Value};
use vulcan_domain::{FileErrorKind, SandboxState};
use vulcan_engine::SandboxError;

use super::connect::RpcError;
use crate::auth::constant_time_eq;
use crate::AppState;

/// The header naming the sandbox an envd request is for.
pub const SANDBOX_HEADER: &str = "e2b-sandbox-id";

/// How often a silent process stream says it is alive, unless the client asks
/// (`Keepalive-Ping-Interval`).
const KEEPALIVE: Duration = Duration::from_secs(50);

mod files;
mod process;
mod watch;

use files::{download, list_dir, make_dir, move_entry, remove, stat, upload};
use process::{
    close_stdin, connect_process, list, send_input, send_signal, start, stream_input, update,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/files", get(download).post(upload))
        .route("/process.Process/Start", post(start))
        .route("/process.Process/Connect", post(connect_process))
        .route("/process.Process/List", post(list))
        .route("/process.Process/SendInput", post(send_input))
        .route("/process.Process/StreamInput", post(stream_input))
        .route("/process.Process/CloseStdin", post(close_stdin))
        .route("/process.Process/SendSignal", post(send_signal))
        .route("/process.Process/Update", post(update))
        .route("/filesystem.Filesystem/Stat", post(stat))
        .route("/filesystem.Filesystem/ListDir", post(list_dir))
        .route("/filesystem.Filesystem/MakeDir", post(make_dir))
        .route("/filesystem.Filesystem/Move", post(move_entry))
        .route("/filesystem.Filesystem/Remove", post(remove))
        .route("/filesystem.Filesystem/WatchDir", post(watch::watch_dir))
        .route(
            "/filesystem.Filesystem/CreateWatcher",
            post(watch::create_watcher),
        )
        .route(
            "/filesystem.Filesystem/GetWatcherEvents",
            post(watch::get_watcher_events),
        )
        .route(
            "/filesystem.Filesystem/RemoveWatcher",
            post(watch::remove_watcher),
        )
        .fallback(unserved)
}

/// Which sandbox, whose (the tenant every operation is scoped to).
struct Target {
    id: String,
    tenant: String,
}

impl Target {
    fn scope(&self) -> Option<&str> {
        Some(&self.tenant)
    }
}

fn gone(id: &str, why: &str) -> RpcError {
    // "was not found" is what the SDKs read as "the sandbox is not running".
    RpcError::new(
        "unavailable",
        format!("The sandbox {id} was not found: {why}"),
    )
}

/// The sandbox the request names, once its token is checked.
async fn target(state: &AppState, headers: &HeaderMap) -> Result<Target, RpcError> {
    let id = headers
        .get(SANDBOX_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let sandbox = match state.engine.sandbox(None, &id).await {
        Ok(s) => s,
        Err(SandboxError::NotFound(_)) => return Err(gone(&id, "no such sandbox")),
        Err(e) => return Err(rpc_error(e)),
    };
    let token = headers
        .get("x-access-token")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !constant_time_eq(token, sandbox.access_token.as_bytes()) {
        // The same answer as for a sandbox that does not exist: ids are not probed.
        return Err(gone(&id, "no such sandbox"));
    }
    match sandbox.state {
        SandboxState::Ended | SandboxState::Lost => Err(gone(
            &id,
            sandbox.end_reason.as_deref().unwrap_or("it ended"),
        )),
        _ => Ok(Target {
            id,
            tenant: sandbox.tenant,
        }),
    }
}

fn rpc_error(e: SandboxError) -> RpcError {
    let code = match &e {
        SandboxError::Invalid(_) => "invalid_argument",
        SandboxError::NotFound(_) => "not_found",
        SandboxError::Conflict(_) => "failed_precondition",
        SandboxError::Elsewhere { .. } | SandboxError::ShuttingDown => "unavailable",
        SandboxError::Refused(vulcan_domain::Refusal::Forbidden(_)) => "permission_denied",
        SandboxError::Refused(_) => "resource_exhausted",
        SandboxError::Unavailable(_) => "failed_precondition",
        SandboxError::File(f) => match f.kind {
            FileErrorKind::Invalid => "invalid_argument",
            FileErrorKind::NotFound => "not_found",
            FileErrorKind::Exists => "already_exists",
            FileErrorKind::NoSpace => "resource_exhausted",
            FileErrorKind::Io => "internal",
        },
        SandboxError::Backend(_) | SandboxError::Store(_) => "internal",
    };
    RpcError::new(code, e.to_string())
}

/// An error of the plain HTTP routes (`/files`, `/health`): `{"code", "message"}`.
fn http_error(e: RpcError) -> Response {
    let status = e.status();
    (
        status,
        Json(json!({ "code": status.as_u16(), "message": e.message })),
    )
        .into_response()
}

/// Paths are the sandbox's; a relative one is taken from `/`.
fn absolute(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

/// The user an operation runs as, from `Authorization: Basic base64("<user>:")`: `user`
/// (E2B's default) is the image's own user.
fn user_of(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let name = text.split(':').next()?.to_owned();
    (!name.is_empty() && name != "user").then_some(name)
}

async fn unserved(req: axum::extract::Request) -> Response {
    RpcError::new(
        "unimplemented",
        format!(
            "{} {} is not served by Vulcan's envd (see docs/sandboxes.md, E2B's SDKs against Vulcan)",
            req.method(),
            req.uri().path()
        ),
    )
    .into_response()
}

/// `GET /health`: `204` while the sandbox runs, `502` once it is gone.
async fn health(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match target(&state, &headers).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => http_error(e),
    }
}

fn reply(answer: Result<Value, RpcError>) -> Response {
    match answer {
        Ok(message) => Json(message).into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_comes_from_basic_auth_and_user_means_the_images_own() {
        let mut h = HeaderMap::new();
        assert_eq!(user_of(&h), None);
        h.insert(header::AUTHORIZATION, "Basic cm9vdDo=".parse().unwrap()); // "root:"
        assert_eq!(user_of(&h).as_deref(), Some("root"));
        h.insert(header::AUTHORIZATION, "Basic dXNlcjo=".parse().unwrap()); // "user:"
        assert_eq!(user_of(&h), None);
    }
}
