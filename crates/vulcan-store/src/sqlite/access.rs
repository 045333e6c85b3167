//! [`AccessStore`] on SQLite: API keys (hashes only), the append-only audit log and its
//! retention, tenant quotas.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row};
use time::OffsetDateTime;
use vulcan_domain::{AccessStore, ApiKey, AuditEntry, AuditFilter, Quota, Role, StoreError};

use super::{from_ms, io, parse_column, to_ms, SqliteStore};

const KEY_COLUMNS: &str =
    "id, name, role, tenant, created_at, expires_at, revoked_at, created_by, secret_hash";

fn key_from_row(row: &Row) -> rusqlite::Result<(ApiKey, String)> {
    Ok((
        ApiKey {
            id: row.get(0)?,
            name: row.get(1)?,
            role: parse_column::<Role>(row, 2)?,
            tenant: row.get(3)?,
            created_at: from_ms(row.get(4)?),
            expires_at: row.get::<_, Option<i64>>(5)?.map(from_ms),
            revoked_at: row.get::<_, Option<i64>>(6)?.map(from_ms),
            created_by: row.get(7)?,
        },
        row.get(8)?,
    ))
}

fn audit_from_row(row: &Row) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        seq: row.get(0)?,
        at: from_ms(row.get(1)?),
        actor: row.get(2)?,
        role: row.get(3)?,
        tenant: row.get(4)?,
        action: row.get(5)?,
        target: row.get(6)?,
        outcome: row.get(7)?,
        status: row.get(8)?,
        detail: row.get(9)?,
        count: row.get::<_, i64>(10)?.max(1) as u64,
        request_id: row.get(11)?,
    })
}

#[async_trait]
impl AccessStore for SqliteStore {
    async fn create_key(&self, key: &ApiKey, secret_hash: &str) -> Result<(), StoreError> {
        let (k, hash) = (key.clone(), secret_hash.to_owned());
        self.write(move |conn| {
            conn.execute(
                &format!("INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
                params![
                    k.id,
                    k.name,
                    k.role.as_str(),
                    k.tenant,
                    to_ms(k.created_at),
                    k.expires_at.map(to_ms),
                    k.revoked_at.map(to_ms),
                    k.created_by,
                    hash
                ],
            )
            .map(drop)
            .map_err(io)
        })
        .await
    }

    async fn key(&self, id: &str) -> Result<(ApiKey, String), StoreError> {
        let id = id.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"))
                .map_err(io)?
                .query_row([&id], key_from_row)
                .optional()
                .map_err(io)?
                .ok_or(StoreError::NotFound(id))
        })
        .await
    }

    async fn verifiable_keys(&self) -> Result<Vec<(ApiKey, String)>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys"))
                .map_err(io)?;
            let rows = stmt.query_map([], key_from_row).map_err(io)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(io)
        })
        .await
    }

    async fn keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKey>, StoreError> {
        let tenant = tenant.map(str::to_owned);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE (?1 IS NULL OR tenant = ?1)
                     ORDER BY created_at DESC, id DESC"
                ))
                .map_err(io)?;
            let rows = stmt
                .query_map([tenant], |r| key_from_row(r).map(|(k, _)| k))
                .map_err(io)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(io)
        })
        .await
    }

    async fn revoke_key(&self, id: &str, at: OffsetDateTime) -> Result<ApiKey, StoreError> {
        let id = id.to_owned();
        self.write(move |conn| {
            conn.execute(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
                params![id, to_ms(at)],
            )
            .map_err(io)?;
            conn.query_row(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"),
                [&id],
                key_from_row,
            )
            .optional()
            .map_err(io)?
            .map(|(k, _)| k)
            .ok_or(StoreError::NotFound(id))
        })
        .await
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let entries = entries.to_vec();
        let bytes = entries
            .iter()
            .map(|e| e.detail.as_ref().map_or(0, String::len))
            .sum();
        self.write_small(bytes, move |conn| {
            let tx = conn.transaction().map_err(io)?;
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO audit_log (at, actor, role, tenant, action, target, outcome, status, detail, count, request_id)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    )
                    .map_err(io)?;
                for e in &entries {
                    insert
                        .execute(params![
                            to_ms(e.at),
                            e.actor,
                            e.role,
                            e.tenant,
                            e.action,
                            e.target,
                            e.outcome,
                            e.status,
                            e.detail,
                            e.count.max(1) as i64,
                            e.request_id
                        ])
                        .map_err(io)?;
                }
            }
            tx.commit().map_err(io)
        })
        .await
    }

    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let f = filter.clone();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, at, actor, role, tenant, action, target, outcome, status, detail, count, request_id
                     FROM audit_log
                     WHERE (?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR action = ?2)
                       AND (?3 IS NULL OR tenant = ?3) AND (?4 IS NULL OR outcome = ?4)
                     ORDER BY seq DESC LIMIT ?5 OFFSET ?6",
                )
                .map_err(io)?;
            let rows = stmt
                .query_map(
                    params![
                        f.actor,
                        f.action,
                        f.tenant,
                        f.outcome,
                        f.limit,
                        f.offset as i64
                    ],
                    audit_from_row,
                )
                .map_err(io)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(io)
        })
        .await
    }

    async fn prune_audit(
        &self,
        before: OffsetDateTime,
        record: &AuditEntry,
    ) -> Result<u64, StoreError> {
        let (cutoff, e) = (to_ms(before), record.clone());
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(io)?;
            tx.execute("INSERT INTO audit_prune_gate (cutoff) VALUES (?1)", [cutoff])
                .map_err(io)?;
            let removed = tx
                .execute("DELETE FROM audit_log WHERE at < ?1", [cutoff])
                .map_err(io)?;
            tx.execute("DELETE FROM audit_prune_gate", []).map_err(io)?;
            if removed > 0 {
                let detail = format!(
                    "{removed} records older than {} were removed ({})",
                    before.date(),
                    e.detail.as_deref().unwrap_or("retention")
                );
                tx.execute(
                    "INSERT INTO audit_log (at, actor, role, tenant, action, target, outcome, status, detail, count)
                     VALUES (?1, ?2, NULL, NULL, ?3, NULL, 'ok', 0, ?4, 1)",
                    params![to_ms(OffsetDateTime::now_utc()), e.actor, e.action, detail],
                )
                .map_err(io)?;
            }
            tx.commit().map_err(io)?;
            Ok(removed as u64)
        })
        .await
    }

    async fn quota(&self, tenant: &str) -> Result<Option<Quota>, StoreError> {
        let tenant = tenant.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT max_concurrent, per_minute, max_cpus, max_mem_mb, max_schedules,
                        min_schedule_interval_s, egress_allow
                 FROM tenant_quotas WHERE tenant = ?1",
            )
            .map_err(io)?
            .query_row([tenant], |r| {
                Ok(Quota {
                    max_concurrent: r.get(0)?,
                    per_minute: r.get(1)?,
                    max_cpus: r.get(2)?,
                    max_mem_mb: r.get(3)?,
                    max_schedules: r.get(4)?,
                    min_schedule_interval_s: r.get(5)?,
                    egress_allow: crate::admission::egress_rules(r.get(6)?),
                })
            })
            .optional()
            .map_err(io)
        })
        .await
    }

    async fn set_quota(&self, tenant: &str, quota: &Quota) -> Result<(), StoreError> {
        let (tenant, q) = (tenant.to_owned(), quota.clone());
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO tenant_quotas (tenant, max_concurrent, per_minute, max_cpus, max_mem_mb,
                   max_schedules, min_schedule_interval_s, egress_allow)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (tenant) DO UPDATE SET max_concurrent = excluded.max_concurrent,
                   per_minute = excluded.per_minute, max_cpus = excluded.max_cpus,
                   max_mem_mb = excluded.max_mem_mb, max_schedules = excluded.max_schedules,
                   min_schedule_interval_s = excluded.min_schedule_interval_s,
                   egress_allow = excluded.egress_allow",
                params![
                    tenant,
                    q.max_concurrent,
                    q.per_minute,
                    q.max_cpus,
                    q.max_mem_mb,
                    q.max_schedules,
                    q.min_schedule_interval_s,
                    crate::admission::egress_column(&q.egress_allow)
                ],
            )
            .map(drop)
            .map_err(io)
        })
        .await
    }
}
