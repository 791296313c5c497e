//! The event store: one behaviour over two databases.
//!
//! `DATABASE_URL` picks the backend. Both keep the same tables (see `migrations/`), and every query
//! we write ourselves is plain SQL both dialects accept, run through [`on_pool!`](crate::on_pool) against whichever
//! pool is configured. The per-stream append and load go through postgres-es and sqlite-es.
//!
//! # Layout
//! - [`streams`]: load an aggregate (snapshot plus newer events) and append to its stream.
//! - `appender`: group commit, so concurrent appends share one statement and one commit.
//! - [`log`]: the global log in position order, and one stream's history.
//! - [`chain`]: the tamper-evident chain of hashes over the log: its canonical form, the back-fill
//!   of older logs, and verification.
//! - [`views`]: projecting into read models with their checkpoints; the trigger read model.
//! - [`nodes`]: engine processes sharing the store, by heartbeat.
//! - [`run_views`]: the run read model: a trigger's runs, and the executors' queue of due runs.
//! - [`identity`]: organisations, users, API keys and token-signing keys (plain tables).
//! - [`connections`]: connections to providers, their credentials sealed (a plain table).
//! - [`webhook_secrets`]: secrets of webhooks registered at providers, sealed (a plain table).

mod appender;
pub mod chain;
pub mod connections;
pub mod identity;
pub mod log;
pub mod nodes;
pub mod outcomes;
pub mod replay_views;
pub mod run_views;
pub mod streams;
pub mod views;
pub mod webhook_secrets;

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use appender::{AppendGroup, StreamAppend};
use appender::{AppendPool, Appender};
pub use log::LoggedEvent;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended to the same stream first; reload and decide again.
    #[error("the stream was changed concurrently")]
    Conflict,
    /// The `DATABASE_URL` names no backend we have.
    #[error("unsupported DATABASE_URL `{0}`: expected sqlite://... or postgres://...")]
    UnsupportedUrl(String),
    /// Stored data that does not read back as what we wrote.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// The database could not be reached, or would not take the work now: down, restarting,
    /// refusing connections, or locked past [`LOCK_WAIT`]. The same request can succeed later
    /// without anything changing on our side. Shared, because one failed group commit fails every
    /// append of its batch with the same cause.
    #[error("the store is unavailable: {0}")]
    Unavailable(Arc<sqlx::Error>),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("event repository error: {0}")]
    Repository(cqrs_es::persist::PersistenceError),
    #[error("creating the database folder: {0}")]
    Io(#[from] std::io::Error),
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
    /// An event holds U+0000, which PostgreSQL cannot store (see [`crate::nul`]); nothing of
    /// its append was written. The edges refuse or replace it first, so this is a safety net.
    #[error("the {what} holds U+0000 (NUL) at `{path}`, which the store cannot keep")]
    HoldsNul { what: &'static str, path: String },
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            // Closed by us at shutdown, not an outage of the database.
            sqlx::Error::PoolClosed => Self::Closed,
            error if is_outage(&error) => Self::Unavailable(Arc::new(error)),
            error => Self::Database(error),
        }
    }
}

impl From<cqrs_es::persist::PersistenceError> for StoreError {
    fn from(error: cqrs_es::persist::PersistenceError) -> Self {
        use cqrs_es::persist::PersistenceError;
        match error {
            PersistenceError::OptimisticLockError => Self::Conflict,
            // postgres-es and sqlite-es box the sqlx error they met: classify that.
            PersistenceError::ConnectionError(cause) | PersistenceError::UnknownError(cause)
                if cause.is::<sqlx::Error>() =>
            {
                match cause.downcast::<sqlx::Error>() {
                    Ok(sqlx) => Self::from(*sqlx),
                    Err(_) => unreachable!("checked by `is` above"),
                }
            }
            other => Self::Repository(other),
        }
    }
}

impl StoreError {
    /// True when the store cannot serve now but may later: the request can be retried as it is
    /// (HTTP 503 with `Retry-After`), as opposed to a fault to look into (500).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Closed)
            || matches!(
                self,
                Self::Repository(cqrs_es::persist::PersistenceError::ConnectionError(_))
            )
    }
}

/// Whether `error` says the database is out of reach or refuses work for now, rather than that
/// our request was wrong or the data is bad.
fn is_outage(error: &sqlx::Error) -> bool {
    match error {
        // The connection broke or could not be made (refused, reset, TLS failed, the stream
        // ended mid-message), or no connection came free within the pool's acquire timeout.
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(database) => match database.code() {
            Some(code)
                if database
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some() =>
            {
                is_postgres_outage(&code)
            }
            Some(code) => code.parse::<i32>().is_ok_and(is_sqlite_outage),
            None => false,
        },
        _ => false,
    }
}

/// PostgreSQL SQLSTATEs (Appendix A of its manual) that mean "not now" rather than "not this".
fn is_postgres_outage(sqlstate: &str) -> bool {
    // Class 08: connection exception.
    sqlstate.starts_with("08")
        || matches!(
            sqlstate,
            // admin_shutdown (a restart or pg_terminate_backend), crash_shutdown,
            // cannot_connect_now (starting up or shutting down).
            "57P01" | "57P02" | "57P03"
            // too_many_connections.
            | "53300"
            // lock_not_available: the lock_timeout (LOCK_WAIT) ran out, as SQLITE_BUSY does.
            | "55P03"
            // read_only_sql_transaction: connected to a standby, as during a failover.
            | "25006"
        )
}

/// SQLite result codes (<https://sqlite.org/rescode.html>); sqlx reports the extended code, whose
/// low byte is the primary one.
fn is_sqlite_outage(code: i32) -> bool {
    const BUSY: i32 = 5;
    const LOCKED: i32 = 6;
    const IOERR: i32 = 10;
    const CANTOPEN: i32 = 14;
    matches!(code & 0xff, BUSY | LOCKED | IOERR | CANTOPEN)
}

impl From<serde_json::Error> for StoreError {
    fn from(error: serde_json::Error) -> Self {
        Self::Corrupt(error.to_string())
    }
}

/// Whether the store's latest write got through, for readiness. A read-only check cannot tell:
/// SQLite serves reads while another process holds its write lock. Fed by the writes that happen
/// anyway (group commits, and the projector's transaction every quarter second even when idle),
/// so it clears by itself once the store takes writes again.
#[derive(Default)]
pub(crate) struct Writes {
    failing: AtomicBool,
}

impl Writes {
    fn observe<T>(&self, result: &Result<T, StoreError>) {
        match result {
            Ok(_) => self.failing.store(false, Ordering::Release),
            Err(StoreError::Unavailable(_)) => self.failing.store(true, Ordering::Release),
            Err(_) => {}
        }
    }
}

/// The configured backend, each with its pool and its cqrs-es event repository.
pub enum Store {
    Sqlite(SqliteBackend),
    Postgres(PostgresBackend),
}

pub struct SqliteBackend {
    pub pool: SqlitePool,
    repository: sqlite_es::SqliteEventRepository,
    appender: Appender,
    writes: Arc<Writes>,
}

pub struct PostgresBackend {
    pub pool: PgPool,
    repository: postgres_es::PostgresEventRepository,
    appender: Appender,
    writes: Arc<Writes>,
}

/// Runs one body against whichever pool the store has. The body is compiled once per backend, so
/// it may use the pool's concrete types; the SQL in it must suit both dialects.
#[macro_export]
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite(backend) => {
                let $pool = &backend.pool;
                $body
            }
            $crate::store::Store::Postgres(backend) => {
                let $pool = &backend.pool;
                $body
            }
        }
    };
}

/// An id column (UUIDs are stored as text) read back.
fn parse_id(text: &str) -> Result<uuid::Uuid, StoreError> {
    uuid::Uuid::parse_str(text)
        .map_err(|error| StoreError::Corrupt(format!("id `{text}`: {error}")))
}

/// How long a connection waits for a lock before failing: SQLite's single writer and PostgreSQL's
/// log-head row both make appenders queue, and a queue of a few seconds is still healthy. A
/// request waits as long for a pooled connection (sqlx's default is 30 s): while the database is
/// unreachable it is answered 503 after this, rather than holding the sender for half a minute.
const LOCK_WAIT: Duration = Duration::from_secs(10);

impl Store {
    /// Opens the database `url` names, creating an SQLite file (and its folder) on first use.
    pub async fn connect(url: &str, pool_size: u32) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: an acknowledged append survives an OS crash, not only a killed process.
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(LOCK_WAIT)
                .foreign_keys(true);
            if let Some(folder) = Path::new(options.get_filename()).parent() {
                if !folder.as_os_str().is_empty() {
                    std::fs::create_dir_all(folder)?;
                }
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(pool_size)
                .acquire_timeout(LOCK_WAIT)
                .connect_with(options)
                .await?;
            let repository = sqlite_es::SqliteEventRepository::new(pool.clone());
            let writes = Arc::new(Writes::default());
            let appender = Appender::spawn(AppendPool::Sqlite(pool.clone()), writes.clone());
            Ok(Self::Sqlite(SqliteBackend {
                pool,
                repository,
                appender,
                writes,
            }))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url)?
                .options([("lock_timeout", format!("{}s", LOCK_WAIT.as_secs()))]);
            let pool = PgPoolOptions::new()
                .max_connections(pool_size)
                .acquire_timeout(LOCK_WAIT)
                .connect_with(options)
                .await?;
            let repository = postgres_es::PostgresEventRepository::new(pool.clone());
            let writes = Arc::new(Writes::default());
            let appender = Appender::spawn(AppendPool::Postgres(pool.clone()), writes.clone());
            Ok(Self::Postgres(PostgresBackend {
                pool,
                repository,
                appender,
                writes,
            }))
        } else {
            Err(StoreError::UnsupportedUrl(url.to_owned()))
        }
    }

    /// Applies the embedded migrations for this backend; already-applied ones are skipped.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(backend) => {
                sqlx::migrate!("migrations/sqlite")
                    .run(&backend.pool)
                    .await?
            }
            Self::Postgres(backend) => {
                sqlx::migrate!("migrations/postgres")
                    .run(&backend.pool)
                    .await?
            }
        }
        // Migration 0008 added the chain; SQL cannot write its canonical form, so the events
        // already there are chained here, once.
        self.chain_existing().await
    }

    /// The backend's name, for logs and status output.
    fn appender(&self) -> &Appender {
        match self {
            Self::Sqlite(backend) => &backend.appender,
            Self::Postgres(backend) => &backend.appender,
        }
    }

    fn writes(&self) -> &Writes {
        match self {
            Self::Sqlite(backend) => &backend.writes,
            Self::Postgres(backend) => &backend.writes,
        }
    }

    /// True while the store's latest write failed because the store was unavailable: it answers
    /// at once, without waiting out a lock or a connection attempt.
    pub fn writes_failing(&self) -> bool {
        self.writes().failing.load(Ordering::Acquire)
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// Answers whether the database takes queries, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await);
    }
}
