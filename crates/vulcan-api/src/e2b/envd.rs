//! E2B's in-sandbox daemon ("envd"), served by Vulcan itself on top of its sandbox
//! processes and files: requests that carry `E2b-Sandbox-Id` come here, whatever their
//! path. Each proves itself with the sandbox's `X-Access-Token` (what `POST
//! /v2/sandboxes` answered as `envdAccessToken`); API keys play no part.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use vulcan_domain::{FileEntry, FileErrorKind, LogStream, ProcessExit, SandboxState};
use vulcan_engine::sandboxes::processes::{ProcessEvent, ProcessWatch};
use vulcan_engine::{NewProcess, SandboxError};

use super::connect::{self, RpcError};
use super::multipart::Multipart;
use crate::auth::constant_time_eq;
use crate::AppState;

/// The header naming the sandbox an envd request is for.
pub const SANDBOX_HEADER: &str = "e2b-sandbox-id";

/// How often a silent process stream says it is alive, unless the client asks
/// (`Keepalive-Ping-Interval`).
const KEEPALIVE: Duration = Duration::from_secs(50);

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
        .route("/filesystem.Filesystem/Stat", post(stat))
        .route("/filesystem.Filesystem/ListDir", post(list_dir))
        .route("/filesystem.Filesystem/MakeDir", post(make_dir))
        .route("/filesystem.Filesystem/Move", post(move_entry))
        .route("/filesystem.Filesystem/Remove", post(remove))
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
            "{} {} is not served by Vulcan's envd (see the README's E2B section)",
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

// ---- processes ----

#[derive(Deserialize, Default)]
#[serde(default)]
struct ProcessConfig {
    cmd: String,
    args: Vec<String>,
    envs: BTreeMap<String, String>,
    cwd: Option<String>,
}

#[derive(Deserialize)]
struct StartRequest {
    process: ProcessConfig,
    #[serde(default)]
    pty: Option<Value>,
    #[serde(default)]
    stdin: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Selector {
    pid: Option<u32>,
    tag: Option<String>,
}

impl Selector {
    fn pid(&self) -> Result<u32, RpcError> {
        match (self.pid, &self.tag) {
            (Some(pid), _) => Ok(pid),
            (None, Some(_)) => Err(RpcError::invalid(
                "processes are selected by pid here: tags are not kept",
            )),
            (None, None) => Err(RpcError::invalid("\"process\": {\"pid\": …} is required")),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Selected {
    process: Selector,
}

/// The keepalive period the client asked for.
fn keepalive_of(headers: &HeaderMap) -> Duration {
    headers
        .get("keepalive-ping-interval")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| (1..=3600).contains(s))
        .map_or(KEEPALIVE, Duration::from_secs)
}

fn end_event(exit: ProcessExit) -> Value {
    let end = match (exit.exit_code, exit.signal) {
        (Some(code), _) => {
            json!({ "exitCode": code, "exited": true, "status": format!("exit status {code}") })
        }
        (None, Some(signal)) => json!({
            "exitCode": -1,
            "exited": false,
            "status": format!("signal: {}", signal_name(signal)),
        }),
        (None, None) => {
            json!({ "exitCode": -1, "exited": false, "status": "unknown", "error": "its end was not seen" })
        }
    };
    json!({ "event": { "end": end } })
}

fn signal_name(signal: i32) -> String {
    match signal {
        9 => "killed".into(),
        15 => "terminated".into(),
        2 => "interrupt".into(),
        1 => "hangup".into(),
        n => format!("signal {n}"),
    }
}

/// A process's events as Connect messages: its start, its output, its end.
fn events(
    pid: u32,
    watch: ProcessWatch,
    keepalive: Duration,
) -> impl Stream<Item = Result<Value, RpcError>> + Send + 'static {
    let started = json!({ "event": { "start": { "pid": pid } } });
    stream::once(async move { Ok(started) }).chain(stream::unfold(
        Some(watch),
        move |watch| async move {
            let mut watch = watch?;
            loop {
                let event = match tokio::time::timeout(keepalive, watch.next()).await {
                    Err(_) => {
                        return Some((Ok(json!({ "event": { "keepalive": {} } })), Some(watch)))
                    }
                    Ok(event) => event?,
                };
                match event {
                    ProcessEvent::Output { stream, bytes, .. } => {
                        let key = match stream {
                            LogStream::Stderr => "stderr",
                            _ => "stdout",
                        };
                        let data = base64::engine::general_purpose::STANDARD.encode(bytes);
                        return Some((
                            Ok(json!({ "event": { "data": { key: data } } })),
                            Some(watch),
                        ));
                    }
                    ProcessEvent::Skipped { .. } => continue,
                    ProcessEvent::Exit(exit) => return Some((Ok(end_event(exit)), None)),
                }
            }
        },
    ))
}

/// `process.Process/Start`: starts it and streams its events.
async fn start(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let begun = async {
        let request: StartRequest = connect::stream_request(&headers, &body)?;
        if request.pty.as_ref().is_some_and(|p| !p.is_null()) {
            return Err(RpcError::new(
                "unimplemented",
                "a PTY is not served by Vulcan yet: run the command without one",
            ));
        }
        let target = target(&state, &headers).await?;
        let config = request.process;
        let new = NewProcess {
            cmd: config.cmd,
            args: config.args,
            env: config.envs,
            cwd: config.cwd.filter(|c| !c.is_empty()).map(|c| absolute(&c)),
            user: user_of(&headers),
            stdin: request.stdin.unwrap_or(false),
            timeout_s: None,
        };
        let info = state
            .engine
            .start_process(target.scope(), &target.id, new)
            .await
            .map_err(rpc_error)?;
        let watch = state
            .engine
            .watch_process(target.scope(), &target.id, info.pid, 0)
            .await
            .map_err(rpc_error)?;
        Ok(events(info.pid, watch, keepalive_of(&headers)))
    };
    match begun.await {
        Ok(events) => connect::streaming(events),
        Err(e) => connect::stream_error(e),
    }
}

/// `process.Process/Connect`: a running process's events from now on.
async fn connect_process(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let begun = async {
        let request: Selected = connect::stream_request(&headers, &body)?;
        let pid = request.process.pid()?;
        let target = target(&state, &headers).await?;
        let info = state
            .engine
            .process(target.scope(), &target.id, pid)
            .await
            .map_err(rpc_error)?;
        let watch = state
            .engine
            .watch_process(target.scope(), &target.id, pid, info.output_bytes)
            .await
            .map_err(rpc_error)?;
        Ok(events(pid, watch, keepalive_of(&headers)))
    };
    match begun.await {
        Ok(events) => connect::streaming(events),
        Err(e) => connect::stream_error(e),
    }
}

/// `process.Process/List`: the processes still running.
async fn list(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = async {
        let _: Value = connect::unary(&headers, &body)?;
        let target = target(&state, &headers).await?;
        let all = state
            .engine
            .processes(target.scope(), &target.id)
            .await
            .map_err(rpc_error)?;
        let running: Vec<Value> = all
            .iter()
            .filter(|p| p.state == "running")
            .map(|p| {
                let mut config = json!({
                    "cmd": p.cmd.first().cloned().unwrap_or_default(),
                    "args": p.cmd.get(1..).unwrap_or_default(),
                    "envs": {},
                });
                if let Some(cwd) = &p.cwd {
                    config["cwd"] = json!(cwd);
                }
                json!({ "config": config, "pid": p.pid })
            })
            .collect();
        Ok(json!({ "processes": running }))
    };
    reply(answer.await)
}

fn reply(answer: Result<Value, RpcError>) -> Response {
    match answer {
        Ok(message) => Json(message).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Input {
    stdin: Option<String>,
    pty: Option<String>,
}

impl Input {
    fn bytes(&self) -> Result<Vec<u8>, RpcError> {
        if self.pty.is_some() {
            return Err(RpcError::new(
                "unimplemented",
                "a PTY is not served by Vulcan yet",
            ));
        }
        base64::engine::general_purpose::STANDARD
            .decode(self.stdin.as_deref().unwrap_or(""))
            .map_err(|e| RpcError::invalid(format!("\"stdin\" is not base64: {e}")))
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SendInputRequest {
    process: Selector,
    input: Input,
}

/// `process.Process/SendInput`.
async fn send_input(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = async {
        let request: SendInputRequest = connect::unary(&headers, &body)?;
        let pid = request.process.pid()?;
        let bytes = request.input.bytes()?;
        let target = target(&state, &headers).await?;
        state
            .engine
            .process_input(target.scope(), &target.id, pid, &bytes, false)
            .await
            .map_err(rpc_error)?;
        Ok(json!({}))
    };
    reply(answer.await)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct StreamInputEvent {
    start: Option<Selected>,
    data: Option<StreamInputData>,
    keepalive: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct StreamInputData {
    input: Input,
}

/// `process.Process/StreamInput`: a start naming the process, then its input, in order.
async fn stream_input(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let answer = async {
        connect::check_stream_type(&headers)?;
        let target = target(&state, &headers).await?;
        let mut messages = connect::Envelopes::new(body);
        let mut pid = None;
        while let Some(message) = messages.next::<StreamInputEvent>().await {
            let event = message?;
            if let Some(start) = event.start {
                pid = Some(start.process.pid()?);
            } else if let Some(data) = event.data {
                let pid = pid.ok_or_else(|| {
                    RpcError::invalid("the first message must be a start naming the process")
                })?;
                state
                    .engine
                    .process_input(target.scope(), &target.id, pid, &data.input.bytes()?, false)
                    .await
                    .map_err(rpc_error)?;
            } else if event.keepalive.is_none() {
                return Err(RpcError::invalid(
                    "a message is none of start, data, keepalive",
                ));
            }
        }
        Ok(json!({}))
    };
    match answer.await {
        Ok(message) => connect::streaming(stream::once(async move { Ok(message) })),
        Err(e) => connect::stream_error(e),
    }
}

/// `process.Process/CloseStdin`.
async fn close_stdin(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = async {
        let request: Selected = connect::unary(&headers, &body)?;
        let pid = request.process.pid()?;
        let target = target(&state, &headers).await?;
        state
            .engine
            .process_input(target.scope(), &target.id, pid, &[], true)
            .await
            .map_err(rpc_error)?;
        Ok(json!({}))
    };
    reply(answer.await)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SignalRequest {
    process: Selector,
    signal: Value,
}

/// `process.Process/SendSignal` (`SIGNAL_SIGKILL`, `SIGNAL_SIGTERM`, or a number).
async fn send_signal(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = async {
        let request: SignalRequest = connect::unary(&headers, &body)?;
        let pid = request.process.pid()?;
        let signal = match &request.signal {
            Value::String(name) => match name.as_str() {
                "SIGNAL_SIGKILL" => 9,
                "SIGNAL_SIGTERM" => 15,
                other => {
                    return Err(RpcError::invalid(format!(
                        "signal {other:?} is not one: use SIGNAL_SIGKILL or SIGNAL_SIGTERM"
                    )))
                }
            },
            Value::Number(n) => n.as_i64().unwrap_or(0) as i32,
            _ => return Err(RpcError::invalid("\"signal\" is required")),
        };
        let target = target(&state, &headers).await?;
        state
            .engine
            .signal_process(target.scope(), &target.id, pid, signal)
            .await
            .map_err(rpc_error)?;
        Ok(json!({}))
    };
    reply(answer.await)
}

// ---- files ----

fn entry_info(entry: &FileEntry) -> Value {
    let kind = match entry.kind.as_str() {
        "dir" => "FILE_TYPE_DIRECTORY",
        "symlink" => "FILE_TYPE_SYMLINK",
        "file" => "FILE_TYPE_FILE",
        _ => "FILE_TYPE_UNSPECIFIED",
    };
    let mode = u32::from_str_radix(&entry.mode, 8).unwrap_or(0);
    let mut info = json!({
        "name": entry.name,
        "type": kind,
        "path": entry.path,
        "size": entry.size.to_string(),
        "mode": mode,
        "permissions": permissions(&entry.kind, mode),
        "modifiedTime": entry.modified_at.format(&Rfc3339).unwrap_or_default(),
    });
    if let Some(target) = &entry.target {
        info["symlinkTarget"] = json!(target);
    }
    info
}

/// `-rw-r--r--` as `ls -l` writes it.
fn permissions(kind: &str, mode: u32) -> String {
    let mut text = String::from(match kind {
        "dir" => "d",
        "symlink" => "l",
        _ => "-",
    });
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        text.push(if bits & 4 != 0 { 'r' } else { '-' });
        text.push(if bits & 2 != 0 { 'w' } else { '-' });
        text.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    text
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PathRequest {
    path: String,
    depth: Option<u32>,
}

impl PathRequest {
    fn path(&self) -> Result<String, RpcError> {
        if self.path.is_empty() {
            return Err(RpcError::invalid("\"path\" is required"));
        }
        Ok(absolute(&self.path))
    }
}

/// `filesystem.Filesystem/Stat`.
async fn stat(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = async {
        let request: PathRequest = connect::unary(&headers, &body)?;
        let target = target(&state, &headers).await?;
        let entry = state
            .engine
            .sandbox_stat(target.scope(), &target.id, &request.path()?)
            .await
            .map_err(rpc_error)?;
        Ok(json!({ "entry": entry_info(&entry) }))
    };
    reply(answer.await)
}

/// `filesystem.Filesystem/ListDir` (`depth`, default 1).
async fn list_dir(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = async {
        let request: PathRequest = connect::unary(&headers, &body)?;
        let target = target(&state, &headers).await?;
        let depth = request.depth.filter(|d| *d > 0).unwrap_or(1);
        let entries = state
            .engine
            .sandbox_list(target.scope(), &target.id, &request.path()?, depth)
            .await
            .map_err(rpc_error)?;
        let entries: Vec<Value> = entries.iter().map(entry_info).collect();
        Ok(json!({ "entries": entries }))
    };
    reply(answer.await)
}

/// `filesystem.Filesystem/MakeDir`: `already_exists` when it is there.
async fn make_dir(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = async {
        let request: PathRequest = connect::unary(&headers, &body)?;
        let path = request.path()?;
        let target = target(&state, &headers).await?;
        if let Ok(entry) = state
            .engine
            .sandbox_stat(target.scope(), &target.id, &path)
            .await
        {
            return Err(RpcError::new(
                "already_exists",
                format!("{path} exists already (a {})", entry.kind),
            ));
        }
        let entry = state
            .engine
            .sandbox_mkdir(target.scope(), &target.id, &path)
            .await
            .map_err(rpc_error)?;
        Ok(json!({ "entry": entry_info(&entry) }))
    };
    reply(answer.await)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MoveRequest {
    source: String,
    destination: String,
}

/// `filesystem.Filesystem/Move`.
async fn move_entry(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = async {
        let request: MoveRequest = connect::unary(&headers, &body)?;
        if request.source.is_empty() || request.destination.is_empty() {
            return Err(RpcError::invalid(
                "\"source\" and \"destination\" are required",
            ));
        }
        let target = target(&state, &headers).await?;
        let entry = state
            .engine
            .sandbox_move(
                target.scope(),
                &target.id,
                &absolute(&request.source),
                &absolute(&request.destination),
            )
            .await
            .map_err(rpc_error)?;
        Ok(json!({ "entry": entry_info(&entry) }))
    };
    reply(answer.await)
}

/// `filesystem.Filesystem/Remove`.
async fn remove(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = async {
        let request: PathRequest = connect::unary(&headers, &body)?;
        let target = target(&state, &headers).await?;
        state
            .engine
            .sandbox_remove(target.scope(), &target.id, &request.path()?)
            .await
            .map_err(rpc_error)?;
        Ok(json!({}))
    };
    reply(answer.await)
}

#[derive(Deserialize)]
struct FilesQuery {
    #[serde(default)]
    path: Option<String>,
}

/// `GET /files?path=`: the file's bytes, streamed.
async fn download(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<FilesQuery>,
) -> Response {
    let answer = async {
        let path = query
            .path
            .filter(|p| !p.is_empty())
            .ok_or_else(|| RpcError::invalid("query parameter \"path\" is required"))?;
        let target = target(&state, &headers).await?;
        state
            .engine
            .sandbox_read(target.scope(), &target.id, &absolute(&path))
            .await
            .map_err(rpc_error)
    };
    match answer.await {
        Ok(reader) => crate::request::sandboxes::file_body(reader),
        Err(e) => http_error(e),
    }
}

/// `POST /files?path=`: an `application/octet-stream` body is the file at `path`;
/// a `multipart/form-data` body's parts are files at their file names (or at `path`
/// when there is one part). Answers `[{name, type, path}]`.
async fn upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<FilesQuery>,
    body: Body,
) -> Response {
    let answer = async {
        let target = target(&state, &headers).await?;
        let kind = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let mut written = Vec::new();
        if let Some(boundary) = Multipart::boundary(&kind) {
            let mut parts = Multipart::new(body, &boundary);
            while let Some(part) = parts.next_part().await.map_err(RpcError::invalid)? {
                let path = part
                    .filename
                    .filter(|f| f.starts_with('/'))
                    .or_else(|| query.path.clone())
                    .ok_or_else(|| {
                        RpcError::invalid(
                            "a part names no absolute path: give it as its file name or as ?path=",
                        )
                    })?;
                let mut writer = state
                    .engine
                    .sandbox_write(target.scope(), &target.id, &absolute(&path))
                    .await
                    .map_err(rpc_error)?;
                while let Some(piece) = parts.chunk().await.map_err(RpcError::invalid)? {
                    writer
                        .write(&piece)
                        .await
                        .map_err(|e| rpc_error(SandboxError::File(e)))?;
                }
                let entry = writer
                    .finish()
                    .await
                    .map_err(|e| rpc_error(SandboxError::File(e)))?;
                written.push(json!({ "name": entry.name, "type": "file", "path": entry.path }));
            }
        } else {
            let path = query
                .path
                .clone()
                .filter(|p| !p.is_empty())
                .ok_or_else(|| RpcError::invalid("query parameter \"path\" is required"))?;
            let mut writer = state
                .engine
                .sandbox_write(target.scope(), &target.id, &absolute(&path))
                .await
                .map_err(rpc_error)?;
            let mut body = body.into_data_stream();
            while let Some(piece) = body.next().await {
                let piece =
                    piece.map_err(|e| RpcError::invalid(format!("the upload was cut off: {e}")))?;
                writer
                    .write(&piece)
                    .await
                    .map_err(|e| rpc_error(SandboxError::File(e)))?;
            }
            let entry = writer
                .finish()
                .await
                .map_err(|e| rpc_error(SandboxError::File(e)))?;
            written.push(json!({ "name": entry.name, "type": "file", "path": entry.path }));
        }
        Ok::<_, RpcError>(written)
    };
    match answer.await {
        Ok(written) => Json(written).into_response(),
        Err(e) => http_error(e),
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

    #[test]
    fn ends_read_as_envd_writes_them() {
        let exited = end_event(ProcessExit {
            exit_code: Some(3),
            signal: None,
        });
        assert_eq!(exited["event"]["end"]["exitCode"], 3);
        assert_eq!(exited["event"]["end"]["status"], "exit status 3");
        let killed = end_event(ProcessExit {
            exit_code: None,
            signal: Some(9),
        });
        assert_eq!(killed["event"]["end"]["exited"], false);
        assert_eq!(killed["event"]["end"]["status"], "signal: killed");
    }

    #[test]
    fn permissions_read_as_ls_writes_them() {
        assert_eq!(permissions("file", 0o644), "-rw-r--r--");
        assert_eq!(permissions("dir", 0o755), "drwxr-xr-x");
    }
}
