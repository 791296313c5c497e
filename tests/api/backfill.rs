//! Backfilling a schedule: every slot of a past range fires once, by the slot's own run id, so a
//! repeated or overlapping backfill fires only what had not fired; a dry run records nothing.

use chrono::{DateTime, DurationRound, Timelike, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use trigger_engine::identity::Role;
use uuid::Uuid;

use crate::helpers::{expect_problem, spawn_app, spawn_app_with, Session, TestApp, TestDb};

crate::on_every_store!(
    it_should_fire_each_past_slot_once_and_repeat_nothing,
    it_should_refuse_a_range_it_cannot_backfill,
);

async fn schedule(app: &TestApp, session: &Session, config: Value, enable: bool) -> Uuid {
    let created = app
        .request(Method::POST, "/projects/p1/triggers", session)
        .json(&json!({"provider_id": "schedule", "trigger_id": "on_schedule", "trigger_config": config}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let id: Uuid = created.json::<Value>().await.unwrap()["project_trigger_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    if enable {
        let enabled = app
            .request(Method::POST, &format!("/triggers/{id}/enable"), session)
            .send()
            .await
            .unwrap();
        assert_eq!(enabled.status(), StatusCode::NO_CONTENT);
    }
    id
}

async fn backfill(
    app: &TestApp,
    session: &Session,
    id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    dry_run: bool,
) -> reqwest::Response {
    app.request(
        Method::POST,
        &format!("/triggers/{id}/schedule/backfill"),
        session,
    )
    .json(&json!({"from": from, "to": to, "dry_run": dry_run}))
    .send()
    .await
    .unwrap()
}

async fn answer(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn it_should_fire_each_past_slot_once_and_repeat_nothing(db: TestDb) {
    // No executor, so nothing but the backfills appends to the log while the test watches it.
    let app = spawn_app_with(&db, |serve| serve.executor.executor_concurrency = 0).await;
    let session = app.sign_up().await;
    // Every minute of one hour of the day, twelve hours away from now: the scheduler has no slot
    // of its own to fire while the test runs, and the backfilled hour is well before the trigger
    // existed, so catch-up fires none of it either.
    let hour = Utc::now()
        .duration_trunc(chrono::Duration::hours(1))
        .unwrap()
        - chrono::Duration::hours(12);
    let cron = format!("* {} * * *", hour.hour());
    let id = schedule(&app, &session, json!({"cron": cron}), true).await;
    let from = hour;
    let half = from + chrono::Duration::minutes(29);
    let to = from + chrono::Duration::minutes(59);

    let head = app.store.head().await.unwrap();
    let dry = answer(backfill(&app, &session, id, from, half, true).await).await;
    assert_eq!(dry["slots"], 30, "both ends included: {dry}");
    assert_eq!(dry["fired"], 30);
    assert_eq!(dry["already_fired"], 0);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["run_ids"].as_array().unwrap().len(), 30);
    assert_eq!(
        app.store.head().await.unwrap(),
        head,
        "a dry run records nothing"
    );
    assert!(app.runs_of(id).await.is_empty());

    let done = answer(backfill(&app, &session, id, from, half, false).await).await;
    assert_eq!(done["fired"], 30, "{done}");
    assert_eq!(done["dry_run"], false);
    let runs = app.runs_of(id).await;
    assert_eq!(runs.len(), 30);
    let mut slots: Vec<DateTime<Utc>> = runs
        .iter()
        .map(|run| match run.record.firing.cause {
            aggregates::RunCause::ScheduleSlot { at } => at,
            ref other => panic!("a backfilled run caused by {other:?}"),
        })
        .collect();
    slots.sort();
    assert_eq!(slots.first(), Some(&from));
    assert_eq!(slots.last(), Some(&half));
    assert!(runs
        .iter()
        .all(|run| run.record.firing.payload["backfill"] == true));
    let listed: Vec<Uuid> = done["run_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(listed.len(), 30);
    assert!(listed
        .iter()
        .all(|run| runs.iter().any(|view| view.record.run_id == *run)));

    let head = app.store.head().await.unwrap();
    let again = answer(backfill(&app, &session, id, from, half, false).await).await;
    assert_eq!(again["fired"], 0, "{again}");
    assert_eq!(again["already_fired"], 30);
    assert_eq!(
        app.store.head().await.unwrap(),
        head,
        "a repeated backfill records nothing"
    );

    let overlapping = answer(backfill(&app, &session, id, from, to, false).await).await;
    assert_eq!(overlapping["slots"], 60, "{overlapping}");
    assert_eq!(overlapping["fired"], 30, "{overlapping}");
    assert_eq!(overlapping["already_fired"], 30);
    let runs = app.runs_of(id).await;
    assert_eq!(runs.len(), 60);
    let fired_again: Vec<Uuid> = overlapping["run_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(fired_again.len(), 30);
    assert!(
        fired_again.iter().all(|run| !listed.contains(run)),
        "an overlapping backfill lists only the slots it fired"
    );
    app.shutdown().await;
}

async fn it_should_refuse_a_range_it_cannot_backfill(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let id = schedule(&app, &session, json!({"cron": "* * * * *"}), true).await;
    let now = Utc::now();
    let hour = chrono::Duration::hours(1);

    let reversed = backfill(&app, &session, id, now - hour, now - hour * 2, false).await;
    expect_problem(reversed, StatusCode::UNPROCESSABLE_ENTITY, Some("from")).await;
    let future = backfill(&app, &session, id, now - hour, now + hour, false).await;
    expect_problem(future, StatusCode::UNPROCESSABLE_ENTITY, Some("to")).await;
    // Every minute for eight days: 11,520 slots, past the 10,000 a backfill fires.
    let wide = backfill(&app, &session, id, now - hour * 24 * 8, now, false).await;
    expect_problem(wide, StatusCode::UNPROCESSABLE_ENTITY, Some("to")).await;
    let missing_field = app
        .request(
            Method::POST,
            &format!("/triggers/{id}/schedule/backfill"),
            &session,
        )
        .json(&json!({"from": now - hour}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing_field.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let disabled = schedule(&app, &session, json!({"cron": "* * * * *"}), false).await;
    let refused = backfill(&app, &session, disabled, now - hour, now, false).await;
    expect_problem(refused, StatusCode::CONFLICT, None).await;
    let webhook = app
        .enabled_trigger(session.org_id, "webhook", "on_request", json!({}))
        .await;
    let not_a_schedule = backfill(&app, &session, webhook, now - hour, now, false).await;
    expect_problem(not_a_schedule, StatusCode::NOT_FOUND, None).await;
    let stranger = app.sign_up().await;
    let elsewhere = backfill(&app, &stranger, id, now - hour, now, false).await;
    expect_problem(elsewhere, StatusCode::NOT_FOUND, None).await;
    let auditor = app.join(session.org_id, Role::Auditor).await;
    let reader = backfill(&app, &auditor, id, now - hour, now, false).await;
    expect_problem(reader, StatusCode::FORBIDDEN, None).await;
    assert!(
        app.runs_of(id).await.is_empty() && app.runs_of(disabled).await.is_empty(),
        "refused backfills fire nothing"
    );
    app.shutdown().await;
}
