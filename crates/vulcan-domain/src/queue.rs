//! Queues: a tenant's messages, kept until a consumer acknowledges them.
//!
//! A consumer receives messages; each is then invisible to other consumers for the
//! queue's visibility timeout and carries a receipt, which acknowledges it (removed for
//! good) or gives it back (visible again, after a delay if asked). A message neither
//! acknowledged nor given back in time is delivered again. Once it has been received
//! `max_receives` times without being acknowledged, a queue with a dead-letter queue moves
//! it there with the last error it was given back with (a queue without one delivers it
//! again until its retention ends, as SQS does). Every change is one transaction of the
//! store ([`QueueStore`]): a message is never both acknowledged and delivered again.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::StoreError;

/// How long a `dedup_id` is remembered: a message sent again with it within this window
/// is not stored twice.
pub const DEDUP_WINDOW_S: u32 = 300;

/// What can be set on a queue.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueConfig {
    /// Seconds a received message stays hidden from other consumers, 1-43200.
    pub visibility_timeout_s: u32,
    /// Receives before a message moves to the dead-letter queue, 1-1000.
    pub max_receives: u32,
    /// The queue (of the same tenant) that takes messages past `max_receives`.
    pub dead_letter_queue: Option<String>,
    /// Seconds a message is kept, acknowledged or not, 60-1209600 (14 days).
    pub retention_s: u32,
    /// The largest message body (its JSON), 1 byte to 1 MiB.
    pub max_message_bytes: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            visibility_timeout_s: 30,
            max_receives: 5,
            dead_letter_queue: None,
            retention_s: 4 * 24 * 3600,
            max_message_bytes: 256 * 1024,
        }
    }
}

impl QueueConfig {
    /// Why this is not a queue's configuration, if it is not one.
    pub fn check(&self, name: &str) -> Result<(), String> {
        let bounded = |field: &str, value: u32, low: u32, high: u32| {
            if (low..=high).contains(&value) {
                Ok(())
            } else {
                Err(format!(
                    "\"{field}\" is {value}; it must be between {low} and {high}"
                ))
            }
        };
        bounded("visibility_timeout_s", self.visibility_timeout_s, 1, 43_200)?;
        bounded("max_receives", self.max_receives, 1, 1000)?;
        bounded("retention_s", self.retention_s, 60, 14 * 24 * 3600)?;
        bounded("max_message_bytes", self.max_message_bytes, 1, 1024 * 1024)?;
        if let Some(dlq) = &self.dead_letter_queue {
            Queue::check_name(dlq)?;
            if dlq == name {
                return Err(format!(
                    "queue {name} cannot be its own dead-letter queue: name another queue"
                ));
            }
        }
        Ok(())
    }
}

/// One queue.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queue {
    pub id: String,
    pub tenant: String,
    /// Unique per tenant.
    pub name: String,
    #[serde(flatten)]
    pub config: QueueConfig,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Queue {
    /// Why `name` is not a queue's name, if it is not one.
    pub fn check_name(name: &str) -> Result<(), String> {
        crate::volume::check_resource_name("queue", name)
    }
}

/// What is in a queue now, and what it has done.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueCounts {
    /// Messages a consumer can receive now.
    pub depth: u64,
    /// Messages received and neither acknowledged nor given back yet.
    pub in_flight: u64,
    /// Messages sent with a delay, or given back with one, not visible yet.
    pub delayed: u64,
    /// Seconds since the oldest message still kept was sent.
    pub oldest_age_s: Option<f64>,
    /// Deliveries so far (a message received twice counts twice).
    pub deliveries: u64,
    /// Of those, deliveries of a message received before.
    pub redeliveries: u64,
    /// Messages moved to the dead-letter queue so far.
    pub dead_lettered: u64,
}

/// A queue with its counts, as the API shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueView {
    #[serde(flatten)]
    pub queue: Queue,
    #[serde(flatten)]
    pub counts: QueueCounts,
}

/// A message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// Its body's JSON text.
    pub body: String,
    pub delay_s: u32,
    /// Sent again with the same id within [`DEDUP_WINDOW_S`], it is not stored twice.
    pub dedup_id: Option<String>,
}

/// A message sent.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub id: String,
    /// Its `dedup_id` was seen within the window: this is the message sent then.
    pub duplicate: bool,
}

/// A message received: it stays hidden until `visible_at` unless given back.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: String,
    /// Acknowledges or gives back this delivery (and no later one).
    pub receipt: String,
    /// Its body's JSON text.
    pub body: String,
    /// Times received, this one included.
    pub receive_count: u32,
    pub sent_at: OffsetDateTime,
    pub visible_at: OffsetDateTime,
    /// Why it was last given back, if it was.
    pub last_error: Option<String>,
}

/// A topic: what is published to it goes to each of its subscriptions, each its own copy.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    pub id: String,
    pub tenant: String,
    /// Unique per tenant (the rules of a queue's name).
    pub name: String,
    pub subscriptions: Vec<Subscription>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Where a topic's messages go: a queue of the tenant's (in the transaction that publishes),
/// a function (invoked once per message, retried twice when it fails) or a URL (POSTed
/// each message, signed, retried until it answers 2xx).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// POSTed each message (signed and retried as a callback is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Whether `url` may be in a never-reachable range (an admin subscribed it, or the
    /// tenant's quota lists it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private_ok: bool,
}

/// Keeps queues and their messages. `now` is the caller's clock, in every call that
/// depends on it.
#[async_trait]
pub trait QueueStore: Send + Sync {
    /// Creates the queue, or changes its configuration if the tenant has one of that name
    /// (true if created). Its dead-letter queue must be the tenant's and lead back to it
    /// through no chain of dead-letter queues (refused with [`StoreError::Conflict`]); a
    /// tenant holds `max_per_tenant` at most.
    async fn put_queue(&self, queue: &Queue, max_per_tenant: u32) -> Result<bool, StoreError>;

    /// One queue of the tenant's, without its counts (which cost a look at its messages).
    async fn definition(&self, tenant: &str, name: &str) -> Result<Queue, StoreError>;

    /// One queue of the tenant's, with its counts.
    async fn queue(
        &self,
        tenant: &str,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<QueueView, StoreError>;

    /// Queues, one tenant's or everyone's, by tenant and name.
    async fn queues(
        &self,
        tenant: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Vec<QueueView>, StoreError>;

    /// Removes a queue and its messages; refused while another queue names it as its
    /// dead-letter queue.
    async fn delete_queue(&self, tenant: &str, name: &str) -> Result<Queue, StoreError>;

    /// Stores `messages`, in order, in one transaction.
    async fn send(
        &self,
        tenant: &str,
        name: &str,
        messages: &[NewMessage],
        now: OffsetDateTime,
    ) -> Result<Vec<Sent>, StoreError>;

    /// Receives up to `max` visible messages, in the order they were sent, hiding each for the queue's
    /// visibility timeout (or `visibility_s`). Messages past their retention are removed
    /// and those past `max_receives` moved to the dead-letter queue first.
    async fn receive(
        &self,
        tenant: &str,
        name: &str,
        max: u32,
        visibility_s: Option<u32>,
        now: OffsetDateTime,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Acknowledges the deliveries of `receipts`: for each, whether it was still the
    /// message's latest delivery (and so removed).
    async fn ack(
        &self,
        tenant: &str,
        name: &str,
        receipts: &[String],
    ) -> Result<Vec<bool>, StoreError>;

    /// Gives a delivery back: visible again after `delay_s`, with `error` as its last
    /// error. False if the receipt is not the message's latest delivery.
    async fn nack(
        &self,
        tenant: &str,
        name: &str,
        receipt: &str,
        delay_s: u32,
        error: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Removes every message of the queue; how many.
    async fn purge(&self, tenant: &str, name: &str) -> Result<u64, StoreError>;

    /// Makes a topic (refused with [`StoreError::Conflict`] if the tenant has one of that
    /// name, or [`StoreError::Refused`] past `max_per_tenant`).
    async fn create_topic(&self, topic: &Topic, max_per_tenant: u32) -> Result<(), StoreError>;

    async fn topic(&self, tenant: &str, name: &str) -> Result<Topic, StoreError>;

    /// Topics, one tenant's or everyone's, by tenant and name.
    async fn topics(&self, tenant: Option<&str>) -> Result<Vec<Topic>, StoreError>;

    async fn delete_topic(&self, tenant: &str, name: &str) -> Result<Topic, StoreError>;

    /// Adds a subscription to the topic, unless one has its target already
    /// ([`StoreError::Conflict`]) or the topic has `max` ([`StoreError::Refused`]).
    async fn subscribe(
        &self,
        tenant: &str,
        name: &str,
        subscription: &Subscription,
        max: u32,
    ) -> Result<Topic, StoreError>;

    /// Removes subscription `id` from the topic.
    async fn unsubscribe(&self, tenant: &str, name: &str, id: &str) -> Result<Topic, StoreError>;

    /// Sends `message` to every queue subscribed to the topic, in one transaction: the
    /// topic as it was then, and what each queue stored (by queue name).
    async fn publish(
        &self,
        tenant: &str,
        name: &str,
        message: &NewMessage,
        now: OffsetDateTime,
    ) -> Result<(Topic, Vec<(String, Sent)>), StoreError>;
}

impl Topic {
    /// Adds `subscription` unless one has its target, or the topic has `max`.
    pub fn add(&mut self, subscription: Subscription, max: u32) -> Result<(), StoreError> {
        let same = |s: &Subscription| {
            s.queue == subscription.queue
                && s.function == subscription.function
                && s.url == subscription.url
        };
        if self.subscriptions.iter().any(same) {
            return Err(StoreError::Conflict(format!(
                "topic {} has that subscription already",
                self.name
            )));
        }
        if self.subscriptions.len() >= max as usize {
            return Err(StoreError::Refused(crate::Refusal::Forbidden(format!(
                "topic {} has {max} subscriptions, the most a topic may: remove one first",
                self.name
            ))));
        }
        self.subscriptions.push(subscription);
        Ok(())
    }

    /// Removes subscription `id`.
    pub fn remove(&mut self, id: &str) -> Result<(), StoreError> {
        let before = self.subscriptions.len();
        self.subscriptions.retain(|s| s.id != id);
        if self.subscriptions.len() == before {
            return Err(StoreError::Missing(format!(
                "topic {} has no subscription {id}: GET /v1/topics/{} lists them",
                self.name, self.name
            )));
        }
        Ok(())
    }
}

/// What a topic that is not there answers.
pub fn missing_topic(name: &str) -> StoreError {
    StoreError::Missing(format!(
        "topic {name} not found: POST /v1/topics makes it, GET /v1/topics lists them"
    ))
}

/// What a queue that is not there answers.
pub fn missing_queue(name: &str) -> StoreError {
    StoreError::Missing(format!(
        "queue {name} not found: POST /v1/queues makes it, GET /v1/queues lists them"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_is_held_to_its_bounds_and_never_its_own_dead_letter_queue() {
        assert!(QueueConfig::default().check("jobs").is_ok());
        let zero = QueueConfig {
            visibility_timeout_s: 0,
            ..QueueConfig::default()
        };
        assert!(zero
            .check("jobs")
            .unwrap_err()
            .contains("visibility_timeout_s"));
        let own = QueueConfig {
            dead_letter_queue: Some("jobs".into()),
            ..QueueConfig::default()
        };
        assert!(own.check("jobs").unwrap_err().contains("its own"));
        let bad = QueueConfig {
            dead_letter_queue: Some("Bad Name".into()),
            ..QueueConfig::default()
        };
        assert!(bad.check("jobs").is_err());
        assert!(Queue::check_name("jobs-1").is_ok());
        assert!(Queue::check_name("-jobs").is_err());
        assert!(Queue::check_name(&"a".repeat(64)).is_err());
    }
}
