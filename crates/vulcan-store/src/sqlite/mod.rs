//! The SQLite store: one database file in WAL mode, the embedded default. One writer
//! connection and a small pool of readers; small writes run on the caller's thread when
//! the writer is free, the rest (and every read) on the blocking pool.
//!
//! Reading order: [`migrations`] (the schema), then one file per port: [`workloads`]
//! (the queue, status changes, logs, counters), [`access`] (keys, audit, quotas),
//! [`nodes`] (heartbeats and housekeeping), [`images`] (the image registry).

mod access;
mod benchmarks;
mod followups;
mod functions;
mod images;
mod logs;
mod migrations;
mod nodes;
mod queues;
mod sandboxes;
mod schedules;
mod secrets;
mod stats;
mod topics;
mod transitions;
mod workloads;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, Row};
use time::OffsetDateTime;
use vulcan_domain::StoreError;

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

pub(crate) fn io(err: impl std::fmt::Display) -> StoreError {
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
    pub(crate) async fn write<T: Send + 'static>(
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
    pub(crate) async fn write_small<T: Send + 'static>(
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
    pub(crate) async fn read<T: Send + 'static>(
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

pub(crate) fn to_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A text column parsed into one of the domain's closed vocabularies.
pub(crate) fn parse_column<T: std::str::FromStr>(row: &Row, idx: usize) -> rusqlite::Result<T>
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

#[cfg(test)]
mod tests {
    use super::*;
    use vulcan_domain::BenchmarkStore;

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
