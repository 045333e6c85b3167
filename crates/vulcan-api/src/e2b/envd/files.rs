//! envd's `filesystem.Filesystem` service and its `/files` routes.

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use vulcan_domain::FileEntry;
use vulcan_engine::SandboxError;

use super::{absolute, http_error, reply, rpc_error, target, Target};
use crate::e2b::connect::{self, RpcError};
use crate::e2b::multipart::Multipart;
use crate::AppState;

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
pub(super) struct PathRequest {
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
pub(super) async fn stat(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
pub(super) async fn list_dir(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
pub(super) async fn make_dir(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
pub(super) struct MoveRequest {
    source: String,
    destination: String,
}

/// `filesystem.Filesystem/Move`.
pub(super) async fn move_entry(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
pub(super) async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
pub(super) struct FilesQuery {
    #[serde(default)]
    path: Option<String>,
}

/// `GET /files?path=`: the file's bytes, streamed.
pub(super) async fn download(
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

/// Writes the pieces `next` yields to `path` in the sandbox: `{name, type, path}`.
async fn save<S>(
    state: &AppState,
    target: &Target,
    path: &str,
    mut pieces: S,
) -> Result<Value, RpcError>
where
    S: futures_util::Stream<Item = Result<Vec<u8>, RpcError>> + Unpin,
{
    let mut writer = state
        .engine
        .sandbox_write(target.scope(), &target.id, &absolute(path))
        .await
        .map_err(rpc_error)?;
    while let Some(piece) = pieces.next().await {
        writer
            .write(&piece?)
            .await
            .map_err(|e| rpc_error(SandboxError::File(e)))?;
    }
    let entry = writer
        .finish()
        .await
        .map_err(|e| rpc_error(SandboxError::File(e)))?;
    Ok(json!({ "name": entry.name, "type": "file", "path": entry.path }))
}

/// `POST /files?path=`: an `application/octet-stream` body is the file at `path`;
/// a `multipart/form-data` body's parts are files at their file names (or at `path`
/// when there is one part). Answers `[{name, type, path}]`.
pub(super) async fn upload(
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
                let pieces = Box::pin(stream::unfold(&mut parts, |parts| async move {
                    match parts.chunk().await {
                        Ok(Some(piece)) => Some((Ok(piece), parts)),
                        Ok(None) => None,
                        Err(e) => Some((Err(RpcError::invalid(e)), parts)),
                    }
                }));
                written.push(save(&state, &target, &path, pieces).await?);
            }
        } else {
            let path = query
                .path
                .clone()
                .filter(|p| !p.is_empty())
                .ok_or_else(|| RpcError::invalid("query parameter \"path\" is required"))?;
            let pieces = body.into_data_stream().map(|piece| {
                piece
                    .map(|b| b.to_vec())
                    .map_err(|e| RpcError::invalid(format!("the upload was cut off: {e}")))
            });
            written.push(save(&state, &target, &path, pieces).await?);
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
    fn permissions_read_as_ls_writes_them() {
        assert_eq!(permissions("file", 0o644), "-rw-r--r--");
        assert_eq!(permissions("dir", 0o755), "drwxr-xr-x");
    }
}
