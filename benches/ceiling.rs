//! Issue 14's benchmark: the engine beside the disk's limit, in one sitting, printed as Markdown
//! (copy into docs/benchmarks.md).
//!
//! `TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench ceiling`
//! (or `BENCH_DATABASE_URL`; PostgreSQL is required, as pgbench is the reference). In a database
//! created for the run and dropped after it:
//!
//! 1. The ceiling: `pgbench`, one INSERT per transaction into `ceiling_events`, a table of the
//!    `events` table's shape (its columns, defaults and indexes), of the very row a delivery
//!    appends (copied from the log after one real delivery), at each client count.
//! 2. The engine: the real binary (`trigger-engine serve`, this build's), executors off, 100
//!    generic webhook triggers, driven by a load generator in a separate process (this bench
//!    binary run as one) over keep-alive connections, each request with its own
//!    `Idempotency-Key`, spread over the triggers. Figures: acknowledged deliveries a second,
//!    latency percentiles, and CPU per acknowledgement of the engine, of PostgreSQL (every
//!    `postgres` process) and of the load generator, from `/proc`. The window ends when the read
//!    models have caught up with the log, so projecting is in the engine's figure.
//! 3. Reads at 32 connections: `GET /healthz` and `GET /triggers/{id}` (bearer token).
//! 4. The ceiling again, so drift during the run shows; ratios use the mean of both.
//! 5. SQLite: the same ingest against the engine on an SQLite file.
//!
//! `BENCH_SECONDS` (default 10) is each window; `BENCH_CONCURRENCIES` (default `16,64`) the
//! client counts of pgbench and of ingest; `BENCH_STORES` (`postgres`, `sqlite`) narrows a run.
//! `BENCH_PERF=<folder>` records a `perf` profile of the engine through each window (e.g.
//! `postgres-ingest-64.data`; `perf report -i <file> --no-children`).

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use support::{create_database, drop_database, env_or, ticks_of, TICKS_PER_SECOND};
use tokio::process::{Child, Command};

const ADMIN_EMAIL: &str = "bench@localhost";
const ADMIN_PASSWORD: &str = "bench-password-1";
const TRIGGERS: usize = 100;
const READ_CONNECTIONS: usize = 32;
/// Requests before this much of a window has passed open the connections and are not counted.
const WARM_UP: Duration = Duration::from_secs(1);

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Ok(spec) = std::env::var("CEILING_LOADGEN") {
        let spec: LoadSpec = serde_json::from_str(&spec).context("CEILING_LOADGEN")?;
        let report = runtime.block_on(generate(spec))?;
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    runtime.block_on(run())
}

// ---------------------------------------------------------------------------------------------
// The load generator, in its own process.

#[derive(Serialize, Deserialize)]
struct LoadSpec {
    /// `post` (a JSON body, a fresh `Idempotency-Key` each) or `get`.
    method: String,
    urls: Vec<String>,
    connections: usize,
    seconds: f64,
    bearer: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct LoadReport {
    ok: u64,
    failed: u64,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_seconds: f64,
}

async fn generate(spec: LoadSpec) -> anyhow::Result<LoadReport> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(spec.connections)
        .tcp_nodelay(true)
        .build()?;
    let spec = Arc::new(spec);
    let started = Instant::now();
    let counted_from = started + WARM_UP;
    let until = counted_from + Duration::from_secs_f64(spec.seconds);
    let tasks: Vec<_> = (0..spec.connections)
        .map(|connection| {
            let (http, spec) = (http.clone(), spec.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let (mut ok, mut failed) = (0_u64, 0_u64);
                let mut n = connection;
                loop {
                    let sent = Instant::now();
                    if sent >= until {
                        break;
                    }
                    let url = &spec.urls[n % spec.urls.len()];
                    n += spec.connections;
                    let request = if spec.method == "post" {
                        http.post(url)
                            .header("idempotency-key", uuid::Uuid::new_v4().to_string())
                            .json(&json!({"event": "order.paid", "n": n, "amount": 4200,
                                          "customer": {"id": "cus_bench", "email": "bench@example.com"}}))
                    } else {
                        http.get(url)
                    };
                    let request = match &spec.bearer {
                        Some(token) => request.bearer_auth(token),
                        None => request,
                    };
                    let answered = request
                        .send()
                        .await
                        .is_ok_and(|response| response.status().is_success());
                    if sent < counted_from {
                        continue;
                    }
                    latencies.push(sent.elapsed().as_micros() as u32);
                    if answered {
                        ok += 1;
                    } else {
                        failed += 1;
                    }
                }
                (latencies, ok, failed)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let (mut ok, mut failed) = (0, 0);
    for task in tasks {
        let (mut mine, o, f) = task.await?;
        latencies.append(&mut mine);
        ok += o;
        failed += f;
    }
    latencies.sort_unstable();
    let at = |quantile: f64| {
        latencies
            .get(((latencies.len() as f64 * quantile) as usize).min(latencies.len().max(1) - 1))
            .map_or(0.0, |micros| f64::from(*micros) / 1000.0)
    };
    Ok(LoadReport {
        ok,
        failed,
        seconds: spec.seconds,
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        cpu_seconds: support::cpu_seconds(),
    })
}

/// Runs the load generator as a separate process: this bench binary, told by its environment.
async fn load(spec: &LoadSpec) -> anyhow::Result<LoadReport> {
    let output = Command::new(std::env::current_exe()?)
        .env("CEILING_LOADGEN", serde_json::to_string(spec)?)
        .stderr(Stdio::inherit())
        .output()
        .await?;
    anyhow::ensure!(output.status.success(), "the load generator failed");
    let line = String::from_utf8(output.stdout)?;
    serde_json::from_str(line.trim()).context("the load generator's report")
}

// ---------------------------------------------------------------------------------------------
// CPU from /proc.

/// Ticks of every process named `postgres`, by pid (backends come and go; compare per pid).
fn postgres_ticks() -> HashMap<u32, u64> {
    let mut ticks = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "postgres" {
            ticks.insert(pid, ticks_of(pid));
        }
    }
    ticks
}

/// CPU seconds of the engine and of PostgreSQL since [`Cpu::now`].
struct Cpu {
    engine_pid: u32,
    engine: u64,
    postgres: HashMap<u32, u64>,
}

impl Cpu {
    fn now(engine_pid: u32) -> Self {
        Self {
            engine_pid,
            engine: ticks_of(engine_pid),
            postgres: postgres_ticks(),
        }
    }

    fn since(&self) -> (f64, f64) {
        let engine = ticks_of(self.engine_pid).saturating_sub(self.engine);
        let postgres: u64 = postgres_ticks()
            .iter()
            .map(|(pid, now)| now.saturating_sub(*self.postgres.get(pid).unwrap_or(&0)))
            .sum();
        (
            engine as f64 / TICKS_PER_SECOND,
            postgres as f64 / TICKS_PER_SECOND,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The engine, as a child process.

struct Engine {
    child: Child,
    address: String,
    http: reqwest::Client,
    token: String,
}

impl Engine {
    async fn start(database_url: &str) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let unlimited = "1000000000".to_owned();
        let child = Command::new(env!("CARGO_BIN_EXE_trigger-engine"))
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("TRIGGER_ENGINE_LISTEN", format!("127.0.0.1:{port}"))
            .env("TRIGGER_ENGINE_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("TRIGGER_ENGINE_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("TRIGGER_ENGINE_EXECUTOR_CONCURRENCY", "0")
            .env("TRIGGER_ENGINE_POLLING", "false")
            // The bench measures the engine's work, not its limits on senders.
            .env("TRIGGER_ENGINE_API_RATE_PER_SECOND", &unlimited)
            .env("TRIGGER_ENGINE_API_BURST", &unlimited)
            .env("TRIGGER_ENGINE_WEBHOOK_RATE_PER_SECOND", &unlimited)
            .env("TRIGGER_ENGINE_WEBHOOK_BURST", &unlimited)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting trigger-engine serve")?;
        let address = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let answered = http.get(format!("{address}/readyz")).send().await;
            if matches!(&answered, Ok(response) if response.status().is_success()) {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "the engine did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let token: Value = http
            .post(format!("{address}/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", ADMIN_EMAIL),
                ("password", ADMIN_PASSWORD),
            ])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let token = token["access_token"]
            .as_str()
            .context("an access token")?
            .to_owned();
        Ok(Self {
            child,
            address,
            http,
            token,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Creates and enables `n` generic webhook triggers; returns their ids.
    async fn webhook_triggers(&self, n: usize) -> anyhow::Result<Vec<String>> {
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            let created: Value = self
                .http
                .post(format!("{}/projects/bench/triggers", self.address))
                .bearer_auth(&self.token)
                .json(
                    &json!({"provider_id": "webhook", "trigger_id": "on_request",
                              "trigger_config": {}}),
                )
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let id = created["project_trigger_id"]
                .as_str()
                .context("a trigger id")?
                .to_owned();
            self.http
                .post(format!("{}/triggers/{id}/enable", self.address))
                .bearer_auth(&self.token)
                .send()
                .await?
                .error_for_status()?;
            ids.push(id);
        }
        Ok(ids)
    }

    /// Waits until every read model has folded the whole log (`/metrics`' projection lag).
    async fn caught_up(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let metrics = self
                .http
                .get(format!("{}/metrics", self.address))
                .send()
                .await?
                .text()
                .await?;
            let behind = metrics
                .lines()
                .filter(|line| line.starts_with("trigger_engine_projection_lag{"))
                .any(|line| !line.ends_with(" 0"));
            if !behind {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the read models did not catch up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One ingest (or read) window: the load generator's report and the CPU it cost.
    /// `label` names the window's profile when `BENCH_PERF` is set.
    async fn window(&self, label: &str, spec: &LoadSpec) -> anyhow::Result<Figure> {
        self.caught_up().await?;
        let cpu = Cpu::now(self.pid());
        let profile = profile(self.pid(), label, spec.seconds)?;
        let report = load(spec).await?;
        if let Some(mut perf) = profile {
            perf.wait().await?;
        }
        self.caught_up().await?;
        let (engine, postgres) = cpu.since();
        Ok(Figure {
            report,
            engine,
            postgres,
        })
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            // SIGTERM: a clean stop, as an operator's would be.
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context("the engine did not stop")??;
        Ok(())
    }
}

/// With `BENCH_PERF=<folder>`, a `perf record` of the engine through the window's counted part,
/// into `<folder>/<label>.data` (read with `perf report -i`).
fn profile(pid: u32, label: &str, seconds: f64) -> anyhow::Result<Option<Child>> {
    let Some(folder) = std::env::var_os("BENCH_PERF") else {
        return Ok(None);
    };
    let file: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let output = std::path::Path::new(&folder).join(format!("{file}.data"));
    let perf = Command::new("perf")
        .args(["record", "--quiet", "-F", "499", "-g", "-p"])
        .arg(pid.to_string())
        .arg("-o")
        .arg(output)
        .arg("--")
        .arg("sleep")
        .arg(format!("{}", WARM_UP.as_secs_f64() + seconds))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("running perf (linux-perf)")?;
    Ok(Some(perf))
}

struct Figure {
    report: LoadReport,
    engine: f64,
    postgres: f64,
}

impl Figure {
    fn rate(&self) -> f64 {
        self.report.ok as f64 / self.report.seconds
    }

    /// CPU µs per answer of the engine, the database and the load generator.
    fn per_answer(&self) -> (f64, f64, f64) {
        let answers = (self.report.ok + self.report.failed).max(1) as f64;
        (
            self.engine * 1e6 / answers,
            self.postgres * 1e6 / answers,
            self.report.cpu_seconds * 1e6 / answers,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// pgbench.

/// Writes the pgbench script that inserts `row` into `ceiling_events`, one per transaction.
fn ceiling_script(row: &TemplateRow) -> anyhow::Result<tempfile::NamedTempFile> {
    let quote = |text: &str| text.replace('\'', "''");
    // pgbench takes `:name` for a variable, even `:58` in a time. PostgreSQL writes jsonb with a
    // space after each key's colon, so any other colon is in a string, where JSON's own escape
    // stores the same text.
    let json = |text: &str| quote(&escape_colons(text));
    let mut script = tempfile::NamedTempFile::new()?;
    writeln!(
        script,
        "INSERT INTO ceiling_events (aggregate_type, aggregate_id, sequence, event_type, \
         event_version, payload, metadata, position, recorded_at, hash) VALUES ('{}', \
         CAST(gen_random_uuid() AS text), 1, '{}', '{}', '{}', '{}', nextval('ceiling_position'), \
         clock_timestamp(), '\\x{}');",
        quote(&row.aggregate_type),
        quote(&row.event_type),
        quote(&row.event_version),
        json(&row.payload),
        json(&row.metadata),
        row.hash_hex,
    )?;
    Ok(script)
}

/// `text` with each colon that is not followed by a space written as `\u003a`.
fn escape_colons(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() != Some(&' ') {
            escaped.push_str("\\u003a");
        } else {
            escaped.push(c);
        }
    }
    escaped
}

/// Transactions a second pgbench reached with `clients`.
async fn pgbench(
    url: &str,
    script: &std::path::Path,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<f64> {
    let output = Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-j", "2", "-c"])
        .arg(clients.to_string())
        .arg("-T")
        .arg(seconds.to_string())
        .arg("-f")
        .arg(script)
        .arg(url)
        .output()
        .await
        .context("running pgbench (it comes with PostgreSQL's packages)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "pgbench failed: {}{}",
        text,
        String::from_utf8_lossy(&output.stderr)
    );
    text.lines()
        .find_map(|line| line.trim().strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|tps| tps.parse().ok())
        .context("pgbench's tps line")
}

/// The row a delivery appended, as the log stores it.
struct TemplateRow {
    aggregate_type: String,
    event_type: String,
    event_version: String,
    payload: String,
    metadata: String,
    hash_hex: String,
}

async fn template_row(pool: &sqlx::PgPool) -> anyhow::Result<TemplateRow> {
    let (aggregate_type, event_type, event_version, payload, metadata, hash_hex): (
        String,
        String,
        String,
        String,
        String,
        String,
    ) = sqlx::query_as(
        "SELECT aggregate_type, event_type, event_version, payload::text, metadata::text,
                COALESCE(encode(hash, 'hex'), '')
           FROM events WHERE event_type = 'RunRequested' ORDER BY position DESC LIMIT 1",
    )
    .fetch_one(pool)
    .await
    .context("a delivery's row in the log")?;
    Ok(TemplateRow {
        aggregate_type,
        event_type,
        event_version,
        payload,
        metadata,
        hash_hex,
    })
}

// ---------------------------------------------------------------------------------------------
// The run.

async fn run() -> anyhow::Result<()> {
    let admin = support::admin_url().context(
        "this bench needs PostgreSQL (pgbench is its reference): set TEST_DATABASE_URL or \
         BENCH_DATABASE_URL",
    )?;
    let seconds: u64 = env_or("BENCH_SECONDS", 10);
    let concurrencies: Vec<usize> = std::env::var("BENCH_CONCURRENCIES")
        .unwrap_or_else(|_| "16,64".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let stores = std::env::var("BENCH_STORES").unwrap_or_else(|_| "postgres,sqlite".into());
    println!("{}", machine_note("before"));
    println!(
        "{seconds} s a window (after {} s of warm-up), {TRIGGERS} generic webhook triggers, \
         executors off; the load generator is a separate process\n",
        WARM_UP.as_secs()
    );

    if stores.contains("postgres") {
        let name = format!("bench_ceiling_{}", std::process::id());
        let url = create_database(&admin, &name).await?;
        let outcome = postgres(&url, seconds, &concurrencies).await;
        drop_database(&admin, &name).await?;
        outcome?;
    }
    if stores.contains("sqlite") {
        let folder = tempfile::tempdir()?;
        let url = format!("sqlite://{}", folder.path().join("bench.db").display());
        sqlite(&url, seconds, &concurrencies).await?;
    }
    println!("{}", machine_note("after"));
    Ok(())
}

fn ingest_spec(engine: &Engine, triggers: &[String], connections: usize, seconds: u64) -> LoadSpec {
    LoadSpec {
        method: "post".into(),
        urls: triggers
            .iter()
            .map(|id| format!("{}/v1/webhooks/{id}", engine.address))
            .collect(),
        connections,
        seconds: seconds as f64,
        bearer: None,
    }
}

const INGEST_HEADER: &str = "| | connections | answered/s | p50 ms | p99 ms | failed | CPU µs per answer: engine / database / load generator | / ceiling |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |";

fn row(label: &str, connections: usize, figure: &Figure, ceiling: Option<f64>) -> String {
    let (engine, database, client) = figure.per_answer();
    let ratio = ceiling.map_or("".to_owned(), |ceiling| {
        format!("{:.2}x", figure.rate() / ceiling)
    });
    format!(
        "| {label} | {connections} | {:.0} | {:.1} | {:.1} | {} | {engine:.0} / {database:.0} / {client:.0} | {ratio} |",
        figure.rate(),
        figure.report.p50_ms,
        figure.report.p99_ms,
        figure.report.failed,
    )
}

/// The engine's figures on one store: ingest at each concurrency, then the two reads.
struct EngineFigures {
    ingest: Vec<(usize, Figure)>,
    healthz: Figure,
    reads: Figure,
}

async fn engine_figures(
    engine: &Engine,
    store: &str,
    triggers: &[String],
    seconds: u64,
    concurrencies: &[usize],
) -> anyhow::Result<EngineFigures> {
    let mut ingest = Vec::new();
    for &connections in concurrencies {
        let label = format!("{store} ingest {connections}");
        let spec = ingest_spec(engine, triggers, connections, seconds);
        ingest.push((connections, engine.window(&label, &spec).await?));
    }
    let read = |urls: Vec<String>, bearer: Option<String>| LoadSpec {
        method: "get".into(),
        urls,
        connections: READ_CONNECTIONS,
        seconds: seconds as f64,
        bearer,
    };
    let healthz = read(vec![format!("{}/healthz", engine.address)], None);
    let healthz = engine.window(&format!("{store} healthz"), &healthz).await?;
    let trigger_urls = triggers
        .iter()
        .map(|id| format!("{}/triggers/{id}", engine.address))
        .collect();
    let reads = read(trigger_urls, Some(engine.token.clone()));
    let reads = engine
        .window(&format!("{store} trigger reads"), &reads)
        .await?;
    Ok(EngineFigures {
        ingest,
        healthz,
        reads,
    })
}

/// Prints `figures`, each ingest beside the ceiling at its concurrency when there is one.
fn print_engine(figures: &EngineFigures, ceilings: &HashMap<usize, f64>) {
    println!("{INGEST_HEADER}");
    for (connections, figure) in &figures.ingest {
        let ceiling = ceilings.get(connections).copied();
        println!(
            "{}",
            row("generic webhook ingest", *connections, figure, ceiling)
        );
    }
    println!(
        "{}",
        row("`GET /healthz`", READ_CONNECTIONS, &figures.healthz, None)
    );
    println!(
        "{}",
        row(
            "`GET /triggers/{id}`",
            READ_CONNECTIONS,
            &figures.reads,
            None
        )
    );
    println!(
        "\n`GET /triggers/{{id}}` / `GET /healthz`: {:.2}x\n",
        figures.reads.rate() / figures.healthz.rate().max(1.0)
    );
}

async fn postgres(url: &str, seconds: u64, concurrencies: &[usize]) -> anyhow::Result<()> {
    let engine = Engine::start(url).await?;
    let triggers = engine.webhook_triggers(TRIGGERS).await?;
    // One real delivery, whose row the ceiling inserts.
    engine
        .http
        .post(format!("{}/v1/webhooks/{}", engine.address, triggers[0]))
        .json(&json!({"event": "order.paid", "n": 0, "amount": 4200,
                      "customer": {"id": "cus_bench", "email": "bench@example.com"}}))
        .send()
        .await?
        .error_for_status()?;
    let pool = sqlx::PgPool::connect(url).await?;
    let template = template_row(&pool).await?;
    sqlx::query(
        "CREATE TABLE ceiling_events
           (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)",
    )
    .execute(&pool)
    .await?;
    sqlx::query("CREATE SEQUENCE ceiling_position")
        .execute(&pool)
        .await?;
    let script = ceiling_script(&template)?;

    let mut before = Vec::new();
    for &clients in concurrencies {
        before.push(pgbench(url, script.path(), clients, seconds).await?);
    }
    // The script inserts the delivery's row exactly (pgbench left its text alone).
    let (differing,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM ceiling_events c
          WHERE c.payload::text <> $1 OR c.metadata::text <> $2",
    )
    .bind(&template.payload)
    .bind(&template.metadata)
    .fetch_one(&pool)
    .await?;
    anyhow::ensure!(
        differing == 0,
        "{differing} ceiling rows differ from the delivery's"
    );
    let figures = engine_figures(&engine, "postgres", &triggers, seconds, concurrencies).await?;
    let mut after = Vec::new();
    for &clients in concurrencies {
        after.push(pgbench(url, script.path(), clients, seconds).await?);
    }
    pool.close().await;
    engine.stop().await?;

    println!("## PostgreSQL\n");
    println!(
        "| pgbench, one INSERT per transaction of a delivery's row | clients | before TPS | \
         after TPS | mean |\n| --- | ---: | ---: | ---: | ---: |"
    );
    let mut ceilings = HashMap::new();
    for (i, &clients) in concurrencies.iter().enumerate() {
        let mean = (before[i] + after[i]) / 2.0;
        ceilings.insert(clients, mean);
        println!(
            "| ceiling | {clients} | {:.0} | {:.0} | {mean:.0} |",
            before[i], after[i]
        );
    }
    println!();
    print_engine(&figures, &ceilings);
    Ok(())
}

async fn sqlite(url: &str, seconds: u64, concurrencies: &[usize]) -> anyhow::Result<()> {
    let engine = Engine::start(url).await?;
    let triggers = engine.webhook_triggers(TRIGGERS).await?;
    let figures = engine_figures(&engine, "sqlite", &triggers, seconds, concurrencies).await?;
    engine.stop().await?;
    println!("## SQLite (the database's CPU is in the engine's: SQLite runs in its process)\n");
    print_engine(&figures, &HashMap::new());
    Ok(())
}

fn machine_note(when: &str) -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default();
    format!(
        "{when}: {cores} cores, load average {}, commit {commit}",
        load.join(" ")
    )
}
