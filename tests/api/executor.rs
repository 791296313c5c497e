//! Executors over a real socket: a local receiver stands in for the project executor. Runs reach
//! it signed, with the run id as idempotency key; failures are retried with backoff, refused runs
//! and exhausted ones are dead-lettered, and a person can retry them.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use trigger_engine::config::ServeConfig;
use trigger_engine::identity::Secret;
use trigger_engine::webhooks::signatures::verify_standard;
use uuid::Uuid;

use crate::helpers::{eventually, spawn_app, spawn_app_with, Session, TestApp, TestDb};

crate::on_every_store!(
    it_should_execute_runs_with_the_built_in_executor_by_default,
    it_should_retry_a_failing_executor_with_the_same_idempotency_key,
    it_should_dead_letter_a_refused_run_and_let_a_person_retry_it,
    it_should_dead_letter_after_the_last_attempt,
    it_should_page_through_runs_and_serve_test_samples,
    it_should_share_runs_between_two_engines_without_running_an_attempt_twice,
);

/// What the receiver saw of one call.
#[derive(Debug, Clone)]
struct Call {
    webhook_id: String,
    idempotency_key: String,
    body: Value,
}

/// A local executor: answers each call with the next status of `plan` (the last one repeats).
#[derive(Clone)]
struct Receiver {
    calls: Arc<Mutex<Vec<Call>>>,
    plan: Arc<Mutex<Vec<u16>>>,
    url: String,
}

const EXECUTOR_KEY: &[u8] = b"the executor's shared secret key";

fn executor_secret() -> String {
    format!("whsec_{}", STANDARD.encode(EXECUTOR_KEY))
}

impl Receiver {
    async fn start(plan: &[u16]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Self {
            calls: Arc::default(),
            plan: Arc::new(Mutex::new(plan.to_vec())),
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

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn answer_from_now_on(&self, status: u16) {
        *self.plan.lock().unwrap() = vec![status];
    }

    fn configure(&self, retry_base_ms: u64, max_attempts: u32) -> impl FnOnce(&mut ServeConfig) {
        let url = self.url.clone();
        move |serve| {
            serve.executor.executor_url = Some(url);
            serve.executor.executor_secret = Some(Secret::new(executor_secret()));
            serve.executor.executor_retry_base_ms = retry_base_ms;
            serve.executor.executor_max_attempts = max_attempts;
        }
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: String) -> AxumStatus {
    let secret = executor_secret();
    let signed = verify_standard(
        &headers,
        body.as_bytes(),
        &[secret.as_str()],
        chrono::Utc::now(),
    );
    assert!(signed.is_ok(), "the engine signs its calls: {signed:?}");
    let header = |name: &str| headers[name].to_str().unwrap().to_owned();
    receiver.calls.lock().unwrap().push(Call {
        webhook_id: header("webhook-id"),
        idempotency_key: header("idempotency-key"),
        body: serde_json::from_str(&body).unwrap(),
    });
    let mut plan = receiver.plan.lock().unwrap();
    let status = if plan.len() > 1 {
        plan.remove(0)
    } else {
        plan[0]
    };
    AxumStatus::from_u16(status).unwrap()
}

/// Fires an unsigned generic trigger once; returns the trigger.
async fn fire(app: &TestApp, org_id: Uuid, times: usize) -> Uuid {
    let trigger = app
        .enabled_trigger(org_id, "webhook", "on_request", json!({}))
        .await;
    for n in 0..times {
        let response = app
            .http
            .post(format!("{}/v1/webhooks/{trigger}", app.address))
            .json(&json!({"n": n}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    trigger
}

async fn runs_json(app: &TestApp, session: &Session, trigger: Uuid, query: &str) -> Value {
    let response = app
        .request(
            Method::GET,
            &format!("/triggers/{trigger}/runs{query}"),
            session,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn wait_for_status(app: &TestApp, trigger: Uuid, status: &str) -> projections::runs::RunView {
    let has_status = |run: &projections::runs::RunView| {
        serde_json::to_value(run.record.status).unwrap() == json!(status)
    };
    eventually(20, &format!("a run {status}"), || async {
        app.runs_of(trigger).await.iter().any(has_status)
    })
    .await;
    app.runs_of(trigger)
        .await
        .into_iter()
        .find(|run| has_status(run))
        .unwrap()
}

async fn it_should_execute_runs_with_the_built_in_executor_by_default(db: TestDb) {
    let app = spawn_app(&db).await;
    let trigger = fire(&app, Uuid::new_v4(), 1).await;
    let run = wait_for_status(&app, trigger, "succeeded").await;
    assert_eq!(run.record.attempts, 1);
}

async fn it_should_retry_a_failing_executor_with_the_same_idempotency_key(db: TestDb) {
    let receiver = Receiver::start(&[503, 500, 200]).await;
    let app = spawn_app_with(&db, receiver.configure(10, 8)).await;
    let session = app.sign_up().await;
    let trigger = fire(&app, session.org_id, 1).await;
    let run = wait_for_status(&app, trigger, "succeeded").await;
    assert_eq!(run.record.attempts, 3);

    let calls = receiver.calls();
    assert_eq!(calls.len(), 3);
    let run_id = run.record.run_id.to_string();
    for call in &calls {
        assert_eq!(
            call.webhook_id, run_id,
            "one idempotency key for every attempt"
        );
        assert_eq!(call.idempotency_key, run_id);
        assert_eq!(call.body["run_id"], json!(run_id));
        assert_eq!(call.body["project_id"], "project-1");
        assert_eq!(call.body["payload"], json!({"n": 0}));
    }
    let attempts: Vec<&Value> = calls.iter().map(|call| &call.body["attempt"]).collect();
    assert_eq!(attempts, [&json!(1), &json!(2), &json!(3)]);

    let page = runs_json(&app, &session, trigger, "").await;
    assert_eq!(page["runs"][0]["status"], "succeeded");
    assert_eq!(page["runs"][0]["attempts"], 3);
    assert_eq!(page["runs"][0]["last_error"], Value::Null);
}

async fn it_should_dead_letter_a_refused_run_and_let_a_person_retry_it(db: TestDb) {
    let receiver = Receiver::start(&[400]).await;
    let app = spawn_app_with(&db, receiver.configure(10, 8)).await;
    let session = app.sign_up().await;
    let trigger = fire(&app, session.org_id, 1).await;
    let dead = wait_for_status(&app, trigger, "dead_lettered").await;
    assert_eq!(dead.record.attempts, 1, "a 4xx is not retried");
    assert!(dead.record.last_error.as_deref().unwrap().contains("400"));

    let stranger = app.sign_up().await;
    let path = format!("/runs/{}/retry", dead.record.run_id);
    let refused = app
        .request(Method::POST, &path, &stranger)
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        StatusCode::NOT_FOUND,
        "another organisation's run"
    );

    receiver.answer_from_now_on(200);
    let retried = app
        .request(Method::POST, &path, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), StatusCode::ACCEPTED);
    let body: Value = retried.json().await.unwrap();
    assert_eq!(body["run_id"], json!(dead.record.run_id));
    let done = wait_for_status(&app, trigger, "succeeded").await;
    assert_eq!(done.record.attempts, 2, "the retry is a new attempt");

    let again = app
        .request(Method::POST, &path, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        StatusCode::CONFLICT,
        "a succeeded run is not retried"
    );

    let history = app
        .store
        .stream_history("run", &dead.record.run_id.to_string())
        .await
        .unwrap();
    let retry = history
        .iter()
        .find(|event| event.event_type == "RetryRequested")
        .expect("the retry is recorded");
    assert_eq!(
        retry.meta("actor"),
        Some(format!("user:{}", session.user_id).as_str())
    );
}

async fn it_should_dead_letter_after_the_last_attempt(db: TestDb) {
    let receiver = Receiver::start(&[503]).await;
    let app = spawn_app_with(&db, receiver.configure(5, 3)).await;
    let trigger = fire(&app, Uuid::new_v4(), 1).await;
    let dead = wait_for_status(&app, trigger, "dead_lettered").await;
    assert_eq!(dead.record.attempts, 3);
    assert_eq!(receiver.calls().len(), 3);
}

async fn it_should_page_through_runs_and_serve_test_samples(db: TestDb) {
    let app = spawn_app_with(&db, |serve| serve.executor.executor_concurrency = 0).await;
    let session = app.sign_up().await;
    let trigger = app
        .enabled_trigger(session.org_id, "webhook", "on_request", json!({}))
        .await;
    let samples_path = format!("/api/v0/project-triggers/{trigger}/test-samples");
    let samples: Value = app
        .request(Method::GET, &samples_path, &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        samples.as_array().unwrap().len(),
        1,
        "the catalogue's sample before any firing"
    );
    assert_eq!(samples[0]["type"], "order.created");

    let head = app.store.head().await.unwrap();
    for n in 0..5 {
        let response = app
            .http
            .post(format!("{}/v1/webhooks/{trigger}", app.address))
            .json(&json!({"n": n}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    app.runs_of(trigger).await;

    let samples: Value = app
        .request(Method::GET, &samples_path, &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ns: Vec<&Value> = samples
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["n"])
        .collect();
    assert_eq!(
        ns,
        [&json!(4), &json!(3), &json!(2)],
        "the three newest payloads, newest first"
    );

    let first = runs_json(&app, &session, trigger, "?limit=2").await;
    let second = runs_json(
        &app,
        &session,
        trigger,
        &format!("?limit=2&cursor={}", first["next_cursor"].as_str().unwrap()),
    )
    .await;
    let third = runs_json(
        &app,
        &session,
        trigger,
        &format!(
            "?limit=2&cursor={}",
            second["next_cursor"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(third["next_cursor"], Value::Null);
    let mut seen: Vec<Value> = [&first, &second, &third]
        .iter()
        .flat_map(|page| page["runs"].as_array().unwrap().clone())
        .map(|run| run["run_id"].clone())
        .collect();
    assert_eq!(seen.len(), 5);
    seen.dedup();
    assert_eq!(seen.len(), 5, "no run twice across pages");
    assert_eq!(
        first["runs"][0]["status"], "requested",
        "no executor in this process"
    );

    let bad = app
        .request(
            Method::GET,
            &format!("/triggers/{trigger}/runs?cursor=nope"),
            &session,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json::<Value>().await.unwrap()["field"], "cursor");
    let stranger = app.sign_up().await;
    let hidden = app
        .request(Method::GET, &format!("/triggers/{trigger}/runs"), &stranger)
        .send()
        .await
        .unwrap();
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
    let unchanged = app.store.head().await.unwrap();
    assert_eq!(
        unchanged,
        head + 5,
        "reading samples and runs records nothing"
    );
}

async fn it_should_share_runs_between_two_engines_without_running_an_attempt_twice(db: TestDb) {
    let receiver = Receiver::start(&[200]).await;
    let one = spawn_app_with(&db, receiver.configure(10, 8)).await;
    let two = spawn_app_with(&db, receiver.configure(10, 8)).await;
    let trigger = one
        .enabled_trigger(Uuid::new_v4(), "webhook", "on_request", json!({}))
        .await;
    for n in 0..40 {
        let app = if n % 2 == 0 { &one } else { &two };
        let response = app
            .http
            .post(format!("{}/v1/webhooks/{trigger}", app.address))
            .json(&json!({"n": n}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    eventually(30, "every run succeeded", || async {
        let runs = one.runs_of(trigger).await;
        runs.len() == 40
            && runs
                .iter()
                .all(|run| run.record.status == aggregates::RunStatus::Succeeded)
    })
    .await;
    let calls = receiver.calls();
    let mut keys: Vec<&str> = calls
        .iter()
        .map(|call| call.idempotency_key.as_str())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 40);
    assert_eq!(calls.len(), 40, "each run's one attempt delivered once");
}
