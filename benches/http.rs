//! HTTP benchmarks for issue #3, printed as Markdown (copy into docs/benchmarks.md).
//!
//! `cargo bench --bench http` runs the engine in this process on 127.0.0.1 with 10,000 triggers in
//! its store (SQLite, and PostgreSQL when `BENCH_DATABASE_URL` or `TEST_DATABASE_URL` is set), and
//! drives it over loopback with `BENCH_CONCURRENCY` (default 32) keep-alive connections for
//! `BENCH_SECONDS` (default 10) per endpoint. The client's own ceiling is measured in the same run
//! against `GET /healthz`, which touches no store.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregates::{Actor, NewTrigger, TriggerAction, TriggerCommand};
use chrono::Utc;
use serde_json::json;
use support::{admin_url, create_database, drop_database, env_or};
use trigger_engine::app::App;
use trigger_engine::config::{ServeConfig, StoreConfig};
use uuid::Uuid;

const TRIGGERS: usize = 10_000;
const DATABASE: &str = "trigger_engine_bench_http";
const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "bench password";

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let window = Duration::from_secs(env_or("BENCH_SECONDS", 10));
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 32);
    let folder = tempfile::tempdir()?;
    let mut stores = vec![(
        "sqlite",
        format!("sqlite://{}/http.db", folder.path().display()),
    )];
    let admin = admin_url();
    if let Some(admin) = &admin {
        stores.push(("postgres", create_database(admin, DATABASE).await?));
    }
    println!(
        "machine: {} cores; {concurrency} connections, {} s per figure, {TRIGGERS} triggers in the store",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        window.as_secs()
    );
    for (name, url) in &stores {
        println!("\n## {name}\n");
        println!("| request | requests/s | p50 | p99 | errors |");
        println!("| --- | ---: | ---: | ---: | ---: |");
        bench_store(url, window, concurrency).await?;
    }
    if let Some(admin) = &admin {
        drop_database(admin, DATABASE).await?;
    }
    Ok(())
}

async fn bench_store(url: &str, window: Duration, concurrency: usize) -> anyhow::Result<()> {
    let store = StoreConfig {
        database_url: url.to_owned(),
        pool_size: 32,
    };
    // The per-organisation rate limit would cap the figures at its own rate: lift it.
    let unlimited = std::num::NonZeroU32::MAX;
    let serve = ServeConfig {
        listen: "127.0.0.1:0".parse()?,
        admin_email: Some(EMAIL.into()),
        admin_password: Some(PASSWORD.into()),
        api_rate_per_second: unlimited,
        api_burst: unlimited,
        ..ServeConfig::from_env()
    };
    let app = App::build(&store, &serve).await?;
    let base = format!("http://{}", app.local_addr());
    let token = app
        .identity
        .password_grant(EMAIL, PASSWORD, Utc::now())
        .await?
        .access_token;
    let caller = app.identity.verify_token(&token, Utc::now())?;
    let ids = seed(&app, caller.org_id, caller.user_id).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let ids = Arc::new(ids);
    let healthz = format!("{base}/healthz");
    report(
        "GET /healthz (client ceiling)",
        load(concurrency, window, {
            let client = client.clone();
            move |_| client.get(&healthz).send()
        })
        .await,
    );
    report(
        "GET /triggers/{id}",
        load(concurrency, window, {
            let (client, token, base, ids) =
                (client.clone(), token.clone(), base.clone(), ids.clone());
            move |n| {
                let id = ids[n % ids.len()];
                client
                    .get(format!("{base}/triggers/{id}"))
                    .bearer_auth(&token)
                    .send()
            }
        })
        .await,
    );
    report(
        "POST /projects/{id}/triggers",
        load(concurrency, window, {
            let (client, token, base) = (client.clone(), token.clone(), base.clone());
            move |n| {
                client
                    .post(format!("{base}/projects/bench-{}/triggers", n % 100))
                    .bearer_auth(&token)
                    .json(&json!({
                        "provider_id": "rss",
                        "trigger_id": "on_new_item",
                        "trigger_config": {"feed_url": "https://example.com/feed.xml"}
                    }))
                    .send()
            }
        })
        .await,
    );
    let _ = stop.send(());
    server.await??;
    Ok(())
}

/// Creates the triggers a busy organisation would have, through the command path.
async fn seed(app: &App, org_id: Uuid, user_id: Uuid) -> anyhow::Result<Vec<Uuid>> {
    let mut ids = Vec::with_capacity(TRIGGERS);
    let writers: Vec<_> = (0..16)
        .map(|writer| {
            let commands = app.commands.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                for n in (writer..TRIGGERS).step_by(16) {
                    let id = Uuid::new_v4();
                    let action = TriggerAction::CreateTrigger(NewTrigger {
                        project_trigger_id: id,
                        org_id,
                        project_id: format!("project-{}", n % 100),
                        connection_id: None,
                        provider_id: "rss".into(),
                        trigger_id: "on_new_item".into(),
                        trigger_config: Some(json!({"feed_url": "https://example.com/feed.xml"})),
                    });
                    let command = TriggerCommand::new(Utc::now(), Actor::User(user_id), action);
                    commands.execute(id, command, "bench-seed").await?;
                    mine.push(id);
                }
                anyhow::Ok(mine)
            })
        })
        .collect();
    for writer in writers {
        ids.extend(writer.await??);
    }
    let head = app.store.head().await?;
    app.projections
        .wait_for(head, Duration::from_secs(120))
        .await;
    Ok(ids)
}

struct Outcome {
    rate: f64,
    latencies_ms: Vec<f64>,
    errors: usize,
}

async fn load<F, Fut>(concurrency: usize, window: Duration, request: F) -> Outcome
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = reqwest::Result<reqwest::Response>> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (request, stop) = (request.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut latencies, mut errors, mut n) = (Vec::new(), 0, worker);
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    match request(n).await {
                        Ok(response) if response.status().is_success() => {
                            let _ = response.bytes().await;
                            latencies.push(sent.elapsed().as_secs_f64() * 1e3);
                        }
                        _ => errors += 1,
                    }
                    n += concurrency;
                }
                (latencies, errors)
            })
        })
        .collect();
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcome = Outcome {
        rate: 0.0,
        latencies_ms: Vec::new(),
        errors: 0,
    };
    for worker in workers {
        let (latencies, errors) = worker.await.expect("load worker");
        outcome.latencies_ms.extend(latencies);
        outcome.errors += errors;
    }
    outcome.rate = outcome.latencies_ms.len() as f64 / started.elapsed().as_secs_f64();
    outcome
}

fn report(name: &str, mut outcome: Outcome) {
    outcome.latencies_ms.sort_by(f64::total_cmp);
    let at = |q: f64| {
        outcome
            .latencies_ms
            .get(((outcome.latencies_ms.len().max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "| {name} | {:.0} | {:.2} ms | {:.2} ms | {} |",
        outcome.rate,
        at(0.5),
        at(0.99),
        outcome.errors
    );
}
