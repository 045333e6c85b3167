//! [`NodeStore`] on SQLite. A node with its own SQLite file is a cluster of one; nodes of
//! an earlier run under another id are found lost like any other, and what they left is
//! cleaned up the same way.

use async_trait::async_trait;
use rusqlite::params;
use time::OffsetDateTime;
use vulcan_domain::{Expect, Housekept, NodeRecord, NodeStore, StoreError};

use super::transitions::{finish_in, unclaim_one};
use super::{from_ms, io, to_ms, SqliteStore};
use crate::housekeeping::{lost_error, lost_update};

#[async_trait]
impl NodeStore for SqliteStore {
    async fn heartbeat(&self, node: &NodeRecord) -> Result<(), StoreError> {
        let record = serde_json::to_string(node).map_err(io)?;
        let (id, at) = (node.id.clone(), to_ms(node.heartbeat_at));
        self.write_small(record.len(), move |conn| {
            conn.prepare_cached(
                "INSERT INTO nodes (id, record, heartbeat_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET record = excluded.record,
                     heartbeat_at = excluded.heartbeat_at, left_at = NULL, lost_at = NULL",
            )
            .map_err(io)?
            .execute(params![id, record, at])
            .map(drop)
            .map_err(io)
        })
        .await
    }

    async fn leave(&self, node: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        let node = node.to_owned();
        self.write(move |conn| {
            conn.execute(
                "UPDATE nodes SET left_at = ?2 WHERE id = ?1",
                params![node, to_ms(at)],
            )
            .map(drop)
            .map_err(io)
        })
        .await
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT record, heartbeat_at, left_at FROM nodes ORDER BY id")
                .map_err(io)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                    ))
                })
                .map_err(io)?;
            let mut nodes = Vec::new();
            for row in rows {
                let (json, heartbeat, left) = row.map_err(io)?;
                let mut node: NodeRecord = serde_json::from_str(&json).map_err(io)?;
                node.heartbeat_at = from_ms(heartbeat);
                node.left_at = left.map(from_ms);
                nodes.push(node);
            }
            Ok(nodes)
        })
        .await
    }

    async fn housekeep(&self, lost_before: OffsetDateTime) -> Result<Housekept, StoreError> {
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(io)?;
            let mut done = Housekept {
                led: true,
                ..Housekept::default()
            };
            let gone: Vec<(String, i64, bool)> = tx
                .prepare_cached(
                    "SELECT id, heartbeat_at, lost_at IS NULL FROM nodes
                     WHERE left_at IS NULL AND heartbeat_at < ?1",
                )
                .map_err(io)?
                .query_map([to_ms(lost_before)], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(io)?
                .collect::<rusqlite::Result<_>>()
                .map_err(io)?;
            for (node, heartbeat, newly) in gone {
                if newly {
                    tx.execute(
                        "UPDATE nodes SET lost_at = ?2 WHERE id = ?1",
                        params![node, to_ms(OffsetDateTime::now_utc())],
                    )
                    .map_err(io)?;
                    done.lost_nodes.push(node.clone());
                }
                let running: Vec<String> = tx
                    .prepare_cached(
                        "SELECT id FROM workloads WHERE node_id = ?1 AND status = 'running'",
                    )
                    .map_err(io)?
                    .query_map([&node], |r| r.get(0))
                    .map_err(io)?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(io)?;
                let why = lost_error(&node, from_ms(heartbeat));
                for id in running {
                    finish_in(&tx, &id, &lost_update(&why), &Expect::Live)?;
                    done.failed.push(id);
                }
                let claimed: Vec<String> = tx
                    .prepare_cached(
                        "SELECT id FROM workloads WHERE claimed_by = ?1 AND status = 'pending'",
                    )
                    .map_err(io)?
                    .query_map([&node], |r| r.get(0))
                    .map_err(io)?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(io)?;
                for id in claimed {
                    unclaim_one(&tx, &id).map_err(io)?;
                    done.requeued.push(id);
                }
            }
            tx.commit().map_err(io)?;
            Ok(done)
        })
        .await
    }
}
