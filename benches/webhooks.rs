//! Webhook benchmarks for issue #4, printed as Markdown (copy into docs/benchmarks.md).
//!
//! `cargo bench --bench webhooks` runs on SQLite (a file in a temporary folder) and, when
//! `BENCH_DATABASE_URL` (or `TEST_DATABASE_URL`) is set, on PostgreSQL too, in databases created
//! for the run and dropped after it. `BENCH_SECONDS` (default 5) is each throughput window,
//! `BENCH_CONCURRENCIES` (default `8,16,32,64`) the client connections of the ingestion figures,
//! `BENCH_RUNS` (default 5000) the runs dispatched, `BENCH_EXECUTOR_CONCURRENCY` (default 16, the
//! engine's) the executor calls in flight, `BENCH_POOL_SIZE` (default 16, the engine's) each
//! engine's database connections. `BENCH_PHASES` (`webhooks`, `dispatch`; default both) and
//! `BENCH_STORES` (`sqlite`, `postgres`; default every one available) narrow a run.
//!
//! 1. Ingestion. The engine runs in this process on 127.0.0.1 with executors off and 1,000 enabled
//!    Stripe `on_customer_created` triggers, each with its own signing secret. A keep-alive client
//!    posts signed `customer.created` events with unique ids, spread over the 1,000 triggers and
//!    all to one hot trigger, in turn at each concurrency, and counts the 204s. Beside them, on
//!    the same database in the same run, the raw append ceiling of issue #2: single-row INSERT
//!    transactions of the row a delivery appends into a table shaped like `events` without the
//!    position counter.
//! 2. Where the time goes, at the concurrency that reached the best spread rate: `GET /healthz`
//!    (the client's own ceiling), a delivery to a disabled trigger (the read alone), a delivery of
//!    another event type (read, verify, parse: everything but the write), and `Runs::fire` called
//!    in process (the append and its projection, without HTTP or read).
//! 3. Dispatch. An engine without executors records `BENCH_RUNS` runs; a second engine on the same
//!    store then starts executors against a local receiver that answers 200 at once, and the
//!    figure is the time until every run shows `succeeded` in the run read model. Then the same
//!    with the built-in executor. Then bulk replay: `BENCH_RUNS` runs of 100 real triggers are
//!    dispatched, and one replay runs them all again as new runs; its throughput beside theirs.
//!    The ingestion's "another event type" and "forged delivery" figures each record an outcome
//!    for `explain` (the background writer's work is in the engine's CPU).
//!
//! The client signs each delivery as it sends it (HMAC-SHA256 over a body of under 1 KB); the cost
//! of that is measured and printed first, to show it is small beside a request.
//!
//! The client and the engine share the machine's cores. The engine runs on a runtime of its own
//! (threads named `bench-engine`), so each figure can say how many cores the client, the engine,
//! the database (PostgreSQL's processes, or SQLite's worker threads) and everything else kept
//! busy during its window, from `/proc`, and what CPU time one answer cost the engine and the
//! database: a figure the machine's noise moves less than a rate.

mod support;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregates::event::Stamp;
use aggregates::{
    Actor, Firing, NewTrigger, Replay, ReplayCommand, ReplayItem, ReplaySelection, ReplayState,
    Run, RunCause, RunCommand, RunStatus, TriggerAction, TriggerCommand,
};
use chrono::Utc;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::json;
use sha2::Sha256;
use sqlx::Connection;
use support::{create_database, create_raw_table, env_or};
use trigger_engine::app::App;
use trigger_engine::catalogue::Catalogue;
use trigger_engine::config::{ServeConfig, StoreConfig};
use trigger_engine::identity::Secret;
use trigger_engine::on_pool;
use trigger_engine::runs::Fired;
use trigger_engine::store::streams::EventMetadata;
use trigger_engine::store::Store;
use uuid::Uuid;

const TRIGGERS: usize = 1_000;
const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "bench password";
/// The writers issue #2 measured its raw ceiling with.
const CEILING_WRITERS: usize = 16;
const PHASES: [&str; 2] = ["webhooks", "dispatch"];

/// Thread names of the two runtimes: the engine runs on threads of its own, so that the CPU it
/// spends can be told from the client's (`/proc/self/task/*/comm`).
const ENGINE_THREADS: &str = "bench-engine";
const CLIENT_THREADS: &str = "bench-client";

fn main() -> anyhow::Result<()> {
    // The engine's own log on stderr when `RUST_LOG` asks for it (`RUST_LOG=warn`): errors the
    // figures would otherwise hide.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let engine = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(ENGINE_THREADS)
        .build()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(CLIENT_THREADS)
        .build()?
        .block_on(run(engine.handle().clone()))
}

/// What the run is set to measure, from the environment.
struct Settings {
    window: Duration,
    concurrencies: Vec<usize>,
    runs: usize,
    executor_concurrency: usize,
    pool_size: u32,
    /// The runtime engines run on.
    engine: tokio::runtime::Handle,
}

async fn run(engine: tokio::runtime::Handle) -> anyhow::Result<()> {
    let settings = Settings {
        window: Duration::from_secs(env_or("BENCH_SECONDS", 5)),
        concurrencies: std::env::var("BENCH_CONCURRENCIES")
            .ok()
            .map(|list| {
                list.split(',')
                    .filter_map(|c| c.trim().parse().ok())
                    .collect()
            })
            .filter(|list: &Vec<usize>| !list.is_empty())
            .unwrap_or_else(|| vec![8, 16, 32, 64]),
        runs: env_or("BENCH_RUNS", 5_000),
        executor_concurrency: env_or("BENCH_EXECUTOR_CONCURRENCY", 16),
        pool_size: env_or("BENCH_POOL_SIZE", 16),
        engine,
    };
    let folder = tempfile::tempdir()?;
    let mut stores = vec![("sqlite", BenchDb::Sqlite(folder.path().to_owned()))];
    if let Ok(url) =
        std::env::var("BENCH_DATABASE_URL").or_else(|_| std::env::var("TEST_DATABASE_URL"))
    {
        stores.push(("postgres", BenchDb::Postgres(url)));
    }
    println!(
        "machine: {}; {} s per figure, {TRIGGERS} triggers, client concurrencies {:?}, \
         engine pool {} connections",
        machine_note(),
        settings.window.as_secs(),
        settings.concurrencies,
        settings.pool_size
    );
    println!("{}", signing_cost());
    // `BENCH_PHASES` (default `webhooks,dispatch`) and `BENCH_STORES` (default every store
    // available) narrow a run to what is being worked on.
    let listed = |variable: &str| -> Option<Vec<String>> {
        std::env::var(variable)
            .ok()
            .map(|list| list.split(',').map(|item| item.trim().to_owned()).collect())
    };
    let phases = listed("BENCH_PHASES").unwrap_or_else(|| PHASES.map(String::from).to_vec());
    let chosen = listed("BENCH_STORES");
    for (name, db) in &stores {
        if chosen
            .as_ref()
            .is_some_and(|chosen| !chosen.iter().any(|store| store == name))
        {
            continue;
        }
        println!("\n## {name}\n");
        if phases.iter().any(|phase| phase == PHASES[0]) {
            ingestion(db, &settings).await?;
        }
        if phases.iter().any(|phase| phase == PHASES[1]) {
            dispatch(db, &settings).await?;
        }
        println!("\nafter {name}: {}", machine_note());
    }
    for (_, db) in &stores {
        db.drop_all().await;
    }
    Ok(())
}

/// Cores, load average, and other compilers at work: what shares the machine with the bench.
fn machine_note() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into());
    let compilers = std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| {
                    std::fs::read_to_string(entry.path().join("comm"))
                        .is_ok_and(|comm| comm.trim() == "rustc")
                })
                .count()
        })
        .unwrap_or(0);
    format!("{cores} cores, load average {load}, {compilers} rustc processes running")
}

enum BenchDb {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl BenchDb {
    fn name(phase: &str) -> String {
        format!("trigger_engine_bench_{phase}")
    }

    /// The URL of an empty database for `phase`.
    async fn fresh(&self, phase: &str) -> anyhow::Result<String> {
        Ok(match self {
            Self::Sqlite(folder) => format!("sqlite://{}/{phase}.db", folder.display()),
            Self::Postgres(url) => create_database(url, &Self::name(phase)).await?,
        })
    }

    async fn drop_all(&self) {
        if let Self::Postgres(url) = self {
            if let Ok(mut admin) = sqlx::PgConnection::connect(url).await {
                for phase in PHASES {
                    let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", Self::name(phase));
                    let _ = sqlx::query(&sql).execute(&mut admin).await;
                }
            }
        }
    }
}

/// An engine configured for measuring: limits lifted (they would be the figure measured),
/// `executors` calls in flight (0: none in this process), the executor at `executor_url` if any.
async fn engine(
    url: &str,
    settings: &Settings,
    executors: usize,
    executor_url: Option<String>,
) -> anyhow::Result<App> {
    engine_with(url, settings, executors, executor_url, |_| {}).await
}

/// Like [`engine`], with the configuration changed by `configure` last.
async fn engine_with(
    url: &str,
    settings: &Settings,
    executors: usize,
    executor_url: Option<String>,
    configure: impl FnOnce(&mut ServeConfig),
) -> anyhow::Result<App> {
    let store = StoreConfig {
        database_url: url.to_owned(),
        pool_size: settings.pool_size,
    };
    let unlimited = NonZeroU32::MAX;
    let mut serve = ServeConfig {
        listen: "127.0.0.1:0".parse()?,
        admin_email: Some(EMAIL.into()),
        admin_password: Some(PASSWORD.into()),
        api_rate_per_second: unlimited,
        api_burst: unlimited,
        webhook_rate_per_second: unlimited,
        webhook_burst: unlimited,
        ..ServeConfig::from_env()
    };
    serve.executor.executor_concurrency = executors;
    serve.executor.executor_secret = executor_url
        .is_some()
        .then(|| Secret::new("whsec_YmVuY2ggZXhlY3V0b3Igc2VjcmV0"));
    serve.executor.executor_url = executor_url;
    configure(&mut serve);
    // Built on the engine's runtime, so that the tasks it spawns (projector, appender,
    // executors) run there.
    settings
        .engine
        .spawn(async move { App::build(&store, &serve).await })
        .await?
}

/// Stops an engine that `run` was never called on: serves, and shuts down at once.
async fn stop(app: App, settings: &Settings) -> anyhow::Result<()> {
    settings.engine.spawn(app.run(async {})).await?
}

// ---------------------------------------------------------------------------------------------
// Stripe deliveries, signed as Stripe signs them.

fn stripe_signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Stripe events of one type, shaped as the catalogue's sample (770 bytes), each with its own id.
#[derive(Clone)]
struct Events {
    head: Arc<str>,
    tail: Arc<str>,
}

impl Events {
    fn of_type(event_type: &str) -> Self {
        const ID: &str = "EVENT-ID";
        let mut sample = Catalogue::builtin()
            .find("stripe", "on_customer_created")
            .expect("the catalogue has Stripe's customer.created")
            .sample_payload
            .clone();
        sample["id"] = ID.into();
        sample["type"] = event_type.into();
        let text = sample.to_string();
        let (head, tail) = text.split_once(ID).expect("the id is in the sample");
        Self {
            head: head.into(),
            tail: tail.into(),
        }
    }

    fn body(&self, id: &str) -> String {
        format!("{}{id}{}", self.head, self.tail)
    }
}

/// What signing a delivery on the fly costs the client, measured over 10,000 deliveries.
fn signing_cost() -> String {
    let events = Events::of_type("customer.created");
    let started = Instant::now();
    let mut length = 0;
    for n in 0..10_000 {
        let body = events.body(&format!("evt_cost_{n}"));
        length += stripe_signature("whsec_benchcost", Utc::now().timestamp(), &body).len();
        length += body.len();
    }
    let micros = started.elapsed().as_secs_f64() * 1e6 / 10_000.0;
    std::hint::black_box(length);
    format!(
        "client: signs each delivery as it sends it, {micros:.1} µs per delivery \
         ({} bytes a body)",
        events.body("evt_cost_0").len()
    )
}

/// The engine's webhook URL and signing secret of each trigger.
struct Endpoints {
    base: String,
    triggers: Vec<(String, String)>,
    disabled: String,
}

// ---------------------------------------------------------------------------------------------
// Where the CPU goes: on two shared cores, the client, the engine and the database compete.

/// CPU time so far, in clock ticks, by who spent it, and the machine's.
#[derive(Clone, Copy)]
struct Ticks {
    /// This process's threads other than the engine's: the load generator (and the receiver).
    client: u64,
    /// The engine runtime's threads: HTTP, verification, projector, appender, executors.
    engine: u64,
    /// PostgreSQL's shared processes and the bench's backends, or SQLite's worker threads in
    /// this process.
    database: u64,
    machine_busy: u64,
    machine_iowait: u64,
    machine_total: u64,
}

impl Ticks {
    fn now() -> Self {
        let mut ticks = Self {
            client: 0,
            engine: 0,
            database: 0,
            machine_busy: 0,
            machine_iowait: 0,
            machine_total: 0,
        };
        for (comm, (used, _)) in ticks_of_each("/proc/self/task") {
            if comm.starts_with(ENGINE_THREADS) {
                ticks.engine += used;
            } else if comm.starts_with("sqlx-sqlite") {
                ticks.database += used;
            } else {
                ticks.client += used;
            }
        }
        // PostgreSQL's shared processes (WAL writer, checkpointer...) and the backends serving the
        // bench's databases; backends serving anyone else's count as "other".
        ticks.database += ticks_of_each("/proc")
            .filter(|(comm, _)| comm == "postgres")
            .filter(|(_, (_, pid))| {
                let command = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let command = String::from_utf8_lossy(&command);
                let serves_a_client = command.contains("127.0.0.1(") || command.contains("[local]");
                !serves_a_client || command.contains("trigger_engine_bench_")
            })
            .map(|(_, (used, _))| used)
            .sum::<u64>();
        // user nice system idle iowait irq softirq steal (guest time is counted in user).
        let fields: Vec<u64> = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| stat.lines().next().map(str::to_owned))
            .map(|line| {
                line.split_whitespace()
                    .skip(1)
                    .take(8)
                    .filter_map(|field| field.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        ticks.machine_total = fields.iter().sum();
        ticks.machine_iowait = fields.get(4).copied().unwrap_or(0);
        ticks.machine_busy =
            ticks.machine_total - fields.get(3).copied().unwrap_or(0) - ticks.machine_iowait;
        ticks
    }

    /// The cores each party kept busy, on average, since `self`.
    fn until_now(self) -> CpuUse {
        let now = Self::now();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let ticks_per_core = now.machine_total.saturating_sub(self.machine_total) as f64 / cores;
        if ticks_per_core == 0.0 {
            return CpuUse::default();
        }
        let of = |before: u64, after: u64| after.saturating_sub(before) as f64 / ticks_per_core;
        let client = of(self.client, now.client);
        let engine = of(self.engine, now.engine);
        let database = of(self.database, now.database);
        let busy = of(self.machine_busy, now.machine_busy);
        let iowait = of(self.machine_iowait, now.machine_iowait);
        CpuUse {
            client,
            engine,
            database,
            other: (busy - client - engine - database).max(0.0),
            iowait,
            idle: (cores - busy - iowait).max(0.0),
        }
    }
}

/// `(comm, (user + system ticks, pid))` of each process or thread under `folder`.
fn ticks_of_each(folder: &str) -> impl Iterator<Item = (String, (u64, String))> {
    std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ...`: comm may hold spaces and parentheses, so split at the last.
            let (head, rest) = stat.rsplit_once(')')?;
            let comm = head.split_once('(')?.1.to_owned();
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let user: u64 = fields.get(11)?.parse().ok()?;
            let system: u64 = fields.get(12)?.parse().ok()?;
            Some((
                comm,
                (
                    user + system,
                    entry.file_name().to_string_lossy().into_owned(),
                ),
            ))
        })
}

/// Average cores busy over a window.
#[derive(Default, Clone, Copy)]
struct CpuUse {
    client: f64,
    engine: f64,
    database: f64,
    other: f64,
    /// Idle while some task waited for the disk.
    iowait: f64,
    idle: f64,
}

/// The Markdown columns these figures fill.
const CPU_COLUMNS: &str = "cores busy: client / engine / database / other; I/O wait / idle | \
                           CPU µs per answer: engine / database";

impl CpuUse {
    /// The cores busy, then the CPU time each answer cost the engine and the database.
    fn columns(&self, rate: f64) -> String {
        let per = |cores: f64| cores * 1e6 / rate;
        format!(
            "{:.2} / {:.2} / {:.2} / {:.2}; {:.2} / {:.2} | {:.0} / {:.0}",
            self.client,
            self.engine,
            self.database,
            self.other,
            self.iowait,
            self.idle,
            per(self.engine),
            per(self.database)
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The load generator.

struct Outcome {
    rate: f64,
    latencies_ms: Vec<f64>,
    errors: usize,
    cpu: CpuUse,
}

impl Outcome {
    fn at(&self, q: f64) -> f64 {
        self.latencies_ms
            .get(((self.latencies_ms.len().max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    }

    fn row(&self) -> String {
        format!(
            "{:.0} | {:.2} ms | {:.2} ms | {} | {}",
            self.rate,
            self.at(0.5),
            self.at(0.99),
            self.errors,
            self.cpu.columns(self.rate)
        )
    }
}

/// Runs `concurrency` workers for `window`, each awaiting `step(n)` in a loop with its own run of
/// `n`s (n, n + concurrency, ...); a step answers whether it was acknowledged as expected. Only
/// acknowledged steps count towards the rate and the latencies.
async fn load<F, Fut>(concurrency: usize, window: Duration, step: F) -> Outcome
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let ticks = Ticks::now();
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (step, stop) = (step.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut latencies, mut errors, mut n) = (Vec::new(), 0, worker);
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    if step(n).await {
                        latencies.push(sent.elapsed().as_secs_f64() * 1e3);
                    } else {
                        errors += 1;
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
        cpu: CpuUse::default(),
    };
    for worker in workers {
        let (latencies, errors) = worker.await.expect("load worker");
        outcome.latencies_ms.extend(latencies);
        outcome.errors += errors;
    }
    outcome.rate = outcome.latencies_ms.len() as f64 / started.elapsed().as_secs_f64();
    outcome.cpu = ticks.until_now();
    outcome.latencies_ms.sort_by(f64::total_cmp);
    outcome
}

/// Sends `request`; true when the answer has the `expected` status (its body read, so the
/// connection goes back to the pool).
async fn answered(request: reqwest::RequestBuilder, expected: StatusCode) -> bool {
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            response.bytes().await.is_ok() && status == expected
        }
        Err(_) => false,
    }
}

/// Signed deliveries of `events`, each with a unique id under `label`, to every trigger in turn
/// (`spread`) or to the first alone.
fn deliveries(
    client: &reqwest::Client,
    endpoints: &Arc<Endpoints>,
    events: &Events,
    label: &str,
    spread: bool,
) -> impl Fn(usize) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>
       + Send
       + Sync
       + Clone
       + 'static {
    let (client, endpoints, events) = (client.clone(), endpoints.clone(), events.clone());
    let label = label.to_owned();
    move |n| {
        let (url, secret) = &endpoints.triggers[if spread {
            n % endpoints.triggers.len()
        } else {
            0
        }];
        let body = events.body(&format!("evt_{label}_{n}"));
        let signature = stripe_signature(secret, Utc::now().timestamp(), &body);
        let request = client
            .post(url)
            .header("content-type", "application/json")
            .header("stripe-signature", signature)
            .body(body);
        Box::pin(answered(request, StatusCode::NO_CONTENT))
    }
}

// ---------------------------------------------------------------------------------------------
// 1 and 2: ingestion, and where its time goes.

async fn ingestion(db: &BenchDb, settings: &Settings) -> anyhow::Result<()> {
    let url = db.fresh(PHASES[0]).await?;
    let app = engine(&url, settings, 0, None).await?;
    let endpoints = Arc::new(seed(&app).await?);
    let runs = app.runs.clone();
    let store = app.store.clone();
    let (stop_serving, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = settings.engine.spawn(app.run(async {
        let _ = stopped.await;
    }));

    // The raw ceiling, on its own pool so that the engine's pool does not limit it, writing the
    // very row a delivery appends: its `RunRequested` event.
    let firing = firing_of(&endpoints, &store).await?;
    let row = Arc::new(serde_json::to_value(
        &Run::default().decide(RunCommand::Request {
            firing: firing.clone(),
            stamp: Stamp {
                at: Utc::now(),
                by: Actor::system("webhook"),
            },
            held: false,
        })?[0],
    )?);
    let widest = settings.concurrencies.iter().copied().max().unwrap_or(16);
    let raw_store = Arc::new(Store::connect(&url, widest.max(CEILING_WRITERS) as u32).await?);
    create_raw_table(&raw_store).await?;
    let mut raw = Vec::new();
    println!("| raw INSERT transactions | writers | /s | {CPU_COLUMNS} |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for &writers in &settings.concurrencies {
        let (rate, cpu) = raw_inserts(&raw_store, &row, writers, settings.window).await?;
        println!("| before | {writers} | {rate:.0} | {} |", cpu.columns(rate));
        raw.push((writers, rate));
    }
    let ceiling_before = match raw.iter().find(|(writers, _)| *writers == CEILING_WRITERS) {
        Some((_, rate)) => *rate,
        None => {
            raw_inserts(&raw_store, &row, CEILING_WRITERS, settings.window)
                .await?
                .0
        }
    };

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(widest)
        .build()?;
    let customer_created = Events::of_type("customer.created");
    let head_before = store.head().await?;
    let mut spread = Vec::new();
    let mut hot = Vec::new();
    // Spread and hot in turn at each concurrency, so that the machine's drift touches both alike.
    for &concurrency in &settings.concurrencies {
        let step = deliveries(
            &client,
            &endpoints,
            &customer_created,
            &format!("spread{concurrency}"),
            true,
        );
        spread.push(load(concurrency, settings.window, step).await);
        let step = deliveries(
            &client,
            &endpoints,
            &customer_created,
            &format!("hot{concurrency}"),
            false,
        );
        hot.push(load(concurrency, settings.window, step).await);
    }
    let (ceiling_after, cpu) =
        raw_inserts(&raw_store, &row, CEILING_WRITERS, settings.window).await?;
    println!(
        "| after | {CEILING_WRITERS} | {ceiling_after:.0} | {} |\n",
        cpu.columns(ceiling_after)
    );
    let ceiling = (ceiling_before + ceiling_after) / 2.0;

    println!(
        "raw ceiling (issue #2: single-row INSERT transactions/s, {CEILING_WRITERS} writers): \
         {ceiling_before:.0} before the webhook figures, {ceiling_after:.0} after; \
         mean **{ceiling:.0}/s**\n"
    );
    println!(
        "| deliveries | connections | acknowledged/s | p50 | p99 | errors | {CPU_COLUMNS} | \
         raw INSERT/s at the same concurrency | % of that | % of the ceiling |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (label, outcomes) in [("spread over 1,000", &spread), ("one hot trigger", &hot)] {
        for ((concurrency, outcome), (_, raw_rate)) in
            settings.concurrencies.iter().zip(outcomes).zip(&raw)
        {
            println!(
                "| {label} | {concurrency} | {} | {raw_rate:.0} | {:.0}% | {:.0}% |",
                outcome.row(),
                100.0 * outcome.rate / raw_rate,
                100.0 * outcome.rate / ceiling
            );
        }
    }

    // Every 204 of a new event id recorded one run: the log grew by exactly that many events.
    let acknowledged: usize = spread
        .iter()
        .chain(&hot)
        .map(|outcome| outcome.latencies_ms.len())
        .sum();
    let recorded = store.head().await? - head_before;
    println!(
        "\ncheck: {recorded} runs recorded for {acknowledged} acknowledged deliveries{}",
        if recorded as usize == acknowledged {
            ""
        } else {
            " (MISMATCH)"
        }
    );

    // Issue #4's goal: at least 40% of the ceiling, with p99 under 50 ms at a concurrency that
    // reaches it.
    for (label, outcomes) in [("spread", &spread), ("hot", &hot)] {
        let reaching = settings
            .concurrencies
            .iter()
            .zip(outcomes)
            .filter(|(_, outcome)| outcome.rate >= 0.4 * ceiling)
            .map(|(concurrency, outcome)| format!("{concurrency} ({:.2} ms p99)", outcome.at(0.99)))
            .collect::<Vec<_>>();
        let met = settings
            .concurrencies
            .iter()
            .zip(outcomes)
            .any(|(_, outcome)| outcome.rate >= 0.4 * ceiling && outcome.at(0.99) < 50.0);
        println!(
            "goal ({label}): 40% of the ceiling is {:.0}/s; reached at {}: {}",
            0.4 * ceiling,
            if reaching.is_empty() {
                "no concurrency".to_owned()
            } else {
                reaching.join(", ")
            },
            if met { "MET" } else { "NOT MET" }
        );
    }

    // Where the time goes, at the concurrency that reached the best spread rate.
    let (best, _) = settings
        .concurrencies
        .iter()
        .zip(&spread)
        .max_by(|(_, a), (_, b)| a.rate.total_cmp(&b.rate))
        .expect("at least one concurrency");
    let best = *best;
    let healthz = format!("{}/healthz", endpoints.base);
    let healthz = load(best, settings.window, {
        let client = client.clone();
        move |_| answered(client.get(&healthz), StatusCode::OK)
    })
    .await;
    let disabled = load(best, settings.window, {
        let (client, endpoints, events) =
            (client.clone(), endpoints.clone(), customer_created.clone());
        move |n| {
            let body = events.body(&format!("evt_disabled_{n}"));
            let signature = stripe_signature("whsec_benchdisabled", Utc::now().timestamp(), &body);
            let request = client
                .post(&endpoints.disabled)
                .header("content-type", "application/json")
                .header("stripe-signature", signature)
                .body(body);
            answered(request, StatusCode::NOT_FOUND)
        }
    })
    .await;
    // The same engine on the same store with outcome recording off (`TRIGGER_ENGINE_OUTCOME_QUEUE`
    // 0), serving beside it: what recording costs the deliveries that record one.
    let unrecorded = engine_with(&url, settings, 0, None, |serve| serve.outcome_queue = 0).await?;
    let unrecorded_base = format!("http://{}", unrecorded.local_addr());
    let unrecorded_endpoints = Arc::new(Endpoints {
        base: unrecorded_base.clone(),
        triggers: endpoints
            .triggers
            .iter()
            .map(|(url, secret)| {
                (
                    url.replacen(&endpoints.base, &unrecorded_base, 1),
                    secret.clone(),
                )
            })
            .collect(),
        disabled: endpoints
            .disabled
            .replacen(&endpoints.base, &unrecorded_base, 1),
    });
    let (stop_unrecorded, unrecorded_stopped) = tokio::sync::oneshot::channel::<()>();
    let unrecorded_server = settings.engine.spawn(unrecorded.run(async {
        let _ = unrecorded_stopped.await;
    }));
    let ignored_to = |endpoints: &Arc<Endpoints>| {
        deliveries(
            &client,
            endpoints,
            &Events::of_type("customer.updated"),
            "ignored",
            true,
        )
    };
    // A flood of forged deliveries: read, verify (fails), 401; each leaves a `rejected` outcome
    // for `explain`, queued for the background writer.
    let forged_to = |endpoints: &Arc<Endpoints>| {
        let (client, endpoints, events) =
            (client.clone(), endpoints.clone(), customer_created.clone());
        move |n: usize| {
            let (url, _) = &endpoints.triggers[n % endpoints.triggers.len()];
            let body = events.body(&format!("evt_forged_{n}"));
            let signature = stripe_signature("whsec_forged", Utc::now().timestamp(), &body);
            let request = client
                .post(url)
                .header("content-type", "application/json")
                .header("stripe-signature", signature)
                .body(body);
            answered(request, StatusCode::UNAUTHORIZED)
        }
    };
    let ignored = load(best, settings.window, ignored_to(&endpoints)).await;
    let ignored_off = load(best, settings.window, ignored_to(&unrecorded_endpoints)).await;
    let forged = load(best, settings.window, forged_to(&endpoints)).await;
    let forged_off = load(best, settings.window, forged_to(&unrecorded_endpoints)).await;
    let _ = stop_unrecorded.send(());
    unrecorded_server.await??;
    let head_before_fire = store.head().await?;
    let fired = load(best, settings.window, {
        move |n| {
            let (runs, mut firing) = (runs.clone(), firing.clone());
            async move {
                firing.cause = RunCause::Delivery {
                    key: format!("evt_inprocess_{n}"),
                };
                let stamp = Stamp {
                    at: Utc::now(),
                    by: Actor::system("webhook"),
                };
                matches!(
                    runs.fire(firing, stamp, false, "bench").await,
                    Ok(Fired::New { .. })
                )
            }
        }
    })
    .await;
    let fired_recorded = store.head().await? - head_before_fire;
    let spread_best = &spread[settings
        .concurrencies
        .iter()
        .position(|c| *c == best)
        .expect("best is one of them")];
    println!("\nwhere the time goes, at {best} connections:\n");
    println!("| request | answered/s | p50 | p99 | errors | {CPU_COLUMNS} |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    println!("| `GET /healthz` (client ceiling) | {} |", healthz.row());
    println!(
        "| delivery to a disabled trigger (404: read only) | {} |",
        disabled.row()
    );
    println!(
        "| delivery of another event type (204: read, verify, parse; an `ignored` outcome recorded) | {} |",
        ignored.row()
    );
    println!(
        "| the same, outcome recording off | {} |",
        ignored_off.row()
    );
    println!(
        "| forged delivery (401: read, verify; a `rejected` outcome recorded) | {} |",
        forged.row()
    );
    println!("| the same, outcome recording off | {} |", forged_off.row());
    println!(
        "outcome recording on / off: another event type {:.2}, forged {:.2}",
        ignored.rate / ignored_off.rate,
        forged.rate / forged_off.rate
    );
    println!(
        "| delivery that fires (204: read, verify, parse, append) | {} |",
        spread_best.row()
    );
    println!(
        "| `Runs::fire` in process (the append alone, no HTTP; {fired_recorded} recorded) | {} |",
        fired.row()
    );

    let _ = stop_serving.send(());
    server.await??;
    raw_store.close().await;
    Ok(())
}

/// Creates and enables the 1,000 Stripe triggers through the command path (16 writers), and one
/// left disabled; waits until the read model shows them.
async fn seed(app: &App) -> anyhow::Result<Endpoints> {
    let token = app
        .identity
        .password_grant(EMAIL, PASSWORD, Utc::now())
        .await?
        .access_token;
    let caller = app.identity.verify_token(&token, Utc::now())?;
    let (org_id, user_id) = (caller.org_id, caller.user_id);
    let base = format!("http://{}", app.local_addr());
    let writers: Vec<_> = (0..16)
        .map(|writer| {
            let (commands, base) = (app.commands.clone(), base.clone());
            tokio::spawn(async move {
                let mut mine = Vec::new();
                for n in (writer..=TRIGGERS).step_by(16) {
                    let id = Uuid::new_v4();
                    let secret = format!("whsec_bench{n:04}secret");
                    let create = TriggerAction::CreateTrigger(NewTrigger {
                        project_trigger_id: id,
                        org_id,
                        project_id: format!("project-{}", n % 100),
                        connection_id: None,
                        provider_id: "stripe".into(),
                        trigger_id: "on_customer_created".into(),
                        trigger_config: Some(json!({"signing_secret": secret})),
                    });
                    let by = Actor::User(user_id);
                    let command = TriggerCommand::new(Utc::now(), by.clone(), create);
                    commands.execute(id, command, "bench-seed").await?;
                    // The last one stays disabled: deliveries to it are read and refused.
                    if n < TRIGGERS {
                        let enable =
                            TriggerCommand::new(Utc::now(), by, TriggerAction::EnableTrigger);
                        commands.execute(id, enable, "bench-seed").await?;
                    }
                    mine.push((n, format!("{base}/v1/webhooks/{id}"), secret));
                }
                anyhow::Ok(mine)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(TRIGGERS + 1);
    for writer in writers {
        all.extend(writer.await??);
    }
    all.sort_by_key(|(n, _, _)| *n);
    let (_, disabled, _) = all.pop().expect("the disabled trigger");
    let head = app.store.head().await?;
    anyhow::ensure!(
        app.projections
            .wait_for(head, Duration::from_secs(120))
            .await,
        "the read model did not catch up with the seeded triggers"
    );
    Ok(Endpoints {
        base,
        triggers: all
            .into_iter()
            .map(|(_, url, secret)| (url, secret))
            .collect(),
        disabled,
    })
}

/// A firing as the webhook handler records it for the first trigger, for `Runs::fire` in process.
async fn firing_of(endpoints: &Endpoints, store: &Store) -> anyhow::Result<Firing> {
    let id = endpoints.triggers[0]
        .0
        .rsplit_once('/')
        .and_then(|(_, id)| Uuid::parse_str(id).ok())
        .expect("a trigger URL ends with its id");
    let record = store
        .trigger_view(id)
        .await?
        .expect("the seeded trigger")
        .record;
    let events = Events::of_type("customer.created");
    Ok(Firing {
        project_trigger_id: id,
        org_id: record.org_id,
        project_id: record.project_id,
        provider_id: record.provider_id,
        trigger_id: record.trigger_id,
        cause: RunCause::Delivery { key: String::new() },
        payload: serde_json::from_str(&events.body("evt_inprocess"))?,
        received_at: Utc::now(),
    })
}

// ---------------------------------------------------------------------------------------------
// The raw ceiling, as benches/store.rs measures it for issue #2.

/// Single-row INSERT transactions of `payload` per second from `writers` tasks, each on its own
/// stream.
async fn raw_inserts(
    store: &Arc<Store>,
    payload: &Arc<serde_json::Value>,
    writers: usize,
    window: Duration,
) -> anyhow::Result<(f64, CpuUse)> {
    let run = Uuid::new_v4();
    let metadata = Arc::new(json!({
        "actor": "system:webhook", "org_id": Uuid::nil().to_string(), "request_id": "bench"
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let ticks = Ticks::now();
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let (store, stop, done) = (store.clone(), stop.clone(), done.clone());
            let (payload, metadata) = (payload.clone(), metadata.clone());
            tokio::spawn(async move {
                let id = format!("{run}-{writer}");
                let mut sequence = 0_i64;
                while !stop.load(Ordering::Relaxed) {
                    sequence += 1;
                    on_pool!(&*store, |pool| {
                        let mut tx = pool.begin().await?;
                        sqlx::query(
                            "INSERT INTO raw_events (aggregate_type, aggregate_id, sequence,
                               event_type, event_version, payload, metadata)
                             VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        )
                        .bind("run")
                        .bind(&id)
                        .bind(sequence)
                        .bind("RunRequested")
                        .bind("1")
                        .bind(&*payload)
                        .bind(&*metadata)
                        .execute(&mut *tx)
                        .await?;
                        tx.commit().await
                    })?;
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
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    Ok((rate, ticks.until_now()))
}

// ---------------------------------------------------------------------------------------------
// 3: dispatch.

async fn dispatch(db: &BenchDb, settings: &Settings) -> anyhow::Result<()> {
    let url = db.fresh(PHASES[1]).await?;
    // The process that receives webhooks, with no executor of its own.
    let recorder = engine(&url, settings, 0, None).await?;
    let receiver = Receiver::start().await?;
    println!(
        "\n| dispatch of {} runs | executor calls in flight | seconds | runs/s | calls received \
         | {CPU_COLUMNS} |",
        settings.runs
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (label, executor_url) in [
        (
            "HTTP executor (local receiver, 200 at once)",
            Some(receiver.url.clone()),
        ),
        ("built-in executor", None),
    ] {
        let nowhere: Arc<Vec<Uuid>> = Arc::new((0..100).map(|_| Uuid::new_v4()).collect());
        record_runs(&recorder, settings.runs, label, Uuid::new_v4(), nowhere).await?;
        let succeeded_before = succeeded(&recorder.store).await?;
        let calls_before = receiver.calls.load(Ordering::Relaxed);
        let executor = engine(&url, settings, settings.executor_concurrency, executor_url).await?;
        let ticks = Ticks::now();
        let started = Instant::now();
        let target = succeeded_before + settings.runs as i64;
        let limit = Duration::from_secs(600);
        let mut done = succeeded_before;
        while done < target && started.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(50)).await;
            done = succeeded(&recorder.store).await?;
        }
        let seconds = started.elapsed().as_secs_f64();
        let cpu = ticks.until_now();
        stop(executor, settings).await?;
        let finished = done - succeeded_before;
        println!(
            "| {label} | {} | {seconds:.1} | {:.0}{} | {} | {} |",
            settings.executor_concurrency,
            finished as f64 / seconds,
            if done < target {
                format!(" ({finished} of {} in the limit)", settings.runs)
            } else {
                String::new()
            },
            receiver.calls.load(Ordering::Relaxed) - calls_before,
            cpu.columns(finished as f64 / seconds)
        );
    }
    replay(&url, &recorder, &receiver, settings).await?;
    stop(recorder, settings).await?;
    Ok(())
}

/// Bulk replay's throughput: `BENCH_RUNS` runs of 100 real triggers are dispatched (the figure to
/// compare with), then one replay runs every one of them again as a new run, through the
/// replayers of the executor engine, at its pace (`BENCH_EXECUTOR_CONCURRENCY` unfinished runs
/// of the replay at a time). Timed from the replay's request until its read model says finished.
async fn replay(
    url: &str,
    recorder: &App,
    receiver: &Receiver,
    settings: &Settings,
) -> anyhow::Result<()> {
    let org_id = Uuid::new_v4();
    let triggers: Vec<Uuid> = (0..100).map(|_| Uuid::new_v4()).collect();
    for id in &triggers {
        let create = TriggerAction::CreateTrigger(NewTrigger {
            project_trigger_id: *id,
            org_id,
            project_id: "project-replayed".into(),
            connection_id: None,
            provider_id: "stripe".into(),
            trigger_id: "on_customer_created".into(),
            trigger_config: Some(json!({"signing_secret": "whsec_benchreplay"})),
        });
        let by = Actor::system("bench");
        let command = TriggerCommand::new(Utc::now(), by.clone(), create);
        recorder
            .commands
            .execute(*id, command, "bench-seed")
            .await?;
        let enable = TriggerCommand::new(Utc::now(), by, TriggerAction::EnableTrigger);
        recorder.commands.execute(*id, enable, "bench-seed").await?;
    }
    let originals = record_runs(
        recorder,
        settings.runs,
        "replayed",
        org_id,
        Arc::new(triggers),
    )
    .await?;
    let before = succeeded(&recorder.store).await?;
    let executor = engine(
        url,
        settings,
        settings.executor_concurrency,
        Some(receiver.url.clone()),
    )
    .await?;
    let limit = Duration::from_secs(600);
    let started = Instant::now();
    let target = before + settings.runs as i64;
    while succeeded(&recorder.store).await? < target && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dispatch_seconds = started.elapsed().as_secs_f64();

    let replay_id = Uuid::new_v4();
    let items = originals
        .iter()
        .map(|(run_id, trigger)| ReplayItem {
            run_id: *run_id,
            project_trigger_id: *trigger,
            rerun: true,
        })
        .collect();
    let events = Replay::default().decide(ReplayCommand::Request {
        replay_id,
        org_id,
        selection: ReplaySelection {
            statuses: vec![RunStatus::Succeeded],
            ..ReplaySelection::default()
        },
        items,
        stamp: Stamp {
            at: Utc::now(),
            by: Actor::system("bench"),
        },
    })?;
    let metadata = EventMetadata {
        actor: Actor::system("bench"),
        org_id,
        request_id: "bench-replay".into(),
    };
    let ticks = Ticks::now();
    let started = Instant::now();
    recorder
        .store
        .append::<Replay>(replay_id, 0, &events, &metadata)
        .await?;
    recorder.projections.wake();
    let mut view = None;
    while started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(50)).await;
        view = recorder.store.replay_view(replay_id).await?;
        if view
            .as_ref()
            .is_some_and(|view| view.state == ReplayState::Finished)
        {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = ticks.until_now();
    stop(executor, settings).await?;
    let (done, succeeded_runs) = view.map_or((0, 0), |view| (view.done(), view.succeeded));
    println!(
        "
| replay of {} succeeded runs (each run again as a new run) | executor calls in flight | seconds | runs/s | succeeded | {CPU_COLUMNS} |",
        settings.runs
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| their first dispatch (HTTP executor, same run) | {} | {dispatch_seconds:.1} | {:.0} | {} | |",
        settings.executor_concurrency,
        settings.runs as f64 / dispatch_seconds,
        settings.runs
    );
    println!(
        "| the replay | {} | {seconds:.1} | {:.0} | {succeeded_runs} of {done} done | {} |",
        settings.executor_concurrency,
        done as f64 / seconds,
        cpu.columns(done as f64 / seconds)
    );
    println!(
        "replay / dispatch throughput: {:.2}",
        (done as f64 / seconds) / (settings.runs as f64 / dispatch_seconds)
    );
    Ok(())
}

/// Records `count` runs as webhooks would (16 at a time, spread over 100 triggers' ids), and waits
/// until the run read model shows them.
async fn record_runs(
    app: &App,
    count: usize,
    label: &str,
    org_id: Uuid,
    triggers: Arc<Vec<Uuid>>,
) -> anyhow::Result<Vec<(Uuid, Uuid)>> {
    let events = Events::of_type("customer.created");
    let payload: serde_json::Value = serde_json::from_str(&events.body("evt_dispatch"))?;
    let label = label.to_owned();
    let writers: Vec<_> = (0..16)
        .map(|writer| {
            let (runs, payload, triggers, label) = (
                app.runs.clone(),
                payload.clone(),
                triggers.clone(),
                label.clone(),
            );
            tokio::spawn(async move {
                let mut recorded = Vec::new();
                for n in (writer..count).step_by(16) {
                    let firing = Firing {
                        project_trigger_id: triggers[n % triggers.len()],
                        org_id,
                        project_id: format!("project-{}", n % 10),
                        provider_id: "stripe".into(),
                        trigger_id: "on_customer_created".into(),
                        cause: RunCause::Delivery {
                            key: format!("evt_{label}_{n}"),
                        },
                        payload: payload.clone(),
                        received_at: Utc::now(),
                    };
                    let stamp = Stamp {
                        at: Utc::now(),
                        by: Actor::system("webhook"),
                    };
                    let trigger = firing.project_trigger_id;
                    let fired = runs.fire(firing, stamp, false, "bench-seed").await?;
                    anyhow::ensure!(matches!(fired, Fired::New { .. }), "a new run");
                    recorded.push((fired.run_id(), trigger));
                }
                anyhow::Ok(recorded)
            })
        })
        .collect();
    let mut recorded = Vec::with_capacity(count);
    for writer in writers {
        recorded.extend(writer.await??);
    }
    let head = app.store.head().await?;
    anyhow::ensure!(
        app.projections
            .wait_for(head, Duration::from_secs(120))
            .await,
        "the run read model did not catch up with the recorded runs"
    );
    Ok(recorded)
}

async fn succeeded(store: &Store) -> anyhow::Result<i64> {
    let count: i64 = on_pool!(store, |pool| sqlx::query_scalar(
        "SELECT COUNT(*) FROM run_view WHERE status = 'succeeded'"
    )
    .fetch_one(pool)
    .await)?;
    Ok(count)
}

/// A project executor that answers 200 at once, counting the calls.
struct Receiver {
    url: String,
    calls: Arc<AtomicU64>,
}

impl Receiver {
    async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!(
            "http://{}/projects/{{project_id}}/run",
            listener.local_addr()?
        );
        let calls = Arc::new(AtomicU64::new(0));
        let counted = calls.clone();
        let app = axum::Router::new().route(
            "/projects/{project}/run",
            axum::routing::post(move || {
                counted.fetch_add(1, Ordering::Relaxed);
                async { StatusCode::OK }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { url, calls })
    }
}
