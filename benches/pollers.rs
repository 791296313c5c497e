//! Polling benchmark for issue #5, printed as Markdown (copy into docs/benchmarks.md).
//!
//! `cargo bench --bench pollers` runs the engine in this process (on PostgreSQL when
//! `BENCH_DATABASE_URL` or `TEST_DATABASE_URL` is set, else SQLite; executors off) beside a feed
//! server on 127.0.0.1 that serves `BENCH_POLLERS` (default 1,000) RSS feeds. Each feed lists its
//! 20 newest items and gains one every 30 s, the feeds staggered across those 30 s. One enabled
//! `rss/on_new_item` trigger polls each feed every 10 s.
//!
//! After `BENCH_WARMUP` seconds (default 20) from the end of seeding, it measures for
//! `BENCH_SECONDS` (default 120): the feed server's requests per second (the polls), the interval
//! between two polls of one feed, the engine's CPU (user + system from /proc/self/stat) and its
//! memory (VmRSS and VmHWM from /proc/self/status). It then waits one polling interval more and
//! reads the log: every item published in the window should have fired exactly one run. The feed
//! server shares the process, so its CPU and memory are counted with the engine's; the database's
//! are not.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aggregates::{RunCause, RunEvent, TriggerEvent};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::json;
use support::{admin_url, cpu_seconds, create_database, drop_database, env_or, seed_enabled};
use trigger_engine::app::App;
use trigger_engine::config::{ServeConfig, StoreConfig};

const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "bench password";
const DATABASE: &str = "trigger_engine_bench_pollers";

/// Each trigger's `polling_frequency`: the 10 s.
const POLLING_MS: i64 = 10_000;
/// One new item per feed every 30 s: a third of the polls find something new, so the runs'
/// appends are part of what is measured, not only the fetches.
const ITEM_EVERY_MS: i64 = 30_000;
/// Items a feed lists, newest first: a small feed of about 5 KB.
const ITEMS_LISTED: i64 = 20;

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let pollers: usize = env_or("BENCH_POLLERS", 1_000);
    let seconds: u64 = env_or("BENCH_SECONDS", 120);
    let warmup: u64 = env_or("BENCH_WARMUP", 20);
    let rss_start = memory("VmRSS");
    let folder = tempfile::tempdir()?;
    let admin = admin_url();
    let (name, url) = match &admin {
        Some(admin) => ("postgres", create_database(admin, DATABASE).await?),
        None => (
            "sqlite",
            format!("sqlite://{}/pollers.db", folder.path().display()),
        ),
    };
    println!(
        "machine: {} cores; store {name}; {pollers} RSS feeds polled every {} s, one new item \
         per feed every {} s; executors off",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        POLLING_MS / 1_000,
        ITEM_EVERY_MS / 1_000
    );

    let feeds = Arc::new(Feeds::new(pollers, Utc::now()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let feed_address = listener.local_addr()?;
    let (stop_feeds, feeds_stopped) = tokio::sync::oneshot::channel::<()>();
    let router = axum::Router::new()
        .route("/feeds/{file}", axum::routing::get(serve_feed))
        .with_state(feeds.clone());
    let feed_server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = feeds_stopped.await;
            })
            .await
    });

    let store = StoreConfig {
        database_url: url,
        pool_size: 16,
    };
    let mut serve = ServeConfig {
        listen: "127.0.0.1:0".parse()?,
        admin_email: Some(EMAIL.into()),
        admin_password: Some(PASSWORD.into()),
        polling: true,
        // The feed server listens on loopback, which the outbound guard refuses unless allowed.
        outbound_allow: "127.0.0.1".parse()?,
        ..ServeConfig::from_env()
    };
    serve.executor.executor_concurrency = 0;
    let app = App::build(&store, &serve).await?;
    let rss_engine = memory("VmRSS");
    let token = app
        .identity
        .password_grant(EMAIL, PASSWORD, Utc::now())
        .await?
        .access_token;
    let caller = app.identity.verify_token(&token, Utc::now())?;
    let seeding = Instant::now();
    let feed_base = format!("http://{feed_address}/feeds");
    seed_enabled(
        &app,
        caller.org_id,
        caller.user_id,
        "rss",
        "on_new_item",
        pollers,
        move |feed| {
            json!({
                "feed_url": format!("{feed_base}/{feed}.xml"),
                "polling_frequency": POLLING_MS.to_string(),
            })
        },
    )
    .await?;
    let seeded = Instant::now();
    let rss_seeded = memory("VmRSS");
    let hwm_seeded = memory("VmHWM");
    println!(
        "seeded and enabled in {:.1} s; warm-up {warmup} s, then a {seconds} s window\n",
        seeded.duration_since(seeding).as_secs_f64()
    );
    let store_handle = app.store.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));

    tokio::time::sleep_until((seeded + Duration::from_secs(warmup)).into()).await;
    let polled_before = feeds.polled_feeds();
    let cpu_before = cpu_seconds();
    let from = Utc::now();
    let start = tokio::time::Instant::now();
    let requests_before = feeds.requests.load(Ordering::Relaxed);
    feeds.measuring.store(true, Ordering::Relaxed);
    let mut per_second = Vec::with_capacity(seconds as usize);
    let mut last = requests_before;
    for second in 1..=seconds {
        tokio::time::sleep_until(start + Duration::from_secs(second)).await;
        let now = feeds.requests.load(Ordering::Relaxed);
        per_second.push(now - last);
        last = now;
    }
    feeds.measuring.store(false, Ordering::Relaxed);
    let wall = start.elapsed().as_secs_f64();
    let to = Utc::now();
    let cores = (cpu_seconds() - cpu_before) / wall;
    let rss_end = memory("VmRSS");
    let hwm_end = memory("VmHWM");
    let polls = last - requests_before;

    // Items published just before the window's end are fetched by the next poll of their feed:
    // wait one interval (and a little) before reading the log.
    tokio::time::sleep(Duration::from_millis(POLLING_MS as u64 + 3_000)).await;
    let mut fired: HashMap<String, Vec<DateTime<Utc>>> = HashMap::new();
    let mut cursor_moves = 0;
    let mut after = 0;
    loop {
        let events = store_handle.read_log(after, 5_000).await?;
        let Some(position) = events.last().map(|event| event.position) else {
            break;
        };
        after = position;
        for event in events {
            if let Some(RunEvent::RunRequested { firing, .. }) = event.run_event()? {
                if let RunCause::PolledItem { id } = firing.cause {
                    fired.entry(id).or_default().push(event.recorded_at);
                }
            } else if let Some(TriggerEvent::CursorAdvanced { .. }) = event.trigger_event()? {
                if (from..to).contains(&event.recorded_at) {
                    cursor_moves += 1;
                }
            }
        }
    }
    let (intervals, polls_per_feed) = feeds.window();
    let mut published = 0;
    let mut once = 0;
    let mut again = 0;
    let mut lags = Vec::new();
    for feed in 0..pollers {
        for item in feeds.published_between(feed, from, to) {
            published += 1;
            match fired.get(&item_id(feed, item)).map(Vec::as_slice) {
                Some([at]) => {
                    once += 1;
                    let lag = *at - feeds.published_at(feed, item);
                    lags.push(lag.num_milliseconds() as f64 / 1_000.0);
                }
                Some(_) => again += 1,
                None => {}
            }
        }
    }

    let windows: Vec<u64> = per_second.chunks(10).map(|c| c.iter().sum()).collect();
    let min_max = |values: &[u64]| {
        format!(
            "{} / {}",
            values.iter().min().copied().unwrap_or(0),
            values.iter().max().copied().unwrap_or(0)
        )
    };
    let expected = pollers as f64 * 1_000.0 / POLLING_MS as f64;
    println!(
        "Window {} to {} UTC; {polled_before} of {pollers} feeds had been polled before it.\n",
        from.format("%H:%M:%S"),
        to.format("%H:%M:%S")
    );
    println!("| measure | value |");
    println!("| --- | ---: |");
    println!(
        "| polls/s over the {seconds} s window (expected {expected:.0}) | **{:.1}** |",
        polls as f64 / wall
    );
    println!(
        "| polls per 10 s window, min / max | {} |",
        min_max(&windows)
    );
    println!("| polls per second, min / max | {} |", min_max(&per_second));
    println!(
        "| seconds of the window without a poll | {} |",
        per_second.iter().filter(|polls| **polls == 0).count()
    );
    println!(
        "| polls per feed in the window, min / max | {} |",
        min_max(&polls_per_feed)
    );
    println!(
        "| interval between two polls of one feed, p50 / p99 / max | {} s |",
        spread(intervals, 2)
    );
    println!("| items published in the window | {published} |");
    println!(
        "| of those, fired once / more than once / not fired | {once} / {again} / {} |",
        published - once - again
    );
    println!(
        "| publication to `RunRequested`, p50 / p99 / max | {} s |",
        spread(lags, 1)
    );
    println!(
        "| runs fired in all (warm-up and drain included) | {} |",
        fired.len()
    );
    println!("| cursor advances in the window | {cursor_moves} |");
    println!("| CPU of the process over the window (cores) | {cores:.2} |");
    println!(
        "| VmRSS: start / engine up / after seeding / end of window | {rss_start:.1} / \
         {rss_engine:.1} / {rss_seeded:.1} / {rss_end:.1} MiB |"
    );
    println!(
        "| VmHWM (peak RSS): after seeding / end of window | {hwm_seeded:.1} / {hwm_end:.1} MiB |"
    );
    println!(
        "| RSS per trigger: seeding / seeding and window | {:.1} / {:.1} KiB |",
        (rss_seeded - rss_engine) * 1_024.0 / pollers as f64,
        (rss_end - rss_engine) * 1_024.0 / pollers as f64
    );

    let _ = stop.send(());
    server.await??;
    let _ = stop_feeds.send(());
    feed_server.await??;
    if let Some(admin) = &admin {
        drop_database(admin, DATABASE).await?;
    }
    Ok(())
}

/// The feeds, and what the pollers asked of them.
struct Feeds {
    count: usize,
    /// When item 0 of feed 0 is published. Feed `n`'s items come `n / count` of
    /// [`ITEM_EVERY_MS`] later, so new items arrive evenly rather than all at once.
    epoch: DateTime<Utc>,
    requests: AtomicU64,
    /// Whether the measured window is open.
    measuring: AtomicBool,
    polls: Mutex<Polls>,
}

struct Polls {
    /// Each feed's last request.
    last: Vec<Option<Instant>>,
    /// Each feed's requests in the window.
    in_window: Vec<u64>,
    /// Seconds since the previous request of the same feed, for each request in the window.
    intervals: Vec<f64>,
}

impl Feeds {
    fn new(count: usize, epoch: DateTime<Utc>) -> Self {
        Self {
            count,
            epoch,
            requests: AtomicU64::new(0),
            measuring: AtomicBool::new(false),
            polls: Mutex::new(Polls {
                last: vec![None; count],
                in_window: vec![0; count],
                intervals: Vec::new(),
            }),
        }
    }

    fn offset_ms(&self, feed: usize) -> i64 {
        ITEM_EVERY_MS * feed as i64 / self.count as i64
    }

    fn published_at(&self, feed: usize, item: i64) -> DateTime<Utc> {
        self.epoch + chrono::Duration::milliseconds(self.offset_ms(feed) + item * ITEM_EVERY_MS)
    }

    /// The newest item of `feed` published at or before `at` (items before the epoch have
    /// negative numbers, so every feed starts full).
    fn newest(&self, feed: usize, at: DateTime<Utc>) -> i64 {
        ((at - self.epoch).num_milliseconds() - self.offset_ms(feed)).div_euclid(ITEM_EVERY_MS)
    }

    /// The items of `feed` published in `[from, to)`.
    fn published_between(
        &self,
        feed: usize,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Iterator<Item = i64> + '_ {
        (self.newest(feed, from) - 1..=self.newest(feed, to) + 1)
            .filter(move |item| (from..to).contains(&self.published_at(feed, *item)))
    }

    fn document(&self, feed: usize, at: DateTime<Utc>) -> String {
        let newest = self.newest(feed, at);
        let mut xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel>\
             <title>Bench feed {feed}</title><link>http://127.0.0.1/{feed}</link>\
             <description>One of the polling benchmark's feeds</description>\n"
        );
        for item in (newest - ITEMS_LISTED + 1..=newest).rev() {
            let id = item_id(feed, item);
            xml.push_str(&format!(
                "<item><guid isPermaLink=\"false\">{id}</guid><title>Item {item} of feed \
                 {feed}</title><link>http://127.0.0.1/{feed}/{item}</link><description>A \
                 short summary of item {item}, long enough to look like one.</description>\
                 <pubDate>{}</pubDate></item>\n",
                self.published_at(feed, item).to_rfc2822()
            ));
        }
        xml.push_str("</channel></rss>\n");
        xml
    }

    fn record(&self, feed: usize, at: Instant) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut polls = self
            .polls
            .lock()
            .expect("no request panics holding the lock");
        if self.measuring.load(Ordering::Relaxed) {
            polls.in_window[feed] += 1;
            if let Some(previous) = polls.last[feed] {
                polls
                    .intervals
                    .push(at.duration_since(previous).as_secs_f64());
            }
        }
        polls.last[feed] = Some(at);
    }

    fn polled_feeds(&self) -> usize {
        let polls = self
            .polls
            .lock()
            .expect("no request panics holding the lock");
        polls.last.iter().filter(|last| last.is_some()).count()
    }

    /// The intervals and the requests per feed of the window.
    fn window(&self) -> (Vec<f64>, Vec<u64>) {
        let polls = self
            .polls
            .lock()
            .expect("no request panics holding the lock");
        (polls.intervals.clone(), polls.in_window.clone())
    }
}

fn item_id(feed: usize, item: i64) -> String {
    format!("bench-feed-{feed}-item-{item}")
}

async fn serve_feed(State(feeds): State<Arc<Feeds>>, Path(file): Path<String>) -> Response {
    let Some(feed) = file
        .strip_suffix(".xml")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n < feeds.count)
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    feeds.record(feed, Instant::now());
    (
        [(header::CONTENT_TYPE, "application/rss+xml")],
        feeds.document(feed, Utc::now()),
    )
        .into_response()
}

/// p50 / p99 / max of `values`, with `decimals` decimals.
fn spread(mut values: Vec<f64>, decimals: usize) -> String {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| {
        values
            .get(((values.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    format!(
        "{:.decimals$} / {:.decimals$} / {:.decimals$}",
        at(0.5),
        at(0.99),
        values.last().copied().unwrap_or(f64::NAN)
    )
}

/// A field of /proc/self/status (`VmRSS`, `VmHWM`), in MiB.
fn memory(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| {
            let kib = line.strip_prefix(field)?.strip_prefix(':')?.trim();
            kib.strip_suffix("kB")?.trim().parse::<f64>().ok()
        })
        .map_or(f64::NAN, |kib| kib / 1_024.0)
}
