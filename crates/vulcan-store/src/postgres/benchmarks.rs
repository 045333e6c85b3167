//! [`BenchmarkStore`] on PostgreSQL: reports kept whole as JSON.

use async_trait::async_trait;
use time::OffsetDateTime;
use vulcan_domain::{BenchmarkStore, StoreError};

use super::workloads::to_ms;
use super::PgStore;

#[async_trait]
impl BenchmarkStore for PgStore {
    async fn save_benchmark(&self, id: &str, report: &str) -> Result<(), StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                c.execute(
                    "INSERT INTO benchmarks (id, created_at, report) VALUES ($1, $2, $3)
                     ON CONFLICT (id) DO UPDATE SET report = EXCLUDED.report",
                    &[&id, &to_ms(OffsetDateTime::now_utc()), &report],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn benchmark(&self, id: &str) -> Result<String, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                match c
                    .query_opt("SELECT report FROM benchmarks WHERE id = $1", &[&id])
                    .await?
                {
                    Some(row) => Ok(row.get(0)),
                    None => Err(StoreError::NotFound(id.to_owned()).into()),
                }
            })
        })
        .await
    }

    async fn benchmarks(&self, limit: u32) -> Result<Vec<String>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                Ok(c.query(
                    "SELECT report FROM benchmarks ORDER BY created_at DESC, id DESC LIMIT $1",
                    &[&i64::from(limit)],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect())
            })
        })
        .await
    }
}
