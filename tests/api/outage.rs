//! The store going away under webhook load and coming back (issue 10): while it is away, requests
//! that need it answer 503 with `Retry-After` and `/readyz` answers 503; nothing answered 2xx is
//! lost, and the engine serves again without a restart.
//!
//! SQLite: another connection holds the file's write lock (`BEGIN EXCLUSIVE`), so the engine's
//! writes meet SQLITE_BUSY after the busy timeout. PostgreSQL: the engine reaches the database
//! through a proxy here; the test terminates this database's backends (`pg_terminate_backend`, as
//! a restart does) and closes the proxy, so new connections are refused until it opens again.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aggregates::run::{RunCause, RunStatus};
use chrono::Utc;
use sqlx::Connection;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::{eventually, spawn_app_on, TestApp, TestDb};
use crate::webhooks::{deliver, stripe_event, stripe_signature, stripe_trigger, STRIPE_SECRET};

crate::on_every_store!(
    it_should_answer_503_while_the_store_is_away_and_lose_nothing_it_acknowledged
);

/// One delivery and what the engine answered.
struct Outcome {
    event_id: String,
    status: u16,
    retry_after: Option<String>,
    problem_type: Option<String>,
}

/// Deliveries sent by a few senders at a steady pace until told to stop.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
    unavailable: Arc<AtomicUsize>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    senders: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(app: &Arc<TestApp>, trigger: uuid::Uuid, senders: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicUsize::new(0));
        let unavailable = Arc::new(AtomicUsize::new(0));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let senders = (0..senders)
            .map(|sender| {
                let (app, stop, acked, unavailable, outcomes) = (
                    app.clone(),
                    stop.clone(),
                    acked.clone(),
                    unavailable.clone(),
                    outcomes.clone(),
                );
                tokio::spawn(async move {
                    // Pacing shapes the load; nothing waits on it.
                    let mut pace = tokio::time::interval(Duration::from_millis(25));
                    let mut n = 0;
                    while !stop.load(Ordering::Acquire) {
                        pace.tick().await;
                        n += 1;
                        let event_id = format!("evt_{sender}_{n}");
                        let outcome = send(&app, trigger, &event_id).await;
                        if (200..300).contains(&outcome.status) {
                            acked.fetch_add(1, Ordering::AcqRel);
                        } else if outcome.status == 503 {
                            unavailable.fetch_add(1, Ordering::AcqRel);
                        }
                        outcomes.lock().unwrap().push(outcome);
                    }
                })
            })
            .collect();
        Self {
            stop,
            acked,
            unavailable,
            outcomes,
            senders,
        }
    }

    async fn finish(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Release);
        for sender in self.senders {
            sender.await.unwrap();
        }
        Arc::try_unwrap(self.outcomes)
            .ok()
            .unwrap()
            .into_inner()
            .unwrap()
    }
}

async fn send(app: &TestApp, trigger: uuid::Uuid, event_id: &str) -> Outcome {
    let body = stripe_event(event_id, "customer.created");
    let signature = stripe_signature(STRIPE_SECRET, Utc::now().timestamp(), &body);
    let response = deliver(
        app,
        &trigger.to_string(),
        &[("stripe-signature", signature)],
        &body,
    )
    .await;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_owned());
    let problem_type = if status >= 400 {
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: serde_json::Value = response.json().await.unwrap();
        problem["type"].as_str().map(str::to_owned)
    } else {
        None
    };
    Outcome {
        event_id: event_id.to_owned(),
        status,
        retry_after,
        problem_type,
    }
}

/// `/readyz`'s status and, for a 503, its problem's `check`.
async fn readiness(app: &TestApp) -> (u16, Option<String>) {
    let response = app
        .http
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (status, body["check"].as_str().map(str::to_owned))
}

/// A way to take the test's store away and bring it back.
enum Outage {
    /// A connection of the test's own holding the SQLite file's write lock, while away.
    Sqlite {
        url: String,
        holder: Option<sqlx::SqliteConnection>,
    },
    Postgres {
        admin_url: String,
        database: String,
        proxy: Proxy,
    },
}

impl Outage {
    async fn take_away(&mut self) {
        match self {
            Self::Sqlite { url, holder } => {
                let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
                let mut connection = sqlx::SqliteConnection::connect_with(
                    &options.busy_timeout(Duration::from_secs(30)),
                )
                .await
                .unwrap();
                sqlx::raw_sql("BEGIN EXCLUSIVE")
                    .execute(&mut connection)
                    .await
                    .expect("taking the write lock");
                *holder = Some(connection);
            }
            Self::Postgres {
                admin_url,
                database,
                proxy,
            } => {
                proxy.close().await;
                // Only this test's database's backends: other tests' sessions are left alone.
                let mut admin = sqlx::PgConnection::connect(admin_url).await.unwrap();
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                      WHERE datname = $1 AND pid <> pg_backend_pid()",
                )
                .bind(database.as_str())
                .execute(&mut admin)
                .await
                .unwrap();
            }
        }
    }

    async fn bring_back(&mut self) {
        match self {
            Self::Sqlite { holder, .. } => {
                let mut connection = holder.take().expect("the store was taken away");
                sqlx::raw_sql("ROLLBACK")
                    .execute(&mut connection)
                    .await
                    .unwrap();
                connection.close().await.unwrap();
            }
            Self::Postgres { proxy, .. } => proxy.open().await,
        }
    }
}

/// A TCP proxy to PostgreSQL on a fixed port: closed, it refuses connections and has dropped the
/// ones it relayed.
struct Proxy {
    port: u16,
    upstream: String,
    relay: Option<JoinHandle<()>>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut proxy = Self {
            port,
            upstream,
            relay: None,
        };
        proxy.open().await;
        proxy
    }

    async fn open(&mut self) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket
            .bind(([127, 0, 0, 1], self.port).into())
            .expect("binding the proxy's port again");
        let listener = socket.listen(128).unwrap();
        let upstream = self.upstream.clone();
        self.relay = Some(tokio::spawn(async move {
            // Dropped with this task, which closes every relayed connection.
            let mut relays = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                relays.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        }));
    }

    async fn close(&mut self) {
        if let Some(relay) = self.relay.take() {
            relay.abort();
            let _ = relay.await;
        }
    }
}

async fn it_should_answer_503_while_the_store_is_away_and_lose_nothing_it_acknowledged(db: TestDb) {
    let mut store = db.store_config();
    let mut outage = if db.is_postgres() {
        let url = reqwest::Url::parse(&db.url).unwrap();
        let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
        let proxy = Proxy::start(upstream).await;
        let mut proxied = url.clone();
        proxied.set_host(Some("127.0.0.1")).unwrap();
        proxied.set_port(Some(proxy.port)).unwrap();
        store.database_url = proxied.to_string();
        Outage::Postgres {
            admin_url: std::env::var("TEST_DATABASE_URL").unwrap(),
            database: url.path().trim_start_matches('/').to_owned(),
            proxy,
        }
    } else {
        Outage::Sqlite {
            url: db.url.clone(),
            holder: None,
        }
    };
    let app = Arc::new(spawn_app_on(&store, |_| {}).await);
    let trigger = stripe_trigger(&app, serde_json::json!(STRIPE_SECRET)).await;
    assert_eq!(readiness(&app).await.0, 200);

    let load = Load::start(&app, trigger, 4);
    let (acked, unavailable) = (load.acked.clone(), load.unavailable.clone());
    eventually(30, "deliveries acknowledged before the outage", || {
        let acked = acked.clone();
        async move { acked.load(Ordering::Acquire) >= 10 }
    })
    .await;

    outage.take_away().await;
    eventually(60, "/readyz to answer 503 naming the store", || {
        let app = app.clone();
        async move { readiness(&app).await == (503, Some("store".into())) }
    })
    .await;
    eventually(60, "a delivery answered 503", || {
        let unavailable = unavailable.clone();
        async move { unavailable.load(Ordering::Acquire) >= 1 }
    })
    .await;

    outage.bring_back().await;
    eventually(60, "/readyz to answer 200 again", || {
        let app = app.clone();
        async move { readiness(&app).await.0 == 200 }
    })
    .await;
    let before = acked.load(Ordering::Acquire);
    eventually(60, "deliveries acknowledged after the outage", || {
        let acked = acked.clone();
        async move { acked.load(Ordering::Acquire) >= before + 10 }
    })
    .await;
    let outcomes = load.finish().await;

    let mut delivered = HashSet::new();
    let mut refused = Vec::new();
    for outcome in &outcomes {
        match outcome.status {
            200..=299 => {
                delivered.insert(outcome.event_id.clone());
            }
            503 => {
                assert_eq!(outcome.retry_after.as_deref(), Some("5"));
                assert_eq!(
                    outcome.problem_type.as_deref(),
                    Some("/problems/unavailable")
                );
                refused.push(outcome.event_id.clone());
            }
            other => panic!(
                "delivery {} answered {other} ({:?})",
                outcome.event_id, outcome.problem_type
            ),
        }
    }
    // A sender retries what was refused; now it gets through (or is the duplicate of a write
    // that committed as the connection broke).
    for event_id in &refused {
        let retried = send(&app, trigger, event_id).await;
        assert!(
            (200..300).contains(&retried.status),
            "retrying {event_id} answered {}",
            retried.status
        );
        delivered.insert(event_id.clone());
    }

    let recorded: HashSet<String> = app
        .runs_of(trigger)
        .await
        .into_iter()
        .filter_map(|run| match run.record.firing.cause {
            RunCause::Delivery { key } => Some(key),
            _ => None,
        })
        .collect();
    let lost: Vec<_> = delivered.difference(&recorded).collect();
    eprintln!(
        "{}: {} deliveries, {} acknowledged first time, {} answered 503 (then retried), {} lost",
        db.url.split(':').next().unwrap(),
        outcomes.len(),
        outcomes.len() - refused.len(),
        refused.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged but not recorded: {lost:?}");

    // The dispatcher came through the outage too: every run is handed to the executor.
    eventually(60, "every run to be executed", || {
        let app = app.clone();
        async move {
            app.runs_of(trigger)
                .await
                .iter()
                .all(|run| run.record.status == RunStatus::Succeeded)
        }
    })
    .await;
    Arc::try_unwrap(app).ok().unwrap().shutdown().await;
}
