//! `/v1/images`: pull and register, list, show, remove OCI images.
//!
//! References contain `/` and `:`, so the single-image routes take the rest of the path:
//! `GET /v1/images/127.0.0.1:5000/busybox:1`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use vulcan_domain::{ImageCatalog, ImageError, ImageRecord, Permission, PullRequest};

use crate::auth::{AuditTarget, Caller};
use crate::extract::JsonBody;
use crate::{ApiError, AppState};

impl From<ImageError> for ApiError {
    fn from(e: ImageError) -> Self {
        let status = match &e {
            ImageError::Invalid(_) => StatusCode::BAD_REQUEST,
            ImageError::NotFound(_) => StatusCode::NOT_FOUND,
            ImageError::Busy(_) => StatusCode::CONFLICT,
            ImageError::Integrity(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ImageError::Registry(_) => StatusCode::BAD_GATEWAY,
            ImageError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

fn catalog(state: &AppState) -> Result<&Arc<dyn ImageCatalog>, ApiError> {
    state.engine.images().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server has no image store configured",
        )
    })
}

/// `POST /v1/images` `{"reference", "default"?, "resources"?}`: pulls (again) and registers.
pub async fn pull(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(request): JsonBody<PullRequest>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<ImageRecord>), ApiError> {
    caller.require(Permission::ImagesWrite)?;
    let images = catalog(&state)?;
    if let Some(r) = request.resources {
        let limits = state.engine.config().limits;
        let checks = [
            ("cpus", r.cpus, 1, limits.max_cpus),
            ("mem_mb", r.mem_mb, limits.min_mem_mb, limits.max_mem_mb),
            ("timeout_s", r.timeout_s, 1, limits.max_timeout_s),
        ];
        for (name, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                return Err(ApiError::bad_request(format!(
                    "\"resources.{name}\" is {value}; it must be between {min} and {max}"
                )));
            }
        }
    }
    let target = AuditTarget(request.reference.clone());
    let record = images.pull(request).await?;
    Ok((StatusCode::CREATED, Extension(target), Json(record)))
}

pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<ImageRecord>>, ApiError> {
    caller.require(Permission::ImagesRead)?;
    Ok(Json(catalog(&state)?.list()))
}

pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(reference): Path<String>,
) -> Result<Json<ImageRecord>, ApiError> {
    caller.require(Permission::ImagesRead)?;
    Ok(Json(catalog(&state)?.get(&reference)?))
}

pub async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(reference): Path<String>,
) -> Result<(StatusCode, Extension<AuditTarget>), ApiError> {
    caller.require(Permission::ImagesWrite)?;
    catalog(&state)?.remove(&reference).await?;
    Ok((StatusCode::NO_CONTENT, Extension(AuditTarget(reference))))
}
