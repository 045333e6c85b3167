//! `/v1/functions`: deploy (a new immutable version), list, show, versions, roll back or
//! forward, delete, and invoke. An invocation is a workload: the answer of
//! `POST /v1/functions/{name}/invoke` is the finished workload, as `POST /v1/workloads`'s.
//!
//! Functions belong to the caller's tenant; an admin names another with `?tenant=`.

use std::collections::HashMap;

use crate::extract::{Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use vulcan_domain::{
    AsyncOptions, Function, FunctionVersion, OnFailure, Permission, Retry, Workload,
};
use vulcan_engine::DeployRequest;

use crate::auth::{AuditTarget, Caller};
use crate::extract::{Fields, FlatJson, InputBody, JsonBody};
use crate::request::code::CodeBody;
use crate::{ApiError, AppState};

/// `PUT /v1/functions/{name}`: what to run, and how its instances are kept.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct DeployBody {
    #[serde(flatten)]
    code: CodeBody,
    reuse: Option<bool>,
    #[serde(default, deserialize_with = "vulcan_domain::whole::opt")]
    max_instances: Option<u32>,
    #[serde(default, deserialize_with = "vulcan_domain::whole::opt")]
    idle_timeout_s: Option<u32>,
    public: Option<bool>,
    /// Queues whose messages invoke it, in batches (see docs/queues.md).
    #[serde(default)]
    triggers: Vec<vulcan_domain::QueueTrigger>,
}

impl Fields for DeployBody {
    fn fields() -> Vec<&'static str> {
        crate::request::code::fields_with(&[
            "reuse",
            "max_instances",
            "idle_timeout_s",
            "public",
            "triggers",
        ])
    }
}

/// A version as answered: what it runs, without the archive's bytes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VersionView {
    #[serde(flatten)]
    version: FunctionVersion,
    code_archive_bytes: Option<usize>,
}

impl From<FunctionVersion> for VersionView {
    fn from(version: FunctionVersion) -> Self {
        VersionView {
            code_archive_bytes: version.code.run.code_archive.as_ref().map(Vec::len),
            version,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Deployed {
    #[serde(flatten)]
    version: VersionView,
    /// False when the content was identical to the active version's (nothing new).
    changed: bool,
}

/// The tenant the caller acts for: its own, or (admins) the one named.
pub(crate) fn tenant_of(
    caller: &Caller,
    params: &HashMap<String, String>,
) -> Result<String, ApiError> {
    match params.get("tenant").filter(|t| !t.is_empty()) {
        Some(t) if caller.scope().is_none() => Ok(t.clone()),
        Some(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "only admins may name another tenant (tenants:all)",
        )),
        None => Ok(caller.tenant.clone()),
    }
}

/// `PUT /v1/functions/{name}`: deploys; `201` for a new function, `200` after.
#[utoipa::path(put, path = "/v1/functions/{name}", tag = "functions", params(("name" = String, Path), ("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), request_body = DeployBody, responses((status = 201, description = "The first version", body = Deployed), (status = 200, description = "A new version, or the current one unchanged", body = Deployed), crate::error::Errors))]
pub async fn deploy(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    FlatJson(body): FlatJson<DeployBody>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<Deployed>), ApiError> {
    caller.require(Permission::FunctionsWrite)?;
    let tenant = tenant_of(&caller, &params)?;
    let request = DeployRequest {
        code: body.code.into_request()?,
        pulls: caller.image_pulls(),
        reuse: body.reuse,
        max_instances: body.max_instances,
        idle_timeout_s: body.idle_timeout_s,
        public: body.public,
        triggers: body.triggers,
    };
    let deployed = state.engine.deploy(&tenant, &name, request).await?;
    let status = if deployed.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let target = AuditTarget(format!("{tenant}/{name}@{}", deployed.version.version));
    Ok((
        status,
        Extension(target),
        Json(Deployed {
            version: deployed.version.into(),
            changed: deployed.changed,
        }),
    ))
}

/// A function with the warm instances of its active version on the live nodes.
async fn with_instances(
    state: &AppState,
    mut functions: Vec<Function>,
) -> Result<Vec<Function>, ApiError> {
    let warm = state.engine.warm_instances().await?;
    for f in &mut functions {
        f.instances = warm
            .get(&format!("{}/{}/{}", f.tenant, f.name, f.active_version))
            .copied()
            .unwrap_or(0);
    }
    Ok(functions)
}

#[utoipa::path(get, path = "/v1/functions", tag = "functions", responses((status = 200, description = "OK", body = Vec<vulcan_domain::Function>), crate::error::Errors))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<Function>>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    let functions = state.engine.functions(caller.scope()).await?;
    Ok(Json(with_instances(&state, functions).await?))
}

#[utoipa::path(get, path = "/v1/functions/{name}", tag = "functions", params(("name" = String, Path), ("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), responses((status = 200, description = "OK", body = vulcan_domain::Function), crate::error::Errors))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Function>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    let tenant = tenant_of(&caller, &params)?;
    let function = state.engine.function(&tenant, &name).await?;
    let mut one = with_instances(&state, vec![function]).await?;
    Ok(Json(one.remove(0)))
}

#[utoipa::path(get, path = "/v1/functions/{name}/versions", tag = "functions", params(("name" = String, Path), ("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), responses((status = 200, description = "OK", body = Vec<VersionView>), crate::error::Errors))]
pub async fn versions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Vec<VersionView>>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    let tenant = tenant_of(&caller, &params)?;
    let versions = state.engine.function_versions(&tenant, &name).await?;
    Ok(Json(versions.into_iter().map(VersionView::from).collect()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActiveBody {
    #[serde(deserialize_with = "vulcan_domain::whole::int")]
    version: u32,
}

/// `PUT /v1/functions/{name}/active` `{"version"}`: roll back or forward.
#[utoipa::path(put, path = "/v1/functions/{name}/active", tag = "functions", params(("name" = String, Path), ("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), request_body = ActiveBody, responses((status = 200, description = "OK", body = vulcan_domain::Function), crate::error::Errors))]
pub async fn activate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    JsonBody(body): JsonBody<ActiveBody>,
) -> Result<(Extension<AuditTarget>, Json<Function>), ApiError> {
    caller.require(Permission::FunctionsWrite)?;
    let tenant = tenant_of(&caller, &params)?;
    let function = state.engine.activate(&tenant, &name, body.version).await?;
    let target = AuditTarget(format!("{tenant}/{name}@{}", body.version));
    Ok((Extension(target), Json(function)))
}

/// `DELETE /v1/functions/{name}`: `204`; its instances stop, its history stays.
#[utoipa::path(delete, path = "/v1/functions/{name}", tag = "functions", params(("name" = String, Path), ("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), responses((status = 204, description = "Deleted; its history is kept"), crate::error::Errors))]
pub async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<(StatusCode, Extension<AuditTarget>), ApiError> {
    caller.require(Permission::FunctionsWrite)?;
    let tenant = tenant_of(&caller, &params)?;
    state.engine.delete_function(&tenant, &name).await?;
    Ok((
        StatusCode::NO_CONTENT,
        Extension(AuditTarget(format!("{tenant}/{name}"))),
    ))
}

/// An async invocation's `retry`, `max_age_s`, `on_failure` and `callback_url`, from the
/// query (the body is the input): `max_attempts`, `backoff_s`, `max_age_s`,
/// `on_failure_queue`, `callback_url`.
fn async_options(params: &HashMap<String, String>) -> Result<AsyncOptions, ApiError> {
    let number = |key: &str| -> Result<Option<u32>, ApiError> {
        params
            .get(key)
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::bad_request(format!(
                        "query parameter {key}={v:?} is not a whole number"
                    ))
                })
            })
            .transpose()
    };
    let backoff_s = number("backoff_s")?;
    let retry = match (number("max_attempts")?, backoff_s) {
        (Some(max_attempts), backoff_s) => Some(Retry {
            max_attempts,
            backoff_s: backoff_s.unwrap_or(1),
        }),
        // One attempt has nothing to back off from.
        (None, _) => None,
    };
    Ok(AsyncOptions {
        retry,
        max_age_s: number("max_age_s")?,
        on_failure: params
            .get("on_failure_queue")
            .map(|q| OnFailure { queue: q.clone() }),
        callback_url: params.get("callback_url").cloned(),
    })
}

/// `POST /v1/functions/{name}/invoke`: the body is the input; answers like
/// `POST /v1/workloads`, or at once with `202` like `/v1/workloads/async` given
/// `async=true` (which `/invoke/async` is, with its retry options documented).
#[utoipa::path(post, path = "/v1/functions/{name}/invoke", tag = "functions", params(("name" = String, Path), ("async" = Option<bool>, Query, description = "Answer 202 at once (as /invoke/async does)"), ("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), request_body(content = serde_json::Value, description = "The input (any JSON)"), responses((status = 200, description = "OK", body = vulcan_domain::Workload), (status = 202, description = "Accepted (async=true)", body = vulcan_domain::Workload), crate::error::Errors))]
pub async fn invoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    InputBody(input): InputBody,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<Workload>), ApiError> {
    let asynchronous = match params.get("async").map(String::as_str) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "query parameter async={other:?} is not valid: use true or false"
            )))
        }
    };
    invoke_as(state, caller, name, params, input, asynchronous).await
}

/// `POST /v1/functions/{name}/invoke/async`: the body is the input; answers `202` at once
/// like `POST /v1/workloads/async`, with its retry options in the query.
#[utoipa::path(post, path = "/v1/functions/{name}/invoke/async", tag = "functions", params(("name" = String, Path), ("tenant" = Option<String>, Query, description = "An admin acts on this tenant's"), ("max_attempts" = Option<i32>, Query, minimum = 1, maximum = 10, description = "Attempts in all if it fails (1-10; default 1)"), ("backoff_s" = Option<i32>, Query, minimum = 0, maximum = 3600, description = "Seconds before the second attempt, doubling after (0-3600; default 1): with max_attempts over 1"), ("max_age_s" = Option<i32>, Query, minimum = 1, maximum = 86400, description = "No attempt starts later than this after the request (1-86400)"), ("on_failure_queue" = Option<String>, Query, description = "A queue that gets the workload when its last attempt failed"), ("callback_url" = Option<String>, Query, description = "POSTed the final workload, signed with the tenant's secret CALLBACK_SIGNING_KEY")), request_body(content = serde_json::Value, description = "The input (any JSON)"), responses((status = 202, description = "Accepted", body = vulcan_domain::Workload), crate::error::Errors))]
pub async fn invoke_async(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    InputBody(input): InputBody,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<Workload>), ApiError> {
    invoke_as(state, caller, name, params, input, true).await
}

async fn invoke_as(
    state: AppState,
    caller: Caller,
    name: String,
    params: HashMap<String, String>,
    input: serde_json::Value,
    asynchronous: bool,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<Workload>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let tenant = tenant_of(&caller, &params)?;
    let after = async_options(&params)?;
    if !asynchronous && !after.is_empty() {
        return Err(ApiError::bad_request(
            "max_attempts, backoff_s, max_age_s, on_failure_queue and callback_url are for async invocations: use POST /v1/functions/{name}/invoke/async",
        ));
    }
    let quota = crate::auth::quota_of(&state.engine, &caller).await?;
    let accepted = match asynchronous {
        true => {
            state
                .engine
                .invoke_async(&tenant, &name, input, quota, after)
                .await?
        }
        false => state.engine.invoke(&tenant, &name, input, quota).await?,
    };
    let target = Extension(AuditTarget(accepted.id.clone()));
    if asynchronous {
        return Ok((StatusCode::ACCEPTED, target, Json(accepted)));
    }
    let done = state.engine.wait(&accepted.id).await?;
    Ok((StatusCode::OK, target, Json(done)))
}
