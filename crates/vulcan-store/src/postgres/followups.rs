//! [`FollowupStore`] on PostgreSQL: nodes take due rows with `SKIP LOCKED`, so two never
//! take the same one and none waits on another's.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use time::OffsetDateTime;
use vulcan_domain::{Followup, FollowupStore, NewPost, Settle, StoreError};

use super::workloads::to_ms;
use super::{Fail, PgStore};
use crate::followups::{due_sql, followup, TAKEN_COLUMNS};

async fn insert_posts(c: &impl GenericClient, posts: &[NewPost]) -> Result<(), Fail> {
    if posts.is_empty() {
        return Ok(());
    }
    let st = c
        .prepare_cached(
            "INSERT INTO followups (id, tenant, kind, url, body, private_ok, due_at)
             VALUES ($1, $2, 'post', $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        )
        .await?;
    for p in posts {
        c.execute(
            &st,
            &[
                &p.id,
                &p.tenant,
                &p.url,
                &p.body,
                &i64::from(p.private_ok),
                &to_ms(p.due_at),
            ],
        )
        .await?;
    }
    Ok(())
}

#[async_trait]
impl FollowupStore for PgStore {
    async fn take_followups(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Followup>, StoreError> {
        let (now, lease_until, limit) = (to_ms(now), to_ms(lease_until), i64::from(limit));
        let sql = format!(
            "WITH taken AS (
                SELECT f.id AS taken_id FROM followups f LEFT JOIN workloads w ON w.id = f.id AND f.kind = 'workload'
                WHERE {} ORDER BY f.due_at LIMIT $2 FOR UPDATE OF f SKIP LOCKED)
             UPDATE followups f SET due_at = $3, attempts = f.attempts + 1
             FROM taken WHERE f.id = taken.taken_id RETURNING {TAKEN_COLUMNS}",
            due_sql("$1")
        );
        self.run(|c, _| {
            let sql = sql.clone();
            Box::pin(async move {
                let st = c.prepare_cached(&sql).await?;
                let rows = c.query(&st, &[&now, &limit, &lease_until]).await?;
                let taken = rows
                    .into_iter()
                    .map(|r| {
                        let kind: String = r.get(2);
                        followup(
                            r.get(0),
                            r.get(1),
                            &kind,
                            r.get(3),
                            r.get(4),
                            r.get(5),
                            r.get(6),
                            r.get(7),
                        )
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                Ok(taken)
            })
        })
        .await
    }

    async fn retry_id(&self, id: &str, fresh: &str) -> Result<String, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "UPDATE followups SET retry_id = COALESCE(retry_id, $2) WHERE id = $1 RETURNING retry_id",
                        &[&id, &fresh],
                    )
                    .await?
                    .ok_or_else(|| StoreError::Missing(format!("follow-up {id} not found")))?;
                Ok(row.get(0))
            })
        })
        .await
    }

    async fn settle_followup(&self, id: &str, settle: &Settle) -> Result<(), StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                match settle {
                    Settle::Done { then } => {
                        let tx = c.transaction().await?;
                        tx.execute("DELETE FROM followups WHERE id = $1", &[&id])
                            .await?;
                        insert_posts(&tx, then.as_slice()).await?;
                        tx.commit().await?;
                    }
                    Settle::Later { due_at, error } => {
                        c.execute(
                            "UPDATE followups SET due_at = $2, last_error = COALESCE($3, last_error) WHERE id = $1",
                            &[&id, &to_ms(*due_at), error],
                        )
                        .await?;
                    }
                }
                Ok(())
            })
        })
        .await
    }

    async fn add_posts(&self, posts: &[NewPost]) -> Result<(), StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                insert_posts(&tx, posts).await?;
                tx.commit().await?;
                Ok(())
            })
        })
        .await
    }

    async fn followup_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT kind, COUNT(*) FROM followups GROUP BY kind ORDER BY kind",
                        &[],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1).max(0) as u64))
                    .collect())
            })
        })
        .await
    }
}
