//! Processes in a sandbox: started in the foreground or the background, listed, their output
//! watched live (SSE; `ws.rs` has the WebSocket), fed stdin, signalled and resized.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;

use crate::extract::{Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine as _;
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use vulcan_domain::Permission;
use vulcan_engine::sandboxes::processes::{ProcessEvent, ProcessInfo};
use vulcan_engine::{NewProcess, ProcessResult};

use crate::auth::{AuditTarget, Caller};
use crate::extract::JsonBody;
use crate::{ApiError, AppState};

/// `POST /v1/sandboxes/{id}/processes`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartProcess {
    /// The program (a path, or a name found on the sandbox's `PATH`).
    #[schema(min_length = 1)]
    cmd: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    cwd: Option<String>,
    /// A user name of the sandbox, or a uid; the image's user if absent.
    #[serde(default)]
    user: Option<String>,
    /// Whether it reads a stdin written with `POST …/input`.
    #[serde(default)]
    stdin: bool,
    /// Answer at once with its pid (`201`) and let it run; else wait for its end.
    #[serde(default)]
    background: bool,
    /// Killed (SIGKILL) this long after it started.
    #[serde(default)]
    #[serde(deserialize_with = "vulcan_domain::whole::opt")]
    timeout_s: Option<u32>,
    /// A name to find it by in the list (1-128 printable characters).
    #[serde(default)]
    #[schema(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,128}$")]
    tag: Option<String>,
    /// Run it on a terminal of this size (each side 1-1000): its stdin is then open (as
    /// `stdin: true`), its output one stream (`stdout`), and `POST …/resize` sets its size.
    #[serde(default)]
    pty: Option<vulcan_domain::PtySize>,
}

/// `POST /v1/sandboxes/{id}/processes`: runs a process; with `background` answers `201`
/// with its pid at once, else `200` with its output and exit once it ends.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/processes", tag = "sandboxes", params(("id" = String, Path)), request_body = StartProcess, responses((status = 200, description = "It ended", body = vulcan_engine::ProcessResult), (status = 201, description = "Started in the background", body = ProcessInfo), crate::error::Errors))]
pub async fn start_process(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<StartProcess>,
) -> Result<Response, ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    if (body.stdin || body.pty.is_some()) && !body.background {
        return Err(ApiError::bad_request(
            "\"stdin\": true and \"pty\" need \"background\": true (write its input with POST …/processes/{pid}/input while it runs)",
        ));
    }
    let new = NewProcess {
        cmd: body.cmd,
        args: body.args,
        env: body.env,
        cwd: body.cwd,
        user: body.user,
        stdin: body.stdin,
        timeout_s: body.timeout_s,
        tag: body.tag,
        pty: body.pty,
    };
    let target = Extension(AuditTarget(id.clone()));
    if body.background {
        let info = state.engine.start_process(caller.scope(), &id, new).await?;
        return Ok((StatusCode::CREATED, target, Json(info)).into_response());
    }
    let result: ProcessResult = state.engine.run_process(caller.scope(), &id, new).await?;
    Ok((target, Json(result)).into_response())
}

/// `GET /v1/sandboxes/{id}/processes`: running and ended, by pid.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/processes", tag = "sandboxes", params(("id" = String, Path)), responses((status = 200, description = "OK", body = Vec<ProcessInfo>), crate::error::Errors))]
pub async fn processes(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Vec<ProcessInfo>>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    Ok(Json(state.engine.processes(caller.scope(), &id).await?))
}

/// `GET /v1/sandboxes/{id}/processes/{pid}`.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/processes/{pid}", tag = "sandboxes", params(("id" = String, Path), ("pid" = u32, Path)), responses((status = 200, description = "OK", body = ProcessInfo), crate::error::Errors))]
pub async fn process(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, pid)): Path<(String, u32)>,
) -> Result<Json<ProcessInfo>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    Ok(Json(state.engine.process(caller.scope(), &id, pid).await?))
}

/// One server-sent event of `GET …/processes/{pid}/output`: `stdout`/`stderr` (data
/// `{"offset", "data"}`, the bytes base64-encoded; the event's id is the offset just
/// past them, where a reconnect resumes), `skipped` (`{"from", "to"}`: output no longer
/// kept), then `exit` (`{"exit_code", "signal"}`).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SseProcessEvent {
    event: String,
    data: String,
    #[schema(nullable = false)]
    id: Option<String>,
}

/// The offset a watch of a process's output starts from: bytes of it already seen.
pub(crate) fn offset_of(given: Option<String>) -> Result<u64, ApiError> {
    match given {
        None => Ok(0),
        Some(text) => text.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "offset {text:?} is not a number of bytes (the id of the last event seen)"
            ))
        }),
    }
}

/// One event of a process's output as the API sends it: its kind (`stdout`, `stderr`,
/// `skipped`, `exit`), the offset a watch resumes from after it, and its data.
pub(crate) fn process_event(event: ProcessEvent) -> (&'static str, Option<u64>, serde_json::Value) {
    match event {
        ProcessEvent::Output {
            offset,
            stream,
            bytes,
        } => (
            stream.as_str(),
            Some(offset + bytes.len() as u64),
            serde_json::json!({
                "offset": offset,
                "data": base64::engine::general_purpose::STANDARD.encode(&bytes),
            }),
        ),
        ProcessEvent::Skipped { from, to } => (
            "skipped",
            Some(to),
            serde_json::json!({ "from": from, "to": to }),
        ),
        ProcessEvent::Exit(exit) => ("exit", None, serde_json::to_value(exit).unwrap_or_default()),
    }
}

/// `GET /v1/sandboxes/{id}/processes/{pid}/output[?offset=]`: its output from `offset`
/// (or `Last-Event-ID`) on, live, then its exit.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/processes/{pid}/output", tag = "sandboxes", params(("id" = String, Path), ("pid" = u32, Path), ("offset" = Option<u64>, Query, description = "Bytes of output already seen")), responses((status = 200, description = "Server-sent events: `stdout`/`stderr` chunks, `skipped`, then `exit`", content_type = "text/event-stream", body = SseProcessEvent), crate::error::Errors))]
pub async fn output(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, pid)): Path<(String, u32)>,
    Query(params): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    let given = params.get("offset").cloned().or_else(|| {
        headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let watch = state
        .engine
        .watch_process(caller.scope(), &id, pid, offset_of(given)?)
        .await?;
    let events = stream::unfold(watch, |mut watch| async move {
        let (kind, resume_at, data) = process_event(watch.next().await?);
        let mut event = Event::default().event(kind).data(data.to_string());
        if let Some(at) = resume_at {
            event = event.id(at.to_string());
        }
        Some((Ok(event), watch))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InputBody {
    /// Text to write.
    #[serde(default)]
    data: Option<String>,
    /// Bytes to write, base64-encoded (instead of `data`).
    #[serde(default)]
    data_base64: Option<String>,
    /// Close stdin after writing (the process sees its end).
    #[serde(default)]
    close: bool,
}

/// [`InputBody`] as the document states it: text or bytes (not both), and whether to close.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum ProcessInput {
    Text(TextInput),
    Bytes(BytesInput),
    Close(CloseInput),
}

/// Text to write, then stdin closed if `close`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct TextInput {
    data: String,
    #[serde(default)]
    close: bool,
}

/// Bytes to write (base64), then stdin closed if `close`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct BytesInput {
    #[schema(format = Byte)]
    data_base64: String,
    #[serde(default)]
    close: bool,
}

/// Nothing to write: stdin closed if `close` (else nothing happens).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct CloseInput {
    #[serde(default)]
    close: bool,
}

/// `POST /v1/sandboxes/{id}/processes/{pid}/input {data | data_base64, close}`.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/processes/{pid}/input", tag = "sandboxes", params(("id" = String, Path), ("pid" = u32, Path)), request_body = ProcessInput, responses((status = 204, description = "Written"), crate::error::Errors))]
pub async fn input(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, pid)): Path<(String, u32)>,
    JsonBody(body): JsonBody<InputBody>,
) -> Result<StatusCode, ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let bytes = match (body.data, body.data_base64) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give \"data\" or \"data_base64\", not both",
            ))
        }
        (Some(text), None) => text.into_bytes(),
        (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
            .decode(encoded.as_bytes())
            .map_err(|e| ApiError::bad_request(format!("\"data_base64\" is not base64: {e}")))?,
        // Nothing to write: closes stdin if asked, else does nothing.
        (None, None) => Vec::new(),
    };
    state
        .engine
        .process_input(caller.scope(), &id, pid, &bytes, body.close)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalBody {
    /// A name (`SIGTERM`, `TERM`) or a number (15).
    signal: serde_json::Value,
}

/// The number of signal `name` (`SIGTERM`, `TERM`, `term`) or of a number given as such.
fn signal_number(value: &serde_json::Value) -> Result<i32, ApiError> {
    const NAMES: [(&str, i32); 12] = [
        ("HUP", 1),
        ("INT", 2),
        ("QUIT", 3),
        ("ABRT", 6),
        ("KILL", 9),
        ("USR1", 10),
        ("SEGV", 11),
        ("USR2", 12),
        ("PIPE", 13),
        ("ALRM", 14),
        ("TERM", 15),
        ("CONT", 18),
    ];
    match value {
        // 15.0 is 15, as JSON Schema counts it.
        serde_json::Value::Number(n) => n
            .as_f64()
            .filter(|n| n.fract() == 0.0 && (1.0..=64.0).contains(n))
            .map(|n| n as i32)
            .ok_or_else(|| {
                ApiError::bad_request(format!("signal {n} is not a signal number: give 1 to 64"))
            }),
        serde_json::Value::String(name) => {
            let upper = name.to_ascii_uppercase();
            let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
            NAMES
                .iter()
                .find(|(n, _)| *n == bare)
                .map(|(_, number)| *number)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "signal {name:?} is not one Vulcan knows by name: give its number, or one of SIGTERM, SIGKILL, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2"
                    ))
                })
        }
        _ => Err(ApiError::bad_request(
            "\"signal\" is a name (\"SIGTERM\") or a number (15)",
        )),
    }
}

/// `POST /v1/sandboxes/{id}/processes/{pid}/signal {signal}`.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/processes/{pid}/signal", tag = "sandboxes", params(("id" = String, Path), ("pid" = u32, Path)), request_body = SignalBody, responses((status = 204, description = "Sent"), crate::error::Errors))]
pub async fn signal(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, pid)): Path<(String, u32)>,
    JsonBody(body): JsonBody<SignalBody>,
) -> Result<StatusCode, ApiError> {
    caller.require(Permission::WorkloadsKill)?;
    let number = signal_number(&body.signal)?;
    state
        .engine
        .signal_process(caller.scope(), &id, pid, number)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/sandboxes/{id}/processes/{pid}/resize {rows, cols}`: the new size of a
/// process's terminal (it gets `SIGWINCH`); `400` for a process without one.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/processes/{pid}/resize", tag = "sandboxes", params(("id" = String, Path), ("pid" = u32, Path)), request_body = vulcan_domain::PtySize, responses((status = 200, description = "Resized", body = ProcessInfo), crate::error::Errors))]
pub async fn resize(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, pid)): Path<(String, u32)>,
    JsonBody(size): JsonBody<vulcan_domain::PtySize>,
) -> Result<Json<ProcessInfo>, ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    Ok(Json(
        state
            .engine
            .resize_process(caller.scope(), &id, pid, size)
            .await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_taken_by_name_or_number() {
        for (given, number) in [
            (serde_json::json!("SIGTERM"), 15),
            (serde_json::json!("kill"), 9),
            (serde_json::json!(2), 2),
        ] {
            assert_eq!(signal_number(&given).unwrap(), number, "{given}");
        }
        assert!(signal_number(&serde_json::json!("SIGNOPE")).is_err());
        assert!(signal_number(&serde_json::json!(true)).is_err());
    }
}
