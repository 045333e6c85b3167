//! E2B's control plane (`/v2/sandboxes`, `/sandboxes/{id}/…`) on top of Vulcan's
//! sandboxes: the same keys, tenants, quotas and audit log as `/v1/sandboxes`, E2B's
//! field names and its `{"code", "message"}` errors.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use vulcan_domain::{OnTimeout, Permission, Sandbox, SandboxFilter, SandboxState};
use vulcan_engine::{NewSandbox, SandboxError};

use crate::auth::{AuditTarget, Caller};
use crate::request::functions::tenant_of;
use crate::{ApiError, AppState};

/// The envd version Vulcan's envd routes behave as (what the SDKs gate features on).
pub const ENVD_VERSION: &str = "0.5.7";

/// The template name that means Vulcan's default sandbox image.
const BASE_TEMPLATE: &str = "base";

/// An error in E2B's shape: `{"code": <status>, "message": "..."}`.
pub struct E2bError(ApiError);

impl From<ApiError> for E2bError {
    fn from(e: ApiError) -> Self {
        E2bError(e)
    }
}

impl From<SandboxError> for E2bError {
    fn from(e: SandboxError) -> Self {
        E2bError(e.into())
    }
}

impl IntoResponse for E2bError {
    fn into_response(self) -> Response {
        let (status, message) = (self.0.status, self.0.message.clone());
        // Vulcan's own answer (logging, Retry-After, the audit log's reason), E2B's body.
        let (mut parts, _) = self.0.into_response().into_parts();
        parts.headers.remove(axum::http::header::CONTENT_LENGTH);
        let body = json!({ "code": status.as_u16(), "message": message }).to_string();
        Response::from_parts(parts, axum::body::Body::from(body))
    }
}

type E2bResult<T> = Result<T, E2bError>;

/// A JSON body (an empty one reads as `{}`): a `400` in E2B's shape saying what is wrong
/// if it is not `what`.
fn body_of<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> E2bResult<T> {
    let bytes = if bytes.is_empty() { b"{}" } else { bytes };
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not {what}: {e}")).into())
}

/// `POST /v2/sandboxes`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSandboxBody {
    #[serde(rename = "templateID")]
    template_id: String,
    /// Seconds until it is killed.
    #[serde(default)]
    timeout: Option<u32>,
    #[serde(default)]
    auto_pause: Option<bool>,
    /// `{"enabled": true}`: a request to it while paused resumes it.
    #[serde(default)]
    auto_resume: Option<AutoResume>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    env_vars: Option<BTreeMap<String, String>>,
    #[serde(default)]
    volume_mounts: Option<Vec<Value>>,
    #[serde(default)]
    mcp: Option<Value>,
}

#[derive(Deserialize)]
pub struct AutoResume {
    #[serde(default)]
    enabled: bool,
}

/// The image a template names: `base` is Vulcan's default sandbox image, anything else
/// a registered image (by reference).
fn image_of(template: &str) -> Option<String> {
    (template != BASE_TEMPLATE && !template.is_empty()).then(|| template.to_owned())
}

fn template_of(sandbox: &Sandbox) -> String {
    sandbox.image.clone()
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// What `POST /v2/sandboxes` and `…/connect` answer.
fn created(sandbox: &Sandbox) -> Value {
    json!({
        "templateID": template_of(sandbox),
        "sandboxID": sandbox.id,
        "clientID": sandbox.node_id,
        "envdVersion": ENVD_VERSION,
        "envdAccessToken": sandbox.access_token,
    })
}

fn state_of(sandbox: &Sandbox) -> &'static str {
    match sandbox.state {
        SandboxState::Paused => "paused",
        _ => "running",
    }
}

/// What `GET /sandboxes/{id}` and the list answer.
fn detail(sandbox: &Sandbox) -> Value {
    json!({
        "templateID": template_of(sandbox),
        "sandboxID": sandbox.id,
        "clientID": sandbox.node_id,
        "startedAt": rfc3339(sandbox.started_at),
        "endAt": rfc3339(sandbox.end_at),
        "envdVersion": ENVD_VERSION,
        "envdAccessToken": sandbox.access_token,
        "cpuCount": sandbox.resources.cpus,
        "memoryMB": sandbox.resources.mem_mb,
        "diskSizeMB": sandbox.resources.disk_mb,
        "state": state_of(sandbox),
        "metadata": sandbox.metadata,
    })
}

/// E2B answers 404 for a sandbox that has ended, as for one that never was.
async fn live_sandbox(state: &AppState, caller: &Caller, id: &str) -> E2bResult<Sandbox> {
    let sandbox = state.engine.sandbox(caller.scope(), id).await?;
    if matches!(sandbox.state, SandboxState::Ended | SandboxState::Lost) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("sandbox {id} was not found: it {}", ended_how(&sandbox)),
        )
        .into());
    }
    Ok(sandbox)
}

fn ended_how(sandbox: &Sandbox) -> String {
    match &sandbox.end_reason {
        Some(why) => format!("ended ({why})"),
        None => "ended".into(),
    }
}

/// `POST /v2/sandboxes`: `201` with the sandbox and its envd token.
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> E2bResult<(StatusCode, Extension<AuditTarget>, Json<Value>)> {
    caller.require(Permission::WorkloadsCreate)?;
    let body: NewSandboxBody = body_of(&body, "{\"templateID\": \"…\", …}")?;
    if body.volume_mounts.as_ref().is_some_and(|v| !v.is_empty()) {
        return Err(ApiError::bad_request(
            "volumeMounts are not served by Vulcan yet: create the sandbox without them",
        )
        .into());
    }
    if body.mcp.as_ref().is_some_and(|m| !m.is_null()) {
        return Err(ApiError::bad_request(
            "an MCP server in the sandbox is not served by Vulcan: create it without mcp",
        )
        .into());
    }
    let tenant = tenant_of(&caller, &HashMap::new())?;
    let sandbox = state
        .engine
        .create_sandbox(NewSandbox {
            tenant,
            isolation: None,
            image: image_of(&body.template_id),
            cpus: None,
            mem_mb: None,
            disk_mb: None,
            env: body.env_vars.unwrap_or_default(),
            metadata: body.metadata.unwrap_or_default(),
            timeout_s: body.timeout,
            on_timeout: if body.auto_pause == Some(true) {
                OnTimeout::Pause
            } else {
                OnTimeout::Kill
            },
            auto_resume: body.auto_resume.is_some_and(|a| a.enabled),
            pulls: caller.image_pulls(),
            volumes: Vec::new(),
        })
        .await?;
    let target = AuditTarget(sandbox.id.clone());
    Ok((
        StatusCode::CREATED,
        Extension(target),
        Json(created(&sandbox)),
    ))
}

/// `GET /sandboxes/{id}`.
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> E2bResult<Json<Value>> {
    caller.require(Permission::WorkloadsRead)?;
    Ok(Json(detail(&live_sandbox(&state, &caller, &id).await?)))
}

/// `GET /v2/sandboxes[?metadata=&state=&limit=&nextToken=]`: running and paused ones,
/// newest first; the next page's token in `x-next-token`.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> E2bResult<Response> {
    caller.require(Permission::WorkloadsRead)?;
    let mut filter = SandboxFilter {
        tenant: caller.scope().map(str::to_owned),
        limit: 100,
        ..SandboxFilter::default()
    };
    let mut states = vec![SandboxState::Running, SandboxState::Paused];
    for (key, value) in super::form_pairs(query.as_deref().unwrap_or("")) {
        match key.as_str() {
            // `k=v&k2=v2`, each key and value quoted again.
            "metadata" => {
                for (k, v) in super::form_pairs(&value) {
                    filter.metadata.insert(k, v);
                }
            }
            "state" => {
                states = value
                    .split(',')
                    .map(|s| match s {
                        "running" => Ok(SandboxState::Running),
                        "paused" => Ok(SandboxState::Paused),
                        other => Err(ApiError::bad_request(format!(
                            "state {other:?} is not one: use running or paused"
                        ))),
                    })
                    .collect::<Result<_, _>>()?
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
            "nextToken" => filter.before = Some(value),
            _ => {}
        }
    }
    // One state is filtered by the store. Both (the default) are read page after page,
    // ended ones skipped, until a page's worth is found: ended sandboxes newer than the
    // running ones never hide them.
    if let [only] = states.as_slice() {
        filter.state = Some(*only);
    }
    let limit = filter.limit as usize;
    let mut shown: Vec<&Sandbox> = Vec::new();
    let mut pages = Vec::new();
    let mut next = filter.before.clone();
    let mut found = 0;
    for _ in 0..MAX_PAGES_READ {
        filter.before = next;
        let page = state.engine.sandboxes(&filter).await?;
        next = page.next.clone();
        found += visible(&page, &states);
        pages.push(page);
        if next.is_none() || found > limit {
            break;
        }
    }
    for page in &pages {
        shown.extend(page.sandboxes.iter().filter(|s| states.contains(&s.state)));
    }
    if shown.len() > limit {
        shown.truncate(limit);
        next = shown.last().map(|s| s.id.clone());
    }
    let body: Vec<Value> = shown.into_iter().map(detail).collect();
    let mut response = Json(body).into_response();
    if let Some(next) = next.and_then(|n| HeaderValue::from_str(&n).ok()) {
        response.headers_mut().insert("x-next-token", next);
    }
    Ok(response)
}

/// Pages of the store one list reads at most (it answers a next token where it stopped).
const MAX_PAGES_READ: usize = 20;

fn visible(page: &vulcan_domain::SandboxPage, states: &[SandboxState]) -> usize {
    page.sandboxes
        .iter()
        .filter(|s| states.contains(&s.state))
        .count()
}

/// `DELETE /sandboxes/{id}`: `204`.
pub async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> E2bResult<(Extension<AuditTarget>, StatusCode)> {
    caller.require(Permission::WorkloadsKill)?;
    live_sandbox(&state, &caller, &id).await?;
    state.engine.delete_sandbox(caller.scope(), &id).await?;
    Ok((Extension(AuditTarget(id)), StatusCode::NO_CONTENT))
}

#[derive(Deserialize)]
pub struct TimeoutBody {
    timeout: u32,
}

/// `POST /sandboxes/{id}/timeout {timeout}`: the deadline becomes now + `timeout` s.
pub async fn timeout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> E2bResult<(Extension<AuditTarget>, StatusCode)> {
    caller.require(Permission::WorkloadsCreate)?;
    let body: TimeoutBody = body_of(&body, "{\"timeout\": seconds}")?;
    live_sandbox(&state, &caller, &id).await?;
    state
        .engine
        .set_sandbox_timeout(caller.scope(), &id, body.timeout)
        .await?;
    Ok((Extension(AuditTarget(id)), StatusCode::NO_CONTENT))
}

/// `POST /sandboxes/{id}/pause`: `204`; `409` when it is paused already.
pub async fn pause(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> E2bResult<(Extension<AuditTarget>, StatusCode)> {
    caller.require(Permission::WorkloadsCreate)?;
    let sandbox = live_sandbox(&state, &caller, &id).await?;
    if sandbox.state == SandboxState::Paused {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("sandbox {id} is already paused"),
        )
        .into());
    }
    state.engine.pause_sandbox(caller.scope(), &id).await?;
    Ok((Extension(AuditTarget(id)), StatusCode::NO_CONTENT))
}

#[derive(Deserialize)]
pub struct ConnectBody {
    #[serde(default)]
    timeout: Option<u32>,
}

/// `POST /v2/sandboxes/{id}/connect {timeout}`: resumes it if paused (`201`), else `200`;
/// the deadline moves to now + `timeout` s when that is later.
pub async fn connect(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> E2bResult<(StatusCode, Extension<AuditTarget>, Json<Value>)> {
    caller.require(Permission::WorkloadsCreate)?;
    let body: ConnectBody = body_of(&body, "{\"timeout\": seconds}")?;
    let mut sandbox = live_sandbox(&state, &caller, &id).await?;
    let mut status = StatusCode::OK;
    if sandbox.state == SandboxState::Paused {
        sandbox = state.engine.resume_sandbox(caller.scope(), &id).await?;
        status = StatusCode::CREATED;
    }
    if let Some(seconds) = body.timeout {
        let wanted =
            time::OffsetDateTime::now_utc() + std::time::Duration::from_secs(seconds.into());
        if wanted > sandbox.end_at {
            sandbox = state
                .engine
                .set_sandbox_timeout(caller.scope(), &id, seconds)
                .await?;
        }
    }
    Ok((status, Extension(AuditTarget(id)), Json(created(&sandbox))))
}

/// `GET /sandboxes/{id}/metrics[?start=&end=]` (unix seconds): a sample every 5 s while
/// it ran, within the interval when one is given.
pub async fn metrics(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> E2bResult<Json<Value>> {
    caller.require(Permission::WorkloadsRead)?;
    let bound = |name: &str| -> Result<Option<i64>, ApiError> {
        params
            .get(name)
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!("{name}={v:?} is not a unix time in seconds"))
                })
            })
            .transpose()
    };
    let (start, end) = (bound("start")?, bound("end")?);
    let sandbox = live_sandbox(&state, &caller, &id).await?;
    let metrics = state.engine.sandbox_usage(caller.scope(), &id).await?;
    let cpus = sandbox.resources.cpus.max(1);
    let shown: Vec<Value> = metrics
        .samples
        .iter()
        .filter(|s| start.is_none_or(|t| s.at.unix_timestamp() >= t))
        .filter(|s| end.is_none_or(|t| s.at.unix_timestamp() <= t))
        .map(|s| {
            json!({
                "timestamp": rfc3339(s.at),
                "timestampUnix": s.at.unix_timestamp(),
                "cpuCount": cpus,
                "cpuUsedPct": (s.cpu_pct / f64::from(cpus) * 100.0).round() / 100.0,
                "memUsed": s.memory_bytes,
                "memTotal": u64::from(sandbox.resources.mem_mb) << 20,
                "memCache": 0,
                "diskUsed": s.disk_bytes,
                "diskTotal": u64::from(sandbox.resources.disk_mb) << 20,
            })
        })
        .collect();
    Ok(Json(Value::Array(shown)))
}
