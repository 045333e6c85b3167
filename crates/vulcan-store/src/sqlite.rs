//! The SQLite implementation of [`WorkloadStore`] and [`AccessStore`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};
use time::OffsetDateTime;
use vulcan_domain::{
    AccessStore, ApiKey, AuditEntry, AuditFilter, BackendStats, InvalidTransition, Isolation,
    ListFilter, LogLine, LogStream, Quota, Role, Runtime, Stats, StoreError, TerminalUpdate,
    Workload, WorkloadPage, WorkloadSpec, WorkloadStatus, WorkloadStore,
};

use crate::histogram::DurationHistogram;
use crate::migrations;

const WORKLOAD_COLUMNS: &str = "id, status, isolation, requested_isolation, runtime, node_id, \
    input_hash, output, exit_code, error, cpu_limit, mem_limit, timeout_s, duration_ms, \
    created_at, started_at, finished_at, tenant, prepare_ms";

/// An embedded SQLite database file in WAL mode: one writer connection, and a small pool
/// of reader connections that WAL lets run alongside it.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl Inner {
    /// The writer connection. A panic while it was held leaves nothing half-done (every
    /// write is one transaction, rolled back if it did not commit): the lock is taken
    /// back, not turned into an error for every later call.
    fn writer(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn readers(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.readers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn io(err: impl std::fmt::Display) -> StoreError {
    StoreError::Io(err.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it to the latest schema.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| io(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut writer = open_connection(&path)?;
        migrations::migrate(&mut writer)
            .map_err(|e| io(format!("migrating {}: {e}", path.display())))?;
        // Checkpoints copy the log into the database file and sync it: milliseconds that
        // would land on whichever write crossed the threshold. A background thread does
        // them instead (see `checkpoint_in_background`).
        writer
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(io)?;
        let checkpointer = open_connection(&path)?;
        let inner = Arc::new(Inner {
            path,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        });
        checkpoint_in_background(Arc::downgrade(&inner), checkpointer)?;
        Ok(SqliteStore { inner })
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<usize, StoreError> {
        let conn = self.inner.writer();
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(io)
    }

    /// The schema version this build migrates to.
    pub fn latest_schema_version() -> usize {
        migrations::latest_version()
    }

    /// Runs `f` on the writer connection, off the async runtime.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.writer();
            f(&mut conn)
        })
        .await
        .map_err(io)?
    }

    /// Runs a small write (`bytes` of data, a few rows) on the calling thread if the
    /// writer is free: on an idle machine the hop to a blocking thread and back costs more
    /// (two thread wake-ups, 0.1-0.4 ms each) than the write. Large or contended writes
    /// go to the blocking pool. The inline attempt never waits for a lock another process
    /// holds on the file (busy timeout 0): it is retried on the blocking pool instead, so
    /// an async worker thread never sleeps in SQLite's busy handler.
    async fn write_small<T: Send + 'static>(
        &self,
        bytes: usize,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Clone + Send + 'static,
    ) -> Result<T, StoreError> {
        if bytes <= INLINE_WRITE_MAX {
            if let Ok(mut conn) = self.inner.writer.try_lock() {
                let _ = conn.busy_timeout(std::time::Duration::ZERO);
                let inline = f.clone()(&mut conn);
                let _ = conn.busy_timeout(BUSY_TIMEOUT);
                match inline {
                    Err(StoreError::Io(msg)) if msg.contains("database is locked") => {}
                    done => return done,
                }
            }
        }
        self.write(f).await
    }

    /// Runs `f` on a pooled reader connection, off the async runtime.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers().pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => open_connection(&inner.path)?,
            };
            let result = f(&conn);
            // Connections opened for a burst of readers are closed, not kept forever.
            let mut readers = inner.readers();
            if readers.len() < MAX_IDLE_READERS {
                readers.push(conn);
            }
            result
        })
        .await
        .map_err(io)?
    }
}

/// How long a write waits for another process's lock on the file.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Reader connections kept open between reads.
const MAX_IDLE_READERS: usize = 8;

/// The largest write [`SqliteStore::write_small`] runs on the calling thread.
const INLINE_WRITE_MAX: usize = 16 * 1024;

/// How often the background thread moves the write-ahead log into the database.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Checkpoints the log every [`CHECKPOINT_EVERY`] on a connection of its own, until the
/// store is dropped. Passive checkpoints never block the writer or readers.
fn checkpoint_in_background(
    inner: std::sync::Weak<Inner>,
    conn: Connection,
) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || loop {
            std::thread::sleep(CHECKPOINT_EVERY);
            if inner.upgrade().is_none() {
                return;
            }
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "sqlite checkpoint failed");
            }
        })
        .map(drop)
        .map_err(|e| io(format!("cannot start the checkpoint thread: {e}")))
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn =
        Connection::open(path).map_err(|e| io(format!("cannot open {}: {e}", path.display())))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;",
    )
    .map_err(io)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(io)?;
    Ok(conn)
}

fn to_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn parse_column<T: std::str::FromStr>(row: &Row, idx: usize) -> rusqlite::Result<T>
where
    T::Err: std::fmt::Display,
{
    let text: String = row.get(idx)?;
    text.parse().map_err(|e: T::Err| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Text,
            e.to_string().into(),
        )
    })
}

fn workload_from_row(row: &Row) -> rusqlite::Result<Workload> {
    Ok(Workload {
        id: row.get(0)?,
        status: parse_column::<WorkloadStatus>(row, 1)?,
        isolation: parse_column::<Isolation>(row, 2)?,
        requested_isolation: parse_column::<Isolation>(row, 3)?,
        runtime: parse_column::<Runtime>(row, 4)?,
        node_id: row.get(5)?,
        input_hash: row.get(6)?,
        output: row.get(7)?,
        exit_code: row.get(8)?,
        error: row.get(9)?,
        cpu_limit: row.get(10)?,
        mem_limit: row.get(11)?,
        timeout_s: row.get(12)?,
        duration_ms: row.get::<_, Option<i64>>(13)?.map(|d| d.max(0) as u64),
        created_at: from_ms(row.get(14)?),
        started_at: row.get::<_, Option<i64>>(15)?.map(from_ms),
        finished_at: row.get::<_, Option<i64>>(16)?.map(from_ms),
        tenant: row.get(17)?,
        prepare_ms: row.get::<_, Option<i64>>(18)?.map(|d| d.max(0) as u64),
    })
}

fn get_workload(conn: &Connection, id: &str) -> Result<Workload, StoreError> {
    conn.query_row(
        &format!("SELECT {WORKLOAD_COLUMNS} FROM workloads WHERE id = ?1"),
        [id],
        workload_from_row,
    )
    .optional()
    .map_err(io)?
    .ok_or_else(|| StoreError::NotFound(id.to_owned()))
}

fn bump_count(
    tx: &Transaction,
    isolation: &str,
    status: WorkloadStatus,
    delta: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO workload_counts (isolation, status, n) VALUES (?1, ?2, ?3)
         ON CONFLICT (isolation, status) DO UPDATE SET n = n + excluded.n",
        params![isolation, status.as_str(), delta],
    )?;
    Ok(())
}

/// Moves `id` from its current status to `to`, only if the state machine allows it; the
/// check and the write happen in one transaction, so a stale writer loses.
fn transition(
    conn: &mut Connection,
    id: &str,
    to: WorkloadStatus,
    apply: impl FnOnce(&Transaction, WorkloadStatus, &str) -> rusqlite::Result<()>,
) -> Result<Workload, StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(io)?;
    let current: Option<(String, String)> = tx
        .query_row(
            "SELECT status, isolation FROM workloads WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(io)?;
    let (from, isolation) = current.ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
    let from: WorkloadStatus = from.parse().map_err(io)?;
    from.transition(to)
        .map_err(|e: InvalidTransition| StoreError::InvalidTransition(e))?;
    apply(&tx, from, &isolation).map_err(io)?;
    bump_count(&tx, &isolation, from, -1).map_err(io)?;
    bump_count(&tx, &isolation, to, 1).map_err(io)?;
    let workload = get_workload(&tx, id)?;
    tx.commit().map_err(io)?;
    Ok(workload)
}

#[async_trait]
impl WorkloadStore for SqliteStore {
    async fn insert(&self, workload: &Workload, spec: &WorkloadSpec) -> Result<(), StoreError> {
        let w = workload.clone();
        let archive = spec.code_archive.clone();
        let spec_json = serde_json::to_string(&WorkloadSpec {
            code_archive: None,
            ..spec.clone()
        })
        .map_err(io)?;
        let bytes = spec_json.len() + archive.as_ref().map_or(0, Vec::len);
        self.write_small(bytes, move |conn| {
            let tx = conn.transaction().map_err(io)?;
            let inserted = tx.execute(
                &format!(
                    "INSERT OR IGNORE INTO workloads ({WORKLOAD_COLUMNS}, spec, code_archive)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                             ?16, ?17, ?18, ?19, ?20, ?21)"
                ),
                params![
                    w.id,
                    w.status.as_str(),
                    w.isolation.as_str(),
                    w.requested_isolation.as_str(),
                    w.runtime.as_str(),
                    w.node_id,
                    w.input_hash,
                    w.output,
                    w.exit_code,
                    w.error,
                    w.cpu_limit,
                    w.mem_limit,
                    w.timeout_s,
                    w.duration_ms.map(|d| d as i64),
                    to_ms(w.created_at),
                    w.started_at.map(to_ms),
                    w.finished_at.map(to_ms),
                    w.tenant,
                    w.prepare_ms.map(|d| d as i64),
                    spec_json,
                    archive,
                ],
            );
            if inserted.map_err(io)? == 0 {
                return Err(StoreError::Duplicate(w.id.clone()));
            }
            bump_count(&tx, w.isolation.as_str(), w.status, 1).map_err(io)?;
            tx.commit().map_err(io)
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Workload, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| get_workload(conn, &id)).await
    }

    async fn spec(&self, id: &str) -> Result<WorkloadSpec, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| {
            let (json, archive): (String, Option<Vec<u8>>) = conn
                .query_row(
                    "SELECT spec, code_archive FROM workloads WHERE id = ?1",
                    [&id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(io)?
                .ok_or_else(|| StoreError::NotFound(id.clone()))?;
            let mut spec: WorkloadSpec = serde_json::from_str(&json).map_err(io)?;
            spec.code_archive = archive;
            Ok(spec)
        })
        .await
    }

    async fn list(&self, filter: &ListFilter) -> Result<WorkloadPage, StoreError> {
        let filter = filter.clone();
        self.read(move |conn| {
            let status = filter.status.map(|s| s.as_str());
            let isolation = filter.isolation.map(|i| i.as_str());
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {WORKLOAD_COLUMNS} FROM workloads
                     WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR isolation = ?2)
                       AND (?5 IS NULL OR tenant = ?5)
                     ORDER BY id DESC LIMIT ?3 OFFSET ?4"
                ))
                .map_err(io)?;
            let workloads = stmt
                .query_map(
                    params![
                        status,
                        isolation,
                        filter.limit,
                        filter.offset as i64,
                        filter.tenant
                    ],
                    workload_from_row,
                )
                .map_err(io)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(io)?;
            // Totals come from the counter tables; a tenant's are counted on its index.
            let total: i64 = match &filter.tenant {
                None => conn.query_row(
                    "SELECT COALESCE(SUM(n), 0) FROM workload_counts
                     WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR isolation = ?2)",
                    params![status, isolation],
                    |r| r.get(0),
                ),
                Some(tenant) => conn.query_row(
                    "SELECT COUNT(*) FROM workloads WHERE tenant = ?3
                       AND (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR isolation = ?2)",
                    params![status, isolation, tenant],
                    |r| r.get(0),
                ),
            }
            .map_err(io)?;
            Ok(WorkloadPage {
                workloads,
                total: total.max(0) as u64,
            })
        })
        .await
    }

    async fn start(&self, id: &str, started_at: OffsetDateTime) -> Result<Workload, StoreError> {
        let id = id.to_owned();
        self.write_small(0, move |conn| {
            transition(conn, &id, WorkloadStatus::Running, |tx, _, _| {
                tx.execute(
                    "UPDATE workloads SET status = 'running', started_at = ?2 WHERE id = ?1",
                    params![id, to_ms(started_at)],
                )
                .map(drop)
            })
        })
        .await
    }

    async fn finish(&self, id: &str, update: &TerminalUpdate) -> Result<Workload, StoreError> {
        let id = id.to_owned();
        let u = update.clone();
        if !u.status.is_terminal() {
            return Err(StoreError::InvalidTransition(InvalidTransition {
                from: WorkloadStatus::Running,
                to: u.status,
            }));
        }
        let bytes =
            u.output.as_ref().map_or(0, String::len) + u.error.as_ref().map_or(0, String::len);
        self.write_small(bytes, move |conn| {
            transition(conn, &id, u.status, |tx, from, isolation| {
                // A workload that never ran has no duration worth counting.
                let duration = u.duration_ms.filter(|_| from == WorkloadStatus::Running);
                tx.execute(
                    "UPDATE workloads SET status = ?2, output = ?3, exit_code = ?4, error = ?5,
                         finished_at = ?6, duration_ms = ?7, prepare_ms = ?8
                     WHERE id = ?1",
                    params![
                        id,
                        u.status.as_str(),
                        u.output,
                        u.exit_code,
                        u.error,
                        to_ms(u.finished_at),
                        duration.map(|d| d as i64),
                        u.prepare_ms.map(|d| d as i64),
                    ],
                )?;
                if let Some(ms) = duration {
                    tx.execute(
                        "INSERT INTO duration_buckets (isolation, bucket, n, sum_ms)
                         VALUES (?1, ?2, 1, ?3)
                         ON CONFLICT (isolation, bucket)
                         DO UPDATE SET n = n + 1, sum_ms = sum_ms + excluded.sum_ms",
                        params![isolation, DurationHistogram::bucket_of(ms), ms as i64],
                    )?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn append_logs(&self, id: &str, lines: &[LogLine]) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        let id = id.to_owned();
        let lines = lines.to_vec();
        self.write(move |conn| {
            let tx = conn.transaction().map_err(io)?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO log_lines (workload_id, seq, stream, line, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .map_err(io)?;
                for l in &lines {
                    stmt.execute(params![
                        id,
                        l.seq as i64,
                        l.stream.as_str(),
                        l.line,
                        to_ms(l.created_at)
                    ])
                    .map_err(io)?;
                }
            }
            tx.commit().map_err(io)
        })
        .await
    }

    async fn logs(&self, id: &str, stream: Option<LogStream>) -> Result<Vec<LogLine>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| {
            get_workload(conn, &id)?;
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, stream, line, created_at FROM log_lines
                     WHERE workload_id = ?1 AND (?2 IS NULL OR stream = ?2) ORDER BY seq",
                )
                .map_err(io)?;
            let rows = stmt
                .query_map(params![id, stream.map(|s| s.as_str())], |r| {
                    let stream: String = r.get(1)?;
                    Ok(LogLine {
                        seq: r.get::<_, i64>(0)?.max(0) as u64,
                        stream: LogStream::parse(&stream).unwrap_or(LogStream::Backend),
                        line: r.get(2)?,
                        created_at: from_ms(r.get(3)?),
                    })
                })
                .map_err(io)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(io)
        })
        .await
    }

    async fn stats(&self, tenant: Option<&str>) -> Result<Stats, StoreError> {
        if let Some(tenant) = tenant {
            let tenant = tenant.to_owned();
            return self.read(move |conn| tenant_stats(conn, &tenant)).await;
        }
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT isolation, status, n FROM workload_counts WHERE n > 0")
                .map_err(io)?;
            let counts = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(io)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(io)?;
            let mut stmt = conn
                .prepare_cached("SELECT isolation, bucket, n, sum_ms FROM duration_buckets")
                .map_err(io)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })
                .map_err(io)?;
            let mut per_backend = PerBackend::default();
            for row in rows {
                let (isolation, bucket, n, sum) = row.map_err(io)?;
                let entry = per_backend.entry(isolation).or_default();
                entry.0.add(bucket, n.max(0) as u64);
                entry.1 += sum.max(0) as u64;
            }
            Ok(assemble_stats(counts, per_backend))
        })
        .await
    }

    async fn unfinished(&self, node_id: &str) -> Result<Vec<Workload>, StoreError> {
        let node_id = node_id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {WORKLOAD_COLUMNS} FROM workloads
                     WHERE node_id = ?1 AND status IN ('pending', 'running') ORDER BY id"
                ))
                .map_err(io)?;
            let rows = stmt.query_map([node_id], workload_from_row).map_err(io)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(io)
        })
        .await
    }

    async fn save_benchmark(&self, id: &str, report: &str) -> Result<(), StoreError> {
        let (id, report) = (id.to_owned(), report.to_owned());
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO benchmarks (id, created_at, report) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET report = excluded.report",
                rusqlite::params![id, to_ms(OffsetDateTime::now_utc()), report],
            )
            .map(|_| ())
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
            let mut stmt = conn
                .prepare_cached(
                    "SELECT report FROM benchmarks ORDER BY created_at DESC, id DESC LIMIT ?1",
                )
                .map_err(io)?;
            let rows = stmt.query_map([limit], |r| r.get(0)).map_err(io)?;
            rows.collect::<rusqlite::Result<Vec<String>>>().map_err(io)
        })
        .await
    }
}

fn average(sum: u64, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        ((sum as f64 / n as f64) * 100.0).round() / 100.0
    }
}

/// Finished workloads' durations per backend: a histogram and the sum in milliseconds.
type PerBackend = std::collections::BTreeMap<String, (DurationHistogram, u64)>;

/// `/v1/stats` from (isolation, status, count) rows and per-backend durations.
fn assemble_stats(counts: Vec<(String, String, i64)>, per_backend: PerBackend) -> Stats {
    let mut stats = Stats::default();
    for (isolation, status, n) in counts {
        let n = n.max(0) as u64;
        stats.total += n;
        *stats.by_status.entry(status).or_default() += n;
        *stats.by_isolation.entry(isolation).or_default() += n;
    }
    for status in WorkloadStatus::ALL {
        stats
            .by_status
            .entry(status.as_str().to_owned())
            .or_default();
    }
    let (mut all_n, mut all_sum) = (0u64, 0u64);
    for (isolation, (hist, sum)) in per_backend {
        let n = hist.count();
        all_n += n;
        all_sum += sum;
        stats.backends.insert(
            isolation,
            BackendStats {
                finished: n,
                avg_duration_ms: average(sum, n),
                p50_duration_ms: hist.quantile(0.50),
                p95_duration_ms: hist.quantile(0.95),
            },
        );
    }
    stats.avg_duration_ms = average(all_sum, all_n);
    stats
}

/// One tenant's figures, counted on its index (the counter tables are for everyone).
/// Percentiles use the same 5%-wide buckets as the global figures.
fn tenant_stats(conn: &Connection, tenant: &str) -> Result<Stats, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT isolation, status, COUNT(*) FROM workloads WHERE tenant = ?1
             GROUP BY isolation, status",
        )
        .map_err(io)?;
    let counts = stmt
        .query_map([tenant], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(io)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(io)?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT isolation, duration_ms FROM workloads
             WHERE tenant = ?1 AND status IN ('completed', 'failed', 'killed')
               AND duration_ms IS NOT NULL",
        )
        .map_err(io)?;
    let rows = stmt
        .query_map([tenant], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })
        .map_err(io)?;
    let mut per_backend = PerBackend::default();
    for row in rows {
        let (isolation, ms) = row.map_err(io)?;
        let ms = ms.max(0) as u64;
        let entry = per_backend.entry(isolation).or_default();
        entry.0.add(DurationHistogram::bucket_of(ms), 1);
        entry.1 += ms;
    }
    Ok(assemble_stats(counts, per_backend))
}

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

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let e = entry.clone();
        let bytes = e.detail.as_ref().map_or(0, String::len);
        self.write_small(bytes, move |conn| {
            conn.prepare_cached(
                "INSERT INTO audit_log (at, actor, role, tenant, action, target, outcome, status, detail, count)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .map_err(io)?
            .execute(params![
                to_ms(OffsetDateTime::now_utc()),
                e.actor,
                e.role,
                e.tenant,
                e.action,
                e.target,
                e.outcome,
                e.status,
                e.detail,
                e.count.max(1) as i64
            ])
            .map(drop)
            .map_err(io)
        })
        .await
    }

    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let f = filter.clone();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, at, actor, role, tenant, action, target, outcome, status, detail, count
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
                "SELECT max_concurrent, per_minute, max_cpus, max_mem_mb FROM tenant_quotas
                 WHERE tenant = ?1",
            )
            .map_err(io)?
            .query_row([tenant], |r| {
                Ok(Quota {
                    max_concurrent: r.get(0)?,
                    per_minute: r.get(1)?,
                    max_cpus: r.get(2)?,
                    max_mem_mb: r.get(3)?,
                })
            })
            .optional()
            .map_err(io)
        })
        .await
    }

    async fn set_quota(&self, tenant: &str, quota: &Quota) -> Result<(), StoreError> {
        let (tenant, q) = (tenant.to_owned(), *quota);
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO tenant_quotas (tenant, max_concurrent, per_minute, max_cpus, max_mem_mb)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant) DO UPDATE SET max_concurrent = excluded.max_concurrent,
                   per_minute = excluded.per_minute, max_cpus = excluded.max_cpus,
                   max_mem_mb = excluded.max_mem_mb",
                params![tenant, q.max_concurrent, q.per_minute, q.max_cpus, q.max_mem_mb],
            )
            .map(drop)
            .map_err(io)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_while_writing_does_not_break_every_later_call() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("vulcan.db")).unwrap();
        let inner = store.inner.clone();
        let poisoned = std::thread::spawn(move || {
            let _held = inner.writer.lock().unwrap();
            panic!("a write went wrong");
        })
        .join();
        assert!(poisoned.is_err() && store.inner.writer.is_poisoned());
        store.save_benchmark("b1", "{}").await.unwrap();
        assert_eq!(store.benchmark("b1").await.unwrap(), "{}");
        assert!(store.schema_version().is_ok());
    }
}
