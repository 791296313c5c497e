//! Store benchmarks for issue #2, printed as Markdown tables (copy them into docs/benchmarks.md).
//!
//! `cargo bench --bench store` runs on SQLite (a temporary file) and, when `BENCH_DATABASE_URL`
//! (or `TEST_DATABASE_URL`) is set, on PostgreSQL too, in a database created for the run and
//! dropped after it. `BENCH_SECONDS` sets each throughput window (default 10).
//!
//! 1. Appends per second through the full command path (load, decide, append, commit) with 1 and
//!    16 writers on distinct triggers, beside the raw ceiling measured in the same run: single-row
//!    INSERT transactions of the same row shape into a table without the position trigger.
//! 2. Command latency on a trigger with 100,000 cursor advances against a fresh trigger's.
//! 3. Projection rebuild rate from a log of 100,000 events (1,000 triggers x 100 events).

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregates::event::Stamp;
use aggregates::{Actor, NewTrigger, Trigger, TriggerAction, TriggerCommand, TriggerEvent};
use chrono::Utc;
use serde_json::json;
use sqlx::Connection;
use tokio_util::sync::CancellationToken;
use trigger_engine::commands::Commands;

use support::create_raw_table;
use trigger_engine::rebuild::rebuild_triggers;
use trigger_engine::store::streams::EventMetadata;
use trigger_engine::store::Store;
use trigger_engine::{on_pool, projector};
use uuid::Uuid;

const LONG_STREAM: usize = 100_000;
const REBUILD_TRIGGERS: usize = 1_000;
const REBUILD_EVENTS_EACH: usize = 100;
const LATENCY_SAMPLES: usize = 300;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(10);
    let window = Duration::from_secs(seconds);
    let folder = tempfile::tempdir()?;
    let mut stores = vec![("sqlite", BenchDb::Sqlite(folder.path().to_owned()))];
    if let Ok(url) =
        std::env::var("BENCH_DATABASE_URL").or_else(|_| std::env::var("TEST_DATABASE_URL"))
    {
        stores.push(("postgres", BenchDb::Postgres(url)));
    }
    println!(
        "machine: {} cores; window {seconds} s per throughput figure",
        num_cpus()
    );
    for (name, db) in &stores {
        println!("\n## {name}\n");
        println!("| measure | 1 writer | 16 writers |");
        println!("| --- | ---: | ---: |");
        let store = db.fresh("throughput").await?;
        create_raw_table(&store).await?;
        let raw1 = raw_inserts(&store, 1, window).await?;
        let raw16 = raw_inserts(&store, 16, window).await?;
        let cmd1 = command_appends(&store, 1, window).await?;
        let cmd16 = command_appends(&store, 16, window).await?;
        println!("| raw INSERT transactions /s | {raw1:.0} | {raw16:.0} |");
        println!("| command path appends /s | {cmd1:.0} | {cmd16:.0} |");
        println!(
            "| command path / raw | {:.0}% | {:.0}% |",
            100.0 * cmd1 / raw1,
            100.0 * cmd16 / raw16
        );
        store.close().await;

        let store = db.fresh("latency").await?;
        let (fresh, long, replay) = latency(&store).await?;
        println!("\n| command latency | p50 | p99 | mean |");
        println!("| --- | ---: | ---: | ---: |");
        println!("| fresh trigger | {} |", fresh.row());
        println!(
            "| trigger with {LONG_STREAM} cursor advances | {} |",
            long.row()
        );
        println!(
            "| same, snapshot removed (full replay) | {} |",
            replay.row()
        );
        println!("\nlong / fresh (p50): {:.2}x", long.p50 / fresh.p50);
        store.close().await;

        let store = db.fresh("rebuild").await?;
        let (events, rate) = rebuild_rate(&store).await?;
        println!("\nrebuild: {events} events at {rate:.0} events/s");
        store.close().await;
    }
    for (_, db) in &stores {
        db.drop_all().await;
    }
    Ok(())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

enum BenchDb {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl BenchDb {
    fn name(phase: &str) -> String {
        format!("trigger_engine_bench_{phase}")
    }

    async fn fresh(&self, phase: &str) -> anyhow::Result<Arc<Store>> {
        let url = match self {
            Self::Sqlite(folder) => format!("sqlite://{}/{phase}.db", folder.display()),
            Self::Postgres(url) => {
                let mut admin = sqlx::PgConnection::connect(url).await?;
                let name = Self::name(phase);
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await?;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .await?;
                let base = url.rsplit_once('/').map_or(url.as_str(), |(base, _)| base);
                format!("{base}/{name}")
            }
        };
        let store = Store::connect(&url, 20).await?;
        store.migrate().await?;
        Ok(Arc::new(store))
    }

    async fn drop_all(&self) {
        if let Self::Postgres(url) = self {
            if let Ok(mut admin) = sqlx::PgConnection::connect(url).await {
                for phase in ["throughput", "latency", "rebuild"] {
                    let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", Self::name(phase));
                    let _ = sqlx::query(&sql).execute(&mut admin).await;
                }
            }
        }
    }
}

fn cursor_event(n: u64) -> TriggerEvent {
    TriggerEvent::CursorAdvanced {
        cursor_data: json!({"last_processed_event_id": n.to_string()}),
        stamp: Stamp {
            at: Utc::now(),
            by: Actor::system("bench"),
        },
    }
}

fn metadata() -> serde_json::Value {
    json!({"actor": "system:bench", "org_id": Uuid::nil().to_string(), "request_id": "bench"})
}

/// Runs `writers` tasks for `window`, each calling `step(writer, n)` in a loop; returns ops/s.
async fn throughput<F, Fut>(writers: usize, window: Duration, step: F) -> anyhow::Result<f64>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let step = Arc::new(step);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let (step, stop, done) = (step.clone(), stop.clone(), done.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    step(writer, n).await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(())
            })
        })
        .collect();
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

async fn raw_inserts(store: &Arc<Store>, writers: usize, window: Duration) -> anyhow::Result<f64> {
    let store = store.clone();
    let run = Uuid::new_v4();
    let payload = serde_json::to_value(cursor_event(1))?;
    throughput(writers, window, move |writer, n| {
        let (store, payload) = (store.clone(), payload.clone());
        async move {
            let id = format!("{run}-{writer}");
            on_pool!(&*store, |pool| {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO raw_events (aggregate_type, aggregate_id, sequence, event_type,
                       event_version, payload, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind("trigger")
                .bind(&id)
                .bind(n as i64)
                .bind("CursorAdvanced")
                .bind("1")
                .bind(&payload)
                .bind(metadata())
                .execute(&mut *tx)
                .await?;
                tx.commit().await
            })?;
            Ok(())
        }
    })
    .await
}

fn commands_for(store: Arc<Store>) -> Commands {
    // A projector that runs one batch and stops: the figure is the write path alone.
    let stopped = CancellationToken::new();
    stopped.cancel();
    let (projections, _task) = projector::spawn(store.clone(), stopped);
    Commands::new(store, projections)
}

async fn create(commands: &Commands) -> anyhow::Result<Uuid> {
    let id = Uuid::new_v4();
    let action = TriggerAction::CreateTrigger(NewTrigger {
        project_trigger_id: id,
        org_id: Uuid::nil(),
        project_id: "bench".into(),
        connection_id: None,
        provider_id: "rss".into(),
        trigger_id: "on_new_item".into(),
        trigger_config: None,
    });
    commands.execute(id, command(action), "bench").await?;
    Ok(id)
}

fn command(action: TriggerAction) -> TriggerCommand {
    TriggerCommand::new(Utc::now(), Actor::system("bench"), action)
}

fn advance(n: u64) -> TriggerAction {
    TriggerAction::AdvanceCursor {
        seen: (n > 1).then(|| json!({"last_processed_event_id": (n - 1).to_string()})),
        next: json!({"last_processed_event_id": n.to_string()}),
    }
}

async fn command_appends(
    store: &Arc<Store>,
    writers: usize,
    window: Duration,
) -> anyhow::Result<f64> {
    let commands = commands_for(store.clone());
    let mut triggers = Vec::new();
    for _ in 0..writers {
        triggers.push(create(&commands).await?);
    }
    let triggers = Arc::new(triggers);
    throughput(writers, window, move |writer, n| {
        let (commands, triggers) = (commands.clone(), triggers.clone());
        async move {
            commands
                .execute(triggers[writer], command(advance(n)), "bench")
                .await?;
            Ok(())
        }
    })
    .await
}

struct Latency {
    p50: f64,
    p99: f64,
    mean: f64,
}

impl Latency {
    fn of(mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
        Self {
            p50: at(0.5),
            p99: at(0.99),
            mean: samples.iter().sum::<f64>() / samples.len() as f64,
        }
    }

    fn row(&self) -> String {
        format!(
            "{:.2} ms | {:.2} ms | {:.2} ms",
            self.p50, self.p99, self.mean
        )
    }
}

/// Appends cursor advances to `id` after `sequence` until the stream holds `until` events, 1,000
/// per transaction. The event at sequence s carries cursor s - 1: the advances so far.
async fn seed_cursor(
    store: &Store,
    id: Uuid,
    mut sequence: usize,
    until: usize,
) -> anyhow::Result<usize> {
    let metadata = EventMetadata {
        actor: Actor::system("bench"),
        org_id: Uuid::nil(),
        request_id: "bench-seed".into(),
    };
    while sequence < until {
        let chunk: Vec<_> = (sequence..(sequence + 1_000).min(until))
            .map(|n| cursor_event(n as u64))
            .collect();
        store
            .append::<Trigger>(id, sequence, &chunk, &metadata)
            .await?;
        sequence += chunk.len();
    }
    Ok(sequence)
}

async fn latency(store: &Arc<Store>) -> anyhow::Result<(Latency, Latency, Latency)> {
    let commands = commands_for(store.clone());
    let long = create(&commands).await?;
    // The stream grows by bulk appends; the snapshot it would have had is then saved as the
    // command path saves it (every 100 events), so loading sees what a long-lived trigger has.
    let sequence = seed_cursor(store, long, 1, LONG_STREAM + 1).await?;
    let loaded = store.replay::<Trigger>(long).await?;
    assert_eq!(loaded.sequence, sequence);
    store.save_snapshot(long, &loaded.state, sequence).await?;
    let fresh = create(&commands).await?;

    let (mut fresh_samples, mut long_samples) = (Vec::new(), Vec::new());
    for n in 1..=LATENCY_SAMPLES as u64 {
        for (id, samples, cursor) in [
            (fresh, &mut fresh_samples, n),
            (long, &mut long_samples, LONG_STREAM as u64 + n),
        ] {
            let started = Instant::now();
            commands
                .execute(id, command(advance(cursor)), "bench")
                .await?;
            samples.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    let mut replay_samples = Vec::new();
    for n in 1..=5 {
        // Without a snapshot, every load replays the whole stream.
        on_pool!(&**store, |pool| {
            sqlx::query("DELETE FROM snapshots")
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        let started = Instant::now();
        let cursor = (LONG_STREAM + LATENCY_SAMPLES) as u64 + n;
        commands
            .execute(long, command(advance(cursor)), "bench")
            .await?;
        replay_samples.push(started.elapsed().as_secs_f64() * 1e3);
    }
    Ok((
        Latency::of(fresh_samples),
        Latency::of(long_samples),
        Latency::of(replay_samples),
    ))
}

async fn rebuild_rate(store: &Arc<Store>) -> anyhow::Result<(i64, f64)> {
    let commands = commands_for(store.clone());
    for _ in 0..REBUILD_TRIGGERS {
        let id = create(&commands).await?;
        seed_cursor(store, id, 1, REBUILD_EVENTS_EACH).await?;
    }
    let head = store.head().await?;
    let started = Instant::now();
    let report = rebuild_triggers(store).await?;
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(report.position, head);
    Ok((head, head as f64 / seconds))
}
