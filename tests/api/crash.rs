//! A crash while webhooks stream in (issue #4): the real engine is killed (SIGKILL) mid-stream,
//! with executor calls in flight, and restarted on the same store. Every delivery that got a 2xx
//! has exactly one run; the provider's retries (of the deliveries that failed, and of some that
//! did not) add none; and every run reaches the executor, at least once and always under its run
//! id as idempotency key, and succeeds.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aggregates::{run_id, RunCause, RunRecord, RunStatus};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use trigger_engine::store::Store;
use trigger_engine::webhooks::signatures::verify_standard;
use uuid::Uuid;

use crate::helpers::{admin_token, eventually, start_engine, TestDb};

crate::on_every_store!(it_should_run_every_acknowledged_delivery_once_across_a_kill);

/// Deliveries the provider sends, each with an `Idempotency-Key` of its own, and how many it
/// sends at once.
const DELIVERIES: usize = 300;
const SENDERS: usize = 6;
/// The engine is killed once this many deliveries were acknowledged...
const KILL_AFTER: usize = 100;
/// ...and this many executor calls are in flight: the receiver holds them unanswered, so their
/// attempts are still `running` when the engine dies (the kill follows within milliseconds, well
/// inside the call timeout) and only their lease's end frees them.
const IN_FLIGHT: usize = 4;
/// Acknowledged deliveries the provider sends again after the restart.
const RESENT_ACKNOWLEDGED: usize = 20;
/// The executor call timeout: an abandoned attempt's lease is this plus the engine's 30 s margin.
const EXECUTOR_TIMEOUT_SECONDS: &str = "1";
/// How long every run may take to succeed after the restart: the lease and then some.
const SETTLE_SECONDS: u64 = 90;
/// The project the trigger belongs to, which the executor URL names.
const PROJECT: &str = "crash";

const EXECUTOR_KEY: &[u8] = b"the crash test's executor secret";

fn executor_secret() -> String {
    format!("whsec_{}", STANDARD.encode(EXECUTOR_KEY))
}

/// The provider's delivery id for delivery `n`.
fn delivery_key(n: usize) -> String {
    format!("delivery-{n}")
}

/// What the receiver saw of one call.
#[derive(Debug, Clone)]
struct Call {
    project: String,
    signed: bool,
    webhook_id: String,
    idempotency_key: String,
    body: Value,
}

/// A local executor that records every call and answers 200, except that, once told to, it holds
/// the next calls unanswered until it is told to let them go.
#[derive(Clone)]
struct Receiver {
    calls: Arc<Mutex<Vec<Call>>>,
    to_hold: Arc<AtomicUsize>,
    /// The run ids of the calls held so far.
    held: watch::Sender<Vec<Uuid>>,
    released: watch::Sender<bool>,
    url: String,
}

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Self {
            calls: Arc::default(),
            to_hold: Arc::default(),
            held: watch::Sender::new(Vec::new()),
            released: watch::Sender::new(false),
            url: format!(
                "http://{}/projects/{{project_id}}/run",
                listener.local_addr().unwrap()
            ),
        };
        let app = axum::Router::new()
            .route("/projects/{project}/run", axum::routing::post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    /// The engine's executor settings pointing at this receiver.
    fn engine_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TRIGGER_ENGINE_EXECUTOR_URL", self.url.clone()),
            ("TRIGGER_ENGINE_EXECUTOR_SECRET", executor_secret()),
            (
                "TRIGGER_ENGINE_EXECUTOR_TIMEOUT_SECONDS",
                EXECUTOR_TIMEOUT_SECONDS.into(),
            ),
            // A call the kill cut short is retried at once rather than after the default 5 s.
            ("TRIGGER_ENGINE_EXECUTOR_RETRY_BASE_MS", "50".into()),
        ]
    }

    /// Holds the next `calls` calls, and returns their run ids once that many are held.
    async fn hold_next(&self, calls: usize) -> Vec<Uuid> {
        self.to_hold.store(calls, Ordering::SeqCst);
        let mut held = self.held.subscribe();
        let waiting = held.wait_for(|held| held.len() >= calls);
        let held = tokio::time::timeout(Duration::from_secs(20), waiting)
            .await
            .expect("the engine to call the executor while deliveries stream in")
            .unwrap()
            .clone();
        held
    }

    fn release(&self) {
        self.released.send_replace(true);
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The runs called so far.
    fn reached(&self) -> HashSet<Uuid> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter_map(|call| call.idempotency_key.parse().ok())
            .collect()
    }
}

async fn receive(
    State(receiver): State<Receiver>,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let secret = executor_secret();
    let signed = verify_standard(
        &headers,
        body.as_bytes(),
        &[secret.as_str()],
        chrono::Utc::now(),
    )
    .is_ok();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let call = Call {
        project,
        signed,
        webhook_id: header("webhook-id"),
        idempotency_key: header("idempotency-key"),
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
    };
    let run_id = call.idempotency_key.parse::<Uuid>().ok();
    receiver.calls.lock().unwrap().push(call);
    let hold = receiver
        .to_hold
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if hold {
        receiver
            .held
            .send_modify(|held| held.extend(run_id.iter().copied()));
        let _ = receiver.released.subscribe().wait_for(|go| *go).await;
    }
    StatusCode::OK
}

/// Sends delivery `n` as an unsigned generic webhook keyed by its `Idempotency-Key`; `Ok` when
/// the engine answered 2xx.
async fn deliver(http: &reqwest::Client, url: &str, n: usize) -> Result<(), String> {
    let response = http
        .post(url)
        .header("idempotency-key", delivery_key(n))
        .json(&json!({"n": n}))
        .send()
        .await
        .map_err(|error| error.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", response.status()))
    }
}

/// The run delivery `n` to `trigger` must have.
fn run_of(trigger: Uuid, n: usize) -> Uuid {
    let key = delivery_key(n);
    run_id(trigger, &RunCause::Delivery { key })
}

/// Creates an unsigned generic webhook trigger through the API, as the admin, and enables it.
async fn enabled_trigger(http: &reqwest::Client, address: &str) -> Uuid {
    let token = admin_token(http, address).await;
    let created = http
        .post(format!("{address}/projects/{PROJECT}/triggers"))
        .bearer_auth(&token)
        .json(&json!({"provider_id": "webhook", "trigger_id": "on_request", "trigger_config": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let trigger = created["project_trigger_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let enabled = http
        .post(format!("{address}/triggers/{trigger}/enable"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(enabled.status(), 204);
    trigger
}

/// Each delivery a sender sent, and whether it was acknowledged (or why not).
type Outcomes = Vec<(usize, Result<(), String>)>;

/// Sends every delivery to `url`, `SENDERS` at a time, counting the acknowledged ones in
/// `acknowledged_so_far`; each sender returns what became of its deliveries. Senders go on
/// through a kill, like a provider that learns of an outage only from its failed requests.
fn stream(
    http: &reqwest::Client,
    url: &str,
    acknowledged_so_far: &watch::Sender<usize>,
) -> Vec<JoinHandle<Outcomes>> {
    (0..SENDERS)
        .map(|sender| {
            let (http, url, acknowledged_so_far) =
                (http.clone(), url.to_owned(), acknowledged_so_far.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for n in (sender..DELIVERIES).step_by(SENDERS) {
                    let outcome = deliver(&http, &url, n).await;
                    if outcome.is_ok() {
                        acknowledged_so_far.send_modify(|count| *count += 1);
                    }
                    outcomes.push((n, outcome));
                }
                outcomes
            })
        })
        .collect()
}

/// Waits until the run read model has folded everything in the log now.
async fn wait_for_run_model(store: &Store) {
    let head = store.head().await.unwrap();
    eventually(30, "the run read model to reach the log head", || async {
        store.checkpoints().await.unwrap().iter().any(|checkpoint| {
            checkpoint.name == projections::runs::NAME && checkpoint.position >= head
        })
    })
    .await;
}

/// The trigger's runs in the read model, by run id; fails if one shows twice.
async fn runs_by_id(store: &Store, trigger: Uuid) -> HashMap<Uuid, RunRecord> {
    let views = store.trigger_runs(trigger, None, 10_000).await.unwrap();
    let count = views.len();
    let runs: HashMap<Uuid, RunRecord> = views
        .into_iter()
        .map(|view| (view.record.run_id, view.record))
        .collect();
    assert_eq!(runs.len(), count, "no run is listed twice");
    runs
}

async fn it_should_run_every_acknowledged_delivery_once_across_a_kill(db: TestDb) {
    let started = Instant::now();
    let receiver = Receiver::start().await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let (mut engine, address) = start_engine(&db, &http, &receiver.engine_env()).await;
    let trigger = enabled_trigger(&http, &address).await;
    let expected: Vec<Uuid> = (0..DELIVERIES).map(|n| run_of(trigger, n)).collect();
    let delivery_of: HashMap<Uuid, usize> = expected.iter().copied().zip(0..).collect();

    let url = format!("{address}/v1/webhooks/{trigger}");
    let acknowledged_so_far = watch::Sender::new(0usize);
    let senders = stream(&http, &url, &acknowledged_so_far);
    let mut progress = acknowledged_so_far.subscribe();
    tokio::time::timeout(
        Duration::from_secs(30),
        progress.wait_for(|count| *count >= KILL_AFTER),
    )
    .await
    .expect("the engine to acknowledge deliveries")
    .unwrap();
    let held = receiver.hold_next(IN_FLIGHT).await;
    // No graceful shutdown: the process dies at once, as in a crash.
    engine.kill().await.unwrap();
    let killed_at = chrono::Utc::now();
    receiver.release();
    let mut acknowledged = Vec::new();
    let mut failed = Vec::new();
    for sender in senders {
        for (n, outcome) in sender.await.unwrap() {
            match outcome {
                Ok(()) => acknowledged.push(n),
                Err(_) => failed.push(n),
            }
        }
    }
    assert!(
        acknowledged.len() >= KILL_AFTER && !failed.is_empty(),
        "the engine was killed mid-stream: {} acknowledged, {} failed",
        acknowledged.len(),
        failed.len()
    );

    let (mut engine, address) = start_engine(&db, &http, &receiver.engine_env()).await;
    let store = Store::connect(&db.url, 4).await.unwrap();
    wait_for_run_model(&store).await;
    let after_restart = runs_by_id(&store, trigger).await;
    for &n in &acknowledged {
        assert!(
            after_restart.contains_key(&expected[n]),
            "acknowledged delivery {n} has a run after the restart"
        );
    }
    let recorded_unanswered = failed
        .iter()
        .filter(|&&n| after_restart.contains_key(&expected[n]))
        .count();
    // Attempts the restarted engine has started since are running too, but were started after
    // the kill.
    let mid_attempt: Vec<Uuid> = after_restart
        .values()
        .filter(|run| run.status == RunStatus::Running && run.updated_at < killed_at)
        .map(|run| run.run_id)
        .collect();

    // The provider retries what failed, and some deliveries it had an answer for.
    let url = format!("{address}/v1/webhooks/{trigger}");
    for &n in failed.iter().chain(&acknowledged[..RESENT_ACKNOWLEDGED]) {
        assert_eq!(
            deliver(&http, &url, n).await,
            Ok(()),
            "delivery {n} again after the restart"
        );
    }
    wait_for_run_model(&store).await;
    let runs = runs_by_id(&store, trigger).await;
    let found: HashSet<Uuid> = runs.keys().copied().collect();
    assert_eq!(
        found,
        expected.iter().copied().collect::<HashSet<_>>(),
        "exactly one run per delivery, and no other"
    );

    // Runs seen succeeded are not looked at again: the wait is mostly for the lease of the
    // attempts the kill cut short.
    let pending = Mutex::new(found);
    eventually(
        SETTLE_SECONDS,
        "every run to succeed at the executor",
        || {
            let (store, receiver, pending) = (&store, &receiver, &pending);
            async move {
                let reached = receiver.reached();
                let candidates: Vec<Uuid> = pending
                    .lock()
                    .unwrap()
                    .intersection(&reached)
                    .copied()
                    .collect();
                for id in candidates {
                    let view = store.run_view(id).await.unwrap().expect("a listed run");
                    if view.record.status == RunStatus::Succeeded {
                        pending.lock().unwrap().remove(&id);
                    }
                }
                pending.lock().unwrap().is_empty()
            }
        },
    )
    .await;
    let runs = runs_by_id(&store, trigger).await;
    assert_eq!(runs.len(), DELIVERIES, "no run was added while they ran");

    let mut calls_per_run: HashMap<Uuid, usize> = HashMap::new();
    for call in receiver.calls() {
        assert!(call.signed, "the engine signs its calls: {call:?}");
        assert_eq!(call.project, PROJECT);
        assert_eq!(call.webhook_id, call.idempotency_key, "{call:?}");
        let run: Uuid = call.idempotency_key.parse().expect("a run id as key");
        let n = *delivery_of
            .get(&run)
            .unwrap_or_else(|| panic!("a call for a run of no delivery: {call:?}"));
        assert_eq!(call.body["run_id"], json!(run));
        assert_eq!(call.body["payload"], json!({"n": n}));
        *calls_per_run.entry(run).or_default() += 1;
    }
    for run in &held {
        assert!(
            calls_per_run[run] >= 2,
            "run {run}, whose call was in flight at the kill, was delivered again after it"
        );
    }
    for run in &mid_attempt {
        assert!(
            runs[run].attempts >= 2,
            "run {run}, mid-attempt at the kill, was taken over after its lease"
        );
    }
    let redelivered = calls_per_run.values().filter(|&&calls| calls > 1).count();
    eprintln!(
        "{}: {} of {DELIVERIES} deliveries acknowledged before the kill, {} failed ({} of those \
         recorded though unanswered), {} runs mid-attempt at the kill ({} calls held); \
         {} runs after the restart and {} resent deliveries, {} runs delivered more than once, \
         {} executor calls; {:.1?} in all",
        store.backend(),
        acknowledged.len(),
        failed.len(),
        recorded_unanswered,
        mid_attempt.len(),
        held.len(),
        runs.len(),
        failed.len() + RESENT_ACKNOWLEDGED,
        redelivered,
        calls_per_run.values().sum::<usize>(),
        started.elapsed(),
    );
    engine.kill().await.unwrap();
    store.close().await;
}
