//! The executor when its target is down: after a few failed calls it stops calling (the circuit
//! opens), probes once per cool-down, and when the target is back every run succeeds, each once,
//! having used an attempt only for the calls that were actually made.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use trigger_engine::identity::Role;
use uuid::Uuid;

use crate::executor_target::Target;
use crate::helpers::{eventually, spawn_app_with, TestApp, TestDb};

crate::on_every_store!(it_should_stop_calling_a_down_target_and_deliver_every_run_once_it_is_back,);

const RUNS: usize = 20;
const THRESHOLD: u32 = 3;
const CONCURRENCY: usize = 4;

async fn deliver(app: &TestApp, trigger: Uuid, n: usize) {
    let response = app
        .http
        .post(format!("{}/v1/webhooks/{trigger}", app.address))
        .json(&json!({"n": n}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

async fn it_should_stop_calling_a_down_target_and_deliver_every_run_once_it_is_back(db: TestDb) {
    let target = Target::start(503, Duration::ZERO).await;
    let configure = target.configure(CONCURRENCY);
    let app = spawn_app_with(&db, |serve| {
        configure(serve);
        serve.executor.executor_retry_base_ms = 10;
        serve.executor.executor_max_attempts = 8;
        serve.executor.executor_circuit_threshold = THRESHOLD;
        serve.executor.executor_circuit_cool_down_ms = 200;
        serve.executor.executor_circuit_max_cool_down_ms = 400;
    })
    .await;
    let admin = app.sign_up_as(Role::Admin).await;
    let member = app.join(admin.org_id, Role::Member).await;
    let trigger = app
        .enabled_trigger(admin.org_id, "webhook", "on_request", json!({}))
        .await;
    for n in 0..RUNS {
        deliver(&app, trigger, n).await;
    }

    let status = |session| {
        let request = app.request(Method::GET, "/executor/status", session);
        async move { request.send().await.unwrap() }
    };
    let origin = target.origin.clone();
    let open = || async {
        let body: Value = status(&admin).await.json().await.unwrap();
        body["targets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|circuit| circuit["origin"] == origin.as_str() && circuit["state"] == "open")
    };
    eventually(20, "the target's circuit to open", open).await;
    assert_eq!(
        status(&member).await.status(),
        StatusCode::FORBIDDEN,
        "the executor's state is for administrators"
    );
    let metrics = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // A failed probe opens it again, so by the time /metrics is read it may have opened more
    // than once.
    let series = format!("trigger_engine_executor_circuit_opened_total{{origin=\"{origin}\"}} ");
    let openings: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or_else(|| panic!("the circuit's openings are in /metrics:\n{metrics}"));
    assert!(openings >= 1, "{openings} openings in /metrics");

    // The outage lasts a while longer: enough for a few cool-downs and probes.
    let opened_after = target.calls().len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let during_outage = target.calls().len() - opened_after;
    // At most the calls already out when it opened, then one probe per cool-down (200 ms, then
    // 400 ms): without the circuit, 20 runs retried every few tens of milliseconds would have made
    // well over a hundred calls.
    assert!(
        during_outage <= CONCURRENCY + 8,
        "{during_outage} calls in 1.5 s of an open circuit"
    );
    target.answer(200);

    let delivered = || async {
        target
            .calls()
            .iter()
            .filter(|call| call.status == 200)
            .count()
            >= RUNS
    };
    eventually(30, "every run to be delivered", delivered).await;
    // The target counts a call when it answers; the run's success is recorded a moment later.
    let recorded = || async {
        app.runs_of(trigger)
            .await
            .iter()
            .filter(|run| run.record.status == aggregates::RunStatus::Succeeded)
            .count()
            == RUNS
    };
    eventually(30, "every run to be recorded as succeeded", recorded).await;
    let calls = target.calls();
    let mut calls_per_run: HashMap<Uuid, u32> = HashMap::new();
    let mut successes_per_run: HashMap<Uuid, u32> = HashMap::new();
    for call in &calls {
        *calls_per_run.entry(call.run_id).or_default() += 1;
        if call.status == 200 {
            *successes_per_run.entry(call.run_id).or_default() += 1;
        }
    }
    assert_eq!(successes_per_run.len(), RUNS);
    assert!(
        successes_per_run.values().all(|&n| n == 1),
        "each run delivered once: {successes_per_run:?}"
    );
    let runs = app.runs_of(trigger).await;
    assert_eq!(runs.len(), RUNS);
    for run in runs {
        let record = run.record;
        assert_eq!(record.status, aggregates::RunStatus::Succeeded);
        assert_eq!(
            record.attempts, calls_per_run[&record.run_id],
            "an attempt is used only for a call made, not for waiting on an open circuit"
        );
    }
    let body: Value = status(&admin).await.json().await.unwrap();
    let circuit = body["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|circuit| circuit["origin"] == origin.as_str())
        .unwrap()
        .clone();
    assert_eq!(circuit["state"], "closed", "{body}");
    assert_eq!(body["concurrency"], CONCURRENCY);
    app.shutdown().await;
}
