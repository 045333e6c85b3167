//! [`LogStore`] on PostgreSQL: a workload's lines, in order, one row each.

use async_trait::async_trait;
use tokio_postgres::Row;
use vulcan_domain::{LogLine, LogStore, LogStream, StoreError};

use super::workloads::{from_ms, get_workload, to_ms};
use super::PgStore;

fn log_from_row(r: &Row) -> LogLine {
    LogLine {
        seq: r.get::<_, i64>(0).max(0) as u64,
        stream: LogStream::parse(r.get(1)).unwrap_or(LogStream::Backend),
        line: r.get(2),
        created_at: from_ms(r.get(3)),
    }
}

/// Adds a batch of a workload's lines: one statement, one round trip.
pub(super) const INSERT_LINES: &str =
    "INSERT INTO log_lines (workload_id, seq, stream, line, created_at)
     SELECT $1, * FROM UNNEST($2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[])
     ON CONFLICT (workload_id, seq) DO NOTHING";

/// A batch of lines as the columns [`INSERT_LINES`] takes.
pub(super) struct Batch<'a> {
    seqs: Vec<i64>,
    streams: Vec<&'a str>,
    texts: Vec<&'a str>,
    times: Vec<i64>,
}

impl<'a> Batch<'a> {
    pub(super) fn of(lines: &'a [LogLine]) -> Batch<'a> {
        Batch {
            seqs: lines.iter().map(|l| l.seq as i64).collect(),
            streams: lines.iter().map(|l| l.stream.as_str()).collect(),
            texts: lines.iter().map(|l| l.line.as_str()).collect(),
            times: lines.iter().map(|l| to_ms(l.created_at)).collect(),
        }
    }

    /// The statement's parameters for workload `id`.
    pub(super) fn params<'p>(
        &'p self,
        id: &'p &'p str,
    ) -> [&'p (dyn tokio_postgres::types::ToSql + Sync); 5] {
        [id, &self.seqs, &self.streams, &self.texts, &self.times]
    }
}

#[async_trait]
impl LogStore for PgStore {
    async fn append_logs(&self, id: &str, lines: &[LogLine]) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        let batch = Batch::of(lines);
        self.run(|c, _| {
            let batch = &batch;
            Box::pin(async move {
                let st = c.prepare_cached(INSERT_LINES).await?;
                c.execute(&st, &batch.params(&id)).await?;
                Ok(())
            })
        })
        .await
    }

    async fn logs(&self, id: &str, stream: Option<LogStream>) -> Result<Vec<LogLine>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                get_workload(&*c, id).await?;
                let st = c
                    .prepare_cached(
                        "SELECT seq, stream, line, created_at FROM log_lines
                         WHERE workload_id = $1 AND ($2::TEXT IS NULL OR stream = $2) ORDER BY seq",
                    )
                    .await?;
                Ok(c.query(&st, &[&id, &stream.map(|s| s.as_str())])
                    .await?
                    .iter()
                    .map(log_from_row)
                    .collect())
            })
        })
        .await
    }

    async fn logs_after(&self, id: &str, seq: u64) -> Result<Vec<LogLine>, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                let st = c
                    .prepare_cached(
                        "SELECT seq, stream, line, created_at FROM log_lines
                         WHERE workload_id = $1 AND seq > $2 ORDER BY seq",
                    )
                    .await?;
                Ok(c.query(&st, &[&id, &(seq as i64)])
                    .await?
                    .iter()
                    .map(log_from_row)
                    .collect())
            })
        })
        .await
    }
}
