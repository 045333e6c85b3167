//! A sandbox's files: uploaded and downloaded as streams, stat'd, listed, made, moved and
//! removed.

use std::collections::HashMap;

use crate::extract::{Path, Query};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::stream::{self, StreamExt};
use serde::Deserialize;
use vulcan_domain::{FileEntry, Permission};
use vulcan_engine::SandboxError;

use crate::auth::{AuditTarget, Caller};
use crate::extract::JsonBody;
use crate::{ApiError, AppState};

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
