//! What the benchmarks share: settings read from the environment, and a PostgreSQL database of
//! their own on the server the tests use.

// Each bench is a target of its own that includes this module and uses only part of it.
#![allow(dead_code)]

use sqlx::Connection;

/// The variable `name` parsed, or `default` when it is unset or unreadable.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// The PostgreSQL server to measure on: `BENCH_DATABASE_URL`, else `TEST_DATABASE_URL`; `None`
/// runs a bench on SQLite alone.
pub fn admin_url() -> Option<String> {
    std::env::var("BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("TEST_DATABASE_URL"))
        .ok()
}

/// Creates database `name` afresh (dropping one left by an earlier run) on the server `admin`
/// names; returns its URL.
pub async fn create_database(admin: &str, name: &str) -> anyhow::Result<String> {
    drop_database(admin, name).await?;
    let mut connection = sqlx::PgConnection::connect(admin).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut connection)
        .await?;
    let base = admin.rsplit_once('/').map_or(admin, |(base, _)| base);
    Ok(format!("{base}/{name}"))
}

/// Drops database `name` from the server `admin` names, if it is there.
pub async fn drop_database(admin: &str, name: &str) -> anyhow::Result<()> {
    let mut connection = sqlx::PgConnection::connect(admin).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut connection)
        .await?;
    Ok(())
}
