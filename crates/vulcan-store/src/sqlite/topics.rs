//! Topics on SQLite: a topic's record (with its subscriptions) read, and changed in one
//! transaction. The [`vulcan_domain::QueueStore`] methods of topics are in `queues.rs`.

use rusqlite::{params, Connection, OptionalExtension};
use vulcan_domain::{missing_topic, StoreError, Topic};

use super::queues::immediate;
use super::{io, SqliteStore};
use crate::queues::{topic_from_json, topic_to_json};

pub(super) fn load_topic(conn: &Connection, tenant: &str, name: &str) -> Result<Topic, StoreError> {
    let json: String = conn
        .prepare_cached("SELECT record FROM topics WHERE tenant = ?1 AND name = ?2")
        .map_err(io)?
        .query_row(params![tenant, name], |r| r.get(0))
        .optional()
        .map_err(io)?
        .ok_or_else(|| missing_topic(name))?;
    topic_from_json(&json)
}

impl SqliteStore {
    /// Changes the tenant's topic `name` with `change`, in one transaction.
    pub(super) async fn change_topic(
        &self,
        tenant: &str,
        name: &str,
        change: impl FnOnce(&mut Topic) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<Topic, StoreError> {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let mut topic = load_topic(&tx, &tenant, &name)?;
            change(&mut topic)?;
            tx.prepare_cached("UPDATE topics SET record = ?1 WHERE tenant = ?2 AND name = ?3")
                .map_err(io)?
                .execute(params![topic_to_json(&topic)?, tenant, name])
                .map_err(io)?;
            tx.commit().map_err(io)?;
            Ok(topic)
        })
        .await
    }
}
