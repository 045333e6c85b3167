//! `/v1/images`: pull and register, list, show, remove OCI images.
//!
//! References contain `/` and `:`, so the single-image routes take the rest of the path:
//! `GET /v1/images/127.0.0.1:5000/busybox:1`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use vulcan_domain::{ImageCatalog, ImageError, ImageRecord, PullRequest};

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
    JsonBody(request): JsonBody<PullRequest>,
) -> Result<(StatusCode, Json<ImageRecord>), ApiError> {
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
    let record = images.pull(request).await?;
    Ok((StatusCode::CREATED, Json(record)))
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<ImageRecord>>, ApiError> {
    Ok(Json(catalog(&state)?.list()))
}

pub async fn show(
    State(state): State<AppState>,
    Path(reference): Path<String>,
) -> Result<Json<ImageRecord>, ApiError> {
    Ok(Json(catalog(&state)?.get(&reference)?))
}

pub async fn remove(
    State(state): State<AppState>,
    Path(reference): Path<String>,
) -> Result<StatusCode, ApiError> {
    catalog(&state)?.remove(&reference).await?;
    Ok(StatusCode::NO_CONTENT)
}
