//! [`BenchmarkStore`] on SQLite: reports kept whole as JSON.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use time::OffsetDateTime;
use vulcan_domain::{BenchmarkStore, StoreError};

use super::{io, to_ms, SqliteStore};

#[async_trait]
impl BenchmarkStore for SqliteStore {
    async fn save_benchmark(&self, id: &str, report: &str) -> Result<(), StoreError> {
        let (id, report) = (id.to_owned(), report.to_owned());
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO benchmarks (id, created_at, report) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET report = excluded.report",
                params![id, to_ms(OffsetDateTime::now_utc()), report],
            )
            .map(drop)
            .map_err(io)
        })
        .await
    }

    async fn benchmark(&self, id: &str) -> Result<String, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| {
            conn.query_row("SELECT report FROM benchmarks WHERE id = ?1", [&id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(io)?
            .ok_or(StoreError::NotFound(id))
        })
        .await
    }

    async fn benchmarks(&self, limit: u32) -> Result<Vec<String>, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT report FROM benchmarks ORDER BY created_at DESC, id DESC LIMIT ?1",
            )
            .map_err(io)?
            .query_map([limit], |r| r.get(0))
            .map_err(io)?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(io)
        })
        .await
    }
}
