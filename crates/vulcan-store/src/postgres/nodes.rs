//! [`NodeStore`] on PostgreSQL. Housekeeping runs under a transaction-scoped advisory lock:
//! whichever node takes it does the round; the others skip it (it is idempotent, so a
//! round done twice would do no harm, only work).

use async_trait::async_trait;
use time::OffsetDateTime;
use vulcan_domain::{Expect, Housekept, NodeRecord, NodeStore, StoreError};

use super::transitions::{finish_in, unclaim_one};
use super::workloads::{from_ms, to_ms};
use super::{io, Fail, PgStore};
use crate::housekeeping::{lost_error, lost_update};

/// The advisory lock key of housekeeping.
const HOUSEKEEPING_LOCK: i64 = 0x686f757365;

#[async_trait]
impl NodeStore for PgStore {
    async fn heartbeat(&self, node: &NodeRecord) -> Result<(), StoreError> {
        let record = serde_json::to_string(node).map_err(io)?;
        let at = to_ms(node.heartbeat_at);
        self.run(|c, _| {
            let record = record.clone();
            Box::pin(async move {
                let st = c
                    .prepare_cached(
                        "INSERT INTO nodes (id, record, heartbeat_at) VALUES ($1, $2, $3)
                         ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record,
                             heartbeat_at = EXCLUDED.heartbeat_at, left_at = NULL, lost_at = NULL",
                    )
                    .await?;
                c.execute(&st, &[&node.id, &record, &at]).await?;
                Ok(())
            })
        })
        .await
    }

    async fn leave(&self, node: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                c.execute(
                    "UPDATE nodes SET left_at = $2 WHERE id = $1",
                    &[&node, &to_ms(at)],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let st = c
                    .prepare_cached("SELECT record, heartbeat_at, left_at FROM nodes ORDER BY id")
                    .await?;
                c.query(&st, &[])
                    .await?
                    .iter()
                    .map(|r| {
                        let mut node: NodeRecord =
                            serde_json::from_str(r.get(0)).map_err(|e| Fail::Store(io(e)))?;
                        node.heartbeat_at = from_ms(r.get(1));
                        node.left_at = r.get::<_, Option<i64>>(2).map(from_ms);
                        Ok(node)
                    })
                    .collect()
            })
        })
        .await
    }

    async fn housekeep(&self, lost_before: OffsetDateTime) -> Result<Housekept, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let led: bool = tx
                    .query_one(
                        "SELECT pg_try_advisory_xact_lock($1)",
                        &[&HOUSEKEEPING_LOCK],
                    )
                    .await?
                    .get(0);
                let mut done = Housekept {
                    led,
                    ..Housekept::default()
                };
                if !led {
                    return Ok(done);
                }
                let gone = tx
                    .query(
                        "SELECT id, heartbeat_at, lost_at IS NULL FROM nodes
                         WHERE left_at IS NULL AND heartbeat_at < $1",
                        &[&to_ms(lost_before)],
                    )
                    .await?;
                for row in gone {
                    let (node, heartbeat, newly): (String, i64, bool) =
                        (row.get(0), row.get(1), row.get(2));
                    if newly {
                        tx.execute(
                            "UPDATE nodes SET lost_at = $2 WHERE id = $1",
                            &[&node, &to_ms(OffsetDateTime::now_utc())],
                        )
                        .await?;
                        done.lost_nodes.push(node.clone());
                    }
                    let why = lost_error(&node, from_ms(heartbeat));
                    let running = tx
                        .query(
                            "SELECT id FROM workloads WHERE node_id = $1 AND status = 'running'",
                            &[&node],
                        )
                        .await?;
                    for r in running {
                        let id: String = r.get(0);
                        finish_in(&tx, &id, &lost_update(&why), &Expect::Live).await?;
                        done.failed.push(id);
                    }
                    let claimed = tx
                        .query(
                            "SELECT id FROM workloads WHERE claimed_by = $1 AND status = 'pending'",
                            &[&node],
                        )
                        .await?;
                    for r in claimed {
                        let id: String = r.get(0);
                        unclaim_one(&tx, &id).await?;
                        done.requeued.push(id);
                    }
                }
                tx.commit().await?;
                Ok(done)
            })
        })
        .await
    }
}
