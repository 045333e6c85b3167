//! `/v1/images`: pull and register, list, show, remove OCI images.
//!
//! References contain `/` and `:`, so the single-image routes take the rest of the path:
//! `GET /v1/images/127.0.0.1:5000/busybox:1`.

use std::sync::Arc;

use crate::extract::Path;
use axum::extract::State;
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
            ImageError::TimedOut(_) => StatusCode::GATEWAY_TIMEOUT,
            ImageError::NotAllowed(_) => StatusCode::FORBIDDEN,
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

/// What a caller who is not an admin is told of a failed pull: which image, never what
/// the network said (a refused port and a silent one must look the same to them).
fn without_network_detail(reference: &str, e: ImageError) -> ImageError {
    match e {
        ImageError::Registry(detail) | ImageError::TimedOut(detail) => {
            tracing::warn!(image = reference, error = %detail, "pull failed");
            ImageError::Registry(format!(
                "pulling {reference} failed: the registry could not be reached or refused it (an admin finds the details in the server log)"
            ))
        }
        other => other,
    }
}

/// `POST /v1/images` `{"reference", "default"?, "resources"?}`: pulls (again) and registers.
/// An admin may pull from any registry (which is then allowed); others only from allowed
/// ones, and a failed pull tells them no network detail.
#[utoipa::path(post, path = "/v1/images", tag = "images", request_body = vulcan_domain::PullRequest, responses((status = 201, description = "Created", body = vulcan_domain::ImageRecord), (status = 200, description = "OK", body = vulcan_domain::ImageRecord), crate::error::Errors))]
pub async fn pull(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(mut request): JsonBody<PullRequest>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<ImageRecord>), ApiError> {
    caller.require(Permission::ImagesWrite)?;
    let images = catalog(&state)?;
    // Images are the cluster's, not a tenant's: what every tenant's runs get from one —
    // the default image, an image's resources — is set by admins only.
    if request.default || request.resources.is_some() {
        caller.require(Permission::AllTenants).map_err(|_| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "\"default\" and \"resources\" apply to every tenant's workloads: only an admin sets them (register the image without them)",
            )
        })?;
    }
    if let Some(r) = &request.resources {
        state
            .engine
            .config()
            .limits
            .check(r)
            .map_err(ApiError::bad_request)?;
    }
    let target = AuditTarget(request.reference.clone());
    let admin = caller.scope().is_none();
    request.trusted = admin;
    let reference = request.reference.clone();
    let record = images.pull(request).await.map_err(|e| {
        if admin {
            e
        } else {
            without_network_detail(&reference, e)
        }
    })?;
    Ok((StatusCode::CREATED, Extension(target), Json(record)))
}

#[utoipa::path(get, path = "/v1/images", tag = "images", responses((status = 200, description = "OK", body = Vec<vulcan_domain::ImageRecord>), crate::error::Errors))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<ImageRecord>>, ApiError> {
    caller.require(Permission::ImagesRead)?;
    Ok(Json(catalog(&state)?.list().await?))
}

#[utoipa::path(get, path = "/v1/images/{reference}", tag = "images", params(("reference" = String, Path, description = "The image reference; its slashes are part of the path")), responses((status = 200, description = "OK", body = vulcan_domain::ImageRecord), crate::error::Errors))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(reference): Path<String>,
) -> Result<Json<ImageRecord>, ApiError> {
    caller.require(Permission::ImagesRead)?;
    Ok(Json(catalog(&state)?.get(&reference).await?))
}

#[utoipa::path(delete, path = "/v1/images/{reference}", tag = "images", params(("reference" = String, Path)), responses((status = 204, description = "Removed"), crate::error::Errors))]
pub async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(reference): Path<String>,
) -> Result<(StatusCode, Extension<AuditTarget>), ApiError> {
    caller.require(Permission::ImagesWrite)?;
    caller.require(Permission::AllTenants).map_err(|_| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "images are shared by every tenant: only an admin removes one",
        )
    })?;
    catalog(&state)?.remove(&reference).await?;
    Ok((StatusCode::NO_CONTENT, Extension(AuditTarget(reference))))
}
