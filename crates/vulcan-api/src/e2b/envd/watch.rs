//! envd's directory watches: `WatchDir` (a stream, what the JavaScript SDK uses) and
//! `CreateWatcher` / `GetWatcherEvents` / `RemoveWatcher` (a watcher polled for what
//! happened since, what the Python SDK uses).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::stream::{self, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use vulcan_domain::{FileEvent, FileEventKind, FileWatch};

use super::process::keepalive_of;
use super::{absolute, reply, rpc_error, target};
use crate::e2b::connect::{self, RpcError};
use crate::AppState;

/// Watchers polled by id, on this node; each ends with its sandbox or its directory.
static WATCHERS: LazyLock<Mutex<HashMap<String, Watcher>>> = LazyLock::new(Default::default);

/// Watchers held at once (every sandbox together).
const MAX_WATCHERS: usize = 1024;

/// Events a watcher keeps until they are asked for (older ones are dropped past it).
const MAX_KEPT: usize = 10_000;

struct Watcher {
    sandbox: String,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Seen {
    events: Vec<Value>,
    /// Why it ended, once it has.
    ended: Option<String>,
}

fn watchers() -> std::sync::MutexGuard<'static, HashMap<String, Watcher>> {
    WATCHERS.lock().unwrap_or_else(|p| p.into_inner())
}

fn event_json(event: &FileEvent) -> Value {
    let kind = match event.kind {
        FileEventKind::Create => "EVENT_TYPE_CREATE",
        FileEventKind::Write => "EVENT_TYPE_WRITE",
        FileEventKind::Remove => "EVENT_TYPE_REMOVE",
        FileEventKind::Rename => "EVENT_TYPE_RENAME",
        FileEventKind::Chmod => "EVENT_TYPE_CHMOD",
    };
    json!({ "name": event.name, "type": kind })
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct WatchRequest {
    path: String,
    recursive: bool,
    watcher_id: String,
}

async fn open_watch(
    state: &AppState,
    headers: &HeaderMap,
    request: &WatchRequest,
) -> Result<(String, Box<dyn FileWatch>), RpcError> {
    if request.path.is_empty() {
        return Err(RpcError::invalid("\"path\" is required"));
    }
    let target = target(state, headers).await?;
    let watch = state
        .engine
        .sandbox_watch(
            target.scope(),
            &target.id,
            &absolute(&request.path),
            request.recursive,
        )
        .await
        .map_err(rpc_error)?;
    Ok((target.id, watch))
}

/// `filesystem.Filesystem/WatchDir`: a start, then each change as it happens.
pub(super) async fn watch_dir(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let begun = async {
        let request: WatchRequest = connect::stream_request(&headers, &body)?;
        open_watch(&state, &headers, &request).await
    };
    let watch = match begun.await {
        Ok((_, watch)) => watch,
        Err(e) => return connect::stream_error(e),
    };
    let keepalive = keepalive_of(&headers);
    let started = stream::once(async { Ok(json!({ "start": {} })) });
    let changes = stream::unfold(Some(watch), move |watch| async move {
        let mut watch = watch?;
        match tokio::time::timeout(keepalive, watch.next()).await {
            Err(_) => Some((Ok(json!({ "keepalive": {} })), Some(watch))),
            Ok(Ok(event)) => Some((Ok(json!({ "filesystem": event_json(&event) })), Some(watch))),
            Ok(Err(e)) => Some((Err(RpcError::new("not_found", e.message)), None)),
        }
    });
    connect::streaming(started.chain(changes))
}

/// `filesystem.Filesystem/CreateWatcher`: `{watcherId}`.
pub(super) async fn create_watcher(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = async {
        let request: WatchRequest = connect::unary(&headers, &body)?;
        forget_ended();
        if watchers().len() >= MAX_WATCHERS {
            return Err(RpcError::new(
                "resource_exhausted",
                format!("{MAX_WATCHERS} watchers are held already: remove one first"),
            ));
        }
        let (sandbox, mut watch) = open_watch(&state, &headers, &request).await?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let feeding = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let next = watch.next().await;
                let mut seen = feeding.lock().unwrap_or_else(|p| p.into_inner());
                match next {
                    Ok(event) => {
                        if seen.events.len() >= MAX_KEPT {
                            seen.events.remove(0);
                        }
                        seen.events.push(event_json(&event));
                    }
                    Err(e) => {
                        seen.ended = Some(e.message);
                        return;
                    }
                }
            }
        });
        let id = format!("w{}", ulid::Ulid::new().to_string().to_lowercase());
        watchers().insert(
            id.clone(),
            Watcher {
                sandbox,
                seen,
                task,
            },
        );
        Ok(json!({ "watcherId": id }))
    };
    reply(answer.await)
}

/// The watcher `id` of the sandbox the request is for.
fn watcher_of(sandbox: &str, id: &str) -> Result<Arc<Mutex<Seen>>, RpcError> {
    watchers()
        .get(id)
        .filter(|w| w.sandbox == sandbox)
        .map(|w| w.seen.clone())
        .ok_or_else(|| RpcError::new("not_found", format!("no watcher {id} in this sandbox")))
}

/// `filesystem.Filesystem/GetWatcherEvents`: what happened since the last ask.
pub(super) async fn get_watcher_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = async {
        let request: WatchRequest = connect::unary(&headers, &body)?;
        let target = target(&state, &headers).await?;
        let seen = watcher_of(&target.id, &request.watcher_id)?;
        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        let events = std::mem::take(&mut seen.events);
        if events.is_empty() {
            if let Some(why) = &seen.ended {
                return Err(RpcError::new(
                    "not_found",
                    format!("the watch ended: {why}"),
                ));
            }
        }
        Ok(json!({ "events": events }))
    };
    reply(answer.await)
}

/// `filesystem.Filesystem/RemoveWatcher`.
pub(super) async fn remove_watcher(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = async {
        let request: WatchRequest = connect::unary(&headers, &body)?;
        let target = target(&state, &headers).await?;
        watcher_of(&target.id, &request.watcher_id)?;
        if let Some(watcher) = watchers().remove(&request.watcher_id) {
            watcher.task.abort();
        }
        Ok(json!({}))
    };
    reply(answer.await)
}

/// Forgets the watchers of sandboxes that are gone and watches that ended long ago
/// (called when a watcher is made, so the map stays bounded by what lives).
fn forget_ended() {
    watchers().retain(|_, w| {
        let seen = w.seen.lock().unwrap_or_else(|p| p.into_inner());
        !(seen.ended.is_some() && seen.events.is_empty())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_named_as_envd_names_them() {
        let event = FileEvent {
            name: "a/b.txt".into(),
            kind: FileEventKind::Rename,
        };
        assert_eq!(
            event_json(&event),
            json!({"name": "a/b.txt", "type": "EVENT_TYPE_RENAME"})
        );
    }
}
