//! `/v1/sandboxes`: sandboxes a client holds across many steps — processes started in
//! them (foreground or background, watched live, fed stdin, signalled) and their files
//! (uploaded and downloaded as streams, listed, moved, removed).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;

use crate::extract::{Path, Query};
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine as _;
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use vulcan_domain::{
    FileEntry, FileErrorKind, Isolation, OnTimeout, Permission, Refusal, Sandbox, SandboxFilter,
    SandboxMetrics, SandboxPage, SandboxState,
};
use vulcan_engine::sandboxes::processes::{ProcessEvent, ProcessInfo};
use vulcan_engine::{NewProcess, NewSandbox, ProcessResult, SandboxError};

use crate::auth::{AuditTarget, Caller};
use crate::extract::JsonBody;
use crate::request::functions::tenant_of;
use crate::{ApiError, AppState};

impl From<SandboxError> for ApiError {
    fn from(e: SandboxError) -> Self {
        let status = match &e {
            SandboxError::Invalid(_) => StatusCode::BAD_REQUEST,
            SandboxError::NotFound(_) => StatusCode::NOT_FOUND,
            SandboxError::Conflict(_) | SandboxError::Elsewhere { .. } => StatusCode::CONFLICT,
            SandboxError::Refused(Refusal::Forbidden(_)) => StatusCode::FORBIDDEN,
            SandboxError::Refused(Refusal::OverQuota { retry_after_s, .. }) => {
                return ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string())
                    .retry_after(*retry_after_s)
            }
            SandboxError::Refused(Refusal::Overloaded { retry_after_s, .. }) => {
                return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                    .retry_after(*retry_after_s)
            }
            SandboxError::Unavailable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            SandboxError::File(f) => match f.kind {
                FileErrorKind::Invalid => StatusCode::BAD_REQUEST,
                FileErrorKind::NotFound => StatusCode::NOT_FOUND,
                FileErrorKind::Exists => StatusCode::CONFLICT,
                FileErrorKind::NoSpace => StatusCode::PAYLOAD_TOO_LARGE,
                FileErrorKind::Io => StatusCode::INTERNAL_SERVER_ERROR,
            },
            SandboxError::Backend(_) => StatusCode::BAD_GATEWAY,
            SandboxError::ShuttingDown => {
                return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).retry_after(5)
            }
            SandboxError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

/// `POST /v1/sandboxes`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSandbox {
    /// `gvisor`, `microvm` or `auto` (absent: the server's `VULCAN_SANDBOX_ISOLATION`).
    #[serde(default)]
    #[schema(value_type = Option<vulcan_domain::SandboxIsolation>)]
    isolation: Option<Isolation>,
    /// A registered image (or one this key may pull); the default image if absent.
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    resources: Option<SandboxResourcesBody>,
    /// Every process in it starts with these.
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Free-form labels, filtered on by `GET /v1/sandboxes?metadata=key=value`.
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    /// Seconds until it is killed; `POST …/timeout` moves the deadline.
    #[serde(default)]
    #[serde(deserialize_with = "vulcan_domain::whole::opt")]
    timeout_s: Option<u32>,
    /// `kill` (the default) or `pause`: paused at its deadline, it is kept paused for
    /// `VULCAN_SANDBOX_MAX_TIMEOUT_S`; a resume gives it its timeout again.
    #[serde(default)]
    on_timeout: OnTimeout,
    /// A request that needs it running resumes it when it is paused (else `409`).
    #[serde(default)]
    auto_resume: bool,
    /// The tenant's volumes to mount (at most 8): each `{name, path, read_only}`. A volume
    /// has one writer and no reader beside it, or readers only (`409` otherwise).
    #[serde(default)]
    volumes: Vec<vulcan_domain::VolumeMount>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxResourcesBody {
    #[serde(default)]
    #[serde(deserialize_with = "vulcan_domain::whole::opt")]
    cpus: Option<u32>,
    #[serde(default)]
    #[serde(deserialize_with = "vulcan_domain::whole::opt")]
    mem_mb: Option<u32>,
    /// The disk its writes may fill (its whole root is writable).
    #[serde(default)]
    #[serde(deserialize_with = "vulcan_domain::whole::opt")]
    disk_mb: Option<u32>,
}

/// `POST /v1/sandboxes`: starts a sandbox (`201`, `running`).
#[utoipa::path(post, path = "/v1/sandboxes", tag = "sandboxes", params(("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), request_body = CreateSandbox, responses((status = 201, description = "Running", body = vulcan_domain::Sandbox), crate::error::Errors))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<HashMap<String, String>>,
    JsonBody(body): JsonBody<CreateSandbox>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<Sandbox>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let tenant = tenant_of(&caller, &params)?;
    let resources = body.resources.unwrap_or(SandboxResourcesBody {
        cpus: None,
        mem_mb: None,
        disk_mb: None,
    });
    let sandbox = state
        .engine
        .create_sandbox(NewSandbox {
            tenant,
            isolation: body.isolation,
            image: body.image,
            cpus: resources.cpus,
            mem_mb: resources.mem_mb,
            disk_mb: resources.disk_mb,
            env: body.env,
            metadata: body.metadata,
            timeout_s: body.timeout_s,
            on_timeout: body.on_timeout,
            auto_resume: body.auto_resume,
            pulls: caller.image_pulls(),
            volumes: body.volumes,
        })
        .await?;
    let target = AuditTarget(sandbox.id.clone());
    Ok((StatusCode::CREATED, Extension(target), Json(sandbox)))
}

/// `GET /v1/sandboxes[?state=&metadata=key=value&limit=&cursor=]`: newest first.
#[utoipa::path(get, path = "/v1/sandboxes", tag = "sandboxes", params(("state" = Option<vulcan_domain::SandboxState>, Query), ("metadata" = Option<String>, Query, pattern = "=", description = "key=value, repeated: every pair must match"), ("limit" = Option<i32>, Query, minimum = 1, maximum = 1000, description = "1-1000, default 100"), ("cursor" = Option<String>, Query, description = "`next` of the previous page")), responses((status = 200, description = "OK", body = vulcan_domain::SandboxPage), crate::error::Errors))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Result<Json<SandboxPage>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    let mut filter = SandboxFilter {
        tenant: caller.scope().map(str::to_owned),
        limit: 100,
        ..SandboxFilter::default()
    };
    let query = query.unwrap_or_default();
    for (key, value) in form_pairs(&query) {
        match key.as_str() {
            "state" => {
                filter.state = Some(SandboxState::parse(&value).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "state={value:?} is not one: use running, paused, ended or lost"
                    ))
                })?)
            }
            "metadata" => {
                let (k, v) = value.split_once('=').ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "metadata={value:?} is not key=value (repeat the parameter for more pairs)"
                    ))
                })?;
                filter.metadata.insert(k.to_owned(), v.to_owned());
            }
            "limit" => {
                filter.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("limit={value:?}: give 1 to 1000"))
                    })?
            }
            "cursor" => filter.before = Some(value),
            "tenant" if caller.scope().is_none() => filter.tenant = Some(value),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?}: use state, metadata, limit or cursor"
                )))
            }
        }
    }
    Ok(Json(state.engine.sandboxes(&filter).await?))
}

/// `key=value` pairs of a query string, percent-decoded.
pub(crate) fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high * 16 + low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET /v1/sandboxes/{id}`.
#[utoipa::path(get, path = "/v1/sandboxes/{id}", tag = "sandboxes", params(("id" = String, Path)), responses((status = 200, description = "OK", body = vulcan_domain::Sandbox), crate::error::Errors))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Sandbox>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    Ok(Json(state.engine.sandbox(caller.scope(), &id).await?))
}

/// `DELETE /v1/sandboxes/{id}`: kills everything in it and removes its disk.
#[utoipa::path(delete, path = "/v1/sandboxes/{id}", tag = "sandboxes", params(("id" = String, Path)), responses((status = 200, description = "Ended", body = vulcan_domain::Sandbox), crate::error::Errors))]
pub async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<(Extension<AuditTarget>, Json<Sandbox>), ApiError> {
    caller.require(Permission::WorkloadsKill)?;
    let sandbox = state.engine.delete_sandbox(caller.scope(), &id).await?;
    Ok((Extension(AuditTarget(id)), Json(sandbox)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeoutBody {
    /// Seconds from now until its deadline.
    #[serde(deserialize_with = "vulcan_domain::whole::int")]
    #[schema(minimum = 1, maximum = 86400)]
    timeout_s: u32,
}

/// `POST /v1/sandboxes/{id}/timeout {timeout_s}`: its deadline, `timeout_s` from now.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/timeout", tag = "sandboxes", params(("id" = String, Path)), request_body = TimeoutBody, responses((status = 200, description = "Deadline moved", body = vulcan_domain::Sandbox), crate::error::Errors))]
pub async fn timeout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<TimeoutBody>,
) -> Result<(Extension<AuditTarget>, Json<Sandbox>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let sandbox = state
        .engine
        .set_sandbox_timeout(caller.scope(), &id, body.timeout_s)
        .await?;
    Ok((Extension(AuditTarget(id)), Json(sandbox)))
}

/// `POST /v1/sandboxes/{id}/pause`: saves it whole (memory, processes) to disk and stops
/// it (`pause_mode: saved`): it holds no memory until resumed; its files stay. A gVisor
/// sandbox in which a process Vulcan follows runs is frozen in memory instead
/// (`pause_mode: frozen`).
#[utoipa::path(post, path = "/v1/sandboxes/{id}/pause", tag = "sandboxes", params(("id" = String, Path)), responses((status = 200, description = "Paused", body = vulcan_domain::Sandbox), crate::error::Errors))]
pub async fn pause(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<(Extension<AuditTarget>, Json<Sandbox>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let sandbox = state.engine.pause_sandbox(caller.scope(), &id).await?;
    Ok((Extension(AuditTarget(id)), Json(sandbox)))
}

/// `POST /v1/sandboxes/{id}/resume`: starts a paused sandbox again, with its files and its
/// processes.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/resume", tag = "sandboxes", params(("id" = String, Path)), responses((status = 200, description = "Running again", body = vulcan_domain::Sandbox), crate::error::Errors))]
pub async fn resume(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<(Extension<AuditTarget>, Json<Sandbox>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let sandbox = state.engine.resume_sandbox(caller.scope(), &id).await?;
    Ok((Extension(AuditTarget(id)), Json(sandbox)))
}

/// `GET /v1/sandboxes/{id}/metrics`: what it uses now, and a sample every 5 s over the
/// last hour.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/metrics", tag = "sandboxes", params(("id" = String, Path)), responses((status = 200, description = "OK", body = vulcan_domain::SandboxMetrics), crate::error::Errors))]
pub async fn metrics(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<SandboxMetrics>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    Ok(Json(state.engine.sandbox_usage(caller.scope(), &id).await?))
}

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

fn path_param(params: &HashMap<String, String>) -> Result<String, ApiError> {
    params.get("path").cloned().ok_or_else(|| {
        ApiError::bad_request(
            "query parameter \"path\" is required: an absolute path inside the sandbox",
        )
    })
}

/// How long the rest of a failed upload is read (and dropped) before the answer.
const DRAIN_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// Bytes read from a file per piece of a download.
const DOWNLOAD_PIECE: usize = 256 * 1024;

/// `GET /v1/sandboxes/{id}/files?path=`: the file's bytes, streamed.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/files", tag = "sandboxes", params(("id" = String, Path), ("path" = String, Query, description = "An absolute path inside the sandbox")), responses((status = 200, description = "The file", content_type = "application/octet-stream", body = Vec<u8>), crate::error::Errors))]
pub async fn download(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    let path = path_param(&params)?;
    let reader = state
        .engine
        .sandbox_read(caller.scope(), &id, &path)
        .await?;
    Ok(file_body(reader))
}

/// A file's bytes as a streamed answer.
pub(crate) fn file_body(reader: Box<dyn vulcan_domain::FileReader>) -> Response {
    let size = reader.size();
    let body = stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        match reader.read(DOWNLOAD_PIECE).await {
            Ok(bytes) if bytes.is_empty() => None,
            Ok(bytes) => Some((Ok::<_, std::io::Error>(bytes), Some(reader))),
            Err(e) => Some((Err(std::io::Error::other(e.message)), None)),
        }
    });
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// `PUT /v1/sandboxes/{id}/files?path=`: the body, streamed, becomes the file (its
/// directories made); nothing is at the path until all of it is written.
#[utoipa::path(put, path = "/v1/sandboxes/{id}/files", tag = "sandboxes", params(("id" = String, Path), ("path" = String, Query, description = "An absolute path inside the sandbox")), request_body(content = Vec<u8>, content_type = "application/octet-stream"), responses((status = 200, description = "Written", body = vulcan_domain::FileEntry), crate::error::Errors))]
pub async fn upload(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    body: Body,
) -> Result<(Extension<AuditTarget>, Json<FileEntry>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let path = path_param(&params)?;
    let mut writer = state
        .engine
        .sandbox_write(caller.scope(), &id, &path)
        .await?;
    let mut body = body.into_data_stream();
    while let Some(piece) = body.next().await {
        let piece =
            piece.map_err(|e| ApiError::bad_request(format!("the upload was cut off: {e}")))?;
        if let Err(e) = writer.write(&piece).await {
            // The client is still sending: read the rest (for a while) so that it can
            // read the answer instead of a broken connection.
            drop(writer);
            let _ = tokio::time::timeout(DRAIN_FOR, async {
                while let Some(Ok(_)) = body.next().await {}
            })
            .await;
            return Err(SandboxError::File(e).into());
        }
    }
    let entry = writer
        .finish()
        .await
        .map_err(|e| ApiError::from(SandboxError::File(e)))?;
    Ok((Extension(AuditTarget(format!("{id}:{path}"))), Json(entry)))
}

/// `DELETE /v1/sandboxes/{id}/files?path=`: a file, or a directory with all in it.
#[utoipa::path(delete, path = "/v1/sandboxes/{id}/files", tag = "sandboxes", params(("id" = String, Path), ("path" = String, Query, description = "An absolute path inside the sandbox")), responses((status = 204, description = "Removed"), crate::error::Errors))]
pub async fn remove_file(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<(Extension<AuditTarget>, StatusCode), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let path = path_param(&params)?;
    state
        .engine
        .sandbox_remove(caller.scope(), &id, &path)
        .await?;
    Ok((
        Extension(AuditTarget(format!("{id}:{path}"))),
        StatusCode::NO_CONTENT,
    ))
}

/// `GET /v1/sandboxes/{id}/files/stat?path=`.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/files/stat", tag = "sandboxes", params(("id" = String, Path), ("path" = String, Query, description = "An absolute path inside the sandbox")), responses((status = 200, description = "OK", body = vulcan_domain::FileEntry), crate::error::Errors))]
pub async fn stat(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<FileEntry>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    let path = path_param(&params)?;
    Ok(Json(
        state
            .engine
            .sandbox_stat(caller.scope(), &id, &path)
            .await?,
    ))
}

/// `GET /v1/sandboxes/{id}/files/list?path=&depth=`: a directory's entries (links are
/// listed, not entered), down to `depth` levels (default 1).
#[utoipa::path(get, path = "/v1/sandboxes/{id}/files/list", tag = "sandboxes", params(("id" = String, Path), ("path" = String, Query, description = "An absolute path inside the sandbox"), ("depth" = Option<i32>, Query, minimum = 1, maximum = 16, description = "1-16, default 1")), responses((status = 200, description = "OK", body = Vec<vulcan_domain::FileEntry>), crate::error::Errors))]
pub async fn list_files(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Vec<FileEntry>>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    let path = path_param(&params)?;
    let depth = match params.get("depth") {
        None => 1,
        Some(d) => d.parse().map_err(|_| {
            ApiError::bad_request(format!("depth={d:?} is not a number: give 1 to 16"))
        })?,
    };
    Ok(Json(
        state
            .engine
            .sandbox_list(caller.scope(), &id, &path, depth)
            .await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MkdirBody {
    path: String,
}

/// `POST /v1/sandboxes/{id}/files/mkdir {path}`: `mkdir -p`.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/files/mkdir", tag = "sandboxes", params(("id" = String, Path)), request_body = MkdirBody, responses((status = 200, description = "Made (or there already)", body = vulcan_domain::FileEntry), crate::error::Errors))]
pub async fn mkdir(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<MkdirBody>,
) -> Result<(Extension<AuditTarget>, Json<FileEntry>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let entry = state
        .engine
        .sandbox_mkdir(caller.scope(), &id, &body.path)
        .await?;
    Ok((
        Extension(AuditTarget(format!("{id}:{}", body.path))),
        Json(entry),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    from: String,
    to: String,
}

/// `POST /v1/sandboxes/{id}/files/move {from, to}`.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/files/move", tag = "sandboxes", params(("id" = String, Path)), request_body = MoveBody, responses((status = 200, description = "Moved", body = vulcan_domain::FileEntry), crate::error::Errors))]
pub async fn move_file(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<MoveBody>,
) -> Result<(Extension<AuditTarget>, Json<FileEntry>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let entry = state
        .engine
        .sandbox_move(caller.scope(), &id, &body.from, &body.to)
        .await?;
    Ok((
        Extension(AuditTarget(format!("{id}:{} -> {}", body.from, body.to))),
        Json(entry),
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

    #[test]
    fn query_pairs_are_decoded_and_may_repeat() {
        assert_eq!(
            form_pairs("metadata=a%3Db&metadata=c=d+e&state=running"),
            [
                ("metadata".to_owned(), "a=b".to_owned()),
                ("metadata".to_owned(), "c=d e".to_owned()),
                ("state".to_owned(), "running".to_owned())
            ]
        );
        assert_eq!(decode("100%"), "100%");
    }
}
