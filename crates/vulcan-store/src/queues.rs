//! What both stores share about queues: the queue's record, the tables' columns, and
//! what a refusal says.

use time::OffsetDateTime;
use vulcan_domain::{Queue, QueueCounts, StoreError};

/// The tables of queues, their messages, the dedup ids and topics: one migration of each
/// store (SQLite's 14, PostgreSQL's 10), the same SQL for both. Once shipped, never edited:
/// a change is a migration of its own.
pub(crate) const SCHEMA: &str = r#"
    CREATE TABLE queues (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        name TEXT NOT NULL,
        record TEXT NOT NULL,
        dead_letter TEXT,
        deliveries BIGINT NOT NULL DEFAULT 0,
        redeliveries BIGINT NOT NULL DEFAULT 0,
        dead_lettered BIGINT NOT NULL DEFAULT 0,
        UNIQUE (tenant, name)
    );
    CREATE TABLE queue_messages (
        id TEXT PRIMARY KEY,
        queue_id TEXT NOT NULL,
        body TEXT NOT NULL,
        sent_at BIGINT NOT NULL,
        visible_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        receives BIGINT NOT NULL DEFAULT 0,
        receipt TEXT,
        last_error TEXT
    );
    CREATE INDEX queue_messages_in_order ON queue_messages (queue_id, id);
    CREATE INDEX queue_messages_by_receives ON queue_messages (queue_id, receives);
    CREATE INDEX queue_messages_by_expiry ON queue_messages (queue_id, expires_at);
    CREATE UNIQUE INDEX queue_messages_receipt ON queue_messages (receipt) WHERE receipt IS NOT NULL;
    CREATE TABLE queue_dedup (
        queue_id TEXT NOT NULL,
        dedup_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        until_ms BIGINT NOT NULL,
        PRIMARY KEY (queue_id, dedup_id)
    );
    CREATE TABLE topics (
        tenant TEXT NOT NULL,
        name TEXT NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (tenant, name)
    );
    "#;

pub(crate) fn queue_to_json(queue: &Queue) -> Result<String, StoreError> {
    serde_json::to_string(queue).map_err(|e| StoreError::Io(format!("a queue's record: {e}")))
}

pub(crate) fn queue_from_json(json: &str) -> Result<Queue, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Io(format!("a queue's stored record is not one: {e}")))
}

pub(crate) fn too_many_queues(tenant: &str, max: u32) -> StoreError {
    StoreError::Refused(vulcan_domain::Refusal::Forbidden(format!(
        "tenant {tenant} has {max} queues, the most a tenant may (VULCAN_QUEUE_MAX_PER_TENANT): delete one first"
    )))
}

pub(crate) fn missing_dead_letter(name: &str) -> StoreError {
    StoreError::Missing(format!(
        "dead-letter queue {name} not found: make it first (POST /v1/queues)"
    ))
}

pub(crate) fn dead_letter_cycle(queue: &str, dlq: &str) -> StoreError {
    StoreError::Conflict(format!(
        "queue {dlq} leads back to {queue} through its dead-letter queues: a cycle of dead-letter queues is refused"
    ))
}

pub(crate) fn still_dead_letter_of(queue: &str, of: &str) -> StoreError {
    StoreError::Conflict(format!(
        "queue {queue} is the dead-letter queue of {of}: change or delete {of} first"
    ))
}

/// The counts of a queue from its messages' aggregate row and its counters:
/// (visible now, in flight, delayed, oldest sent_at in ms) and (deliveries, redeliveries,
/// dead-lettered).
pub(crate) fn counts(
    now: OffsetDateTime,
    messages: (i64, i64, i64, Option<i64>),
    counters: (i64, i64, i64),
) -> QueueCounts {
    let n = |v: i64| v.max(0) as u64;
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    QueueCounts {
        depth: n(messages.0),
        in_flight: n(messages.1),
        delayed: n(messages.2),
        oldest_age_s: messages
            .3
            .map(|sent| (now_ms - sent).max(0) as f64 / 1000.0),
        deliveries: n(counters.0),
        redeliveries: n(counters.1),
        dead_lettered: n(counters.2),
    }
}

/// The aggregate of a queue's messages at `?now` (`$1` on PostgreSQL, `?1` on SQLite;
/// the queue's id is the second parameter): visible now, in flight, delayed, oldest.
pub(crate) fn counts_sql(p: char) -> String {
    format!(
        "SELECT COUNT(*) FILTER (WHERE visible_at <= {p}1),
                COUNT(*) FILTER (WHERE visible_at > {p}1 AND receipt IS NOT NULL),
                COUNT(*) FILTER (WHERE visible_at > {p}1 AND receipt IS NULL),
                MIN(sent_at)
         FROM queue_messages WHERE queue_id = {p}2 AND expires_at > {p}1"
    )
}

/// A new message's id: increasing within this process (messages sent in one millisecond
/// are received in the order they were sent).
pub(crate) fn message_id() -> String {
    static IDS: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let mut ids = IDS.lock().unwrap_or_else(|p| p.into_inner());
    let id = ids
        .get_or_insert_with(ulid::Generator::new)
        .generate()
        .unwrap_or_else(|_| ulid::Ulid::new());
    format!("msg{}", id.to_string().to_lowercase())
}

/// A new delivery's receipt: 160 random bits (two ULIDs' worth, their times left out).
pub(crate) fn receipt() -> String {
    let random = || ulid::Ulid::new().random();
    format!("rcpt{:020x}{:020x}", random(), random())
}

pub(crate) fn topic_to_json(topic: &vulcan_domain::Topic) -> Result<String, StoreError> {
    serde_json::to_string(topic).map_err(|e| StoreError::Io(format!("a topic's record: {e}")))
}

pub(crate) fn topic_from_json(json: &str) -> Result<vulcan_domain::Topic, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Io(format!("a topic's stored record is not one: {e}")))
}

pub(crate) fn topic_taken(tenant: &str, name: &str) -> StoreError {
    StoreError::Conflict(format!("tenant {tenant} has a topic named {name} already"))
}

pub(crate) fn too_many_topics(tenant: &str, max: u32) -> StoreError {
    StoreError::Refused(vulcan_domain::Refusal::Forbidden(format!(
        "tenant {tenant} has {max} topics, the most a tenant may (VULCAN_QUEUE_MAX_PER_TENANT): delete one first"
    )))
}

/// The queues a topic's message goes to, by name.
pub(crate) fn subscribed_queues(topic: &vulcan_domain::Topic) -> Vec<String> {
    topic
        .subscriptions
        .iter()
        .filter_map(|s| s.queue.clone())
        .collect()
}
