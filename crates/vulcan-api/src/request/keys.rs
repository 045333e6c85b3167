//! `/v1/keys`: create (the key is answered once), list, revoke. Admins only.

use crate::extract::Path;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use vulcan_domain::{ApiKey, Permission, Role, StoreError};

use crate::auth::{generate_key, AuditTarget, Caller};
use crate::extract::JsonBody;
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    name: String,
    #[schema(value_type = vulcan_domain::Role)]
    role: String,
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    tenant: String,
    /// Lifetime in seconds; without it the key does not expire.
    #[serde(default)]
    #[serde(deserialize_with = "vulcan_domain::whole::opt")]
    #[schema(minimum = 1)]
    expires_in_s: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    /// The whole key: shown this once, stored only as a hash.
    key: String,
    #[serde(flatten)]
    record: ApiKey,
}

pub(crate) fn valid_name(what: &str, value: &str) -> Result<(), ApiError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "\"{what}\" {value:?} is not valid: 1 to 64 letters, digits, '-', '_' or '.'"
        )))
    }
}

#[utoipa::path(post, path = "/v1/keys", tag = "access", request_body = CreateKey, responses((status = 201, description = "Created", body = CreatedKey), crate::error::Errors))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<CreateKey>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<CreatedKey>), ApiError> {
    caller.require(Permission::KeysManage)?;
    valid_name("name", &body.name)?;
    valid_name("tenant", &body.tenant)?;
    let role: Role = body
        .role
        .parse()
        .map_err(|e: String| ApiError::bad_request(format!("\"role\": {e}")))?;
    let now = OffsetDateTime::now_utc();
    let expires_at = match body.expires_in_s {
        Some(0) => return Err(ApiError::bad_request("\"expires_in_s\" must be at least 1")),
        Some(s) => Some(now + time::Duration::seconds(s.min(100 * 365 * 86_400) as i64)),
        None => None,
    };
    let (id, key, hash) = generate_key().map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read random bytes for a key: {e}"),
        )
    })?;
    let record = ApiKey {
        id: id.clone(),
        name: body.name,
        role,
        tenant: body.tenant,
        created_at: now,
        expires_at,
        revoked_at: None,
        created_by: caller.key_id,
    };
    state.engine.create_key(&record, &hash).await?;
    Ok((
        StatusCode::CREATED,
        Extension(AuditTarget(id)),
        Json(CreatedKey { key, record }),
    ))
}

#[utoipa::path(get, path = "/v1/keys", tag = "access", responses((status = 200, description = "OK", body = Vec<vulcan_domain::ApiKey>), crate::error::Errors))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<ApiKey>>, ApiError> {
    caller.require(Permission::KeysManage)?;
    Ok(Json(state.engine.keys(None).await?))
}

#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "access", params(("id" = String, Path)), responses((status = 200, description = "OK", body = vulcan_domain::ApiKey), crate::error::Errors))]
pub async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<(Extension<AuditTarget>, Json<ApiKey>), ApiError> {
    caller.require(Permission::KeysManage)?;
    let revoked = match state
        .engine
        .revoke_key(&id, OffsetDateTime::now_utc())
        .await
    {
        Ok(k) => k,
        Err(StoreError::NotFound(_)) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("key {id} not found"),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    Ok((Extension(AuditTarget(id)), Json(revoked)))
}
