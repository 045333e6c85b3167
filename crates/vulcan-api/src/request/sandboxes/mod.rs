//! `/v1/sandboxes`: sandboxes a client holds across many steps. This file: their life
//! (create, list, show, remove, timeout, pause, resume, usage); `processes.rs` the processes
//! started in them (foreground or background, watched live, fed stdin, signalled); `files.rs`
//! their files (uploaded and downloaded as streams, listed, moved, removed).

use std::collections::{BTreeMap, HashMap};

use crate::extract::{Path, Query};
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use vulcan_domain::{
    FileErrorKind, Isolation, OnTimeout, Permission, Refusal, Sandbox, SandboxFilter,
    SandboxMetrics, SandboxPage, SandboxState,
};
use vulcan_engine::{NewSandbox, SandboxError};

use crate::auth::{AuditTarget, Caller};
use crate::extract::JsonBody;
use crate::request::functions::tenant_of;
use crate::{ApiError, AppState};

mod files;
mod processes;
pub use files::*;
pub use processes::*;

impl From<SandboxError> for ApiError {
    fn from(e: SandboxError) -> Self {
        let status = match &e {
            SandboxError::Invalid(_) => StatusCode::BAD_REQUEST,
            SandboxError::NotFound(_) => StatusCode::NOT_FOUND,
            SandboxError::Conflict(_) | SandboxError::Elsewhere { .. } => StatusCode::CONFLICT,
            SandboxError::Refused(Refusal::Forbidden(_)) => StatusCode::FORBIDDEN,
            SandboxError::Refused(Refusal::OverQuota { retry_after_s, .. }) => {
                return ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string())
                    .retry_after(*retry_after_s)
            }
            SandboxError::Refused(Refusal::Overloaded { retry_after_s, .. }) => {
                return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                    .retry_after(*retry_after_s)
            }
            SandboxError::Unavailable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            SandboxError::File(f) => match f.kind {
                FileErrorKind::Invalid => StatusCode::BAD_REQUEST,
                FileErrorKind::NotFound => StatusCode::NOT_FOUND,
                FileErrorKind::Exists => StatusCode::CONFLICT,
                FileErrorKind::NoSpace => StatusCode::PAYLOAD_TOO_LARGE,
                FileErrorKind::Io => StatusCode::INTERNAL_SERVER_ERROR,
            },
            SandboxError::Backend(_) => StatusCode::BAD_GATEWAY,
            SandboxError::ShuttingDown => {
                return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).retry_after(5)
            }
            SandboxError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

/// `POST /v1/sandboxes`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSandbox {
    /// `gvisor`, `microvm` or `auto` (absent: the server's `VULCAN_SANDBOX_ISOLATION`).
    #[serde(default)]
    #[schema(value_type = Option<vulcan_domain::SandboxIsolation>)]
    isolation: Option<Isolation>,
    /// A registered image (or one this key may pull); the default image if absent.
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    resources: Option<SandboxResourcesBody>,
    /// Every process in it starts with these.
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Free-form labels, filtered on by `GET /v1/sandboxes?metadata=key=value`.
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    /// Seconds until it is killed; `POST …/timeout` moves the deadline.
    #[serde(default)]
    #[serde(deserialize_with = "vulcan_domain::whole::opt")]
    timeout_s: Option<u32>,
    /// `kill` (the default) or `pause`: paused at its deadline, it is kept paused for
    /// `VULCAN_SANDBOX_MAX_TIMEOUT_S`; a resume gives it its timeout again.
    #[serde(default)]
    on_timeout: OnTimeout,
    /// A request that needs it running resumes it when it is paused (else `409`).
    #[serde(default)]
    auto_resume: bool,
    /// The tenant's volumes to mount (at most 8): each `{name, path, read_only}`. A volume
    /// has one writer and no reader beside it, or readers only (`409` otherwise).
    #[serde(default)]
    volumes: Vec<vulcan_domain::VolumeMount>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxResourcesBody {
    #[serde(default)]
    #[serde(deserialize_with = "vulcan_domain::whole::opt")]
    cpus: Option<u32>,
    #[serde(default)]
    #[serde(deserialize_with = "vulcan_domain::whole::opt")]
    mem_mb: Option<u32>,
    /// The disk its writes may fill (its whole root is writable).
    #[serde(default)]
    #[serde(deserialize_with = "vulcan_domain::whole::opt")]
    disk_mb: Option<u32>,
}

/// `POST /v1/sandboxes`: starts a sandbox (`201`, `running`).
#[utoipa::path(post, path = "/v1/sandboxes", tag = "sandboxes", params(("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), request_body = CreateSandbox, responses((status = 201, description = "Running", body = vulcan_domain::Sandbox), crate::error::Errors))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<HashMap<String, String>>,
    JsonBody(body): JsonBody<CreateSandbox>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<Sandbox>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let tenant = tenant_of(&caller, &params)?;
    let resources = body.resources.unwrap_or(SandboxResourcesBody {
        cpus: None,
        mem_mb: None,
        disk_mb: None,
    });
    let sandbox = state
        .engine
        .create_sandbox(NewSandbox {
            tenant,
            isolation: body.isolation,
            image: body.image,
            cpus: resources.cpus,
            mem_mb: resources.mem_mb,
            disk_mb: resources.disk_mb,
            env: body.env,
            metadata: body.metadata,
            timeout_s: body.timeout_s,
            on_timeout: body.on_timeout,
            auto_resume: body.auto_resume,
            pulls: caller.image_pulls(),
            volumes: body.volumes,
        })
        .await?;
    let target = AuditTarget(sandbox.id.clone());
    Ok((StatusCode::CREATED, Extension(target), Json(sandbox)))
}

/// `GET /v1/sandboxes[?state=&metadata=key=value&limit=&cursor=]`: newest first.
#[utoipa::path(get, path = "/v1/sandboxes", tag = "sandboxes", params(("state" = Option<vulcan_domain::SandboxState>, Query), ("metadata" = Option<String>, Query, pattern = "=", description = "key=value, repeated: every pair must match"), ("limit" = Option<i32>, Query, minimum = 1, maximum = 1000, description = "1-1000, default 100"), ("cursor" = Option<String>, Query, description = "`next` of the previous page")), responses((status = 200, description = "OK", body = vulcan_domain::SandboxPage), crate::error::Errors))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Result<Json<SandboxPage>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    let mut filter = SandboxFilter {
        tenant: caller.scope().map(str::to_owned),
        limit: 100,
        ..SandboxFilter::default()
    };
    let query = query.unwrap_or_default();
    for (key, value) in form_pairs(&query) {
        match key.as_str() {
            "state" => {
                filter.state = Some(SandboxState::parse(&value).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "state={value:?} is not one: use running, paused, ended or lost"
                    ))
                })?)
            }
            "metadata" => {
                let (k, v) = value.split_once('=').ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "metadata={value:?} is not key=value (repeat the parameter for more pairs)"
                    ))
                })?;
                filter.metadata.insert(k.to_owned(), v.to_owned());
            }
            "limit" => {
                filter.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("limit={value:?}: give 1 to 1000"))
                    })?
            }
            "cursor" => filter.before = Some(value),
            "tenant" if caller.scope().is_none() => filter.tenant = Some(value),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?}: use state, metadata, limit or cursor"
                )))
            }
        }
    }
    Ok(Json(state.engine.sandboxes(&filter).await?))
}

/// `key=value` pairs of a query string, percent-decoded.
pub(crate) fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high * 16 + low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET /v1/sandboxes/{id}`.
#[utoipa::path(get, path = "/v1/sandboxes/{id}", tag = "sandboxes", params(("id" = String, Path)), responses((status = 200, description = "OK", body = vulcan_domain::Sandbox), crate::error::Errors))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Sandbox>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    Ok(Json(state.engine.sandbox(caller.scope(), &id).await?))
}

/// `DELETE /v1/sandboxes/{id}`: kills everything in it and removes its disk.
#[utoipa::path(delete, path = "/v1/sandboxes/{id}", tag = "sandboxes", params(("id" = String, Path)), responses((status = 200, description = "Ended", body = vulcan_domain::Sandbox), crate::error::Errors))]
pub async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<(Extension<AuditTarget>, Json<Sandbox>), ApiError> {
    caller.require(Permission::WorkloadsKill)?;
    let sandbox = state.engine.delete_sandbox(caller.scope(), &id).await?;
    Ok((Extension(AuditTarget(id)), Json(sandbox)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeoutBody {
    /// Seconds from now until its deadline.
    #[serde(deserialize_with = "vulcan_domain::whole::int")]
    #[schema(minimum = 1, maximum = 86400)]
    timeout_s: u32,
}

/// `POST /v1/sandboxes/{id}/timeout {timeout_s}`: its deadline, `timeout_s` from now.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/timeout", tag = "sandboxes", params(("id" = String, Path)), request_body = TimeoutBody, responses((status = 200, description = "Deadline moved", body = vulcan_domain::Sandbox), crate::error::Errors))]
pub async fn timeout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<TimeoutBody>,
) -> Result<(Extension<AuditTarget>, Json<Sandbox>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let sandbox = state
        .engine
        .set_sandbox_timeout(caller.scope(), &id, body.timeout_s)
        .await?;
    Ok((Extension(AuditTarget(id)), Json(sandbox)))
}

/// `POST /v1/sandboxes/{id}/pause`: saves it whole (memory, processes) to disk and stops
/// it (`pause_mode: saved`): it holds no memory until resumed; its files stay. A gVisor
/// sandbox in which a process Vulcan follows runs is frozen in memory instead
/// (`pause_mode: frozen`).
#[utoipa::path(post, path = "/v1/sandboxes/{id}/pause", tag = "sandboxes", params(("id" = String, Path)), responses((status = 200, description = "Paused", body = vulcan_domain::Sandbox), crate::error::Errors))]
pub async fn pause(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<(Extension<AuditTarget>, Json<Sandbox>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let sandbox = state.engine.pause_sandbox(caller.scope(), &id).await?;
    Ok((Extension(AuditTarget(id)), Json(sandbox)))
}

/// `POST /v1/sandboxes/{id}/resume`: starts a paused sandbox again, with its files and its
/// processes.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/resume", tag = "sandboxes", params(("id" = String, Path)), responses((status = 200, description = "Running again", body = vulcan_domain::Sandbox), crate::error::Errors))]
pub async fn resume(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<(Extension<AuditTarget>, Json<Sandbox>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let sandbox = state.engine.resume_sandbox(caller.scope(), &id).await?;
    Ok((Extension(AuditTarget(id)), Json(sandbox)))
}

/// `GET /v1/sandboxes/{id}/metrics`: what it uses now, and a sample every 5 s over the
/// last hour.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/metrics", tag = "sandboxes", params(("id" = String, Path)), responses((status = 200, description = "OK", body = vulcan_domain::SandboxMetrics), crate::error::Errors))]
pub async fn metrics(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<SandboxMetrics>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    Ok(Json(state.engine.sandbox_usage(caller.scope(), &id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_are_decoded_and_may_repeat() {
        assert_eq!(
            form_pairs("metadata=a%3Db&metadata=c=d+e&state=running"),
            [
                ("metadata".to_owned(), "a=b".to_owned()),
                ("metadata".to_owned(), "c=d e".to_owned()),
                ("state".to_owned(), "running".to_owned())
            ]
        );
        assert_eq!(decode("100%"), "100%");
    }
}
