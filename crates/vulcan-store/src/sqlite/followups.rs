//! [`FollowupStore`] on SQLite: one writer, so a take is one immediate transaction; an idle
//! node's look for due rows is a read, and takes the writer only when there is something.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use time::OffsetDateTime;
use vulcan_domain::{Followup, FollowupStore, NewPost, Settle, StoreError};

use super::queues::immediate;
use super::{io, to_ms, SqliteStore};
use crate::followups::{due_sql, followup, TAKEN_COLUMNS};

pub(super) fn insert_posts(conn: &Connection, posts: &[NewPost]) -> Result<(), StoreError> {
    let mut insert = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO followups (id, tenant, kind, url, body, private_ok, due_at)
             VALUES (?1, ?2, 'post', ?3, ?4, ?5, ?6)",
        )
        .map_err(io)?;
    for p in posts {
        insert
            .execute(params![
                p.id,
                p.tenant,
                p.url,
                p.body,
                i64::from(p.private_ok),
                to_ms(p.due_at)
            ])
            .map_err(io)?;
    }
    Ok(())
}

/// Stores a workload's follow-up in the transaction that admits it.
pub(super) fn insert_workload_followup(
    conn: &Connection,
    id: &str,
    tenant: &str,
    (policy, expires_at): &(String, Option<i64>),
    due_at: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO followups (id, tenant, kind, policy, due_at, expires_at)
         VALUES (?1, ?2, 'workload', ?3, ?4, ?5)",
    )
    .map_err(io)?
    .execute(params![id, tenant, policy, due_at, expires_at])
    .map_err(io)?;
    Ok(())
}

#[async_trait]
impl FollowupStore for SqliteStore {
    async fn take_followups(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Followup>, StoreError> {
        let (now, lease_until) = (to_ms(now), to_ms(lease_until));
        let pick = format!(
            "SELECT f.id FROM followups f LEFT JOIN workloads w ON w.id = f.id AND f.kind = 'workload'
             WHERE {} ORDER BY f.due_at LIMIT ?2",
            due_sql("?1")
        );
        let any = pick.clone();
        let due = self
            .read(move |conn| {
                conn.prepare_cached(&any)
                    .map_err(io)?
                    .query_row(params![now, 1], |_| Ok(()))
                    .optional()
                    .map_err(io)
            })
            .await?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let taken = {
                let mut take = tx
                    .prepare_cached(&format!(
                        "UPDATE followups SET due_at = ?3, attempts = attempts + 1
                         WHERE id IN ({pick}) RETURNING {TAKEN_COLUMNS}"
                    ))
                    .map_err(io)?;
                let rows = take
                    .query_map(params![now, limit, lease_until], |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get::<_, String>(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                            r.get(7)?,
                        ))
                    })
                    .map_err(io)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(io)?;
                rows.into_iter()
                    .map(
                        |(id, tenant, kind, policy, url, body, private_ok, attempts)| {
                            followup(id, tenant, &kind, policy, url, body, private_ok, attempts)
                        },
                    )
                    .collect::<Result<Vec<_>, _>>()?
            };
            tx.commit().map_err(io)?;
            Ok(taken)
        })
        .await
    }

    async fn retry_id(&self, id: &str, fresh: &str) -> Result<String, StoreError> {
        let (id, fresh) = (id.to_owned(), fresh.to_owned());
        self.write(move |conn| {
            conn.prepare_cached(
                "UPDATE followups SET retry_id = COALESCE(retry_id, ?2) WHERE id = ?1 RETURNING retry_id",
            )
            .map_err(io)?
            .query_row(params![id, fresh], |r| r.get(0))
            .optional()
            .map_err(io)?
            .ok_or_else(|| StoreError::Missing(format!("follow-up {id} not found")))
        })
        .await
    }

    async fn settle_followup(&self, id: &str, settle: &Settle) -> Result<(), StoreError> {
        let (id, settle) = (id.to_owned(), settle.clone());
        self.write(move |conn| {
            let tx = immediate(conn)?;
            match &settle {
                Settle::Done { then } => {
                    tx.prepare_cached("DELETE FROM followups WHERE id = ?1")
                        .map_err(io)?
                        .execute([&id])
                        .map_err(io)?;
                    insert_posts(&tx, then.as_slice())?;
                }
                Settle::Later { due_at, error } => {
                    tx.prepare_cached(
                        "UPDATE followups SET due_at = ?2, last_error = COALESCE(?3, last_error) WHERE id = ?1",
                    )
                    .map_err(io)?
                    .execute(params![id, to_ms(*due_at), error])
                    .map_err(io)?;
                }
            }
            tx.commit().map_err(io)
        })
        .await
    }

    async fn add_posts(&self, posts: &[NewPost]) -> Result<(), StoreError> {
        let posts = posts.to_vec();
        self.write(move |conn| {
            let tx = immediate(conn)?;
            insert_posts(&tx, &posts)?;
            tx.commit().map_err(io)
        })
        .await
    }

    async fn followup_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT kind, COUNT(*) FROM followups GROUP BY kind ORDER BY kind")
                .map_err(io)?
                .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)))
                .map_err(io)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(io)
        })
        .await
    }
}
