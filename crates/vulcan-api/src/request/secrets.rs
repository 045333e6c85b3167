//! `/v1/secrets`: values kept encrypted per tenant, given to code that references them by
//! name. No route ever answers with a value, not even to an admin.

use std::collections::HashMap;

use crate::extract::{Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use vulcan_domain::{Permission, SecretInfo};

use crate::auth::{AuditTarget, Caller};
use crate::extract::JsonBody;
use crate::request::functions::tenant_of;
use crate::{ApiError, AppState};

/// `PUT /v1/secrets/{name}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretBody {
    value: String,
}

/// The body of a secret, checked without ever repeating what it holds: a parse error of
/// the usual kind would quote the value (into the answer and the audit log).
fn secret_body(body: serde_json::Value) -> Result<SecretBody, ApiError> {
    let serde_json::Value::Object(mut fields) = body else {
        return Err(ApiError::bad_request(
            "the body must be a JSON object: {\"value\": \"...\"}",
        ));
    };
    if let Some(other) = fields.keys().find(|k| *k != "value") {
        return Err(ApiError::bad_request(format!(
            "unknown field {other:?}: the body is {{\"value\": \"...\"}}"
        )));
    }
    match fields.remove("value") {
        Some(serde_json::Value::String(value)) => Ok(SecretBody { value }),
        Some(_) => Err(ApiError::bad_request(
            "\"value\" must be a string (the secret as text; encode binary values, e.g. as base64)",
        )),
        None => Err(ApiError::bad_request(
            "\"value\" is required: {\"value\": \"...\"}",
        )),
    }
}

/// `PUT /v1/secrets/{name}` `{"value"}`: stores a new version (`200`, never the value).
#[utoipa::path(put, path = "/v1/secrets/{name}", tag = "secrets", params(("name" = String, Path), ("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), request_body = SecretBody, responses((status = 200, description = "OK", body = vulcan_domain::SecretInfo), crate::error::Errors))]
pub async fn put(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<(Extension<AuditTarget>, Json<SecretInfo>), ApiError> {
    caller.require(Permission::SecretsWrite)?;
    let tenant = tenant_of(&caller, &params)?;
    let body = secret_body(body)?;
    let info = state.engine.put_secret(&tenant, &name, &body.value).await?;
    let target = AuditTarget(format!("{tenant}/{name}@{}", info.version));
    Ok((Extension(target), Json(info)))
}

/// `GET /v1/secrets`: names, versions and times of the caller's tenant (an admin's: all).
#[utoipa::path(get, path = "/v1/secrets", tag = "secrets", responses((status = 200, description = "OK", body = Vec<vulcan_domain::SecretInfo>), crate::error::Errors))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<SecretInfo>>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    Ok(Json(state.engine.secrets(caller.scope()).await?))
}

#[utoipa::path(delete, path = "/v1/secrets/{name}", tag = "secrets", params(("name" = String, Path), ("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), responses((status = 204, description = "Deleted"), crate::error::Errors))]
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

/// What a key rotation did.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Rotated {
    /// Values sealed again under the current key.
    resealed: u64,
    /// The current key's id.
    key_id: Option<String>,
}

/// `POST /v1/secrets/rotate-key` (admin): seals every value again under the current key.
#[utoipa::path(post, path = "/v1/secrets/rotate-key", tag = "secrets", responses((status = 200, description = "OK", body = Rotated), crate::error::Errors))]
pub async fn rotate_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Rotated>, ApiError> {
    caller.require(Permission::SecretsRotate)?;
    let resealed = state.engine.rotate_secret_key().await?;
    let key = state
        .engine
        .config()
        .keyring
        .as_ref()
        .map(|k| k.current.id().to_owned());
    Ok(Json(Rotated {
        resealed,
        key_id: key,
    }))
}
