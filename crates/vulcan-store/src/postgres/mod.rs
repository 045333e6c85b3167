//! The PostgreSQL store: one database shared by every node of a cluster. A connection
//! pool (deadpool-postgres over tokio-postgres), parameterised statements only, versioned
//! migrations run once under an advisory lock when several nodes start together, and
//! LISTEN/NOTIFY for the signals between nodes ([`listen`]).
//!
//! Reading order: [`migrations`], then one file per port as in the SQLite store:
//! [`workloads`], [`access`], [`nodes`], [`images`].
//!
//! A connection that breaks (the server restarting, a network blip) fails no operation at
//! once: each is retried on a fresh connection for up to [`RETRY_FOR`], so a node rides
//! out a restart of PostgreSQL and nothing it was writing is lost.

mod access;
mod benchmarks;
mod followups;
mod functions;
mod images;
mod listen;
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

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use deadpool_postgres::{Client, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;
use vulcan_domain::{Deliver, Signal, SignalBus, StoreError};

/// How long an operation is retried on a broken connection before it fails.
pub const RETRY_FOR: Duration = Duration::from_secs(20);

/// Connections kept open to the database.
const POOL_SIZE: usize = 16;

/// The channel signals travel on.
pub(crate) const CHANNEL: &str = "vulcan";

/// A PostgreSQL database shared by the nodes of a cluster. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    config: tokio_postgres::Config,
    /// Signals on their way to the other nodes ([`send_signals`]), once one is announced.
    outbox: OnceLock<tokio::sync::mpsc::UnboundedSender<Outgoing>>,
}

/// Most signals sent in one statement.
const SIGNALS_PER_BATCH: usize = 256;

/// How long an event (for dashboards, [`Signal::Event`]) or news of a workload's log
/// lines ([`Signal::Logs`], for those following it from another node) may wait for
/// company: they go out with the next other signal, or this long after the first.
const EVENTS_WAIT: Duration = Duration::from_millis(50);

/// A signal on its way out, and whether it may wait ([`EVENTS_WAIT`]).
struct Outgoing {
    payload: String,
    urgent: bool,
}

/// Why [`send_signals`] woke.
enum Woke {
    Signal(Outgoing),
    /// The events waiting have waited long enough.
    Due,
    /// The store was dropped.
    Gone,
}

/// Sends the signals announced on this node: each batch (what was announced while the
/// last one was on its way, with the events waiting) in one statement, one transaction.
/// Ends when the store is dropped.
async fn send_signals(
    store: Weak<Inner>,
    mut outbox: tokio::sync::mpsc::UnboundedReceiver<Outgoing>,
) {
    let mut waiting: Vec<String> = Vec::new();
    let mut due: Option<tokio::time::Instant> = None;
    loop {
        let next = match due {
            Some(at) => tokio::select! {
                next = outbox.recv() => next.map_or(Woke::Gone, Woke::Signal),
                _ = tokio::time::sleep_until(at) => Woke::Due,
            },
            None => outbox.recv().await.map_or(Woke::Gone, Woke::Signal),
        };
        let gone = matches!(next, Woke::Gone);
        let mut send = !matches!(next, Woke::Signal(_));
        if let Woke::Signal(first) = next {
            // Let the signals of the same moment (a run's end and its event) join.
            tokio::task::yield_now().await;
            let mut more = Some(first);
            while let Some(o) = more.take() {
                send |= o.urgent;
                waiting.push(o.payload);
                more = outbox.try_recv().ok();
            }
        }
        if !send {
            due.get_or_insert(tokio::time::Instant::now() + EVENTS_WAIT);
            continue;
        }
        due = None;
        for batch in std::mem::take(&mut waiting).chunks(SIGNALS_PER_BATCH) {
            let Some(inner) = store.upgrade() else {
                return;
            };
            PgStore { inner }.notify(batch).await;
        }
        if gone {
            return;
        }
    }
}

impl PgStore {
    /// NOTIFY every payload of `batch` in one statement; what cannot be sent is dropped.
    async fn notify(&self, batch: &[String]) {
        let sent = self
            .run(|c, _| {
                Box::pin(async move {
                    let st = c
                        .prepare_cached(
                            "SELECT pg_notify($1, payload) FROM unnest($2::TEXT[]) AS payload",
                        )
                        .await?;
                    c.execute(&st, &[&CHANNEL, &batch]).await?;
                    Ok(())
                })
            })
            .await;
        if let Err(e) = sent {
            tracing::debug!(error = %e, signals = batch.len(), "could not send signals");
        }
    }
}

/// Why an operation on the database failed: the database's own error (retried when it
/// is a broken connection), or an answer of the store's (not found, refused, ...).
pub(crate) enum Fail {
    Db(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        Fail::Db(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl From<vulcan_domain::Refusal> for Fail {
    fn from(e: vulcan_domain::Refusal) -> Self {
        Fail::Store(e.into())
    }
}

impl From<vulcan_domain::InvalidTransition> for Fail {
    fn from(e: vulcan_domain::InvalidTransition) -> Self {
        Fail::Store(e.into())
    }
}

pub(crate) fn io(err: impl std::fmt::Display) -> StoreError {
    StoreError::Io(err.to_string())
}

/// What the server said (its message and detail), not only that it said something.
fn said(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_owned(),
        },
        None => e.to_string(),
    }
}

/// A failure worth retrying on a new connection: the connection broke, the server is
/// restarting or shutting down, or two transactions deadlocked.
fn transient(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // No server answer at all: the socket failed.
        None => true,
        Some(code) => {
            code.code().starts_with("08")
                || [
                    &SqlState::ADMIN_SHUTDOWN,
                    &SqlState::CRASH_SHUTDOWN,
                    &SqlState::CANNOT_CONNECT_NOW,
                    &SqlState::T_R_DEADLOCK_DETECTED,
                    &SqlState::T_R_SERIALIZATION_FAILURE,
                ]
                .contains(&code)
        }
    }
}

/// One attempt of an operation: given a pooled connection, a future of its result.
pub(crate) type Attempt<'c, T> = Pin<Box<dyn Future<Output = Result<T, Fail>> + Send + 'c>>;

/// Ties an attempt's connection borrow `'c` to within `'a`, the caller's borrows: the
/// attempt may use both (an implied bound: `&'c &'a ()` is only well-formed if `'a: 'c`).
pub(crate) type Within<'c, 'a> = std::marker::PhantomData<&'c &'a ()>;

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`) and brings the schema up to date;
    /// nodes starting together migrate once.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let config = tokio_postgres::Config::from_str(url).map_err(|e| {
            StoreError::Io(format!(
                "VULCAN_DATABASE_URL is not a valid PostgreSQL URL: {e}"
            ))
        })?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(io)?;
        let store = PgStore {
            inner: Arc::new(Inner {
                pool,
                config,
                outbox: OnceLock::new(),
            }),
        };
        let mut client = store.client().await.map_err(|e| match e {
            Fail::Store(e) => e,
            Fail::Db(e) => io(format!("cannot connect to PostgreSQL: {e}")),
        })?;
        migrations::migrate(&mut client)
            .await
            .map_err(|e| match e {
                Fail::Store(e) => e,
                Fail::Db(e) => io(format!("migrating the PostgreSQL schema: {e}")),
            })?;
        Ok(store)
    }

    /// What the PostgreSQL server at `url` says of itself, changing nothing: its version,
    /// and how far its clock is from this host's in seconds (positive: the server's is
    /// ahead).
    pub async fn probe(url: &str) -> Result<(String, f64), String> {
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|e| format!("VULCAN_DATABASE_URL is not a valid PostgreSQL URL: {e}"))?;
        let connecting = config.connect(NoTls);
        let (client, connection) = tokio::time::timeout(Duration::from_secs(5), connecting)
            .await
            .map_err(|_| "PostgreSQL did not answer within 5 s".to_owned())?
            .map_err(|e| format!("cannot connect to PostgreSQL: {}", said(&e)))?;
        let driver = tokio::spawn(connection);
        let asked = std::time::SystemTime::now();
        let row = client
            .query_one(
                "SELECT current_setting('server_version'), extract(epoch from clock_timestamp())::float8",
                &[],
            )
            .await
            .map_err(|e| format!("PostgreSQL answered with an error: {}", said(&e)))?;
        let answered = std::time::SystemTime::now();
        drop(client);
        driver.abort();
        let epoch = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        };
        // The server read its clock about halfway through the round trip.
        let here = (epoch(asked) + epoch(answered)) / 2.0;
        let there: f64 = row.get(1);
        Ok((row.get(0), there - here))
    }

    /// The schema version this build migrates to.
    pub fn latest_schema_version() -> usize {
        migrations::latest_version()
    }

    /// The schema version of the database.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        self.run(|c, _| {
            Box::pin(async move {
                Ok(c.query_one(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                    &[],
                )
                .await?
                .get::<_, i64>(0))
            })
        })
        .await
    }

    async fn client(&self) -> Result<Client, Fail> {
        self.inner.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => Fail::Db(e),
            other => Fail::Store(io(format!("no database connection: {other}"))),
        })
    }

    /// Runs `op` on a pooled connection; a broken connection is replaced and the operation
    /// run again, for up to [`RETRY_FOR`].
    pub(crate) async fn run<'a, T: Send>(
        &self,
        op: impl for<'c> Fn(&'c mut Client, Within<'c, 'a>) -> Attempt<'c, T> + Send + Sync + 'a,
    ) -> Result<T, StoreError> {
        let deadline = Instant::now() + RETRY_FOR;
        let mut pause = Duration::from_millis(50);
        loop {
            let attempt = match self.client().await {
                Ok(mut client) => op(&mut client, std::marker::PhantomData).await,
                Err(e) => Err(e),
            };
            match attempt {
                Ok(value) => return Ok(value),
                Err(Fail::Store(e)) => return Err(e),
                Err(Fail::Db(e)) if transient(&e) && Instant::now() < deadline => {
                    tracing::debug!(error = %e, "database connection failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                Err(Fail::Db(e)) => return Err(io(format!("database: {}", said(&e)))),
            }
        }
    }
}

impl SignalBus for PgStore {
    /// NOTIFY on the cluster's channel, batched with the signals announced at the same
    /// time, events with the next other signal ([`send_signals`]); a signal that cannot be sent is dropped (every receiver
    /// also polls, slowly).
    fn announce(&self, signal: &Signal) {
        let outbox = self.inner.outbox.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(send_signals(Arc::downgrade(&self.inner), rx));
            tx
        });
        let _ = outbox.send(Outgoing {
            payload: signal.encode(),
            urgent: !matches!(signal, Signal::Event(_) | Signal::Logs(_)),
        });
    }

    fn subscribe(&self, deliver: Deliver) {
        self.listen(deliver);
    }
}
