//! envd's `process.Process` service: processes started, watched, fed and signalled.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use base64::Engine as _;
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use vulcan_domain::{LogStream, ProcessExit, PtySize};
use vulcan_engine::sandboxes::processes::{ProcessEvent, ProcessWatch};
use vulcan_engine::NewProcess;

use super::{absolute, reply, rpc_error, target, user_of, Target, KEEPALIVE};
use crate::e2b::connect::{self, RpcError};
use crate::AppState;

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ProcessConfig {
    cmd: String,
    args: Vec<String>,
    envs: BTreeMap<String, String>,
    cwd: Option<String>,
}

/// envd's `PTY`: a terminal of `size`.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Pty {
    size: Option<PtySize>,
}

impl Pty {
    fn size(&self) -> Result<PtySize, RpcError> {
        self.size
            .ok_or_else(|| RpcError::invalid("\"pty\" needs its \"size\": {\"rows\", \"cols\"}"))
    }
}

#[derive(Deserialize)]
pub(super) struct StartRequest {
    process: ProcessConfig,
    #[serde(default)]
    pty: Option<Pty>,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    stdin: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Selector {
    pid: Option<u32>,
    tag: Option<String>,
}

impl Selector {
    /// The pid selected: the one given, or the running process started with the tag.
    async fn pid(&self, state: &AppState, target: &Target) -> Result<u32, RpcError> {
        match (self.pid, &self.tag) {
            (Some(pid), _) => Ok(pid),
            (None, Some(tag)) => state
                .engine
                .processes(target.scope(), &target.id)
                .await
                .map_err(rpc_error)?
                .iter()
                .rev()
                .find(|p| p.state == "running" && p.tag.as_deref() == Some(tag))
                .map(|p| p.pid)
                .ok_or_else(|| {
                    RpcError::new("not_found", format!("no running process is tagged {tag:?}"))
                }),
            (None, None) => Err(RpcError::invalid(
                "\"process\": {\"pid\": …} or {\"tag\": …} is required",
            )),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Selected {
    process: Selector,
}

/// The keepalive period the client asked for.
pub(super) fn keepalive_of(headers: &HeaderMap) -> Duration {
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

/// A process's events as Connect messages: its start, its output (`pty` data for a
/// process on a terminal), its end.
fn events(
    pid: u32,
    on_terminal: bool,
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
                            _ if on_terminal => "pty",
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
pub(super) async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let begun = async {
        let request: StartRequest = connect::stream_request(&headers, &body)?;
        let pty = request.pty.as_ref().map(Pty::size).transpose()?;
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
            tag: request.tag,
            pty,
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
        Ok(events(
            info.pid,
            pty.is_some(),
            watch,
            keepalive_of(&headers),
        ))
    };
    match begun.await {
        Ok(events) => connect::streaming(events),
        Err(e) => connect::stream_error(e),
    }
}

/// `process.Process/Connect`: a running process's events from now on.
pub(super) async fn connect_process(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let begun = async {
        let request: Selected = connect::stream_request(&headers, &body)?;
        let target = target(&state, &headers).await?;
        let pid = request.process.pid(&state, &target).await?;
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
        Ok(events(
            pid,
            info.pty.is_some(),
            watch,
            keepalive_of(&headers),
        ))
    };
    match begun.await {
        Ok(events) => connect::streaming(events),
        Err(e) => connect::stream_error(e),
    }
}

/// `process.Process/List`: the processes still running.
pub(super) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
                let mut info = json!({ "config": config, "pid": p.pid });
                if let Some(tag) = &p.tag {
                    info["tag"] = json!(tag);
                }
                info
            })
            .collect();
        Ok(json!({ "processes": running }))
    };
    reply(answer.await)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Input {
    stdin: Option<String>,
    pty: Option<String>,
}

impl Input {
    /// The bytes typed (`pty`) or written to stdin.
    fn bytes(&self) -> Result<Vec<u8>, RpcError> {
        let (field, text) = match (&self.pty, &self.stdin) {
            (Some(typed), _) => ("pty", typed.as_str()),
            (None, written) => ("stdin", written.as_deref().unwrap_or("")),
        };
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| RpcError::invalid(format!("\"{field}\" is not base64: {e}")))
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct SendInputRequest {
    process: Selector,
    input: Input,
}

/// `process.Process/SendInput`.
pub(super) async fn send_input(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = async {
        let request: SendInputRequest = connect::unary(&headers, &body)?;
        let bytes = request.input.bytes()?;
        let target = target(&state, &headers).await?;
        let pid = request.process.pid(&state, &target).await?;
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
pub(super) struct StreamInputEvent {
    start: Option<Selected>,
    data: Option<StreamInputData>,
    keepalive: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct StreamInputData {
    input: Input,
}

/// `process.Process/StreamInput`: a start naming the process, then its input, in order.
pub(super) async fn stream_input(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let answer = async {
        connect::check_stream_type(&headers)?;
        let target = target(&state, &headers).await?;
        let mut messages = connect::Envelopes::new(body);
        let mut pid = None;
        while let Some(message) = messages.next::<StreamInputEvent>().await {
            let event = message?;
            if let Some(start) = event.start {
                pid = Some(start.process.pid(&state, &target).await?);
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
pub(super) async fn close_stdin(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = async {
        let request: Selected = connect::unary(&headers, &body)?;
        let target = target(&state, &headers).await?;
        let pid = request.process.pid(&state, &target).await?;
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
pub(super) struct SignalRequest {
    process: Selector,
    signal: Value,
}

/// `process.Process/SendSignal` (`SIGNAL_SIGKILL`, `SIGNAL_SIGTERM`, or a number).
pub(super) async fn send_signal(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = async {
        let request: SignalRequest = connect::unary(&headers, &body)?;
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
        let pid = request.process.pid(&state, &target).await?;
        state
            .engine
            .signal_process(target.scope(), &target.id, pid, signal)
            .await
            .map_err(rpc_error)?;
        Ok(json!({}))
    };
    reply(answer.await)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct UpdateRequest {
    process: Selector,
    pty: Option<Pty>,
}

/// `process.Process/Update`: a new size for a process's terminal.
pub(super) async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = async {
        let request: UpdateRequest = connect::unary(&headers, &body)?;
        let Some(pty) = &request.pty else {
            return Ok(json!({}));
        };
        let size = pty.size()?;
        let target = target(&state, &headers).await?;
        let pid = request.process.pid(&state, &target).await?;
        state
            .engine
            .resize_process(target.scope(), &target.id, pid, size)
            .await
            .map_err(rpc_error)?;
        Ok(json!({}))
    };
    reply(answer.await)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
