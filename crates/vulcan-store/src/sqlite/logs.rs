//! [`LogStore`] on SQLite: a workload's lines, in order, one row each.

use async_trait::async_trait;
use rusqlite::{params, Row};
use vulcan_domain::{LogLine, LogStore, LogStream, StoreError};

use super::workloads::get_workload;
use super::{from_ms, io, to_ms, SqliteStore};

fn log_from_row(r: &Row) -> rusqlite::Result<LogLine> {
    let stream: String = r.get(1)?;
    Ok(LogLine {
        seq: r.get::<_, i64>(0)?.max(0) as u64,
        stream: LogStream::parse(&stream).unwrap_or(LogStream::Backend),
        line: r.get(2)?,
        created_at: from_ms(r.get(3)?),
    })
}

/// Adds `lines` of workload `id` in the caller's transaction.
pub(super) fn insert_lines(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    lines: &[LogLine],
) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO log_lines (workload_id, seq, stream, line, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(io)?;
    for l in lines {
        stmt.execute(params![
            id,
            l.seq as i64,
            l.stream.as_str(),
            l.line,
            to_ms(l.created_at)
        ])
        .map_err(io)?;
    }
    Ok(())
}

#[async_trait]
impl LogStore for SqliteStore {
    async fn append_logs(&self, id: &str, lines: &[LogLine]) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        let id = id.to_owned();
        let lines = lines.to_vec();
        self.write(move |conn| {
            let tx = conn.transaction().map_err(io)?;
            insert_lines(&tx, &id, &lines)?;
            tx.commit().map_err(io)
        })
        .await
    }

    async fn logs(&self, id: &str, stream: Option<LogStream>) -> Result<Vec<LogLine>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| {
            get_workload(conn, &id)?;
            conn.prepare_cached(
                "SELECT seq, stream, line, created_at FROM log_lines
                 WHERE workload_id = ?1 AND (?2 IS NULL OR stream = ?2) ORDER BY seq",
            )
            .map_err(io)?
            .query_map(params![id, stream.map(|s| s.as_str())], log_from_row)
            .map_err(io)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(io)
        })
        .await
    }

    async fn logs_after(&self, id: &str, seq: u64) -> Result<Vec<LogLine>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT seq, stream, line, created_at FROM log_lines
                 WHERE workload_id = ?1 AND seq > ?2 ORDER BY seq",
            )
            .map_err(io)?
            .query_map(params![id, seq as i64], log_from_row)
            .map_err(io)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(io)
        })
        .await
    }
}
