//! `/v1/queues`: a tenant's queues and their messages ([`vulcan_domain::Queue`]): send,
//! receive (a long poll), acknowledge or give back by receipt.

use std::collections::HashMap;

use crate::extract::{Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use vulcan_domain::{Delivery, Permission, QueueConfig, QueueView, Sent};
use vulcan_engine::queues::{Outgoing, QueueError};

use crate::auth::{AuditTarget, Caller};
use crate::extract::JsonBody;
use crate::request::functions::tenant_of;
use crate::{ApiError, AppState};

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Invalid(m) => ApiError::bad_request(m),
            QueueError::TooLarge(m) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, m),
            QueueError::Store(e) => e.into(),
        }
    }
}

/// A queue's name and what may be set on it; each field left out keeps its default (on
/// `POST`) or its value (on `PUT` of a queue that exists).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    /// 1-63 of a-z, 0-9, `-` and `_`, unique per tenant: required on `POST`; on `PUT` the
    /// path names it.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    name: Option<String>,
    /// Seconds a received message stays hidden from other consumers (1-43200; 30).
    #[schema(minimum = 1, maximum = 43200)]
    #[serde(default, deserialize_with = "vulcan_domain::whole::opt")]
    visibility_timeout_s: Option<u32>,
    /// Receives before a message moves to the dead-letter queue (1-1000; 5).
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "vulcan_domain::whole::opt")]
    max_receives: Option<u32>,
    /// A queue of the same tenant that takes messages past `max_receives` (none: they
    /// are delivered again until their retention ends). `null` on `PUT` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    dead_letter_queue: Option<Option<String>>,
    /// Seconds a message is kept (60-1209600; 4 days).
    #[schema(minimum = 60, maximum = 1209600)]
    #[serde(default, deserialize_with = "vulcan_domain::whole::opt")]
    retention_s: Option<u32>,
    /// The largest message body, as JSON text (1-1048576; 262144).
    #[schema(minimum = 1, maximum = 1048576)]
    #[serde(default, deserialize_with = "vulcan_domain::whole::opt")]
    max_message_bytes: Option<u32>,
}

/// A field given (even as `null`) is `Some`.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

impl QueueSettings {
    fn over(self, base: QueueConfig) -> QueueConfig {
        QueueConfig {
            visibility_timeout_s: self
                .visibility_timeout_s
                .unwrap_or(base.visibility_timeout_s),
            max_receives: self.max_receives.unwrap_or(base.max_receives),
            dead_letter_queue: self.dead_letter_queue.unwrap_or(base.dead_letter_queue),
            retention_s: self.retention_s.unwrap_or(base.retention_s),
            max_message_bytes: self.max_message_bytes.unwrap_or(base.max_message_bytes),
        }
    }
}

/// `POST /v1/queues`: makes a queue (`201`); `409` if the tenant has one of that name.
#[utoipa::path(post, path = "/v1/queues", tag = "queues", params(("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), request_body = QueueSettings, responses((status = 201, description = "Made", body = QueueView), crate::error::Errors))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<HashMap<String, String>>,
    JsonBody(body): JsonBody<QueueSettings>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<QueueView>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let tenant = tenant_of(&caller, &params)?;
    let Some(name) = body.name.clone() else {
        return Err(ApiError::bad_request(
            "give the queue's \"name\" (1-63 of a-z, 0-9, '-' and '_')",
        ));
    };
    if state.engine.queue_definition(&tenant, &name).await.is_ok() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "tenant {tenant} has a queue named {name} already: PUT /v1/queues/{name} changes it"
            ),
        ));
    }
    let config = body.over(QueueConfig::default());
    let (view, _) = state.engine.put_queue(&tenant, &name, config).await?;
    Ok((
        StatusCode::CREATED,
        Extension(AuditTarget(name)),
        Json(view),
    ))
}

/// `PUT /v1/queues/{name}`: makes the queue (`201`) or changes what the body names (`200`).
#[utoipa::path(put, path = "/v1/queues/{name}", tag = "queues", params(("name" = String, Path), ("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), request_body = QueueSettings, responses((status = 201, description = "Made", body = QueueView), (status = 200, description = "Changed", body = QueueView), crate::error::Errors))]
pub async fn put(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    JsonBody(body): JsonBody<QueueSettings>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<QueueView>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let tenant = tenant_of(&caller, &params)?;
    if body.name.as_ref().is_some_and(|n| *n != name) {
        return Err(ApiError::bad_request(format!(
            "the body names queue {:?} and the path {name:?}: a queue is not renamed, leave \"name\" out",
            body.name.unwrap_or_default()
        )));
    }
    let base = match state.engine.queue_definition(&tenant, &name).await {
        Ok(queue) => queue.config,
        Err(QueueError::Store(vulcan_domain::StoreError::Missing(_))) => QueueConfig::default(),
        Err(e) => return Err(e.into()),
    };
    let (view, made) = state
        .engine
        .put_queue(&tenant, &name, body.over(base))
        .await?;
    let status = if made {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Extension(AuditTarget(name)), Json(view)))
}

/// `GET /v1/queues`: the caller's queues with their counts (an admin's: everyone's).
#[utoipa::path(get, path = "/v1/queues", tag = "queues", responses((status = 200, description = "OK", body = Vec<QueueView>), crate::error::Errors))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<QueueView>>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    Ok(Json(state.engine.queues(caller.scope()).await?))
}

/// `GET /v1/queues/{name}`: the queue with its depth, messages in flight, delayed, the
/// oldest message's age, deliveries, redeliveries and dead-lettered messages.
#[utoipa::path(get, path = "/v1/queues/{name}", tag = "queues", params(("name" = String, Path), ("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), responses((status = 200, description = "OK", body = QueueView), crate::error::Errors))]
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<QueueView>, ApiError> {
    caller.require(Permission::WorkloadsRead)?;
    let tenant = tenant_of(&caller, &params)?;
    Ok(Json(state.engine.queue(&tenant, &name).await?))
}

/// `DELETE /v1/queues/{name}`: removes it and its messages; `409` while it is another
/// queue's dead-letter queue.
#[utoipa::path(delete, path = "/v1/queues/{name}", tag = "queues", params(("name" = String, Path), ("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), responses((status = 200, description = "Deleted", body = vulcan_domain::Queue), crate::error::Errors))]
pub async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<(Extension<AuditTarget>, Json<vulcan_domain::Queue>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let tenant = tenant_of(&caller, &params)?;
    let queue = state.engine.delete_queue(&tenant, &name).await?;
    Ok((Extension(AuditTarget(name)), Json(queue)))
}

/// What `POST …/purge` removed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Purged {
    purged: u64,
}

/// `POST /v1/queues/{name}/purge`: removes every message, in flight or not.
#[utoipa::path(post, path = "/v1/queues/{name}/purge", tag = "queues", params(("name" = String, Path), ("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), responses((status = 200, description = "Purged", body = Purged), crate::error::Errors))]
pub async fn purge(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<(Extension<AuditTarget>, Json<Purged>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let tenant = tenant_of(&caller, &params)?;
    let purged = state.engine.purge_queue(&tenant, &name).await?;
    Ok((Extension(AuditTarget(name)), Json(Purged { purged })))
}

/// One message to send.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutgoingMessage {
    /// Any JSON: what a consumer receives.
    body: serde_json::Value,
    /// Seconds before it can be received (0-900).
    #[serde(default)]
    #[schema(maximum = 900)]
    #[serde(deserialize_with = "vulcan_domain::whole::int")]
    delay_s: u32,
    /// Sent again with this id within 5 minutes, it is not stored twice (1-128 characters).
    #[schema(min_length = 1, max_length = 128)]
    dedup_id: Option<String>,
}

/// `POST /v1/queues/{name}/messages`: one message (`body`, with `delay_s` and `dedup_id`)
/// or a batch of them (`messages`), not both.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    /// One message's body: any JSON.
    #[serde(default, deserialize_with = "present")]
    body: Option<serde_json::Value>,
    /// Seconds before it can be received (0-900).
    #[serde(default)]
    #[schema(maximum = 900)]
    #[serde(deserialize_with = "vulcan_domain::whole::int")]
    delay_s: u32,
    /// Sent again with this id within 5 minutes, it is not stored twice (1-128 characters).
    #[schema(min_length = 1, max_length = 128)]
    dedup_id: Option<String>,
    /// 1-100 messages, stored all or none.
    messages: Option<Vec<OutgoingMessage>>,
}

/// A batch of messages, stored all or none.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct MessageBatch {
    #[schema(min_items = 1, max_items = 100)]
    messages: Vec<OutgoingMessage>,
}

/// `POST /v1/queues/{name}/messages`' body as the document states it ([`SendBody`] reads
/// it): one message, or a batch.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum SendRequest {
    One(OutgoingMessage),
    Batch(MessageBatch),
}

/// What was sent.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SentMessages {
    messages: Vec<Sent>,
}

/// `POST /v1/queues/{name}/messages`: sends (`201`); `413` for a message larger than the
/// queue takes, `400` for a batch of more than 100.
#[utoipa::path(post, path = "/v1/queues/{name}/messages", tag = "queues", params(("name" = String, Path), ("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), request_body = SendRequest, responses((status = 201, description = "Sent", body = SentMessages), crate::error::Errors))]
pub async fn send(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    JsonBody(body): JsonBody<SendBody>,
) -> Result<(StatusCode, Extension<AuditTarget>, Json<SentMessages>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let tenant = tenant_of(&caller, &params)?;
    let batch = match (body.body, body.messages) {
        (Some(one), None) => vec![OutgoingMessage {
            body: one,
            delay_s: body.delay_s,
            dedup_id: body.dedup_id,
        }],
        (None, Some(messages)) if body.delay_s == 0 && body.dedup_id.is_none() => messages,
        (None, Some(_)) => {
            return Err(ApiError::bad_request(
                "\"delay_s\" and \"dedup_id\" go on each of the \"messages\" of a batch",
            ))
        }
        _ => return Err(ApiError::bad_request(
            "give one message's \"body\", or a batch as \"messages\": [{\"body\": …}], not both",
        )),
    };
    let outgoing = batch
        .into_iter()
        .map(|m| Outgoing {
            body: m.body,
            delay_s: m.delay_s,
            dedup_id: m.dedup_id,
        })
        .collect();
    let messages = state.engine.send_messages(&tenant, &name, outgoing).await?;
    Ok((
        StatusCode::CREATED,
        Extension(AuditTarget(name)),
        Json(SentMessages { messages }),
    ))
}

/// `POST /v1/queues/{name}/receive`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveBody {
    /// Messages at most (1-100; 1).
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 100)]
    #[serde(deserialize_with = "vulcan_domain::whole::int")]
    max: u32,
    /// Seconds to wait for a first message when none is there (0-20; 0).
    #[serde(default)]
    #[schema(maximum = 20)]
    #[serde(deserialize_with = "vulcan_domain::whole::int")]
    wait_s: u32,
    /// Seconds these deliveries stay hidden (the queue's own by default).
    #[schema(minimum = 1, maximum = 43200)]
    #[serde(default, deserialize_with = "vulcan_domain::whole::opt")]
    visibility_timeout_s: Option<u32>,
}

fn one() -> u32 {
    1
}

/// One delivery of a message.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Received {
    id: String,
    /// Acknowledges or gives back this delivery (and no later one).
    receipt: String,
    body: serde_json::Value,
    /// Times received, this one included.
    receive_count: u32,
    #[serde(with = "time::serde::rfc3339")]
    sent_at: time::OffsetDateTime,
    /// Hidden from other consumers until then: acknowledge it before.
    #[serde(with = "time::serde::rfc3339")]
    visible_at: time::OffsetDateTime,
    /// Why it was last given back, if it was.
    last_error: Option<String>,
}

impl From<Delivery> for Received {
    fn from(d: Delivery) -> Self {
        Received {
            body: serde_json::from_str(&d.body).unwrap_or(serde_json::Value::String(d.body)),
            id: d.id,
            receipt: d.receipt,
            receive_count: d.receive_count,
            sent_at: d.sent_at,
            visible_at: d.visible_at,
            last_error: d.last_error,
        }
    }
}

/// What a receive got (none when the wait ended first).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReceivedMessages {
    messages: Vec<Received>,
}

/// `POST /v1/queues/{name}/receive`: up to `max` messages, waiting up to `wait_s` for one.
#[utoipa::path(post, path = "/v1/queues/{name}/receive", tag = "queues", params(("name" = String, Path), ("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), request_body = ReceiveBody, responses((status = 200, description = "Received", body = ReceivedMessages), crate::error::Errors))]
pub async fn receive(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    JsonBody(body): JsonBody<ReceiveBody>,
) -> Result<(Extension<AuditTarget>, Json<ReceivedMessages>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let tenant = tenant_of(&caller, &params)?;
    let got = state
        .engine
        .receive_messages(
            &tenant,
            &name,
            body.max,
            body.wait_s,
            body.visibility_timeout_s,
        )
        .await?;
    Ok((
        Extension(AuditTarget(name)),
        Json(ReceivedMessages {
            messages: got.into_iter().map(Received::from).collect(),
        }),
    ))
}

/// `POST /v1/queues/{name}/ack`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    /// 1-100 receipts.
    #[schema(min_items = 1, max_items = 100)]
    receipts: Vec<String>,
}

/// Which receipts acknowledged their message.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Acked {
    acked: Vec<String>,
    /// Receipts that no longer name their message's latest delivery (acknowledged, given
    /// back or delivered again since): nothing was done for them.
    stale: Vec<String>,
}

/// `POST /v1/queues/{name}/ack`: removes the messages of these deliveries for good.
#[utoipa::path(post, path = "/v1/queues/{name}/ack", tag = "queues", params(("name" = String, Path), ("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), request_body = AckBody, responses((status = 200, description = "Done", body = Acked), crate::error::Errors))]
pub async fn ack(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    JsonBody(body): JsonBody<AckBody>,
) -> Result<(Extension<AuditTarget>, Json<Acked>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let tenant = tenant_of(&caller, &params)?;
    let done = state
        .engine
        .ack_messages(&tenant, &name, &body.receipts)
        .await?;
    let (mut acked, mut stale) = (Vec::new(), Vec::new());
    for (receipt, ok) in body.receipts.into_iter().zip(done) {
        if ok {
            acked.push(receipt);
        } else {
            stale.push(receipt);
        }
    }
    Ok((Extension(AuditTarget(name)), Json(Acked { acked, stale })))
}

/// `POST /v1/queues/{name}/nack`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NackBody {
    receipt: String,
    /// Seconds before it can be received again (0-900; 0).
    #[serde(default)]
    #[schema(maximum = 900)]
    #[serde(deserialize_with = "vulcan_domain::whole::int")]
    delay_s: u32,
    /// Why: kept as the message's last error (and shown in the dead-letter queue).
    error: Option<String>,
}

/// What `nack` did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct GivenBack {
    given_back: bool,
}

/// `POST /v1/queues/{name}/nack`: gives a delivery back; `409` if its receipt is stale.
#[utoipa::path(post, path = "/v1/queues/{name}/nack", tag = "queues", params(("name" = String, Path), ("tenant" = Option<String>, Query, description = "An admin acts on this tenant's")), request_body = NackBody, responses((status = 200, description = "Given back", body = GivenBack), crate::error::Errors))]
pub async fn nack(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    JsonBody(body): JsonBody<NackBody>,
) -> Result<(Extension<AuditTarget>, Json<GivenBack>), ApiError> {
    caller.require(Permission::WorkloadsCreate)?;
    let tenant = tenant_of(&caller, &params)?;
    let back = state
        .engine
        .nack_message(
            &tenant,
            &name,
            &body.receipt,
            body.delay_s,
            body.error.as_deref(),
        )
        .await?;
    if !back {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "that receipt no longer names its message's latest delivery: it was acknowledged, given back or delivered again since",
        ));
    }
    Ok((
        Extension(AuditTarget(name)),
        Json(GivenBack { given_back: true }),
    ))
}
