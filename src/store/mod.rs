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
//! - [`views`]: projecting into read models with their checkpoints; the trigger read model.
//! - [`nodes`]: engine processes sharing the store, by heartbeat.
//! - [`run_views`]: the run read model: a trigger's runs, and the executors' queue of due runs.
//! - [`identity`]: organisations, users, API keys and token-signing keys (plain tables).
//! - [`connections`]: connections to providers, their credentials sealed (a plain table).

mod appender;
pub mod connections;
pub mod identity;
pub mod log;
pub mod nodes;
pub mod run_views;
pub mod streams;
pub mod views;

use std::path::Path;
use std::str::FromStr;
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
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("event repository error: {0}")]
    Repository(cqrs_es::persist::PersistenceError),
    #[error("creating the database folder: {0}")]
    Io(#[from] std::io::Error),
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
}

impl From<cqrs_es::persist::PersistenceError> for StoreError {
    fn from(error: cqrs_es::persist::PersistenceError) -> Self {
        match error {
            cqrs_es::persist::PersistenceError::OptimisticLockError => Self::Conflict,
            other => Self::Repository(other),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(error: serde_json::Error) -> Self {
        Self::Corrupt(error.to_string())
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
}

pub struct PostgresBackend {
    pub pool: PgPool,
    repository: postgres_es::PostgresEventRepository,
    appender: Appender,
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
/// log-head row both make appenders queue, and a queue of a few seconds is still healthy.
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
                .connect_with(options)
                .await?;
            let repository = sqlite_es::SqliteEventRepository::new(pool.clone());
            let appender = Appender::spawn(AppendPool::Sqlite(pool.clone()));
            Ok(Self::Sqlite(SqliteBackend {
                pool,
                repository,
                appender,
            }))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url)?
                .options([("lock_timeout", format!("{}s", LOCK_WAIT.as_secs()))]);
            let pool = PgPoolOptions::new()
                .max_connections(pool_size)
                .connect_with(options)
                .await?;
            let repository = postgres_es::PostgresEventRepository::new(pool.clone());
            let appender = Appender::spawn(AppendPool::Postgres(pool.clone()));
            Ok(Self::Postgres(PostgresBackend {
                pool,
                repository,
                appender,
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
        Ok(())
    }

    /// The backend's name, for logs and status output.
    fn appender(&self) -> &Appender {
        match self {
            Self::Sqlite(backend) => &backend.appender,
            Self::Postgres(backend) => &backend.appender,
        }
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
