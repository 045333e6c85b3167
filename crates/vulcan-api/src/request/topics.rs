//! `/v1/topics`: a tenant's topics ([`vulcan_domain::Topic`]); what is published to one
//! goes to each of its subscriptions (a queue's copy, or a function's invocation).

use std::collections::HashMap;

use crate::extract::{Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use vulcan_domain::{Permission, Subscription, Topic};
use vulcan_engine::queues::Published;

use crate::auth::{AuditTarget, Caller};
use crate::extract::JsonBody;
use crate::request::functions::tenant_of;
use crate::{ApiError, AppState};

/// `POST /v1/topics`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    /// 1-63 of a-z, 0-9, `-` and `_`, unique per tenant.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    name: String,
}

/// `POST /v1/topics`: makes a topic (`201`); `409` if the tenant has one of that name.
#[utoipa::path(post, path = "/v1/topics", tag = "queues", params(("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), request_body = CreateTopic, responses((status = 201, description = "Made", body = Topic), crate::error::Errors))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<HashMap<String, String>>,
    JsonBody(body): JsonBody<CreateTopic>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<Topic>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let tenant = tenant_of(&caller, &params)?;
    let topic = state.engine.create_topic(&tenant, &body.name).await?;
    Ok((
        StatusCode::CREATED,
        Extension(AuditTarget(body.name)),
        Json(topic),
    ))
}

/// `GET /v1/topics`: the caller's topics with their subscriptions (an admin's: everyone's).
#[utoipa::path(get, path = "/v1/topics", tag = "queues", responses((status = 200, description = "OK", body = Vec<Topic>), crate::error::Errors))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<Topic>>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    Ok(Json(state.engine.topics(caller.scope()).await?))
}

/// `GET /v1/topics/{name}`.
#[utoipa::path(get, path = "/v1/topics/{name}", tag = "queues", params(("name" = String, Path), ("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), responses((status = 200, description = "OK", body = Topic), crate::error::Errors))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Topic>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    let tenant = tenant_of(&caller, &params)?;
    Ok(Json(state.engine.topic(&tenant, &name).await?))
}

/// `DELETE /v1/topics/{name}`: removes it (its subscribed queues and functions stay).
#[utoipa::path(delete, path = "/v1/topics/{name}", tag = "queues", params(("name" = String, Path), ("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), responses((status = 200, description = "Deleted", body = Topic), crate::error::Errors))]
pub async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<(Extension<AuditTarget>, Json<Topic>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let tenant = tenant_of(&caller, &params)?;
    let topic = state.engine.delete_topic(&tenant, &name).await?;
    Ok((Extension(AuditTarget(name)), Json(topic)))
}

/// `POST /v1/topics/{name}/subscriptions`: a queue or a function of the tenant's, or a URL
/// (POSTed each message, signed with the tenant's secret `CALLBACK_SIGNING_KEY`): one of
/// them.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Subscribe {
    queue: Option<String>,
    function: Option<String>,
    url: Option<String>,
}

/// [`Subscribe`] as the document states it: exactly one target.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum SubscribeTo {
    Queue(SubscribeQueue),
    Function(SubscribeFunction),
    Url(SubscribeUrl),
}

/// A queue of the tenant's gets each message.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct SubscribeQueue {
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    queue: String,
}

/// A function of the tenant's is invoked with each message.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct SubscribeFunction {
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    function: String,
}

/// A URL is POSTed each message, signed with the tenant's secret `CALLBACK_SIGNING_KEY`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct SubscribeUrl {
    #[schema(
        pattern = "^https?://[^\\s\\u0085/?#@:][^\\s\\u0085/?#@]*([/?#][^\\s\\u0085]*)?$",
        max_length = 2048
    )]
    url: String,
}

/// `POST /v1/topics/{name}/subscriptions`: subscribes (`201`); `409` if that target is
/// subscribed already or for a URL while the tenant has no signing secret, `404` for a
/// queue or function the tenant does not have, `403` for a URL in a range it may not reach.
#[utoipa::path(post, path = "/v1/topics/{name}/subscriptions", tag = "queues", params(("name" = String, Path), ("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), request_body = SubscribeTo, responses((status = 201, description = "Subscribed", body = Subscription), crate::error::Errors))]
pub async fn subscribe(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    JsonBody(body): JsonBody<Subscribe>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<Subscription>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let tenant = tenant_of(&caller, &params)?;
    let quota = crate::auth::quota_of(&state.engine, &caller).await?;
    let target = vulcan_engine::queues::SubscriptionTarget {
        queue: body.queue,
        function: body.function,
        url: body.url,
    };
    let (_, subscription) = state
        .engine
        .subscribe(&tenant, &name, target, quota.as_ref())
        .await?;
    Ok((
        StatusCode::CREATED,
        Extension(AuditTarget(name)),
        Json(subscription),
    ))
}

/// `DELETE /v1/topics/{name}/subscriptions/{id}`.
#[utoipa::path(delete, path = "/v1/topics/{name}/subscriptions/{id}", tag = "queues", params(("name" = String, Path), ("id" = String, Path), ("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), responses((status = 200, description = "The topic without it", body = Topic), crate::error::Errors))]
pub async fn unsubscribe(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, id)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<(Extension<AuditTarget>, Json<Topic>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let tenant = tenant_of(&caller, &params)?;
    let topic = state.engine.unsubscribe(&tenant, &name, &id).await?;
    Ok((Extension(AuditTarget(name)), Json(topic)))
}

/// `POST /v1/topics/{name}/publish`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    /// Any JSON.
    body: serde_json::Value,
    /// Published again with this id within 5 minutes, no queue stores it twice.
    #[schema(min_length = 1, max_length = 128)]
    dedup_id: Option<String>,
}

/// `POST /v1/topics/{name}/publish`: a copy to each subscribed queue (all or none: `413`
/// if one takes smaller messages), then a POST stored for each subscribed URL and an
/// invocation of each subscribed function (retried twice if it fails).
#[utoipa::path(post, path = "/v1/topics/{name}/publish", tag = "queues", params(("name" = String, Path), ("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), request_body = Publish, responses((status = 201, description = "Published", body = Published), crate::error::Errors))]
pub async fn publish(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    JsonBody(body): JsonBody<Publish>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<Published>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let tenant = tenant_of(&caller, &params)?;
    if let Some(dedup) = &body.dedup_id {
        let chars = dedup.chars().count();
        if !(1..=128).contains(&chars) {
            return Err(ApiError::bad_request(format!(
                "\"dedup_id\" has {chars} characters: give 1 to 128"
            )));
        }
    }
    let published = state
        .engine
        .publish(&tenant, &name, body.body, body.dedup_id)
        .await?;
    Ok((
        StatusCode::CREATED,
        Extension(AuditTarget(name)),
        Json(published),
    ))
}
