//! [`QueueStore`] on SQLite: every change is one immediate transaction on the one writer,
//! so a receive and an acknowledgement never interleave.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use time::OffsetDateTime;
use vulcan_domain::{
    missing_queue, Delivery, NewMessage, Queue, QueueStore, QueueView, Sent, StoreError,
    Subscription, Topic, DEDUP_WINDOW_S,
};

use super::topics::load_topic;
use super::{from_ms, io, to_ms, SqliteStore};
use crate::queues::{
    counts, counts_sql, dead_letter_cycle, missing_dead_letter, queue_from_json, queue_to_json,
    still_dead_letter_of, subscribed_queues, too_many_queues, too_many_topics, topic_from_json,
    topic_taken, topic_to_json,
};

/// The tenant's queue `name`: (its id, the queue, its dead-letter queue's id).
fn load(
    conn: &Connection,
    tenant: &str,
    name: &str,
) -> Result<(String, Queue, Option<String>), StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT id, record, dead_letter FROM queues WHERE tenant = ?1 AND name = ?2",
        )
        .map_err(io)?
        .query_row(params![tenant, name], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })
        .optional()
        .map_err(io)?
        .ok_or_else(|| missing_queue(name))?;
    Ok((row.0, queue_from_json(&row.1)?, row.2))
}

fn view(conn: &Connection, queue: Queue, now: OffsetDateTime) -> Result<QueueView, StoreError> {
    let messages = conn
        .prepare_cached(&counts_sql('?'))
        .map_err(io)?
        .query_row(params![to_ms(now), queue.id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .map_err(io)?;
    let counters = conn
        .prepare_cached("SELECT deliveries, redeliveries, dead_lettered FROM queues WHERE id = ?1")
        .map_err(io)?
        .query_row([&queue.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(io)?;
    Ok(QueueView {
        counts: counts(now, messages, counters),
        queue,
    })
}

pub(super) fn immediate(conn: &mut Connection) -> Result<rusqlite::Transaction<'_>, StoreError> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(io)
}

/// Stores `messages` in the tenant's queue `name` within `tx`.
fn send_in(
    tx: &Connection,
    tenant: &str,
    name: &str,
    messages: &[NewMessage],
    now: OffsetDateTime,
) -> Result<Vec<Sent>, StoreError> {
    let (id, queue, _) = load(tx, tenant, name)?;
    let now_ms = to_ms(now);
    tx.prepare_cached("DELETE FROM queue_dedup WHERE queue_id = ?1 AND until_ms <= ?2")
        .map_err(io)?
        .execute(params![id, now_ms])
        .map_err(io)?;
    let mut sent = Vec::with_capacity(messages.len());
    for m in messages {
        if let Some(dedup) = &m.dedup_id {
            let seen: Option<String> = tx
                .prepare_cached(
                    "SELECT message_id FROM queue_dedup WHERE queue_id = ?1 AND dedup_id = ?2",
                )
                .map_err(io)?
                .query_row(params![id, dedup], |r| r.get(0))
                .optional()
                .map_err(io)?;
            if let Some(seen) = seen {
                sent.push(Sent {
                    id: seen,
                    duplicate: true,
                });
                continue;
            }
        }
        let message = crate::queues::message_id();
        tx.prepare_cached(
            "INSERT INTO queue_messages (id, queue_id, body, sent_at, visible_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(io)?
        .execute(params![
            message,
            id,
            m.body,
            now_ms,
            now_ms + i64::from(m.delay_s) * 1000,
            now_ms + i64::from(queue.config.retention_s) * 1000,
        ])
        .map_err(io)?;
        if let Some(dedup) = &m.dedup_id {
            tx.prepare_cached(
                "INSERT INTO queue_dedup (queue_id, dedup_id, message_id, until_ms) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(io)?
            .execute(params![id, dedup, message, now_ms + i64::from(DEDUP_WINDOW_S) * 1000])
            .map_err(io)?;
        }
        sent.push(Sent {
            id: message,
            duplicate: false,
        });
    }
    Ok(sent)
}

#[async_trait]
impl QueueStore for SqliteStore {
    async fn put_queue(&self, queue: &Queue, max_per_tenant: u32) -> Result<bool, StoreError> {
        let queue = queue.clone();
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let existing = match load(&tx, &queue.tenant, &queue.name) {
                Ok((id, old, _)) => Some((id, old.created_at)),
                Err(StoreError::Missing(_)) => None,
                Err(e) => return Err(e),
            };
            let (id, created_at) = match &existing {
                Some(known) => known.clone(),
                None => {
                    let held: u32 = tx
                        .prepare_cached("SELECT COUNT(*) FROM queues WHERE tenant = ?1")
                        .map_err(io)?
                        .query_row([&queue.tenant], |r| r.get(0))
                        .map_err(io)?;
                    if held >= max_per_tenant {
                        return Err(too_many_queues(&queue.tenant, max_per_tenant));
                    }
                    (queue.id.clone(), queue.created_at)
                }
            };
            let dead_letter = match &queue.config.dead_letter_queue {
                None => None,
                Some(dlq) => {
                    let (dlq_id, _, mut next) = load(&tx, &queue.tenant, dlq).map_err(|e| match e {
                        StoreError::Missing(_) => missing_dead_letter(dlq),
                        e => e,
                    })?;
                    // Follow the chain from the dead-letter queue: it must not come back.
                    while let Some(at) = next {
                        if at == id {
                            return Err(dead_letter_cycle(&queue.name, dlq));
                        }
                        next = tx
                            .prepare_cached("SELECT dead_letter FROM queues WHERE id = ?1")
                            .map_err(io)?
                            .query_row([&at], |r| r.get::<_, Option<String>>(0))
                            .optional()
                            .map_err(io)?
                            .flatten();
                    }
                    Some(dlq_id)
                }
            };
            let stored = Queue {
                id: id.clone(),
                created_at,
                ..queue.clone()
            };
            tx.prepare_cached(
                "INSERT INTO queues (id, tenant, name, record, dead_letter) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET record = excluded.record, dead_letter = excluded.dead_letter",
            )
            .map_err(io)?
            .execute(params![id, stored.tenant, stored.name, queue_to_json(&stored)?, dead_letter])
            .map_err(io)?;
            tx.commit().map_err(io)?;
            Ok(existing.is_none())
        })
        .await
    }

    async fn definition(&self, tenant: &str, name: &str) -> Result<Queue, StoreError> {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.read(move |conn| Ok(load(conn, &tenant, &name)?.1))
            .await
    }

    async fn queue(
        &self,
        tenant: &str,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<QueueView, StoreError> {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.read(move |conn| {
            let (_, queue, _) = load(conn, &tenant, &name)?;
            view(conn, queue, now)
        })
        .await
    }

    async fn queues(
        &self,
        tenant: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Vec<QueueView>, StoreError> {
        let tenant = tenant.map(str::to_owned);
        self.read(move |conn| {
            let records: Vec<String> = conn
                .prepare_cached(
                    "SELECT record FROM queues WHERE (?1 IS NULL OR tenant = ?1) ORDER BY tenant, name",
                )
                .map_err(io)?
                .query_map([&tenant], |r| r.get(0))
                .map_err(io)?
                .collect::<Result<_, _>>()
                .map_err(io)?;
            records
                .iter()
                .map(|json| view(conn, queue_from_json(json)?, now))
                .collect()
        })
        .await
    }

    async fn delete_queue(&self, tenant: &str, name: &str) -> Result<Queue, StoreError> {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let (id, queue, _) = load(&tx, &tenant, &name)?;
            let of: Option<String> = tx
                .prepare_cached("SELECT name FROM queues WHERE dead_letter = ?1 LIMIT 1")
                .map_err(io)?
                .query_row([&id], |r| r.get(0))
                .optional()
                .map_err(io)?;
            if let Some(of) = of {
                return Err(still_dead_letter_of(&name, &of));
            }
            for sql in [
                "DELETE FROM queue_messages WHERE queue_id = ?1",
                "DELETE FROM queue_dedup WHERE queue_id = ?1",
                "DELETE FROM queues WHERE id = ?1",
            ] {
                tx.prepare_cached(sql)
                    .map_err(io)?
                    .execute([&id])
                    .map_err(io)?;
            }
            tx.commit().map_err(io)?;
            Ok(queue)
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
        let (tenant, name, messages) = (tenant.to_owned(), name.to_owned(), messages.to_vec());
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let sent = send_in(&tx, &tenant, &name, &messages, now)?;
            tx.commit().map_err(io)?;
            Ok(sent)
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
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let (id, queue, dead_letter) = load(&tx, &tenant, &name)?;
            let now_ms = to_ms(now);
            tx.prepare_cached("DELETE FROM queue_messages WHERE queue_id = ?1 AND expires_at <= ?2")
                .map_err(io)?
                .execute(params![id, now_ms])
                .map_err(io)?;
            if let Some(dlq) = dead_letter {
                let retention: String = tx
                    .prepare_cached("SELECT record FROM queues WHERE id = ?1")
                    .map_err(io)?
                    .query_row([&dlq], |r| r.get(0))
                    .map_err(io)?;
                let retention = queue_from_json(&retention)?.config.retention_s;
                let moved = tx
                    .prepare_cached(
                        "UPDATE queue_messages SET queue_id = ?1, receives = 0, receipt = NULL,
                            visible_at = ?2, expires_at = ?3
                         WHERE queue_id = ?4 AND visible_at <= ?2 AND receives >= ?5",
                    )
                    .map_err(io)?
                    .execute(params![
                        dlq,
                        now_ms,
                        now_ms + i64::from(retention) * 1000,
                        id,
                        queue.config.max_receives
                    ])
                    .map_err(io)?;
                if moved > 0 {
                    tx.prepare_cached(
                        "UPDATE queues SET dead_lettered = dead_lettered + ?1 WHERE id = ?2",
                    )
                    .map_err(io)?
                    .execute(params![moved as i64, id])
                    .map_err(io)?;
                }
            }
            let hidden_until =
                now_ms + i64::from(visibility_s.unwrap_or(queue.config.visibility_timeout_s)) * 1000;
            let picked: Vec<String> = tx
                .prepare_cached(
                    "SELECT id FROM queue_messages WHERE queue_id = ?1 AND visible_at <= ?2
                     ORDER BY id LIMIT ?3",
                )
                .map_err(io)?
                .query_map(params![id, now_ms, max], |r| r.get(0))
                .map_err(io)?
                .collect::<Result<_, _>>()
                .map_err(io)?;
            let mut delivered = Vec::with_capacity(picked.len());
            for message in picked {
                let receipt = crate::queues::receipt();
                let delivery = tx
                    .prepare_cached(
                        "UPDATE queue_messages SET receives = receives + 1, receipt = ?1, visible_at = ?2
                         WHERE id = ?3 RETURNING body, receives, sent_at, last_error",
                    )
                    .map_err(io)?
                    .query_row(params![receipt, hidden_until, message], |r| {
                        Ok(Delivery {
                            id: message.clone(),
                            receipt: receipt.clone(),
                            body: r.get(0)?,
                            receive_count: r.get::<_, i64>(1)?.clamp(0, i64::from(u32::MAX)) as u32,
                            sent_at: from_ms(r.get(2)?),
                            visible_at: from_ms(hidden_until),
                            last_error: r.get(3)?,
                        })
                    })
                    .map_err(io)?;
                delivered.push(delivery);
            }
            if !delivered.is_empty() {
                let again = delivered.iter().filter(|d| d.receive_count > 1).count();
                tx.prepare_cached(
                    "UPDATE queues SET deliveries = deliveries + ?1, redeliveries = redeliveries + ?2 WHERE id = ?3",
                )
                .map_err(io)?
                .execute(params![delivered.len() as i64, again as i64, id])
                .map_err(io)?;
            }
            tx.commit().map_err(io)?;
            Ok(delivered)
        })
        .await
    }

    async fn ack(
        &self,
        tenant: &str,
        name: &str,
        receipts: &[String],
    ) -> Result<Vec<bool>, StoreError> {
        let (tenant, name, receipts) = (tenant.to_owned(), name.to_owned(), receipts.to_vec());
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let (id, _, _) = load(&tx, &tenant, &name)?;
            let mut acked = Vec::with_capacity(receipts.len());
            for receipt in &receipts {
                let n = tx
                    .prepare_cached(
                        "DELETE FROM queue_messages WHERE queue_id = ?1 AND receipt = ?2",
                    )
                    .map_err(io)?
                    .execute(params![id, receipt])
                    .map_err(io)?;
                acked.push(n > 0);
            }
            tx.commit().map_err(io)?;
            Ok(acked)
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
        let (tenant, name, receipt) = (tenant.to_owned(), name.to_owned(), receipt.to_owned());
        let error = error.map(str::to_owned);
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let (id, _, _) = load(&tx, &tenant, &name)?;
            let n = tx
                .prepare_cached(
                    "UPDATE queue_messages SET receipt = NULL, visible_at = ?1,
                        last_error = COALESCE(?2, last_error)
                     WHERE queue_id = ?3 AND receipt = ?4",
                )
                .map_err(io)?
                .execute(params![
                    to_ms(now) + i64::from(delay_s) * 1000,
                    error,
                    id,
                    receipt
                ])
                .map_err(io)?;
            tx.commit().map_err(io)?;
            Ok(n > 0)
        })
        .await
    }

    async fn purge(&self, tenant: &str, name: &str) -> Result<u64, StoreError> {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let (id, _, _) = load(&tx, &tenant, &name)?;
            let n = tx
                .prepare_cached("DELETE FROM queue_messages WHERE queue_id = ?1")
                .map_err(io)?
                .execute([&id])
                .map_err(io)?;
            tx.commit().map_err(io)?;
            Ok(n as u64)
        })
        .await
    }

    async fn create_topic(&self, topic: &Topic, max_per_tenant: u32) -> Result<(), StoreError> {
        let topic = topic.clone();
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let held: u32 = tx
                .prepare_cached("SELECT COUNT(*) FROM topics WHERE tenant = ?1")
                .map_err(io)?
                .query_row([&topic.tenant], |r| r.get(0))
                .map_err(io)?;
            if held >= max_per_tenant {
                return Err(too_many_topics(&topic.tenant, max_per_tenant));
            }
            let added = tx
                .prepare_cached(
                    "INSERT INTO topics (tenant, name, record) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                )
                .map_err(io)?
                .execute(params![topic.tenant, topic.name, topic_to_json(&topic)?])
                .map_err(io)?;
            if added == 0 {
                return Err(topic_taken(&topic.tenant, &topic.name));
            }
            tx.commit().map_err(io)
        })
        .await
    }

    async fn topic(&self, tenant: &str, name: &str) -> Result<Topic, StoreError> {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.read(move |conn| load_topic(conn, &tenant, &name))
            .await
    }

    async fn topics(&self, tenant: Option<&str>) -> Result<Vec<Topic>, StoreError> {
        let tenant = tenant.map(str::to_owned);
        self.read(move |conn| {
            let records: Vec<String> = conn
                .prepare_cached(
                    "SELECT record FROM topics WHERE (?1 IS NULL OR tenant = ?1) ORDER BY tenant, name",
                )
                .map_err(io)?
                .query_map([&tenant], |r| r.get(0))
                .map_err(io)?
                .collect::<Result<_, _>>()
                .map_err(io)?;
            records.iter().map(|json| topic_from_json(json)).collect()
        })
        .await
    }

    async fn delete_topic(&self, tenant: &str, name: &str) -> Result<Topic, StoreError> {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let topic = load_topic(&tx, &tenant, &name)?;
            tx.prepare_cached("DELETE FROM topics WHERE tenant = ?1 AND name = ?2")
                .map_err(io)?
                .execute(params![tenant, name])
                .map_err(io)?;
            tx.commit().map_err(io)?;
            Ok(topic)
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
        let subscription = subscription.clone();
        self.change_topic(tenant, name, move |topic| topic.add(subscription, max))
            .await
    }

    async fn unsubscribe(&self, tenant: &str, name: &str, id: &str) -> Result<Topic, StoreError> {
        let id = id.to_owned();
        self.change_topic(tenant, name, move |topic| topic.remove(&id))
            .await
    }

    async fn publish(
        &self,
        tenant: &str,
        name: &str,
        message: &NewMessage,
        now: OffsetDateTime,
    ) -> Result<(Topic, Vec<(String, Sent)>), StoreError> {
        let (tenant, name, message) = (tenant.to_owned(), name.to_owned(), message.clone());
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let topic = load_topic(&tx, &tenant, &name)?;
            let mut sent = Vec::new();
            for queue in subscribed_queues(&topic) {
                let stored = send_in(&tx, &tenant, &queue, std::slice::from_ref(&message), now)?;
                sent.extend(stored.into_iter().map(|s| (queue.clone(), s)));
            }
            tx.commit().map_err(io)?;
            Ok((topic, sent))
        })
        .await
    }
}
