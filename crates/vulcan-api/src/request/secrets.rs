//! `/v1/secrets`: values kept encrypted per tenant, given to code that references them by
//! name. No route ever answers with a value, not even to an admin.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use vulcan_domain::{Permission, SecretInfo};

use crate::auth::{AuditTarget, Caller};
use crate::extract::JsonBody;
use crate::request::functions::tenant_of;
use crate::{ApiError, AppState};

/// `PUT /v1/secrets/{name}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretBody {
    value: String,
}

/// `PUT /v1/secrets/{name}` `{"value"}`: stores a new version (`200`, never the value).
pub async fn put(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    JsonBody(body): JsonBody<SecretBody>,
) -> Result<(Extension<AuditTarget>, Json<SecretInfo>), ApiError> {
    caller.require(Permission::SecretsWrite)?;
    let tenant = tenant_of(&caller, &params)?;
    let info = state.engine.put_secret(&tenant, &name, &body.value).await?;
    let target = AuditTarget(format!("{tenant}/{name}@{}", info.version));
    Ok((Extension(target), Json(info)))
}

/// `GET /v1/secrets`: names, versions and times of the caller's tenant (an admin's: all).
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<SecretInfo>>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    Ok(Json(state.engine.secrets(caller.scope()).await?))
}

pub async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<(StatusCode, Extension<AuditTarget>), ApiError> {
    caller.require(Permission::SecretsWrite)?;
    let tenant = tenant_of(&caller, &params)?;
    state.engine.delete_secret(&tenant, &name).await?;
    Ok((
        StatusCode::NO_CONTENT,
        Extension(AuditTarget(format!("{tenant}/{name}"))),
    ))
}

/// `POST /v1/secrets/rotate-key` (admin): seals every value again under the current key.
pub async fn rotate_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Permission::SecretsRotate)?;
    let resealed = state.engine.rotate_secret_key().await?;
    let key = state
        .engine
        .config()
        .keyring
        .as_ref()
        .map(|k| k.current.id().to_owned());
    Ok(Json(
        serde_json::json!({ "resealed": resealed, "key_id": key }),
    ))
}
