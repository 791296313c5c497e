//! Fair dispatch: one organisation's backlog does not hold back another organisation's new run.
//! Measured before the change: with 4 executor slots and 300 runs of one organisation queued
//! against a target that takes 0.2 s, another organisation's single new run waited 13.4 s.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::executor_target::Target;
use crate::helpers::{eventually, spawn_app_with, TestApp, TestDb};

crate::on_every_store!(it_should_run_another_organisations_new_run_ahead_of_a_backlog,);

const BACKLOG: usize = 300;
const SLOTS: usize = 4;

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

async fn it_should_run_another_organisations_new_run_ahead_of_a_backlog(db: TestDb) {
    let target = Target::start(200, Duration::from_millis(200)).await;
    let app = spawn_app_with(&db, target.configure(SLOTS)).await;
    let busy = app.sign_up().await;
    let quiet = app.sign_up().await;
    let backlog = app
        .enabled_trigger(busy.org_id, "webhook", "on_request", json!({}))
        .await;
    let single = app
        .enabled_trigger(quiet.org_id, "webhook", "on_request", json!({}))
        .await;
    for n in 0..BACKLOG {
        deliver(&app, backlog, n).await;
    }
    // The backlog is being worked on: every slot is busy with it.
    let started = || async { target.calls().len() >= SLOTS };
    eventually(20, "the backlog's first runs to be executed", started).await;

    let fired = Instant::now();
    deliver(&app, single, 0).await;
    let quiet_org = quiet.org_id;
    let reached = || async { target.calls().iter().any(|call| call.org_id == quiet_org) };
    eventually(
        20,
        "the other organisation's run to reach the target",
        reached,
    )
    .await;
    let call = target
        .calls()
        .into_iter()
        .find(|call| call.org_id == quiet_org)
        .unwrap();
    let waited = call.at.duration_since(fired);
    let backlog_done = target
        .calls()
        .iter()
        .filter(|call| call.org_id == busy.org_id)
        .count();
    eprintln!(
        "fairness ({}): the other organisation's run reached the target after {waited:?}, \
         {backlog_done} of {BACKLOG} backlog runs delivered meanwhile",
        db.store_config()
            .database_url
            .split(':')
            .next()
            .unwrap_or("?")
    );
    assert!(
        backlog_done < BACKLOG / 2,
        "the test means something only while most of the backlog still waits"
    );
    assert!(
        waited < Duration::from_secs(2),
        "another organisation's run waited {waited:?} behind a backlog"
    );
    app.shutdown().await;
}
