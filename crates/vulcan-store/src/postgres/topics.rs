//! Topics on PostgreSQL: a topic's record (with its subscriptions) read, and changed under
//! its row's lock. The [`vulcan_domain::QueueStore`] methods of topics are in `queues.rs`.

use deadpool_postgres::GenericClient;
use vulcan_domain::{missing_topic, StoreError, Topic};

use super::{Fail, PgStore};
use crate::queues::{topic_from_json, topic_to_json};

/// The tenant's topic `name`, its row locked until the transaction ends when `lock`.
pub(super) async fn load_topic(
    c: &impl GenericClient,
    tenant: &str,
    name: &str,
    lock: bool,
) -> Result<Topic, Fail> {
    let sql = if lock {
        "SELECT record FROM topics WHERE tenant = $1 AND name = $2 FOR UPDATE"
    } else {
        "SELECT record FROM topics WHERE tenant = $1 AND name = $2"
    };
    let row = c
        .query_opt(sql, &[&tenant, &name])
        .await?
        .ok_or_else(|| missing_topic(name))?;
    Ok(topic_from_json(row.get(0))?)
}

impl PgStore {
    /// Changes the tenant's topic `name` with `change` (run again if the transaction is),
    /// its row locked meanwhile.
    pub(super) async fn change_topic(
        &self,
        tenant: &str,
        name: &str,
        change: impl Fn(&mut Topic) -> Result<(), StoreError> + Send + Sync,
    ) -> Result<Topic, StoreError> {
        let change = &change;
        self.run(|c, _| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let mut topic = load_topic(&tx, tenant, name, true).await?;
                change(&mut topic)?;
                tx.execute(
                    "UPDATE topics SET record = $1 WHERE tenant = $2 AND name = $3",
                    &[&topic_to_json(&topic)?, &tenant, &name],
                )
                .await?;
                tx.commit().await?;
                Ok(topic)
            })
        })
        .await
    }
}
