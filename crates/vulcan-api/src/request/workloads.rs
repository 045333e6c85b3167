//! `/v1/workloads`: submit (sync and async), show, list, kill.

use std::collections::HashMap;

use crate::extract::{Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use vulcan_domain::{Isolation, Permission, StoreError, Workload, WorkloadStatus};
use vulcan_engine::Submission;

use crate::auth::{AuditTarget, Caller};
use crate::extract::{Fields, FlatJson};
use crate::request::code::CodeBody;
use crate::{ApiError, AppState};

/// The workload `id` if `caller` may see it; another tenant's is answered exactly like
/// one that does not exist.
pub(crate) async fn visible(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Workload, ApiError> {
    match state.engine.workload(id).await {
        Ok(w) if caller.sees(&w) => Ok(w),
        Ok(_) => Err(StoreError::NotFound(id.to_owned()).into()),
        Err(e) => Err(e.into()),
    }
}

/// Parses the body and stamps it with the caller's tenant and quota.
async fn submission(
    state: &AppState,
    caller: &Caller,
    body: CreateWorkload,
) -> Result<Submission, ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    Ok(Submission {
        code: body.code.into_request()?,
        input: body.input,
        tenant: caller.tenant.clone(),
        quota: crate::auth::quota_of(&state.engine, caller).await?,
        pulls: caller.image_pulls(),
        after: body.after,
        volumes: body.volumes,
    })
}

const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;

/// The body of `POST /v1/workloads` and `POST /v1/workloads/async`: what to run, and its
/// input.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateWorkload {
    #[serde(flatten)]
    code: CodeBody,
    #[serde(default)]
    input: serde_json::Value,
    /// Async only: retries, an age limit, a failure queue and a callback.
    #[serde(flatten)]
    after: vulcan_domain::AsyncOptions,
    /// The tenant's volumes to mount (gvisor and microvm; at most 8): the workload runs on
    /// their node and holds them until it ends (a read-write mount beside any other mount
    /// of the volume is refused with 409).
    #[serde(default)]
    volumes: Vec<vulcan_domain::VolumeMount>,
}

impl Fields for CreateWorkload {
    fn fields() -> Vec<&'static str> {
        crate::request::code::fields_with(&[
            "input",
            "retry",
            "max_age_s",
            "on_failure",
            "callback_url",
            "volumes",
        ])
    }
}

/// `POST /v1/workloads`' body as the document states it: [`CreateWorkload`] without the
/// async options (which that route refuses, naming `/v1/workloads/async`).
#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct RunWorkload {
    #[serde(flatten)]
    code: CodeBody,
    #[serde(default)]
    input: serde_json::Value,
    /// The tenant's volumes to mount (gvisor and microvm; at most 8): the workload runs on
    /// their node and holds them until it ends.
    #[serde(default)]
    volumes: Vec<vulcan_domain::VolumeMount>,
}

/// `POST /v1/workloads`: runs the workload and answers once it has ended.
#[utoipa::path(post, path = "/v1/workloads", tag = "workloads", request_body = RunWorkload, responses((status = 200, description = "The workload, finished", body = vulcan_domain::Workload), crate::error::Errors))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    FlatJson(body): FlatJson<CreateWorkload>,
) -> Result<(Extension<AuditTarget>, Json<Workload>), ApiError> {
    if !body.after.is_empty() {
        return Err(ApiError::bad_request(
            "\"retry\", \"max_age_s\", \"on_failure\" and \"callback_url\" are for async workloads: use POST /v1/workloads/async",
        ));
    }
    let accepted = state
        .engine
        .submit(submission(&state, &caller, body).await?)
        .await?;
    let done = state.engine.wait(&accepted.id).await?;
    Ok((Extension(AuditTarget(accepted.id)), Json(done)))
}

/// `POST /v1/workloads/async`: answers 202 at once with the workload as admitted: `running`
/// if this node started it at once, else `pending` in the queue. With `retry` a failed one
/// is submitted again (a new workload, `trigger: {kind: "retry", id: <the one before>}`),
/// within `max_age_s`; the last failure goes to `on_failure.queue`; the final workload is
/// POSTed to `callback_url`.
#[utoipa::path(post, path = "/v1/workloads/async", tag = "workloads", request_body = CreateWorkload, responses((status = 202, description = "The workload as admitted: running if this node started it at once, else pending", body = vulcan_domain::Workload), crate::error::Errors))]
pub async fn create_async(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    FlatJson(body): FlatJson<CreateWorkload>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<Workload>), ApiError> {
    let accepted = state
        .engine
        .submit(submission(&state, &caller, body).await?)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Extension(AuditTarget(accepted.id.clone())),
        Json(accepted),
    ))
}

#[utoipa::path(get, path = "/v1/workloads/{id}", tag = "workloads", params(("id" = String, Path, description = "The workload's id")), responses((status = 200, description = "OK", body = vulcan_domain::Workload), crate::error::Errors))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Workload>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    Ok(Json(visible(&state, &caller, &id).await?))
}

/// What a workload was asked to run, as stored (secrets by name only; an archive by size).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SpecView {
    /// What runs (its isolation the one chosen).
    #[serde(flatten)]
    run: vulcan_domain::Code,
    /// The size of its `code_archive`, if it had one (the archive itself is not answered).
    code_archive_bytes: Option<usize>,
    input: serde_json::Value,
    /// An async workload's retries (which attempt this is), age limit, failure queue and
    /// callback.
    #[serde(skip_serializing_if = "Option::is_none")]
    async_policy: Option<vulcan_domain::AsyncPolicy>,
    /// The volumes it mounts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    volumes: Vec<vulcan_domain::VolumeMount>,
}

/// `GET /v1/workloads/{id}/spec`: what the workload was asked to run.
#[utoipa::path(get, path = "/v1/workloads/{id}/spec", tag = "workloads", params(("id" = String, Path, description = "The workload's id")), responses((status = 200, description = "OK", body = SpecView), crate::error::Errors))]
pub async fn spec(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<SpecView>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    visible(&state, &caller, &id).await?;
    let spec = state.engine.workload_spec(&id).await?;
    Ok(Json(SpecView {
        code_archive_bytes: spec.run.code_archive.as_ref().map(Vec::len),
        run: spec.run,
        input: spec.input,
        async_policy: spec.async_policy,
        volumes: spec.volumes,
    }))
}

/// `DELETE /v1/workloads/{id}`: stops the workload; 409 if it had already ended.
#[utoipa::path(delete, path = "/v1/workloads/{id}", tag = "workloads", params(("id" = String, Path)), responses((status = 200, description = "The workload, killed", body = vulcan_domain::Workload), crate::error::Errors))]
pub async fn kill(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<(Extension<AuditTarget>, Json<Workload>), ApiError> {
    caller.require(Permission::WorkloadsKill)?;
    visible(&state, &caller, &id).await?;
    let killed = state.engine.kill(&id).await?;
    Ok((Extension(AuditTarget(id)), Json(killed)))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkloadList {
    workloads: Vec<Workload>,
    total: u64,
    limit: u32,
    offset: u64,
    /// The cursor of the next page (`?after=`), if this one is full.
    next: Option<String>,
}

fn parse_param<T: std::str::FromStr>(
    params: &HashMap<String, String>,
    name: &str,
    hint: &str,
) -> Result<Option<T>, ApiError> {
    params
        .get(name)
        .map(|v| {
            v.parse::<T>().map_err(|_| {
                ApiError::bad_request(format!("query parameter {name}={v:?} is not valid: {hint}"))
            })
        })
        .transpose()
}

/// `GET /v1/workloads?limit=&offset=&after=&status=&isolation=&function=`, newest first. `after` is
/// a cursor (the `next` of the page before): a page deep in the list costs the same as
/// the first.
#[utoipa::path(get, path = "/v1/workloads", tag = "workloads", params(("limit" = Option<i32>, Query, minimum = 1, maximum = 100, description = "1 to 100 (default 20)"), ("offset" = Option<i64>, Query, minimum = 0), ("after" = Option<String>, Query, pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$", description = "The `next` of the page before"), ("status" = Option<vulcan_domain::WorkloadStatus>, Query), ("isolation" = Option<vulcan_domain::Isolation>, Query), ("function" = Option<String>, Query, pattern = "^[a-z0-9][a-z0-9-]{0,62}$"), ("schedule" = Option<String>, Query)), responses((status = 200, description = "OK", body = WorkloadList), crate::error::Errors))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<WorkloadList>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    let limit = parse_param::<u32>(&params, "limit", "use a whole number from 1 to 100")?
        .unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "query parameter limit={limit} is out of range: use 1 to {MAX_PAGE}"
        )));
    }
    let offset =
        parse_param::<i64>(&params, "offset", "use a whole number, 0 or more")?.unwrap_or(0);
    let offset = u64::try_from(offset).map_err(|_| {
        ApiError::bad_request(format!(
            "query parameter offset={offset} is not valid: use a whole number, 0 or more"
        ))
    })?;
    let status = parse_param::<WorkloadStatus>(
        &params,
        "status",
        "use pending, running, completed, failed or killed",
    )?;
    let isolation =
        parse_param::<Isolation>(&params, "isolation", "use isolate, gvisor or microvm")?;
    let after = params
        .get("after")
        .map(|a| {
            ulid::Ulid::from_string(a).map(|u| u.to_string()).map_err(|_| {
                ApiError::bad_request(format!(
                    "query parameter after={a:?} is not valid: use the \"next\" of the page before (a workload id)"
                ))
            })
        })
        .transpose()?;
    let function = params.get("function").cloned();
    if let Some(f) = function
        .as_deref()
        .filter(|f| !vulcan_domain::valid_function_name(f))
    {
        return Err(ApiError::bad_request(format!(
            "query parameter function={f:?} is not a function name"
        )));
    }
    let filter = vulcan_domain::ListFilter {
        tenant: caller.scope().map(str::to_owned),
        status,
        isolation,
        limit,
        offset,
        after,
        function,
        schedule: params.get("schedule").filter(|s| !s.is_empty()).cloned(),
    };
    let page = state.engine.workloads(&filter).await?;
    let next = (page.workloads.len() == limit as usize)
        .then(|| page.workloads.last().map(|w| w.id.clone()))
        .flatten();
    Ok(Json(WorkloadList {
        workloads: page.workloads,
        total: page.total,
        limit,
        offset,
        next,
    }))
}
