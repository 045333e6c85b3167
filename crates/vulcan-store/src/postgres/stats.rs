//! [`StatsStore`] on PostgreSQL: figures from the counter tables kept beside the rows
//! (everyone's and each tenant's), and workloads per minute from a range of ids.

use std::collections::BTreeMap;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use time::OffsetDateTime;
use vulcan_domain::{Stats, StatsStore, StoreError};

use super::{Fail, PgStore};
use crate::stats::{self, PerBackend};

async fn stats_of(c: &impl GenericClient, tenant: Option<&str>) -> Result<Stats, Fail> {
    let (counts_sql, durations_sql) = match tenant {
        None => (
            "SELECT isolation, status, n FROM workload_counts WHERE n > 0 AND $1::TEXT IS NULL",
            "SELECT isolation, bucket, n, sum_ms FROM duration_buckets WHERE $1::TEXT IS NULL",
        ),
        Some(_) => (
            "SELECT isolation, status, n FROM tenant_counts WHERE tenant = $1 AND n > 0",
            "SELECT isolation, bucket, n, sum_ms FROM tenant_durations WHERE tenant = $1",
        ),
    };
    let st = c.prepare_cached(counts_sql).await?;
    let counts = c
        .query(&st, &[&tenant])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let st = c.prepare_cached(durations_sql).await?;
    let mut per_backend = PerBackend::default();
    for r in c.query(&st, &[&tenant]).await? {
        per_backend.add(r.get(0), r.get(1), r.get(2), r.get(3));
    }
    let st = c
        .prepare_cached(
            "SELECT isolation, SUM(n)::BIGINT, SUM(cpu_ms)::BIGINT, SUM(peak_bytes)::BIGINT
             FROM usage_totals WHERE $1::TEXT IS NULL OR tenant = $1 GROUP BY isolation",
        )
        .await?;
    for r in c.query(&st, &[&tenant]).await? {
        per_backend.add_usage(r.get(0), r.get(1), r.get(2), r.get(3));
    }
    Ok(stats::assemble(counts, per_backend))
}

#[async_trait]
impl StatsStore for PgStore {
    async fn stats(&self, tenant: Option<&str>) -> Result<Stats, StoreError> {
        self.run(|c, _| Box::pin(async move { stats_of(&*c, tenant).await }))
            .await
    }

    async fn created_per_minute(
        &self,
        tenant: Option<&str>,
        since: OffsetDateTime,
    ) -> Result<BTreeMap<i64, u64>, StoreError> {
        let first = stats::first_id_since(since);
        self.run(|c, _| {
            let first = first.clone();
            Box::pin(async move {
                let st = c
                    .prepare_cached(&stats::per_minute_sql(|i| format!("${i}::TEXT")))
                    .await?;
                Ok(c.query(&st, &[&first, &tenant])
                    .await?
                    .iter()
                    .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1).max(0) as u64))
                    .collect())
            })
        })
        .await
    }
}
