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
mod functions;
mod images;
mod listen;
mod logs;
mod migrations;
mod nodes;
mod schedules;
mod secrets;
mod stats;
mod transitions;
mod workloads;

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
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
            inner: Arc::new(Inner { pool, config }),
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
                Err(Fail::Db(e)) => return Err(io(format!("database: {e}"))),
            }
        }
    }
}

impl SignalBus for PgStore {
    /// NOTIFY on the cluster's channel, from a pooled connection; a signal that cannot be
    /// sent is dropped (every receiver also polls, slowly).
    fn announce(&self, signal: &Signal) {
        let store = self.clone();
        let payload = signal.encode();
        tokio::spawn(async move {
            let sent = store
                .run(|c, _| {
                    let payload = payload.clone();
                    Box::pin(async move {
                        c.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
                            .await?;
                        Ok(())
                    })
                })
                .await;
            if let Err(e) = sent {
                tracing::debug!(error = %e, "could not send a signal");
            }
        });
    }

    fn subscribe(&self, deliver: Deliver) {
        self.listen(deliver);
    }
}
