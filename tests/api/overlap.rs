//! Schedule overlap: with `skip`, a slot whose previous run has not finished is recorded as
//! skipped; with `buffer_one`, one run waits (held) behind the running one and further slots are
//! skipped. Either way the target never runs two of the trigger's runs at once.

use std::time::Duration;

use aggregates::RunStatus;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::executor_target::Target;
use crate::helpers::{eventually, spawn_app_with, Session, TestApp, TestDb};

crate::on_every_store!(
    it_should_skip_slots_while_the_previous_run_is_running,
    it_should_let_one_run_wait_behind_the_running_one,
    it_should_refuse_an_unknown_overlap_policy,
);

/// How long the target takes per run: longer than two slots of a one-second schedule.
const CALL: Duration = Duration::from_millis(2200);

async fn schedule(app: &TestApp, session: &Session, overlap: &str) -> Uuid {
    let created = app
        .request(Method::POST, "/projects/p1/triggers", session)
        .json(&json!({
            "provider_id": "schedule",
            "trigger_id": "on_schedule",
            "trigger_config": {"interval_seconds": 1, "overlap": overlap},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let id: Uuid = created.json::<Value>().await.unwrap()["project_trigger_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let enabled = app
        .request(Method::POST, &format!("/triggers/{id}/enable"), session)
        .send()
        .await
        .unwrap();
    assert_eq!(enabled.status(), StatusCode::NO_CONTENT);
    id
}

async fn disable(app: &TestApp, session: &Session, id: Uuid) {
    let disabled = app
        .request(Method::POST, &format!("/triggers/{id}/disable"), session)
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), StatusCode::NO_CONTENT);
}

/// The target's calls never overlap: each starts after the one before it has been answered.
fn assert_one_at_a_time(target: &Target) {
    let mut starts: Vec<_> = target
        .calls()
        .iter()
        .map(|call| (call.at, call.run_id))
        .collect();
    starts.sort();
    for pair in starts.windows(2) {
        assert!(
            pair[1].0.duration_since(pair[0].0) >= CALL,
            "two runs of the trigger ran at once ({} and {}): {:?} apart",
            pair[0].1,
            pair[1].1,
            pair[1].0.duration_since(pair[0].0)
        );
    }
}

async fn it_should_skip_slots_while_the_previous_run_is_running(db: TestDb) {
    let target = Target::start(200, CALL).await;
    let app = spawn_app_with(&db, target.configure(4)).await;
    let session = app.sign_up().await;
    let id = schedule(&app, &session, "skip").await;
    let two_runs = || async { target.calls().len() >= 2 };
    eventually(20, "two runs to reach the target", two_runs).await;
    disable(&app, &session, id).await;

    let runs = app.runs_of(id).await;
    let skipped: Vec<_> = runs
        .iter()
        .filter(|run| run.record.status == RunStatus::Skipped)
        .collect();
    assert!(
        !skipped.is_empty(),
        "slots during a running run are skipped"
    );
    assert!(skipped.iter().all(|run| run
        .record
        .skipped_because
        .as_deref()
        .is_some_and(|reason| reason.contains("had not finished"))));
    assert!(
        skipped.iter().all(|run| run.record.attempts == 0),
        "a skipped slot is never executed"
    );
    assert_one_at_a_time(&target);
    app.shutdown().await;
}

async fn it_should_let_one_run_wait_behind_the_running_one(db: TestDb) {
    let target = Target::start(200, CALL).await;
    let app = spawn_app_with(&db, target.configure(4)).await;
    let session = app.sign_up().await;
    let id = schedule(&app, &session, "buffer_one").await;
    let three_runs = || async { target.calls().len() >= 3 };
    eventually(30, "three runs to reach the target", three_runs).await;
    disable(&app, &session, id).await;

    let runs = app.runs_of(id).await;
    let skipped = runs
        .iter()
        .filter(|run| run.record.status == RunStatus::Skipped)
        .count();
    assert!(skipped > 0, "slots beyond the one waiting are skipped");
    // Slots come every second and a run takes 2.2 s: the second and third runs can only have
    // been slots that waited behind the one before them (a slot is never fired late otherwise).
    let executed = runs.iter().filter(|run| run.record.attempts > 0).count();
    assert!(executed >= 3);
    let history = app
        .request(
            Method::GET,
            &format!("/runs/{}/history", target.calls()[1].run_id),
            &session,
        )
        .send()
        .await
        .unwrap();
    let history: Value = history.json().await.unwrap();
    let types: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["event_type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"RunReleased"),
        "the second run waited, then was released: {types:?}"
    );
    assert_one_at_a_time(&target);
    app.shutdown().await;
}

async fn it_should_refuse_an_unknown_overlap_policy(db: TestDb) {
    let app = spawn_app_with(&db, |_| {}).await;
    let session = app.sign_up().await;
    let refused = app
        .request(Method::POST, "/projects/p1/triggers", &session)
        .json(&json!({
            "provider_id": "schedule",
            "trigger_id": "on_schedule",
            "trigger_config": {"interval_seconds": 1, "overlap": "queue_all"},
        }))
        .send()
        .await
        .unwrap();
    let problem =
        crate::helpers::expect_problem(refused, StatusCode::UNPROCESSABLE_ENTITY, None).await;
    assert!(
        problem.to_string().contains("overlap"),
        "the problem names the field: {problem}"
    );
    app.shutdown().await;
}
