//! Queues ([`vulcan_domain::Queue`]): what a request may ask of one, checked here; what
//! is kept, and every rule of delivery, is the store's ([`vulcan_domain::QueueStore`]).
//! A receive may wait for messages (a long poll): it is woken at once by a message sent
//! through this node, and looks again every [`POLL`] for those sent through others. Topics
//! ([`vulcan_domain::Topic`]) fan a published message out to their subscriptions.

use std::time::Duration;

use time::OffsetDateTime;
use vulcan_domain::{
    Delivery, NewMessage, Queue, QueueConfig, QueueView, Sent, StoreError, Subscription, Topic,
};

use crate::Engine;

/// Messages one request may send, receive or acknowledge at most.
pub const MAX_BATCH: usize = 100;

/// Seconds a receive may wait for messages at most.
pub const MAX_WAIT_S: u32 = 20;

/// Seconds a message may be delayed at most (sent, or given back).
pub const MAX_DELAY_S: u32 = 900;

/// How often a waiting receive looks for messages sent through other nodes.
const POLL: Duration = Duration::from_millis(100);

/// Why a queue request was not done, by whose fault.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("{0}")]
    Invalid(String),
    /// A message larger than its queue takes.
    #[error("{0}")]
    TooLarge(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a subscription delivers to: exactly one of these.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionTarget {
    pub queue: Option<String>,
    pub function: Option<String>,
    pub url: Option<String>,
}

/// A message as a request sends it.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub body: serde_json::Value,
    pub delay_s: u32,
    pub dedup_id: Option<String>,
}

fn check_batch(what: &str, n: usize) -> Result<(), QueueError> {
    if (1..=MAX_BATCH).contains(&n) {
        return Ok(());
    }
    Err(QueueError::Invalid(format!(
        "{n} {what} in one request: give 1 to {MAX_BATCH}"
    )))
}

fn check_delay(delay_s: u32) -> Result<(), QueueError> {
    if delay_s <= MAX_DELAY_S {
        return Ok(());
    }
    Err(QueueError::Invalid(format!(
        "\"delay_s\" is {delay_s}; it must be at most {MAX_DELAY_S}"
    )))
}

impl Engine {
    /// Makes queue `name` for `tenant`, or changes its configuration if it has one (true
    /// if made).
    pub async fn put_queue(
        &self,
        tenant: &str,
        name: &str,
        config: QueueConfig,
    ) -> Result<(QueueView, bool), QueueError> {
        Queue::check_name(name).map_err(QueueError::Invalid)?;
        config.check(name).map_err(QueueError::Invalid)?;
        let now = OffsetDateTime::now_utc();
        let queue = Queue {
            id: format!("q{}", ulid::Ulid::new().to_string().to_lowercase()),
            tenant: tenant.to_owned(),
            name: name.to_owned(),
            config,
            created_at: now,
            updated_at: now,
        };
        let max = self.inner.config.max_queues_per_tenant;
        let made = self.inner.queues.put_queue(&queue, max).await?;
        Ok((self.queue(tenant, name).await?, made))
    }

    /// A queue of the tenant's, without its counts.
    pub async fn queue_definition(&self, tenant: &str, name: &str) -> Result<Queue, QueueError> {
        Ok(self.inner.queues.definition(tenant, name).await?)
    }

    pub async fn queue(&self, tenant: &str, name: &str) -> Result<QueueView, QueueError> {
        Ok(self
            .inner
            .queues
            .queue(tenant, name, OffsetDateTime::now_utc())
            .await?)
    }

    /// A tenant's queues (everyone's for `None`).
    pub async fn queues(&self, tenant: Option<&str>) -> Result<Vec<QueueView>, QueueError> {
        Ok(self
            .inner
            .queues
            .queues(tenant, OffsetDateTime::now_utc())
            .await?)
    }

    pub async fn delete_queue(&self, tenant: &str, name: &str) -> Result<Queue, QueueError> {
        Ok(self.inner.queues.delete_queue(tenant, name).await?)
    }

    pub async fn purge_queue(&self, tenant: &str, name: &str) -> Result<u64, QueueError> {
        Ok(self.inner.queues.purge(tenant, name).await?)
    }

    /// Sends `messages` to the tenant's queue `name`, all or none.
    pub async fn send_messages(
        &self,
        tenant: &str,
        name: &str,
        messages: Vec<Outgoing>,
    ) -> Result<Vec<Sent>, QueueError> {
        check_batch("messages", messages.len())?;
        let queue = self.inner.queues.definition(tenant, name).await?;
        let max = queue.config.max_message_bytes as usize;
        let mut new = Vec::with_capacity(messages.len());
        for (i, m) in messages.into_iter().enumerate() {
            check_delay(m.delay_s)?;
            if let Some(dedup) = &m.dedup_id {
                let chars = dedup.chars().count();
                if !(1..=128).contains(&chars) {
                    return Err(QueueError::Invalid(format!(
                        "message {i}'s \"dedup_id\" has {chars} characters: give 1 to 128"
                    )));
                }
            }
            let body = m.body.to_string();
            if body.len() > max {
                return Err(QueueError::TooLarge(format!(
                    "message {i} is {} bytes of JSON; queue {name} takes {max} at most (its max_message_bytes)",
                    body.len()
                )));
            }
            new.push(NewMessage {
                body,
                delay_s: m.delay_s,
                dedup_id: m.dedup_id,
            });
        }
        let sent = self
            .inner
            .queues
            .send(tenant, name, &new, OffsetDateTime::now_utc())
            .await?;
        self.inner.queue_sent.notify_waiters();
        self.inner
            .metrics
            .queue_sent(sent.iter().filter(|s| !s.duplicate).count());
        Ok(sent)
    }

    /// Receives up to `max` messages, waiting up to `wait_s` for the first.
    pub async fn receive_messages(
        &self,
        tenant: &str,
        name: &str,
        max: u32,
        wait_s: u32,
        visibility_s: Option<u32>,
    ) -> Result<Vec<Delivery>, QueueError> {
        check_batch("messages", max as usize)?;
        if wait_s > MAX_WAIT_S {
            return Err(QueueError::Invalid(format!(
                "\"wait_s\" is {wait_s}; it must be at most {MAX_WAIT_S}"
            )));
        }
        if let Some(v) = visibility_s {
            if !(1..=43_200).contains(&v) {
                return Err(QueueError::Invalid(format!(
                    "\"visibility_timeout_s\" is {v}; it must be between 1 and 43200"
                )));
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(wait_s.into());
        loop {
            // Listening before looking: a message sent in between still wakes this.
            let sent = self.inner.queue_sent.notified();
            tokio::pin!(sent);
            sent.as_mut().enable();
            let got = self
                .inner
                .queues
                .receive(tenant, name, max, visibility_s, OffsetDateTime::now_utc())
                .await?;
            let now = tokio::time::Instant::now();
            if !got.is_empty() || now >= deadline {
                return Ok(got);
            }
            let _ = tokio::time::timeout((deadline - now).min(POLL), sent).await;
        }
    }

    /// Acknowledges deliveries by receipt: for each, whether it was acknowledged (false:
    /// the message was acknowledged, given back or delivered again since).
    pub async fn ack_messages(
        &self,
        tenant: &str,
        name: &str,
        receipts: &[String],
    ) -> Result<Vec<bool>, QueueError> {
        check_batch("receipts", receipts.len())?;
        Ok(self.inner.queues.ack(tenant, name, receipts).await?)
    }

    /// Gives a delivery back, visible again after `delay_s`, with `error` as its last.
    pub async fn nack_message(
        &self,
        tenant: &str,
        name: &str,
        receipt: &str,
        delay_s: u32,
        error: Option<&str>,
    ) -> Result<bool, QueueError> {
        check_delay(delay_s)?;
        let error = error.map(|e| e.chars().take(4096).collect::<String>());
        let back = self
            .inner
            .queues
            .nack(
                tenant,
                name,
                receipt,
                delay_s,
                error.as_deref(),
                OffsetDateTime::now_utc(),
            )
            .await?;
        if back && delay_s == 0 {
            self.inner.queue_sent.notify_waiters();
        }
        Ok(back)
    }
}

/// Subscriptions a topic may have at most.
pub const MAX_SUBSCRIPTIONS: u32 = 20;

/// What one publish did: each subscribed queue's copy, each subscribed function's
/// invocation (or why it was not invoked).
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Published {
    pub queues: Vec<PublishedTo>,
    pub functions: Vec<Invoked>,
    /// POSTs stored for the url subscriptions (made by whichever node takes them).
    pub urls: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublishedTo {
    pub queue: String,
    #[serde(flatten)]
    pub sent: Sent,
}

#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Invoked {
    pub function: String,
    /// The invocation (a workload), if it was admitted.
    pub workload_id: Option<String>,
    /// Why it was not, if it was not.
    pub error: Option<String>,
}

impl Engine {
    pub async fn create_topic(&self, tenant: &str, name: &str) -> Result<Topic, QueueError> {
        vulcan_domain::check_resource_name("topic", name).map_err(QueueError::Invalid)?;
        let topic = Topic {
            id: format!("t{}", ulid::Ulid::new().to_string().to_lowercase()),
            tenant: tenant.to_owned(),
            name: name.to_owned(),
            subscriptions: Vec::new(),
            created_at: OffsetDateTime::now_utc(),
        };
        let max = self.inner.config.max_queues_per_tenant;
        self.inner.queues.create_topic(&topic, max).await?;
        Ok(topic)
    }

    pub async fn topic(&self, tenant: &str, name: &str) -> Result<Topic, QueueError> {
        Ok(self.inner.queues.topic(tenant, name).await?)
    }

    /// A tenant's topics (everyone's for `None`).
    pub async fn topics(&self, tenant: Option<&str>) -> Result<Vec<Topic>, QueueError> {
        Ok(self.inner.queues.topics(tenant).await?)
    }

    pub async fn delete_topic(&self, tenant: &str, name: &str) -> Result<Topic, QueueError> {
        Ok(self.inner.queues.delete_topic(tenant, name).await?)
    }

    /// Subscribes a queue or a function of the tenant's, or a URL (exactly one), to the
    /// topic. `quota` is the caller's (`None` for admins): a URL in a never-reachable range
    /// needs an admin or the quota's `egress_allow`.
    pub async fn subscribe(
        &self,
        tenant: &str,
        topic: &str,
        target: SubscriptionTarget,
        quota: Option<&vulcan_domain::Quota>,
    ) -> Result<(Topic, Subscription), QueueError> {
        let mut private_ok = false;
        match (&target.queue, &target.function, &target.url) {
            (Some(q), None, None) => {
                self.inner.queues.definition(tenant, q).await?;
            }
            (None, Some(f), None) => {
                self.function(tenant, f).await?;
            }
            (None, None, Some(url)) => {
                private_ok = self
                    .check_destination(tenant, quota, url)
                    .await
                    .map_err(|e| match e {
                        crate::SubmitError::Store(e) => QueueError::Store(e),
                        crate::SubmitError::Refused(r) => QueueError::Store(StoreError::Refused(r)),
                        other => QueueError::Invalid(other.to_string()),
                    })?;
            }
            _ => {
                return Err(QueueError::Invalid(
                    "give a \"queue\" or a \"function\" of the tenant's, or a \"url\", to subscribe: one of them"
                        .into(),
                ))
            }
        }
        let subscription = Subscription {
            id: format!("sub{}", ulid::Ulid::new().to_string().to_lowercase()),
            queue: target.queue,
            function: target.function,
            url: target.url,
            private_ok,
        };
        let topic = self
            .inner
            .queues
            .subscribe(tenant, topic, &subscription, MAX_SUBSCRIPTIONS)
            .await?;
        Ok((topic, subscription))
    }

    pub async fn unsubscribe(
        &self,
        tenant: &str,
        topic: &str,
        id: &str,
    ) -> Result<Topic, QueueError> {
        Ok(self.inner.queues.unsubscribe(tenant, topic, id).await?)
    }

    /// Publishes `body` to the topic: a copy to each subscribed queue (all or none), then an
    /// invocation of each subscribed function with `{"topic", "message": {"body"}}`.
    pub async fn publish(
        &self,
        tenant: &str,
        topic: &str,
        body: serde_json::Value,
        dedup_id: Option<String>,
    ) -> Result<Published, QueueError> {
        let body = body.to_string();
        let current = self.topic(tenant, topic).await?;
        for s in &current.subscriptions {
            let Some(queue) = &s.queue else { continue };
            let max = self
                .inner
                .queues
                .definition(tenant, queue)
                .await?
                .config
                .max_message_bytes as usize;
            if body.len() > max {
                return Err(QueueError::TooLarge(format!(
                    "the message is {} bytes of JSON; subscribed queue {queue} takes {max} at most",
                    body.len()
                )));
            }
        }
        let message = NewMessage {
            body: body.clone(),
            delay_s: 0,
            dedup_id,
        };
        let (topic_then, sent) = self
            .inner
            .queues
            .publish(tenant, topic, &message, OffsetDateTime::now_utc())
            .await?;
        self.inner.queue_sent.notify_waiters();
        self.inner
            .metrics
            .queue_sent(sent.iter().filter(|(_, s)| !s.duplicate).count());
        let input = serde_json::json!({
            "topic": topic,
            "message": {"body": serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default()},
        });
        let urls: Vec<(String, bool)> = topic_then
            .subscriptions
            .iter()
            .filter_map(|s| s.url.clone().map(|u| (u, s.private_ok)))
            .collect();
        self.add_posts(tenant, &urls, &input.to_string()).await?;
        let quota = self.quota_of(tenant).await.ok();
        // Each function's copy is retried as an async invocation asking for two retries.
        let retried = vulcan_domain::AsyncOptions {
            retry: Some(vulcan_domain::Retry {
                max_attempts: 3,
                backoff_s: 1,
            }),
            ..Default::default()
        };
        let mut functions = Vec::new();
        for f in topic_then
            .subscriptions
            .iter()
            .filter_map(|s| s.function.as_ref())
        {
            let invoked = self
                .invoke_async(tenant, f, input.clone(), quota.clone(), retried.clone())
                .await;
            functions.push(Invoked {
                function: f.clone(),
                workload_id: invoked.as_ref().ok().map(|w| w.id.clone()),
                error: invoked.err().map(|e| e.to_string()),
            });
        }
        Ok(Published {
            queues: sent
                .into_iter()
                .map(|(queue, sent)| PublishedTo { queue, sent })
                .collect(),
            functions,
            urls: urls.len(),
        })
    }
}
