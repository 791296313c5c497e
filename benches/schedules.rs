//! Schedule benchmark for issue #5, printed as Markdown (copy into docs/benchmarks.md).
//!
//! `cargo bench --bench schedules` runs the engine in this process with `BENCH_SCHEDULES` (default
//! 10,000) enabled `* * * * *` schedule triggers (on PostgreSQL when `BENCH_DATABASE_URL` or
//! `TEST_DATABASE_URL` is set, else SQLite), executors off, and waits for `BENCH_MINUTES` (default
//! 2) minute boundaries. For each it reports how many slots fired and the fire lag (the
//! `RunRequested` event's `recorded_at` minus the slot time) at p50, p99 and max, and the engine
//! process's CPU over that minute (user + system, from /proc/self/stat; the database's own CPU is
//! not counted).

mod support;

use aggregates::{RunCause, RunEvent};
use chrono::{DateTime, DurationRound, Utc};
use serde_json::json;
use support::{admin_url, cpu_seconds, create_database, drop_database, env_or, seed_enabled};
use trigger_engine::app::App;
use trigger_engine::config::{ServeConfig, StoreConfig};

const DATABASE: &str = "trigger_engine_bench_schedules";
const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "bench password";

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let schedules: usize = env_or("BENCH_SCHEDULES", 10_000);
    let minutes: usize = env_or("BENCH_MINUTES", 2);
    let folder = tempfile::tempdir()?;
    let admin = admin_url();
    let (name, url) = match &admin {
        Some(admin) => ("postgres", create_database(admin, DATABASE).await?),
        None => (
            "sqlite",
            format!("sqlite://{}/schedules.db", folder.path().display()),
        ),
    };
    println!(
        "machine: {} cores; store {name}; {schedules} schedules `* * * * *`; executors off",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let store = StoreConfig {
        database_url: url,
        pool_size: 16,
    };
    let mut serve = ServeConfig {
        listen: "127.0.0.1:0".parse()?,
        admin_email: Some(EMAIL.into()),
        admin_password: Some(PASSWORD.into()),
        ..ServeConfig::from_env()
    };
    serve.executor.executor_concurrency = 0;
    let app = App::build(&store, &serve).await?;
    let token = app
        .identity
        .password_grant(EMAIL, PASSWORD, Utc::now())
        .await?
        .access_token;
    let caller = app.identity.verify_token(&token, Utc::now())?;
    let seeded = std::time::Instant::now();
    seed_enabled(
        &app,
        caller.org_id,
        caller.user_id,
        "schedule",
        "on_schedule",
        schedules,
        |_| json!({"cron": "* * * * *"}),
    )
    .await?;
    println!(
        "seeded and enabled in {:.1} s\n",
        seeded.elapsed().as_secs_f64()
    );
    let store_handle = app.store.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));

    println!(
        "| slot | fired | lag p50 | lag p99 | lag max | engine CPU (cores, over the minute) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let mut after = store_handle.head().await?;
    // The first boundary may come while triggers are still being taken on: skip it.
    let first = next_minute(Utc::now()) + chrono::Duration::minutes(1);
    sleep_until(first - chrono::Duration::seconds(1)).await;
    for minute in 0..minutes {
        let slot = first + chrono::Duration::minutes(minute as i64);
        let cpu_before = cpu_seconds();
        let wall = std::time::Instant::now();
        sleep_until(slot + chrono::Duration::seconds(30)).await;
        let mut lags = Vec::with_capacity(schedules);
        loop {
            let events = store_handle.read_log(after, 5_000).await?;
            let Some(last) = events.last().map(|event| event.position) else {
                break;
            };
            after = last;
            for event in events {
                if let Some(RunEvent::RunRequested { firing, .. }) = event.run_event()? {
                    if firing.cause == (RunCause::ScheduleSlot { at: slot }) {
                        lags.push(
                            (event.recorded_at - slot).num_microseconds().unwrap_or(0) as f64
                                / 1_000.0,
                        );
                    }
                }
            }
        }
        sleep_until(slot + chrono::Duration::seconds(59)).await;
        let cores = (cpu_seconds() - cpu_before) / wall.elapsed().as_secs_f64();
        lags.sort_by(f64::total_cmp);
        let at = |q: f64| {
            lags.get(((lags.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        println!(
            "| {} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {cores:.2} |",
            slot.format("%H:%M"),
            lags.len(),
            at(0.5),
            at(0.99),
            lags.last().copied().unwrap_or(f64::NAN)
        );
    }
    let _ = stop.send(());
    server.await??;
    if let Some(admin) = &admin {
        drop_database(admin, DATABASE).await?;
    }
    Ok(())
}

fn next_minute(now: DateTime<Utc>) -> DateTime<Utc> {
    now.duration_trunc(chrono::Duration::minutes(1))
        .unwrap_or(now)
        + chrono::Duration::minutes(1)
}

async fn sleep_until(at: DateTime<Utc>) {
    if let Ok(wait) = (at - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
}
