//! `/v1/workloads/{id}/logs`: live SSE, and the persisted history.

use std::collections::HashMap;
use std::convert::Infallible;

use crate::extract::{Path, Query};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Extension;
use axum::Json;
use futures_util::stream::{self, Stream};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use vulcan_domain::{LogLine, LogStream, Permission};
use vulcan_engine::{Engine, LogEvent};

use crate::auth::Caller;
use crate::request::workloads::visible;
use crate::{ApiError, AppState};

/// Which of a workload's log streams to read (`?stream=`).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum StreamChoice {
    Stdout,
    Stderr,
    Backend,
    All,
}

pub(crate) fn stream_filter(
    params: &HashMap<String, String>,
) -> Result<Option<LogStream>, ApiError> {
    match params.get("stream").map(String::as_str) {
        None | Some("all") => Ok(None),
        Some(s) => LogStream::parse(s).map(Some).ok_or_else(|| {
            ApiError::bad_request(format!(
                "query parameter stream={s:?} is not valid: use stdout, stderr, backend or all"
            ))
        }),
    }
}

/// One server-sent event of `GET /v1/workloads/{id}/logs`: `log` (its data a line's JSON,
/// its id the line's seq) or `done` (its data `{"status","exit_code","error"}`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct SseLogEvent {
    event: String,
    data: String,
    #[schema(nullable = false)]
    id: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LogHistory {
    workload_id: String,
    lines: Vec<LogLine>,
}

/// `GET /v1/workloads/{id}/logs/history[?stream=]`: every persisted line, in order.
#[utoipa::path(get, path = "/v1/workloads/{id}/logs/history", tag = "workloads", params(("id" = String, Path), ("stream" = Option<StreamChoice>, Query, description = "stdout, stderr, backend or all (the default)")), responses((status = 200, description = "OK", body = LogHistory), crate::error::Errors))]
pub async fn history(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<LogHistory>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    let filter = stream_filter(&params)?;
    visible(&state, &caller, &id).await?;
    let lines = state.engine.logs(&id, filter).await?;
    Ok(Json(LogHistory {
        workload_id: id,
        lines,
    }))
}

/// `GET /v1/workloads/{id}/logs[?stream=]`: one `log` event per line as it is produced
/// (a finished workload replays its lines), then one `done` event with the final status.
#[utoipa::path(get, path = "/v1/workloads/{id}/logs", tag = "workloads", params(("id" = String, Path), ("stream" = Option<StreamChoice>, Query, description = "stdout, stderr, backend or all (the default)")), responses((status = 200, description = "Server-sent events: `log` per line, then `done`", content_type = "text/event-stream", body = SseLogEvent), crate::error::Errors))]
pub async fn stream(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    let filter = stream_filter(&params)?;
    visible(&state, &caller, &id).await?;
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(feed(state.engine.clone(), id, filter, 0, tx));
    let events = stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        let event = match item {
            LogItem::Line(line) => Event::default()
                .event("log")
                .id(line.seq.to_string())
                .json_data(&line)
                .unwrap_or_default(),
            LogItem::Done(data) => Event::default().event("done").data(data.to_string()),
        };
        Some((Ok(event), rx))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// What a live log client is sent: each line, then how the workload ended.
pub(crate) enum LogItem {
    Line(LogLine),
    Done(serde_json::Value),
}

/// Sends lines to one client (SSE or WebSocket); ends early if the client goes away.
struct Feed {
    tx: mpsc::Sender<LogItem>,
    filter: Option<LogStream>,
    last_seq: u64,
}

impl Feed {
    async fn line(&mut self, line: LogLine) -> Result<(), ()> {
        if line.seq <= self.last_seq {
            return Ok(());
        }
        self.last_seq = line.seq;
        if self.filter.is_some_and(|f| f != line.stream) {
            return Ok(());
        }
        self.tx.send(LogItem::Line(line)).await.map_err(drop)
    }

    async fn lines(&mut self, lines: Vec<LogLine>) -> Result<(), ()> {
        for line in lines {
            self.line(line).await?;
        }
        Ok(())
    }
}

/// Feeds one client the lines of workload `id` after `since` (live while it runs), then
/// how it ended.
pub(crate) async fn feed(
    engine: Engine,
    id: String,
    filter: Option<LogStream>,
    since: u64,
    tx: mpsc::Sender<LogItem>,
) {
    let mut feed = Feed {
        tx,
        filter,
        last_seq: since,
    };
    if follow(&engine, &id, &mut feed).await.is_err() {
        return;
    }
    // Not (or no longer) running here: the lines come from the store until it ends.
    if follow_stored(&engine, &id, &mut feed).await.is_err() {
        return;
    }
    let data = match engine.workload(&id).await {
        Ok(w) => {
            serde_json::json!({ "status": w.status, "exit_code": w.exit_code, "error": w.error })
        }
        Err(e) => serde_json::json!({ "error": e.to_string() }),
    };
    let _ = feed.tx.send(LogItem::Done(data)).await;
}

/// Follows a workload this node does not run (another node's, or one still queued) through
/// the store: its new lines after each signal (or poll), until it is terminal. A run writes
/// all its lines before its status turns terminal, so the last read has them all.
async fn follow_stored(engine: &Engine, id: &str, feed: &mut Feed) -> Result<(), ()> {
    let watch = engine.watch(id);
    loop {
        let armed = watch.armed();
        // Claimed by this node meanwhile: follow it live.
        if engine.broker().subscribe(id).is_some() {
            follow(engine, id, feed).await?;
        }
        let status = engine.workload(id).await.map_err(drop)?.status;
        let lines = engine.logs_after(id, feed.last_seq).await.map_err(drop)?;
        feed.lines(lines).await?;
        if status.is_terminal() {
            return Ok(());
        }
        watch.changed(armed).await;
    }
}

/// Follows the live topic until the workload ends; returns at once if it already has.
async fn follow(engine: &Engine, id: &str, feed: &mut Feed) -> Result<(), ()> {
    let Some(sub) = engine.broker().subscribe(id) else {
        return Ok(());
    };
    feed.lines(sub.backlog).await?;
    let mut receiver = sub.receiver;
    loop {
        match receiver.recv().await {
            Ok(LogEvent::Line(line)) => feed.line(line).await?,
            Ok(LogEvent::Done) | Err(RecvError::Closed) => return Ok(()),
            Err(RecvError::Lagged(_)) => match engine.broker().lines_after(id, feed.last_seq) {
                Some(lines) => feed.lines(lines).await?,
                None => return Ok(()),
            },
        }
    }
}
