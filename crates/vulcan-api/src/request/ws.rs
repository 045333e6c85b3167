//! WebSockets (RFC 6455): `/ws/logs/{id}`, `/ws/stats`, `/ws/events`. The same keys, roles
//! and tenant rules as HTTP (the key in `X-API-Key`, `Authorization`, or from a browser the
//! `Sec-WebSocket-Protocol` value `vulcan.key.<key>` offered beside `vulcan`; never in the
//! URL).
//!
//! Every message is one JSON text. A client that does not keep up is closed with code
//! 1008 and a reason — a send that cannot complete within [`SEND_TIMEOUT`], an event
//! stream it fell more than the server keeps behind on, or no answer to three pings in a
//! row (`VULCAN_WS_PING_S` apart: a client that is not reading answers none) — never
//! buffered without bound: each connection holds at most [`QUEUE`] messages, and the
//! kernel's socket buffers.

use std::collections::HashMap;
use std::time::Duration;

use crate::extract::{Path, Query, Upgrade};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::time::Instant;
use vulcan_domain::Permission;
use vulcan_engine::events::Event;

use crate::auth::{Caller, WS_KEY_PROTOCOL};
use crate::request::logs::{feed, stream_filter, LogItem};
use crate::request::workloads::visible;
use crate::{ApiError, AppState};

/// The longest one message may take to leave: past it the client is too slow.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages waiting between a stream's producer and its socket.
pub const QUEUE: usize = 64;

/// The largest message (and frame) a client may send: clients only answer pings.
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// Policy violation: what a client that does not keep up is closed with.
const TOO_SLOW: u16 = 1008;

/// Open WebSockets per key, bounded (`VULCAN_WS_MAX_PER_KEY`).
pub struct Seats {
    per_key: usize,
    held: std::sync::Mutex<HashMap<String, usize>>,
}

/// One open WebSocket of a key, counted until dropped.
pub struct Seat {
    seats: std::sync::Arc<Seats>,
    key: String,
}

impl Seats {
    pub fn new(per_key: usize) -> Seats {
        Seats {
            per_key,
            held: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A seat for one more WebSocket of `key`, or 429 saying how many it has.
    fn take(self: &std::sync::Arc<Self>, key: &str) -> Result<Seat, ApiError> {
        let mut held = self.held();
        let n = held.entry(key.to_owned()).or_default();
        if *n >= self.per_key {
            return Err(ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "this key has {} WebSockets open, the most allowed (VULCAN_WS_MAX_PER_KEY): close one first",
                    self.per_key
                ),
            )
            .retry_after(1));
        }
        *n += 1;
        Ok(Seat {
            seats: self.clone(),
            key: key.to_owned(),
        })
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut held = self.seats.held();
        if let Some(n) = held.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}

/// Takes a seat for the caller and accepts the upgrade, bounding what the client may
/// send, answering the subprotocol the client offered: `vulcan` if it did (the key then
/// never comes back), else its `vulcan.key.*` value (browsers require one of theirs to
/// be chosen).
fn upgrade(
    state: &AppState,
    caller: &Caller,
    ws: WebSocketUpgrade,
    headers: &HeaderMap,
) -> Result<(WebSocketUpgrade, Seat), ApiError> {
    let seat = state.ws_seats.take(&caller.key_id)?;
    let ws = ws
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE);
    let offered: Vec<String> = headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_owned()))
        .collect();
    let chosen = offered
        .iter()
        .find(|p| *p == "vulcan")
        .or_else(|| offered.iter().find(|p| p.starts_with(WS_KEY_PROTOCOL)))
        .cloned();
    let ws = match chosen {
        Some(protocol) => ws.protocols([protocol]),
        None => ws,
    };
    Ok((ws, seat))
}

/// What a producer hands the socket.
enum Out {
    Text(String),
    /// Close with this code and reason.
    Close(u16, String),
}

/// Pumps `rx` to the socket until it ends, the client goes, or it is too slow.
async fn pump(
    mut socket: WebSocket,
    mut rx: mpsc::Receiver<Out>,
    ping_every: Duration,
    metrics: &vulcan_engine::Metrics,
) {
    let mut ping = tokio::time::interval(ping_every);
    ping.reset();
    let silent_for = ping_every * 3;
    let mut heard = Instant::now();
    loop {
        let out = tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => { heard = Instant::now(); continue; }
            },
            _ = ping.tick() => {
                if heard.elapsed() > silent_for {
                    let reason = format!(
                        "too slow: no answer to pings for {} s (the client is not reading)",
                        silent_for.as_secs()
                    );
                    metrics.slow_client_closed();
                    close(&mut socket, TOO_SLOW, &reason).await;
                    return;
                }
                Message::Ping(Default::default())
            }
            next = rx.recv() => match next {
                Some(Out::Text(text)) => Message::Text(Utf8Bytes::from(text)),
                Some(Out::Close(code, reason)) => {
                    if code == TOO_SLOW {
                        metrics.slow_client_closed();
                    }
                    close(&mut socket, code, &reason).await;
                    return;
                }
                None => {
                    close(&mut socket, 1000, "done").await;
                    return;
                }
            },
        };
        match tokio::time::timeout(SEND_TIMEOUT, socket.send(out)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                // Its buffers are full: a close frame may not get through either.
                let reason =
                    format!("too slow: a message could not be sent within {SEND_TIMEOUT:?}");
                close(&mut socket, TOO_SLOW, &reason).await;
                return;
            }
        }
    }
}

/// Sends a close frame, giving a client that is behind a few seconds to take it; the
/// connection is dropped either way.
async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.to_owned()),
    };
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        socket.send(Message::Close(Some(frame))),
    )
    .await;
}

/// `GET /ws/logs/{id}[?stream=][&since=SEQ]`: each line (`{"type":"log","seq","stream",
/// "line","created_at"}`) as it is produced — a finished workload replays its lines —
/// then `{"type":"done","status","exit_code","error"}`, then close. `since` resumes after
/// the last line a client saw: no gap, no repeat.
#[utoipa::path(get, path = "/ws/logs/{id}", tag = "live", params(("id" = String, Path), ("stream" = Option<crate::request::logs::StreamChoice>, Query), ("since" = Option<u64>, Query, description = "Resume after this line")), responses((status = 101, description = "WebSocket: log lines, then done"), crate::error::Errors))]
pub async fn logs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Upgrade(ws): Upgrade,
) -> Result<Response, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    let filter = stream_filter(&params)?;
    let since = match params.get("since").filter(|s| !s.is_empty()) {
        None => 0,
        Some(s) => s.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "query parameter since={s:?} is not valid: give the seq of the last line you received"
            ))
        })?,
    };
    visible(&state, &caller, &id).await?;
    let engine = state.engine.clone();
    let ping_every = state.ws_ping;
    let metrics = state.engine.metrics().clone();
    let (ws, seat) = upgrade(&state, &caller, ws, &headers)?;
    Ok(ws.on_upgrade(move |socket| async move {
        let _seat = seat;
        let (items_tx, mut items) = mpsc::channel(QUEUE);
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(feed(engine, id, filter, since, items_tx));
        tokio::spawn(async move {
            while let Some(item) = items.recv().await {
                let mut value = match item {
                    LogItem::Line(line) => serde_json::to_value(&line).unwrap_or_default(),
                    LogItem::Done(done) => done,
                };
                let kind = if value.get("seq").is_some() {
                    "log"
                } else {
                    "done"
                };
                if let Some(map) = value.as_object_mut() {
                    map.insert("type".into(), kind.into());
                }
                if tx.send(Out::Text(value.to_string())).await.is_err() {
                    return;
                }
            }
        });
        pump(socket, rx, ping_every, &metrics).await;
    }))
}

/// `GET /ws/sandboxes/{id}/processes/{pid}[?offset=]`: a sandbox process's output from
/// `offset` on (`{"type": "stdout"|"stderr", "offset", "data": base64}`, `{"type":
/// "skipped", "from", "to"}` where output is no longer kept), live, then `{"type": "exit",
/// "exit_code", "signal"}`, then close. A client reconnects from the offset after the last
/// chunk it saw: no gap, no repeat.
#[utoipa::path(get, path = "/ws/sandboxes/{id}/processes/{pid}", tag = "live", params(("id" = String, Path), ("pid" = u32, Path), ("offset" = Option<u64>, Query, description = "Bytes of output already seen")), responses((status = 101, description = "WebSocket: output chunks, then the exit"), crate::error::Errors))]
pub async fn sandbox_process(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, pid)): Path<(String, u32)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Upgrade(ws): Upgrade,
) -> Result<Response, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    let offset = crate::request::sandboxes::offset_of(params.get("offset").cloned())?;
    let mut watch = state
        .engine
        .watch_process(caller.scope(), &id, pid, offset)
        .await?;
    let ping_every = state.ws_ping;
    let metrics = state.engine.metrics().clone();
    let (ws, seat) = upgrade(&state, &caller, ws, &headers)?;
    Ok(ws.on_upgrade(move |socket| async move {
        let _seat = seat;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(async move {
            while let Some(event) = watch.next().await {
                let (kind, _, mut value) = crate::request::sandboxes::process_event(event);
                if let Some(map) = value.as_object_mut() {
                    map.insert("type".into(), kind.into());
                }
                if tx.send(Out::Text(value.to_string())).await.is_err() {
                    return;
                }
            }
        });
        pump(socket, rx, ping_every, &metrics).await;
    }))
}

/// `GET /ws/sandboxes/{id}/files/watch?path=[&recursive=true]`: each change in the
/// directory (and below it, `recursive`) as it happens, `{"type": "create"|"write"|
/// "remove"|"rename"|"chmod", "name"}` (`name` relative to the directory), until the
/// directory or the sandbox goes (then a close saying why).
#[utoipa::path(get, path = "/ws/sandboxes/{id}/files/watch", tag = "live", params(("id" = String, Path), ("path" = String, Query, description = "An absolute path inside the sandbox"), ("recursive" = Option<bool>, Query)), responses((status = 101, description = "WebSocket: changes as they happen"), crate::error::Errors))]
pub async fn sandbox_watch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Upgrade(ws): Upgrade,
) -> Result<Response, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    let path = params.get("path").cloned().ok_or_else(|| {
        ApiError::bad_request(
            "query parameter \"path\" is required: a directory inside the sandbox",
        )
    })?;
    let recursive = match params.get("recursive").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "recursive={other:?}: give true or false"
            )))
        }
    };
    let mut watch = state
        .engine
        .sandbox_watch(caller.scope(), &id, &path, recursive)
        .await?;
    let ping_every = state.ws_ping;
    let metrics = state.engine.metrics().clone();
    let (ws, seat) = upgrade(&state, &caller, ws, &headers)?;
    Ok(ws.on_upgrade(move |socket| async move {
        let _seat = seat;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(async move {
            loop {
                let out = match watch.next().await {
                    Ok(event) => Out::Text(serde_json::to_string(&event).unwrap_or_default()),
                    Err(e) => Out::Close(1000, e.message),
                };
                let ended = matches!(out, Out::Close(..));
                if tx.send(out).await.is_err() || ended {
                    return;
                }
            }
        });
        pump(socket, rx, ping_every, &metrics).await;
    }))
}

/// `GET /ws/stats`: `/v1/stats` (the caller's tenant's, or everyone's for an admin) every
/// second, and at once when a workload the caller sees changes.
#[utoipa::path(get, path = "/ws/stats", tag = "live", responses((status = 101, description = "WebSocket: /v1/stats every second and on change"), crate::error::Errors))]
pub async fn stats(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Upgrade(ws): Upgrade,
) -> Result<Response, ApiError> {
    caller.require(Permission::StatsRead)?;
    let engine = state.engine.clone();
    let ping_every = state.ws_ping;
    let metrics = state.engine.metrics().clone();
    let (ws, seat) = upgrade(&state, &caller, ws, &headers)?;
    Ok(ws.on_upgrade(move |socket| async move {
        let _seat = seat;
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut events = engine.events();
        tokio::spawn(async move {
            let scope = caller.scope().map(str::to_owned);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                let stats = match engine.stats(scope.as_deref()).await {
                    Ok(stats) => serde_json::to_string(&stats).unwrap_or_default(),
                    Err(e) => serde_json::json!({ "error": e.to_string() }).to_string(),
                };
                if tx.try_send(Out::Text(stats)).is_err() {
                    // Full: the socket is not keeping up (the pump closes it); or gone.
                    return;
                }
                tokio::select! {
                    _ = tick.tick() => {}
                    event = events.recv() => match event {
                        Ok(e) if e.kind == "workload" && visible_to(&caller, &e) => {}
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return,
                    },
                }
            }
        });
        pump(socket, rx, ping_every, &metrics).await;
    }))
}

/// Whether `caller` may see `event`: its own tenant's (admins: all, nodes included).
fn visible_to(caller: &Caller, event: &Event) -> bool {
    match caller.scope() {
        None => true,
        Some(tenant) => event.tenant.as_deref() == Some(tenant),
    }
}

/// `GET /ws/events[?kind=][&type=][&status=]`: lifecycle events as they happen, on every
/// node — workloads `created`, `started`, `finished` (with `status`), nodes `joined`,
/// `lost`, `left` (admins only), functions `deployed`, schedules `fired`.
#[utoipa::path(get, path = "/ws/events", tag = "live", params(("kind" = Option<String>, Query), ("type" = Option<String>, Query), ("status" = Option<String>, Query)), responses((status = 101, description = "WebSocket: lifecycle events", body = vulcan_engine::events::Event), crate::error::Errors))]
pub async fn events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Upgrade(ws): Upgrade,
) -> Result<Response, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    for (name, allowed) in [
        ("kind", &["workload", "node", "function", "schedule"][..]),
        (
            "type",
            &[
                "created", "started", "finished", "joined", "lost", "left", "deployed", "fired",
            ][..],
        ),
    ] {
        if let Some(v) = params.get(name).filter(|v| !allowed.contains(&v.as_str())) {
            return Err(ApiError::bad_request(format!(
                "query parameter {name}={v:?} is not valid: use one of {}",
                allowed.join(", ")
            )));
        }
    }
    let wanted = move |e: &Event| {
        params.get("kind").is_none_or(|k| *k == e.kind)
            && params.get("type").is_none_or(|t| *t == e.event)
            && params
                .get("status")
                .is_none_or(|s| e.status.as_deref() == Some(s.as_str()))
    };
    let mut events = state.engine.events();
    let ping_every = state.ws_ping;
    let metrics = state.engine.metrics().clone();
    let (ws, seat) = upgrade(&state, &caller, ws, &headers)?;
    Ok(ws.on_upgrade(move |socket| async move {
        let _seat = seat;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(e) if visible_to(&caller, &e) && wanted(&e) => {
                        let text = serde_json::to_string(&e).unwrap_or_default();
                        if let Err(mpsc::error::TrySendError::Full(_)) =
                            tx.try_send(Out::Text(text))
                        {
                            let _ = tx
                                .send(Out::Close(
                                    TOO_SLOW,
                                    "too slow: events were left unread".into(),
                                ))
                                .await;
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        let reason = format!("too slow: {n} events were missed");
                        let _ = tx.send(Out::Close(TOO_SLOW, reason)).await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                }
                if tx.is_closed() {
                    return;
                }
            }
        });
        pump(socket, rx, ping_every, &metrics).await;
    }))
}
