//! [`AccessStore`] on PostgreSQL: API keys (hashes only), the append-only audit log (a
//! trigger refuses UPDATE, DELETE and TRUNCATE, but for the server's own retention
//! inside a transaction that opens the gate) and tenant quotas.

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio_postgres::Row;
use vulcan_domain::{AccessStore, ApiKey, AuditEntry, AuditFilter, Quota, Role, StoreError};

use super::workloads::{from_ms, to_ms};
use super::{io, Fail, PgStore};

const KEY_COLUMNS: &str =
    "id, name, role, tenant, created_at, expires_at, revoked_at, created_by, secret_hash";

fn key_from_row(row: &Row) -> Result<(ApiKey, String), Fail> {
    let role: Role = row
        .get::<_, String>(2)
        .parse()
        .map_err(|e: String| Fail::Store(io(e)))?;
    Ok((
        ApiKey {
            id: row.get(0),
            name: row.get(1),
            role,
            tenant: row.get(3),
            created_at: from_ms(row.get(4)),
            expires_at: row.get::<_, Option<i64>>(5).map(from_ms),
            revoked_at: row.get::<_, Option<i64>>(6).map(from_ms),
            created_by: row.get(7),
        },
        row.get(8),
    ))
}

fn audit_from_row(row: &Row) -> AuditEntry {
    AuditEntry {
        seq: row.get(0),
        at: from_ms(row.get(1)),
        actor: row.get(2),
        role: row.get(3),
        tenant: row.get(4),
        action: row.get(5),
        target: row.get(6),
        outcome: row.get(7),
        status: row.get::<_, i64>(8) as u16,
        detail: row.get(9),
        count: row.get::<_, i64>(10).max(1) as u64,
        request_id: row.get(11),
    }
}

const APPEND: &str = "INSERT INTO audit_log (at, actor, role, tenant, action, target, outcome, status, detail, count, request_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

#[async_trait]
impl AccessStore for PgStore {
    async fn create_key(&self, key: &ApiKey, secret_hash: &str) -> Result<(), StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                c.execute(
                    &format!("INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
                    &[
                        &key.id,
                        &key.name,
                        &key.role.as_str(),
                        &key.tenant,
                        &to_ms(key.created_at),
                        &key.expires_at.map(to_ms),
                        &key.revoked_at.map(to_ms),
                        &key.created_by,
                        &secret_hash,
                    ],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn key(&self, id: &str) -> Result<(ApiKey, String), StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let st = c
                    .prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"))
                    .await?;
                match c.query_opt(&st, &[&id]).await? {
                    Some(row) => key_from_row(&row),
                    None => Err(StoreError::NotFound(id.to_owned()).into()),
                }
            })
        })
        .await
    }

    async fn verifiable_keys(&self) -> Result<Vec<(ApiKey, String)>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let st = c
                    .prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys"))
                    .await?;
                c.query(&st, &[]).await?.iter().map(key_from_row).collect()
            })
        })
        .await
    }

    async fn keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKey>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                c.query(
                    &format!(
                        "SELECT {KEY_COLUMNS} FROM api_keys WHERE ($1::TEXT IS NULL OR tenant = $1)
                         ORDER BY created_at DESC, id DESC"
                    ),
                    &[&tenant],
                )
                .await?
                .iter()
                .map(|r| key_from_row(r).map(|(k, _)| k))
                .collect()
            })
        })
        .await
    }

    async fn revoke_key(&self, id: &str, at: OffsetDateTime) -> Result<ApiKey, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        &format!(
                            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1
                             RETURNING {KEY_COLUMNS}"
                        ),
                        &[&id, &to_ms(at)],
                    )
                    .await?
                    .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
                key_from_row(&row).map(|(k, _)| k)
            })
        })
        .await
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let column = |f: fn(&AuditEntry) -> Option<String>| -> Vec<Option<String>> {
            entries.iter().map(f).collect()
        };
        let at: Vec<i64> = entries.iter().map(|e| to_ms(e.at)).collect();
        let actor = column(|e| Some(e.actor.clone()));
        let role = column(|e| e.role.clone());
        let tenant = column(|e| e.tenant.clone());
        let action = column(|e| Some(e.action.clone()));
        let target = column(|e| e.target.clone());
        let outcome = column(|e| Some(e.outcome.clone()));
        let status: Vec<i64> = entries.iter().map(|e| i64::from(e.status)).collect();
        let detail = column(|e| e.detail.clone());
        let count: Vec<i64> = entries.iter().map(|e| e.count.max(1) as i64).collect();
        let request_id = column(|e| e.request_id.clone());
        self.run(|c, _| {
            let columns: [&(dyn tokio_postgres::types::ToSql + Sync); 11] = [
                &at, &actor, &role, &tenant, &action, &target, &outcome, &status, &detail,
                &count, &request_id,
            ];
            Box::pin(async move {
                // One statement for the batch; WITH ORDINALITY keeps their order in `seq`.
                let st = c
                    .prepare_cached(
                        "INSERT INTO audit_log (at, actor, role, tenant, action, target, outcome, status, detail, count, request_id)
                         SELECT at, actor, role, tenant, action, target, outcome, status, detail, count, request_id
                         FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[],
                                     $7::TEXT[], $8::BIGINT[], $9::TEXT[], $10::BIGINT[], $11::TEXT[])
                              WITH ORDINALITY AS r (at, actor, role, tenant, action, target, outcome, status,
                                                    detail, count, request_id, n)
                         ORDER BY n",
                    )
                    .await?;
                c.execute(&st, &columns).await?;
                Ok(())
            })
        })
        .await
    }

    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let st = c
                    .prepare_cached(
                        "SELECT seq, at, actor, role, tenant, action, target, outcome, status, detail, count, request_id
                         FROM audit_log
                         WHERE ($1::TEXT IS NULL OR actor = $1) AND ($2::TEXT IS NULL OR action = $2)
                           AND ($3::TEXT IS NULL OR tenant = $3) AND ($4::TEXT IS NULL OR outcome = $4)
                         ORDER BY seq DESC LIMIT $5 OFFSET $6",
                    )
                    .await?;
                Ok(c.query(
                    &st,
                    &[
                        &filter.actor,
                        &filter.action,
                        &filter.tenant,
                        &filter.outcome,
                        &i64::from(filter.limit),
                        &(filter.offset as i64),
                    ],
                )
                .await?
                .iter()
                .map(audit_from_row)
                .collect())
            })
        })
        .await
    }

    async fn prune_audit(
        &self,
        before: OffsetDateTime,
        record: &AuditEntry,
    ) -> Result<u64, StoreError> {
        let cutoff = to_ms(before);
        self.run(|c, _| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                tx.execute(
                    "INSERT INTO audit_prune_gate (cutoff) VALUES ($1)",
                    &[&cutoff],
                )
                .await?;
                let removed = tx
                    .execute("DELETE FROM audit_log WHERE at < $1", &[&cutoff])
                    .await?;
                tx.execute("DELETE FROM audit_prune_gate", &[]).await?;
                if removed > 0 {
                    let detail = format!(
                        "{removed} records older than {} were removed ({})",
                        before.date(),
                        record.detail.as_deref().unwrap_or("retention")
                    );
                    tx.execute(
                        APPEND,
                        &[
                            &to_ms(OffsetDateTime::now_utc()),
                            &record.actor,
                            &None::<String>,
                            &None::<String>,
                            &record.action,
                            &None::<String>,
                            &"ok",
                            &0i64,
                            &Some(detail),
                            &1i64,
                            &None::<String>,
                        ],
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok(removed)
            })
        })
        .await
    }

    async fn quota(&self, tenant: &str) -> Result<Option<Quota>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let st = c
                    .prepare_cached(
                        "SELECT max_concurrent, per_minute, max_cpus, max_mem_mb, max_schedules,
                                min_schedule_interval_s, egress_allow
                         FROM tenant_quotas WHERE tenant = $1",
                    )
                    .await?;
                Ok(c.query_opt(&st, &[&tenant]).await?.map(|r| Quota {
                    max_concurrent: r.get::<_, i64>(0) as u32,
                    per_minute: r.get::<_, i64>(1) as u32,
                    max_cpus: r.get::<_, i64>(2) as u32,
                    max_mem_mb: r.get::<_, i64>(3) as u32,
                    max_schedules: r.get::<_, Option<i64>>(4).map(|v| v as u32),
                    min_schedule_interval_s: r.get::<_, Option<i64>>(5).map(|v| v as u32),
                    egress_allow: crate::admission::egress_rules(r.get(6)),
                }))
            })
        })
        .await
    }

    async fn set_quota(&self, tenant: &str, quota: &Quota) -> Result<(), StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                c.execute(
                    "INSERT INTO tenant_quotas (tenant, max_concurrent, per_minute, max_cpus, max_mem_mb,
                       max_schedules, min_schedule_interval_s, egress_allow)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (tenant) DO UPDATE SET max_concurrent = EXCLUDED.max_concurrent,
                       per_minute = EXCLUDED.per_minute, max_cpus = EXCLUDED.max_cpus,
                       max_mem_mb = EXCLUDED.max_mem_mb, max_schedules = EXCLUDED.max_schedules,
                       min_schedule_interval_s = EXCLUDED.min_schedule_interval_s,
                       egress_allow = EXCLUDED.egress_allow",
                    &[
                        &tenant,
                        &i64::from(quota.max_concurrent),
                        &i64::from(quota.per_minute),
                        &i64::from(quota.max_cpus),
                        &i64::from(quota.max_mem_mb),
                        &quota.max_schedules.map(i64::from),
                        &quota.min_schedule_interval_s.map(i64::from),
                        &crate::admission::egress_column(&quota.egress_allow),
                    ],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }
}
