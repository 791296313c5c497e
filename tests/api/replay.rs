//! Bulk replay: dead-lettered runs retried in place and succeeded ones run again as new runs, each
//! once per replay, in the name of the person who asked; a dry run records nothing; a cancel
//! stops what has not started; two engine processes share a replay, and one carries on where the
//! other stopped.

use std::collections::HashMap;
use std::time::Duration;

use aggregates::RunStatus;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use trigger_engine::identity::Role;
use uuid::Uuid;

use crate::executor_target::Target;
use crate::helpers::{eventually, expect_problem, spawn_app_with, Session, TestApp, TestDb};

crate::on_every_store!(
    it_should_retry_dead_lettered_runs_once_each_in_the_callers_name,
    it_should_run_succeeded_runs_again_as_new_runs_marked_as_replays,
    it_should_stop_releasing_runs_once_cancelled,
    it_should_refuse_a_selection_it_cannot_replay,
    it_should_share_a_replay_between_processes_and_carry_on_after_one_stops,
);

const CONCURRENCY: usize = 2;

async fn spawn(db: &TestDb, target: &Target) -> TestApp {
    let configure = target.configure(CONCURRENCY);
    spawn_app_with(db, |serve| {
        configure(serve);
        serve.executor.executor_retry_base_ms = 10;
    })
    .await
}

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

/// A webhook trigger with `runs` runs that all ended as `status`.
async fn trigger_with_runs(app: &TestApp, org_id: Uuid, runs: usize, status: RunStatus) -> Uuid {
    let trigger = app
        .enabled_trigger(org_id, "webhook", "on_request", json!({}))
        .await;
    for n in 0..runs {
        deliver(app, trigger, n).await;
    }
    let ended = || async {
        let runs_now = app.runs_of(trigger).await;
        runs_now.len() == runs && runs_now.iter().all(|run| run.record.status == status)
    };
    eventually(30, "every run to end", ended).await;
    trigger
}

async fn replay(app: &TestApp, session: &Session, selection: Value) -> reqwest::Response {
    app.request(Method::POST, "/runs/replay", session)
        .json(&selection)
        .send()
        .await
        .unwrap()
}

async fn started(app: &TestApp, session: &Session, selection: Value) -> Value {
    let response = replay(app, session, selection).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["state"], "running", "{body}");
    body
}

async fn get_replay(app: &TestApp, session: &Session, id: &str) -> Value {
    let response = app
        .request(Method::GET, &format!("/replays/{id}"), session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn finished(app: &TestApp, session: &Session, id: &str) -> Value {
    let done = || async { get_replay(app, session, id).await["state"] == "finished" };
    eventually(60, "the replay to finish", done).await;
    get_replay(app, session, id).await
}

/// The 2xx calls the target received, per run.
fn successes(target: &Target) -> HashMap<Uuid, usize> {
    let mut per_run = HashMap::new();
    for call in target.calls() {
        if call.status == 200 {
            *per_run.entry(call.run_id).or_default() += 1;
        }
    }
    per_run
}

async fn it_should_retry_dead_lettered_runs_once_each_in_the_callers_name(db: TestDb) {
    // 400 dead-letters a run at its first attempt.
    let target = Target::start(400, Duration::ZERO).await;
    let app = spawn(&db, &target).await;
    let member = app.sign_up().await;
    let trigger = trigger_with_runs(&app, member.org_id, 6, RunStatus::DeadLettered).await;
    let other = trigger_with_runs(&app, member.org_id, 2, RunStatus::DeadLettered).await;
    target.answer(200);

    let head = app.store.head().await.unwrap();
    let selection = json!({"trigger_ids": [trigger], "statuses": ["dead_lettered"]});
    let mut dry = selection.clone();
    dry["dry_run"] = json!(true);
    let preview = replay(&app, &member, dry).await;
    assert_eq!(preview.status(), StatusCode::OK);
    let preview: Value = preview.json().await.unwrap();
    assert_eq!(preview["matched"], 6, "{preview}");
    assert_eq!(preview["run_ids"].as_array().unwrap().len(), 6);
    assert_eq!(
        app.store.head().await.unwrap(),
        head,
        "a dry run records nothing"
    );

    let response = replay(&app, &member, selection).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let id = body["replay_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/replays/{id}"));
    assert_eq!(body["matched"], 6);
    assert_eq!(body["requested_by"], format!("user:{}", member.user_id));

    let done = finished(&app, &member, &id).await;
    assert_eq!(
        (
            &done["released"],
            &done["done"],
            &done["succeeded"],
            &done["failed"]
        ),
        (&json!(6), &json!(6), &json!(6), &json!(0)),
        "{done}"
    );
    let runs = app.runs_of(trigger).await;
    assert_eq!(runs.len(), 6, "retried in place: no new runs");
    assert!(runs
        .iter()
        .all(|run| run.record.status == RunStatus::Succeeded));
    let delivered = successes(&target);
    assert_eq!(delivered.len(), 6);
    assert!(delivered.values().all(|&n| n == 1), "{delivered:?}");
    assert!(
        app.runs_of(other)
            .await
            .iter()
            .all(|run| run.record.status == RunStatus::DeadLettered),
        "the other trigger's runs were not selected"
    );

    // The run's history says which replay retried it, and for whom.
    let run_id = runs[0].record.run_id;
    let history: Value = app
        .request(Method::GET, &format!("/runs/{run_id}/history"), &member)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let retry = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["event_type"] == "RetryRequested")
        .unwrap_or_else(|| panic!("no retry in {history}"));
    assert_eq!(retry["data"]["replay_id"], id.as_str(), "{retry}");
    assert_eq!(retry["actor"], format!("user:{}", member.user_id));
    assert_eq!(retry["request_id"], format!("replay:{id}"));

    let listed: Value = app
        .request(Method::GET, "/replays", &member)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["replays"][0]["replay_id"], id.as_str(), "{listed}");
    assert_eq!(listed["replays"].as_array().unwrap().len(), 1);

    // Rebuilt from the log, the replay read model says the same.
    let before = get_replay(&app, &member, &id).await;
    trigger_engine::rebuild::rebuild_replays(&app.store)
        .await
        .unwrap();
    assert_eq!(get_replay(&app, &member, &id).await, before);

    // Another organisation sees none of it.
    let stranger = app.sign_up().await;
    let hidden = app
        .request(Method::GET, &format!("/replays/{id}"), &stranger)
        .send()
        .await
        .unwrap();
    expect_problem(hidden, StatusCode::NOT_FOUND, None).await;
    let theirs: Value = app
        .request(Method::GET, "/replays", &stranger)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["replays"], json!([]));
    app.shutdown().await;
}

async fn it_should_run_succeeded_runs_again_as_new_runs_marked_as_replays(db: TestDb) {
    let target = Target::start(200, Duration::ZERO).await;
    let app = spawn(&db, &target).await;
    let member = app.sign_up().await;
    let trigger = trigger_with_runs(&app, member.org_id, 3, RunStatus::Succeeded).await;
    let originals: HashMap<Uuid, Value> = app
        .runs_of(trigger)
        .await
        .into_iter()
        .map(|run| (run.record.run_id, run.record.firing.payload))
        .collect();

    let body = started(
        &app,
        &member,
        json!({"project_id": "project-1", "provider_id": "webhook", "statuses": ["succeeded"]}),
    )
    .await;
    let id = body["replay_id"].as_str().unwrap().to_owned();
    let done = finished(&app, &member, &id).await;
    assert_eq!(done["succeeded"], 3, "{done}");
    assert_eq!(done["selection"]["statuses"], json!(["succeeded"]));

    let runs = app.runs_of(trigger).await;
    assert_eq!(runs.len(), 6, "each succeeded run ran again as a new run");
    let reruns: Vec<_> = runs
        .iter()
        .filter(|run| !originals.contains_key(&run.record.run_id))
        .collect();
    assert_eq!(reruns.len(), 3);
    for rerun in &reruns {
        let of = match rerun.record.firing.cause {
            aggregates::RunCause::Replay { replay_id, of } => {
                assert_eq!(replay_id.to_string(), id);
                of
            }
            ref other => panic!("a rerun caused by {other:?}"),
        };
        assert_eq!(
            rerun.record.firing.payload, originals[&of],
            "the original payload"
        );
        assert_eq!(rerun.record.status, RunStatus::Succeeded);
    }
    let replayed_calls: Vec<Value> = target
        .calls()
        .into_iter()
        .filter(|call| call.body["is_replay"] == true)
        .map(|call| call.body)
        .collect();
    assert_eq!(replayed_calls.len(), 3);
    for call in &replayed_calls {
        let of: Uuid = call["replay_of"].as_str().unwrap().parse().unwrap();
        assert_eq!(call["payload"], originals[&of]);
    }
    let listed: Value = app
        .request(Method::GET, &format!("/triggers/{trigger}/runs"), &member)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let with_replay_of = listed["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|run| run["replay_of"].is_string())
        .count();
    assert_eq!(with_replay_of, 3, "{listed}");
    app.shutdown().await;
}

async fn it_should_stop_releasing_runs_once_cancelled(db: TestDb) {
    let target = Target::start(400, Duration::ZERO).await;
    let app = spawn(&db, &target).await;
    let member = app.sign_up().await;
    let trigger = trigger_with_runs(&app, member.org_id, 12, RunStatus::DeadLettered).await;
    // Slow enough that the replay is still releasing when it is cancelled.
    target.answer(200);
    target.delay(Duration::from_millis(300));

    let body = started(&app, &member, json!({"trigger_ids": [trigger]})).await;
    let id = body["replay_id"].as_str().unwrap().to_owned();
    let first_call = || async { !successes(&target).is_empty() };
    eventually(30, "the replay's first run to be delivered", first_call).await;
    let cancel = app
        .request(Method::POST, &format!("/replays/{id}/cancel"), &member)
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), StatusCode::OK);
    let cancelled: Value = cancel.json().await.unwrap();
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    assert_eq!(
        cancelled["cancelled_by"],
        format!("user:{}", member.user_id)
    );
    let released = cancelled["released"].as_u64().unwrap() as usize;
    assert!(released < 12, "{cancelled}");

    // What was released runs to its end; nothing else starts.
    let settled = || async {
        app.runs_of(trigger).await.iter().all(|run| {
            matches!(
                run.record.status,
                RunStatus::Succeeded | RunStatus::DeadLettered
            )
        })
    };
    eventually(30, "the released runs to finish", settled).await;
    let runs = app.runs_of(trigger).await;
    let retried = runs
        .iter()
        .filter(|run| run.record.status == RunStatus::Succeeded)
        .count();
    // A step under way when the cancel landed may have released up to the pace more.
    assert!(
        retried >= 1 && retried <= released + CONCURRENCY,
        "{retried} runs retried, {released} released by the cancelled replay"
    );
    assert!(retried < 12, "the cancel stopped the rest");
    let again = app
        .request(Method::POST, &format!("/replays/{id}/cancel"), &member)
        .send()
        .await
        .unwrap();
    expect_problem(again, StatusCode::CONFLICT, None).await;
    assert_eq!(get_replay(&app, &member, &id).await["state"], "cancelled");
    app.shutdown().await;
}

async fn it_should_refuse_a_selection_it_cannot_replay(db: TestDb) {
    let target = Target::start(400, Duration::ZERO).await;
    let app = spawn(&db, &target).await;
    let member = app.sign_up().await;
    let trigger = trigger_with_runs(&app, member.org_id, 1, RunStatus::DeadLettered).await;
    let stranger = app.sign_up_as(Role::Member).await;
    let theirs = app
        .enabled_trigger(stranger.org_id, "webhook", "on_request", json!({}))
        .await;
    let head = app.store.head().await.unwrap();

    let refusals = [
        (json!({"statuses": []}), "statuses"),
        (json!({"statuses": ["running"]}), "statuses"),
        (
            json!({"requested_from": "2026-12-02T10:00:00Z", "requested_to": "2026-12-01T10:00:00Z"}),
            "requested_from",
        ),
        (json!({"trigger_ids": [theirs]}), "trigger_ids"),
        (
            json!({"trigger_ids": [trigger], "statuses": ["succeeded"]}),
            "selection",
        ),
        (
            json!({"trigger_ids": [trigger], "everything": true}),
            "everything",
        ),
    ];
    for (selection, field) in refusals {
        let response = replay(&app, &member, selection.clone()).await;
        let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, None).await;
        assert!(
            problem.to_string().contains(field),
            "{selection} should be refused naming `{field}`: {problem}"
        );
    }
    assert_eq!(
        app.store.head().await.unwrap(),
        head,
        "refusals record nothing"
    );

    let unknown = app
        .request(
            Method::GET,
            &format!("/replays/{}", Uuid::new_v4()),
            &member,
        )
        .send()
        .await
        .unwrap();
    expect_problem(unknown, StatusCode::NOT_FOUND, None).await;
    let auditor = app.join(member.org_id, Role::Auditor).await;
    let forbidden = replay(&app, &auditor, json!({"trigger_ids": [trigger]})).await;
    expect_problem(forbidden, StatusCode::FORBIDDEN, None).await;
    app.shutdown().await;
}

async fn it_should_share_a_replay_between_processes_and_carry_on_after_one_stops(db: TestDb) {
    let target = Target::start(400, Duration::ZERO).await;
    let first = spawn(&db, &target).await;
    let second = spawn(&db, &target).await;
    let member = first.sign_up().await;
    let trigger = trigger_with_runs(&first, member.org_id, 20, RunStatus::DeadLettered).await;
    target.answer(200);
    target.delay(Duration::from_millis(50));

    let body = started(&first, &member, json!({"trigger_ids": [trigger]})).await;
    let id = body["replay_id"].as_str().unwrap().to_owned();
    let some = || async { successes(&target).len() >= 3 };
    eventually(30, "the replay to be under way", some).await;
    // The process that took the request stops; the other finishes the replay.
    first.shutdown().await;
    let done = finished(&second, &member, &id).await;
    assert_eq!(done["succeeded"], 20, "{done}");
    assert_eq!(done["failed"], 0);
    let delivered = successes(&target);
    assert_eq!(delivered.len(), 20);
    assert!(
        delivered.values().all(|&n| n == 1),
        "each run delivered once: {delivered:?}"
    );
    let runs = second.runs_of(trigger).await;
    assert_eq!(runs.len(), 20);
    assert!(runs
        .iter()
        .all(|run| run.record.status == RunStatus::Succeeded));
    second.shutdown().await;
}
