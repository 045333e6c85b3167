//! [`StatsStore`] on SQLite: figures from the counter tables kept beside the rows
//! (everyone's and each tenant's), and workloads per minute from a range of ids.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::{params, Connection};
use time::OffsetDateTime;
use vulcan_domain::{Stats, StatsStore, StoreError};

use super::{io, SqliteStore};
use crate::stats::{self, PerBackend};

fn stats_of(conn: &Connection, tenant: Option<&str>) -> Result<Stats, StoreError> {
    let (counts_sql, durations_sql) = match tenant {
        None => (
            "SELECT isolation, status, n FROM workload_counts WHERE n > 0 AND ?1 IS NULL",
            "SELECT isolation, bucket, n, sum_ms FROM duration_buckets WHERE ?1 IS NULL",
        ),
        Some(_) => (
            "SELECT isolation, status, n FROM tenant_counts WHERE tenant = ?1 AND n > 0",
            "SELECT isolation, bucket, n, sum_ms FROM tenant_durations WHERE tenant = ?1",
        ),
    };
    let counts = conn
        .prepare_cached(counts_sql)
        .map_err(io)?
        .query_map([tenant], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(io)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(io)?;
    let mut per_backend = PerBackend::default();
    let mut stmt = conn.prepare_cached(durations_sql).map_err(io)?;
    let mut rows = stmt.query([tenant]).map_err(io)?;
    while let Some(r) = rows.next().map_err(io)? {
        per_backend.add(
            r.get(0).map_err(io)?,
            r.get(1).map_err(io)?,
            r.get(2).map_err(io)?,
            r.get(3).map_err(io)?,
        );
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT isolation, SUM(n), SUM(cpu_ms), SUM(peak_bytes) FROM usage_totals
             WHERE ?1 IS NULL OR tenant = ?1 GROUP BY isolation",
        )
        .map_err(io)?;
    let mut rows = stmt.query([tenant]).map_err(io)?;
    while let Some(r) = rows.next().map_err(io)? {
        per_backend.add_usage(
            r.get(0).map_err(io)?,
            r.get(1).map_err(io)?,
            r.get(2).map_err(io)?,
            r.get(3).map_err(io)?,
        );
    }
    Ok(stats::assemble(counts, per_backend))
}

#[async_trait]
impl StatsStore for SqliteStore {
    async fn stats(&self, tenant: Option<&str>) -> Result<Stats, StoreError> {
        let tenant = tenant.map(str::to_owned);
        self.read(move |conn| stats_of(conn, tenant.as_deref()))
            .await
    }

    async fn created_per_minute(
        &self,
        tenant: Option<&str>,
        since: OffsetDateTime,
    ) -> Result<BTreeMap<i64, u64>, StoreError> {
        let tenant = tenant.map(str::to_owned);
        let first = stats::first_id_since(since);
        self.read(move |conn| {
            conn.prepare_cached(&stats::per_minute_sql(|i| format!("?{i}")))
                .map_err(io)?
                .query_map(params![first, tenant], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
                })
                .map_err(io)?
                .collect::<rusqlite::Result<BTreeMap<_, _>>>()
                .map_err(io)
        })
        .await
    }
}
