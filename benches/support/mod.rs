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

/// Creates and enables `count` triggers `provider`/`trigger` in organisation `org_id`, the n-th
/// with `config(n)`, from 16 writers as user `user_id`, and waits until the read model shows them.
#[allow(clippy::too_many_arguments)] // each is one plain fact about the triggers to seed
pub async fn seed_enabled(
    app: &trigger_engine::app::App,
    org_id: uuid::Uuid,
    user_id: uuid::Uuid,
    provider: &'static str,
    trigger: &'static str,
    count: usize,
    config: impl Fn(usize) -> serde_json::Value + Send + Sync + 'static,
) -> anyhow::Result<()> {
    use aggregates::{Actor, NewTrigger, TriggerAction, TriggerCommand};

    let config = std::sync::Arc::new(config);
    let writers: Vec<_> = (0..16)
        .map(|writer| {
            let commands = app.commands.clone();
            let config = config.clone();
            tokio::spawn(async move {
                for n in (writer..count).step_by(16) {
                    let id = uuid::Uuid::new_v4();
                    let create = TriggerAction::CreateTrigger(NewTrigger {
                        project_trigger_id: id,
                        org_id,
                        project_id: "bench".into(),
                        connection_id: None,
                        provider_id: provider.into(),
                        trigger_id: trigger.into(),
                        trigger_config: Some(config(n)),
                    });
                    for action in [create, TriggerAction::EnableTrigger] {
                        let command =
                            TriggerCommand::new(chrono::Utc::now(), Actor::User(user_id), action);
                        commands.execute(id, command, "bench-seed").await?;
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    let head = app.store.head().await?;
    app.projections
        .wait_for(head, std::time::Duration::from_secs(300))
        .await;
    Ok(())
}

/// The same columns and key as `events`, without the position trigger: the ceiling to compare
/// appends with.
pub async fn create_raw_table(store: &trigger_engine::store::Store) -> anyhow::Result<()> {
    let sql = match store {
        trigger_engine::store::Store::Sqlite(_) => {
            "CREATE TABLE raw_events (aggregate_type text NOT NULL, aggregate_id text NOT NULL,
               sequence integer NOT NULL, event_type text NOT NULL, event_version text NOT NULL,
               payload text NOT NULL, metadata text NOT NULL,
               PRIMARY KEY (aggregate_type, aggregate_id, sequence)) STRICT"
        }
        trigger_engine::store::Store::Postgres(_) => {
            "CREATE TABLE raw_events (aggregate_type text NOT NULL, aggregate_id text NOT NULL,
               sequence bigint NOT NULL, event_type text NOT NULL, event_version text NOT NULL,
               payload jsonb NOT NULL, metadata jsonb NOT NULL,
               PRIMARY KEY (aggregate_type, aggregate_id, sequence))"
        }
    };
    trigger_engine::on_pool!(store, |pool| sqlx::query(sql)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// This process's CPU time so far (user + system), in seconds.
pub fn cpu_seconds() -> f64 {
    ticks_in("/proc/self/stat") as f64 / TICKS_PER_SECOND
}

/// Clock ticks a second, as `/proc` counts CPU time (`getconf CLK_TCK`: 100 on Linux).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// User + system ticks of process `pid` so far (0 once it is gone).
pub fn ticks_of(pid: u32) -> u64 {
    ticks_in(&format!("/proc/{pid}/stat"))
}

fn ticks_in(stat_file: &str) -> u64 {
    let stat = std::fs::read_to_string(stat_file).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let field = |index: usize| fields.get(index).and_then(|f| f.parse::<u64>().ok());
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    field(11).unwrap_or(0) + field(12).unwrap_or(0)
}
