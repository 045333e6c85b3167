//! `/v1/volumes`: a tenant's named disks, mounted by its sandboxes
//! ([`vulcan_domain::Volume`]).

use std::collections::HashMap;

use crate::extract::{Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use vulcan_domain::{Permission, Volume};

use crate::auth::{AuditTarget, Caller};
use crate::extract::JsonBody;
use crate::request::functions::tenant_of;
use crate::{ApiError, AppState};

/// `POST /v1/volumes`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVolume {
    /// 1-63 of a-z, 0-9, `-` and `_`, unique per tenant.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    name: String,
    /// What its files may fill, 16 MiB up to a sandbox's largest disk (64 GiB).
    #[serde(deserialize_with = "vulcan_domain::whole::int")]
    #[schema(minimum = 16, maximum = 65536)]
    size_mb: u32,
}

/// `POST /v1/volumes`: makes a volume (`201`) on this node.
#[utoipa::path(post, path = "/v1/volumes", tag = "volumes", params(("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), request_body = CreateVolume, responses((status = 201, description = "Made", body = Volume), crate::error::Errors))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<HashMap<String, String>>,
    JsonBody(body): JsonBody<CreateVolume>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<Volume>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let tenant = tenant_of(&caller, &params)?;
    let volume = state
        .engine
        .create_volume(&tenant, &body.name, body.size_mb)
        .await?;
    let target = AuditTarget(volume.name.clone());
    Ok((StatusCode::CREATED, Extension(target), Json(volume)))
}

/// `GET /v1/volumes`: the caller's volumes by name (an admin's: everyone's).
#[utoipa::path(get, path = "/v1/volumes", tag = "volumes", responses((status = 200, description = "OK", body = Vec<Volume>), crate::error::Errors))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<Volume>>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    Ok(Json(state.engine.volumes(caller.scope()).await?))
}

/// `GET /v1/volumes/{name}`.
#[utoipa::path(get, path = "/v1/volumes/{name}", tag = "volumes", params(("name" = String, Path), ("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), responses((status = 200, description = "OK", body = Volume), crate::error::Errors))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Volume>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    let tenant = tenant_of(&caller, &params)?;
    Ok(Json(state.engine.volume(&tenant, &name).await?))
}

/// `DELETE /v1/volumes/{name}`: removes it and its data; `409` while a sandbox mounts it.
#[utoipa::path(delete, path = "/v1/volumes/{name}", tag = "volumes", params(("name" = String, Path), ("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), responses((status = 200, description = "Deleted", body = Volume), crate::error::Errors))]
pub async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<(Extension<AuditTarget>, Json<Volume>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let tenant = tenant_of(&caller, &params)?;
    let volume = state.engine.delete_volume(&tenant, &name).await?;
    Ok((Extension(AuditTarget(name)), Json(volume)))
}
