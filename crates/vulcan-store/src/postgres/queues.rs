//! [`QueueStore`] on PostgreSQL. A tenant's queue definitions change under a transaction
//! lock of the tenant's (so two changes cannot make a cycle of dead-letter queues between
//! them); a receive locks its queue's row (its counters) and takes messages with `SKIP
//! LOCKED`, so it never waits on an acknowledgement of another message.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use time::OffsetDateTime;
use vulcan_domain::{
    missing_queue, Delivery, NewMessage, Queue, QueueStore, QueueView, Sent, StoreError,
    Subscription, Topic, DEDUP_WINDOW_S,
};

use super::topics::load_topic;
use super::workloads::{from_ms, to_ms};
use super::{Fail, PgStore};
use crate::queues::{
    counts, counts_sql, dead_letter_cycle, message_id, missing_dead_letter, queue_from_json,
    queue_to_json, still_dead_letter_of, subscribed_queues, too_many_queues, too_many_topics,
    topic_from_json, topic_taken, topic_to_json,
};

/// The tenant's queue `name`: (its id, the queue, its dead-letter queue's id); its row
/// locked (against changes of its key-less columns) when `lock`.
async fn load(
    c: &impl GenericClient,
    tenant: &str,
    name: &str,
    lock: bool,
) -> Result<(String, Queue, Option<String>), Fail> {
    let sql = if lock {
        "SELECT id, record, dead_letter FROM queues WHERE tenant = $1 AND name = $2 FOR NO KEY UPDATE"
    } else {
        "SELECT id, record, dead_letter FROM queues WHERE tenant = $1 AND name = $2"
    };
    let row = c
        .query_opt(sql, &[&tenant, &name])
        .await?
        .ok_or_else(|| missing_queue(name))?;
    Ok((row.get(0), queue_from_json(row.get(1))?, row.get(2)))
}

/// Holds the tenant's queue definitions still until the transaction ends.
async fn lock_tenant(c: &impl GenericClient, tenant: &str) -> Result<(), Fail> {
    c.execute(
        "SELECT pg_advisory_xact_lock(hashtext('vulcan queues ' || $1))",
        &[&tenant],
    )
    .await?;
    Ok(())
}

async fn view(
    c: &impl GenericClient,
    queue: Queue,
    now: OffsetDateTime,
) -> Result<QueueView, Fail> {
    let m = c
        .query_one(&counts_sql('$'), &[&to_ms(now), &queue.id])
        .await?;
    let k = c
        .query_one(
            "SELECT deliveries, redeliveries, dead_lettered FROM queues WHERE id = $1",
            &[&queue.id],
        )
        .await?;
    Ok(QueueView {
        counts: counts(
            now,
            (m.get(0), m.get(1), m.get(2), m.get(3)),
            (k.get(0), k.get(1), k.get(2)),
        ),
        queue,
    })
}

/// Stores `messages` in the tenant's queue `name` within `tx`.
async fn send_in(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: &str,
    name: &str,
    messages: &[NewMessage],
    now: OffsetDateTime,
) -> Result<Vec<Sent>, Fail> {
    let (id, queue, _) = load(tx, tenant, name, false).await?;
    let now_ms = to_ms(now);
    let expires = now_ms + i64::from(queue.config.retention_s) * 1000;
    let until = now_ms + i64::from(DEDUP_WINDOW_S) * 1000;
    let mut sent = Vec::with_capacity(messages.len());
    for m in messages {
        let message = message_id();
        if let Some(dedup) = &m.dedup_id {
            // The id is remembered (or the one remembered is kept) in one
            // statement: two senders of one dedup id store one message.
            let kept: String = tx
                .query_one(
                    "INSERT INTO queue_dedup (queue_id, dedup_id, message_id, until_ms)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (queue_id, dedup_id) DO UPDATE
                       SET message_id = CASE WHEN queue_dedup.until_ms <= $5
                             THEN excluded.message_id ELSE queue_dedup.message_id END,
                           until_ms = CASE WHEN queue_dedup.until_ms <= $5
                             THEN excluded.until_ms ELSE queue_dedup.until_ms END
                     RETURNING message_id",
                    &[&id, dedup, &message, &until, &now_ms],
                )
                .await?
                .get(0);
            if kept != message {
                sent.push(Sent {
                    id: kept,
                    duplicate: true,
                });
                continue;
            }
        }
        tx.execute(
            "INSERT INTO queue_messages (id, queue_id, body, sent_at, visible_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &message,
                &id,
                &m.body,
                &now_ms,
                &(now_ms + i64::from(m.delay_s) * 1000),
                &expires,
            ],
        )
        .await?;
        sent.push(Sent {
            id: message,
            duplicate: false,
        });
    }
    Ok(sent)
}

#[async_trait]
impl QueueStore for PgStore {
    async fn put_queue(&self, queue: &Queue, max_per_tenant: u32) -> Result<bool, StoreError> {
        let json_of = |q: &Queue| queue_to_json(q);
        self.run(|c, _| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                lock_tenant(&tx, &queue.tenant).await?;
                let existing = match load(&tx, &queue.tenant, &queue.name, false).await {
                    Ok((id, old, _)) => Some((id, old.created_at)),
                    Err(Fail::Store(StoreError::Missing(_))) => None,
                    Err(e) => return Err(e),
                };
                let (id, created_at) = match &existing {
                    Some(known) => known.clone(),
                    None => {
                        let held: i64 = tx
                            .query_one(
                                "SELECT COUNT(*) FROM queues WHERE tenant = $1",
                                &[&queue.tenant],
                            )
                            .await?
                            .get(0);
                        if held >= i64::from(max_per_tenant) {
                            return Err(too_many_queues(&queue.tenant, max_per_tenant).into());
                        }
                        (queue.id.clone(), queue.created_at)
                    }
                };
                let dead_letter = match &queue.config.dead_letter_queue {
                    None => None,
                    Some(dlq) => {
                        let (dlq_id, _, mut next) =
                            match load(&tx, &queue.tenant, dlq, false).await {
                                Ok(found) => found,
                                Err(Fail::Store(StoreError::Missing(_))) => {
                                    return Err(missing_dead_letter(dlq).into())
                                }
                                Err(e) => return Err(e),
                            };
                        while let Some(at) = next {
                            if at == id {
                                return Err(dead_letter_cycle(&queue.name, dlq).into());
                            }
                            next = tx
                                .query_opt("SELECT dead_letter FROM queues WHERE id = $1", &[&at])
                                .await?
                                .and_then(|r| r.get(0));
                        }
                        Some(dlq_id)
                    }
                };
                let stored = Queue {
                    id: id.clone(),
                    created_at,
                    ..queue.clone()
                };
                tx.execute(
                    "INSERT INTO queues (id, tenant, name, record, dead_letter) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (id) DO UPDATE SET record = excluded.record, dead_letter = excluded.dead_letter",
                    &[&id, &stored.tenant, &stored.name, &json_of(&stored)?, &dead_letter],
                )
                .await?;
                tx.commit().await?;
                Ok(existing.is_none())
            })
        })
        .await
    }

    async fn definition(&self, tenant: &str, name: &str) -> Result<Queue, StoreError> {
        self.run(|c, _| Box::pin(async move { Ok(load(&*c, tenant, name, false).await?.1) }))
            .await
    }

    async fn queue(
        &self,
        tenant: &str,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<QueueView, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let (_, queue, _) = load(&*c, tenant, name, false).await?;
                view(&*c, queue, now).await
            })
        })
        .await
    }

    async fn queues(
        &self,
        tenant: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Vec<QueueView>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT record FROM queues WHERE ($1::TEXT IS NULL OR tenant = $1) ORDER BY tenant, name",
                        &[&tenant],
                    )
                    .await?;
                let mut views = Vec::with_capacity(rows.len());
                for row in rows {
                    views.push(view(&*c, queue_from_json(row.get(0))?, now).await?);
                }
                Ok(views)
            })
        })
        .await
    }

    async fn delete_queue(&self, tenant: &str, name: &str) -> Result<Queue, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                lock_tenant(&tx, tenant).await?;
                let (id, queue, _) = load(&tx, tenant, name, true).await?;
                if let Some(row) = tx
                    .query_opt(
                        "SELECT name FROM queues WHERE dead_letter = $1 LIMIT 1",
                        &[&id],
                    )
                    .await?
                {
                    return Err(still_dead_letter_of(name, row.get(0)).into());
                }
                for sql in [
                    "DELETE FROM queue_messages WHERE queue_id = $1",
                    "DELETE FROM queue_dedup WHERE queue_id = $1",
                    "DELETE FROM queues WHERE id = $1",
                ] {
                    tx.execute(sql, &[&id]).await?;
                }
                tx.commit().await?;
                Ok(queue)
            })
        })
        .await
    }

    async fn send(
        &self,
        tenant: &str,
        name: &str,
        messages: &[NewMessage],
        now: OffsetDateTime,
    ) -> Result<Vec<Sent>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let sent = send_in(&tx, tenant, name, messages, now).await?;
                tx.commit().await?;
                Ok(sent)
            })
        })
        .await
    }

    async fn receive(
        &self,
        tenant: &str,
        name: &str,
        max: u32,
        visibility_s: Option<u32>,
        now: OffsetDateTime,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let (id, queue, dead_letter) = load(&tx, tenant, name, true).await?;
                let now_ms = to_ms(now);
                tx.execute(
                    "DELETE FROM queue_messages WHERE queue_id = $1 AND expires_at <= $2",
                    &[&id, &now_ms],
                )
                .await?;
                if let Some(dlq) = dead_letter {
                    let row = tx
                        .query_one("SELECT record FROM queues WHERE id = $1", &[&dlq])
                        .await?;
                    let retention = queue_from_json(row.get(0))?.config.retention_s;
                    let moved = tx
                        .execute(
                            "UPDATE queue_messages SET queue_id = $1, receives = 0, receipt = NULL,
                                visible_at = $2, expires_at = $3
                             WHERE queue_id = $4 AND visible_at <= $2 AND receives >= $5",
                            &[
                                &dlq,
                                &now_ms,
                                &(now_ms + i64::from(retention) * 1000),
                                &id,
                                &i64::from(queue.config.max_receives),
                            ],
                        )
                        .await?;
                    if moved > 0 {
                        tx.execute(
                            "UPDATE queues SET dead_lettered = dead_lettered + $1 WHERE id = $2",
                            &[&(moved as i64), &id],
                        )
                        .await?;
                    }
                }
                let hidden_until = now_ms
                    + i64::from(visibility_s.unwrap_or(queue.config.visibility_timeout_s)) * 1000;
                let rows = tx
                    .query(
                        "UPDATE queue_messages m
                            SET receives = m.receives + 1,
                                receipt = 'rcpt' || md5(random()::text || m.id || clock_timestamp()::text)
                                          || md5(random()::text),
                                visible_at = $1
                         FROM (SELECT id FROM queue_messages
                               WHERE queue_id = $2 AND visible_at <= $3
                               ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) pick
                         WHERE m.id = pick.id
                         RETURNING m.id, m.receipt, m.body, m.receives, m.sent_at, m.last_error",
                        &[&hidden_until, &id, &now_ms, &i64::from(max)],
                    )
                    .await?;
                let mut delivered: Vec<Delivery> = rows
                    .iter()
                    .map(|r| Delivery {
                        id: r.get(0),
                        receipt: r.get(1),
                        body: r.get(2),
                        receive_count: r.get::<_, i64>(3).clamp(0, i64::from(u32::MAX)) as u32,
                        sent_at: from_ms(r.get(4)),
                        visible_at: from_ms(hidden_until),
                        last_error: r.get(5),
                    })
                    .collect();
                delivered.sort_by(|a, b| a.id.cmp(&b.id));
                if !delivered.is_empty() {
                    let again = delivered.iter().filter(|d| d.receive_count > 1).count();
                    tx.execute(
                        "UPDATE queues SET deliveries = deliveries + $1, redeliveries = redeliveries + $2 WHERE id = $3",
                        &[&(delivered.len() as i64), &(again as i64), &id],
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok(delivered)
            })
        })
        .await
    }

    async fn ack(
        &self,
        tenant: &str,
        name: &str,
        receipts: &[String],
    ) -> Result<Vec<bool>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let (id, _, _) = load(&*c, tenant, name, false).await?;
                let rows = c
                    .query(
                        "DELETE FROM queue_messages WHERE queue_id = $1 AND receipt = ANY($2) RETURNING receipt",
                        &[&id, &receipts],
                    )
                    .await?;
                let gone: std::collections::HashSet<String> =
                    rows.iter().map(|r| r.get(0)).collect();
                Ok(receipts.iter().map(|r| gone.contains(r)).collect())
            })
        })
        .await
    }

    async fn nack(
        &self,
        tenant: &str,
        name: &str,
        receipt: &str,
        delay_s: u32,
        error: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let (id, _, _) = load(&*c, tenant, name, false).await?;
                let n = c
                    .execute(
                        "UPDATE queue_messages SET receipt = NULL, visible_at = $1,
                            last_error = COALESCE($2, last_error)
                         WHERE queue_id = $3 AND receipt = $4",
                        &[
                            &(to_ms(now) + i64::from(delay_s) * 1000),
                            &error,
                            &id,
                            &receipt,
                        ],
                    )
                    .await?;
                Ok(n > 0)
            })
        })
        .await
    }

    async fn purge(&self, tenant: &str, name: &str) -> Result<u64, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let (id, _, _) = load(&*c, tenant, name, false).await?;
                Ok(
                    c.execute("DELETE FROM queue_messages WHERE queue_id = $1", &[&id])
                        .await?,
                )
            })
        })
        .await
    }

    async fn create_topic(&self, topic: &Topic, max_per_tenant: u32) -> Result<(), StoreError> {
        let json = topic_to_json(topic)?;
        self.run(|c, _| {
            let json = json.clone();
            Box::pin(async move {
                let tx = c.transaction().await?;
                lock_tenant(&tx, &topic.tenant).await?;
                let held: i64 = tx
                    .query_one("SELECT COUNT(*) FROM topics WHERE tenant = $1", &[&topic.tenant])
                    .await?
                    .get(0);
                if held >= i64::from(max_per_tenant) {
                    return Err(too_many_topics(&topic.tenant, max_per_tenant).into());
                }
                let added = tx
                    .execute(
                        "INSERT INTO topics (tenant, name, record) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        &[&topic.tenant, &topic.name, &json],
                    )
                    .await?;
                if added == 0 {
                    return Err(topic_taken(&topic.tenant, &topic.name).into());
                }
                tx.commit().await?;
                Ok(())
            })
        })
        .await
    }

    async fn topic(&self, tenant: &str, name: &str) -> Result<Topic, StoreError> {
        self.run(|c, _| Box::pin(async move { load_topic(&*c, tenant, name, false).await }))
            .await
    }

    async fn topics(&self, tenant: Option<&str>) -> Result<Vec<Topic>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT record FROM topics WHERE ($1::TEXT IS NULL OR tenant = $1) ORDER BY tenant, name",
                        &[&tenant],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| topic_from_json(r.get(0)))
                    .collect::<Result<_, _>>()?)
            })
        })
        .await
    }

    async fn delete_topic(&self, tenant: &str, name: &str) -> Result<Topic, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let topic = load_topic(&tx, tenant, name, true).await?;
                tx.execute(
                    "DELETE FROM topics WHERE tenant = $1 AND name = $2",
                    &[&tenant, &name],
                )
                .await?;
                tx.commit().await?;
                Ok(topic)
            })
        })
        .await
    }

    async fn subscribe(
        &self,
        tenant: &str,
        name: &str,
        subscription: &Subscription,
        max: u32,
    ) -> Result<Topic, StoreError> {
        self.change_topic(tenant, name, |topic| topic.add(subscription.clone(), max))
            .await
    }

    async fn unsubscribe(&self, tenant: &str, name: &str, id: &str) -> Result<Topic, StoreError> {
        self.change_topic(tenant, name, |topic| topic.remove(id))
            .await
    }

    async fn publish(
        &self,
        tenant: &str,
        name: &str,
        message: &NewMessage,
        now: OffsetDateTime,
    ) -> Result<(Topic, Vec<(String, Sent)>), StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let topic = load_topic(&tx, tenant, name, false).await?;
                let mut sent = Vec::new();
                for queue in subscribed_queues(&topic) {
                    let stored =
                        send_in(&tx, tenant, &queue, std::slice::from_ref(message), now).await?;
                    sent.extend(stored.into_iter().map(|s| (queue.clone(), s)));
                }
                tx.commit().await?;
                Ok((topic, sent))
            })
        })
        .await
    }
}
