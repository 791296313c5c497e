//! Schedule triggers end to end: slots fire once each (by their run id), restarts fire nothing
//! twice and catch up by policy, and the schedule endpoint shows the next fire times.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{eventually, spawn_app, TestApp, TestDb};

crate::on_every_store!(
    it_should_fire_an_interval_schedule_once_per_slot,
    it_should_catch_up_the_latest_missed_slot_after_downtime,
    it_should_record_the_job_and_stop_firing_when_disabled,
    it_should_show_the_next_fire_times_with_daylight_saving_notes,
    it_should_fire_a_schedule_now_through_the_deprecated_key_url,
);

async fn create_schedule(app: &TestApp, session: &crate::helpers::Session, config: Value) -> Uuid {
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
    id
}

async fn enable(app: &TestApp, session: &crate::helpers::Session, id: Uuid) {
    let enabled = app
        .request(Method::POST, &format!("/triggers/{id}/enable"), session)
        .send()
        .await
        .unwrap();
    assert_eq!(enabled.status(), StatusCode::NO_CONTENT);
}

/// The slot times of the trigger's runs, oldest first.
async fn slots(app: &TestApp, id: Uuid) -> Vec<DateTime<Utc>> {
    let mut slots: Vec<DateTime<Utc>> = app
        .runs_of(id)
        .await
        .into_iter()
        .map(|run| match run.record.firing.cause {
            aggregates::RunCause::ScheduleSlot { at } => at,
            other => panic!("a schedule run caused by {other:?}"),
        })
        .collect();
    slots.sort();
    slots
}

async fn it_should_fire_an_interval_schedule_once_per_slot(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let id = create_schedule(&app, &session, json!({"interval_seconds": 1})).await;
    enable(&app, &session, id).await;
    eventually(15, "three slots fired", || async {
        slots(&app, id).await.len() >= 3
    })
    .await;
    app.shutdown().await;

    let app = spawn_app(&db).await;
    let before = slots(&app, id).await;
    eventually(15, "two more slots after a restart", || async {
        slots(&app, id).await.len() >= before.len() + 2
    })
    .await;
    let after = slots(&app, id).await;
    let anchor = after[0] - chrono::Duration::seconds(1);
    let distinct: BTreeSet<_> = after.iter().collect();
    assert_eq!(distinct.len(), after.len(), "no slot fired twice");
    for slot in &after {
        let offset = *slot - anchor;
        assert_eq!(
            offset.num_milliseconds() % 1_000,
            0,
            "every slot is the enable time plus whole intervals: {slot}"
        );
    }
    let runs = app.runs_of(id).await;
    assert_eq!(
        runs[0].record.firing.payload["schedule"],
        json!({"interval_seconds": 1})
    );
    assert!(runs[0].record.firing.payload["scheduled_at"].is_string());
}

async fn it_should_catch_up_the_latest_missed_slot_after_downtime(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let id = create_schedule(&app, &session, json!({"interval_seconds": 1})).await;
    enable(&app, &session, id).await;
    eventually(15, "a first slot", || async {
        !slots(&app, id).await.is_empty()
    })
    .await;
    app.shutdown().await;

    // Nobody runs for three and a half slots; the log says what fired before.
    let store = trigger_engine::app::open_store(&db.store_config())
        .await
        .unwrap();
    let before = logged_slots(&store, id).await;
    store.close().await;
    tokio::time::sleep(std::time::Duration::from_millis(3_500)).await;
    let restarted = Utc::now();

    let app = spawn_app(&db).await;
    eventually(15, "a slot after the restart", || async {
        slots(&app, id)
            .await
            .last()
            .is_some_and(|slot| *slot > restarted)
    })
    .await;
    // Three or more slots passed with nobody running. The restarted engine fires the latest slot
    // before it took the trigger on (which may fall just after `restarted`, if a slot boundary
    // came while it started), then carries on: no earlier missed slot may fire.
    let fired = logged_slots(&app.store, id).await;
    let new: Vec<_> = fired.iter().filter(|slot| !before.contains(slot)).collect();
    let missed = (restarted - *before.last().unwrap()).num_seconds();
    assert!(missed >= 3, "the engine was down for {missed} slots");
    assert!(
        *new[0] > restarted - chrono::Duration::seconds(1),
        "the first slot fired after the restart is the latest missed one, not an earlier one: \
         {new:?} (restarted at {restarted})"
    );
}

/// The slots the log shows fired for `trigger` (whatever the read models have reached).
async fn logged_slots(store: &trigger_engine::store::Store, trigger: Uuid) -> Vec<DateTime<Utc>> {
    let mut slots = Vec::new();
    for event in store.read_log(0, 1_000_000).await.unwrap() {
        if let Some(aggregates::RunEvent::RunRequested { firing, .. }) = event.run_event().unwrap()
        {
            if let (true, aggregates::RunCause::ScheduleSlot { at }) =
                (firing.project_trigger_id == trigger, firing.cause)
            {
                slots.push(at);
            }
        }
    }
    slots.sort();
    slots
}

async fn it_should_record_the_job_and_stop_firing_when_disabled(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let id = create_schedule(
        &app,
        &session,
        json!({"cron": "0 9 * * MON-FRI", "timezone": "Europe/Paris"}),
    )
    .await;
    enable(&app, &session, id).await;
    let trigger: Value = app
        .request(Method::GET, &format!("/triggers/{id}"), &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(trigger["webhook_data"]["job_id"], format!("schedule-{id}"));
    let next: DateTime<Utc> = trigger["webhook_data"]["next_fire_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(next > Utc::now());
    let disabled = app
        .request(Method::POST, &format!("/triggers/{id}/disable"), &session)
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), StatusCode::NO_CONTENT);
    let trigger: Value = app
        .request(Method::GET, &format!("/triggers/{id}"), &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        trigger["webhook_data"],
        Value::Null,
        "disabling cancels the job"
    );

    let every_second = create_schedule(&app, &session, json!({"interval_seconds": 1})).await;
    enable(&app, &session, every_second).await;
    eventually(15, "a slot", || async {
        !slots(&app, every_second).await.is_empty()
    })
    .await;
    let disabled = app
        .request(
            Method::POST,
            &format!("/triggers/{every_second}/disable"),
            &session,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), StatusCode::NO_CONTENT);
    let count = slots(&app, every_second).await.len();
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    assert!(
        slots(&app, every_second).await.len() <= count + 1,
        "a disabled schedule stops (one slot may have been in flight)"
    );
}

async fn it_should_show_the_next_fire_times_with_daylight_saving_notes(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let id = create_schedule(
        &app,
        &session,
        json!({"cron": "30 2 * * *", "timezone": "Europe/Paris"}),
    )
    .await;
    let path = format!("/triggers/{id}/schedule?count=3&after=2027-03-27T00:00:00Z");
    let response = app
        .request(Method::GET, &path, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["timezone"], "Europe/Paris");
    assert_eq!(body["enabled"], false);
    let next = body["next"].as_array().unwrap();
    assert_eq!(next.len(), 3);
    assert_eq!(next[0]["at"], "2027-03-27T01:30:00Z");
    assert_eq!(next[0]["note"], Value::Null);
    // 02:30 does not exist on 28 March 2027 in Paris: it fires at 03:00 CEST, 01:00 UTC.
    assert_eq!(next[1]["at"], "2027-03-28T01:00:00Z");
    assert_eq!(next[1]["local"], "2027-03-28T03:00:00+02:00");
    assert!(next[1]["note"].is_string());
    assert_eq!(next[2]["at"], "2027-03-29T00:30:00Z");

    let bad = app
        .request(
            Method::GET,
            &format!("/triggers/{id}/schedule?count=0"),
            &session,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let not_a_schedule = app
        .enabled_trigger(session.org_id, "webhook", "on_request", json!({}))
        .await;
    let missing = app
        .request(
            Method::GET,
            &format!("/triggers/{not_a_schedule}/schedule"),
            &session,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

async fn it_should_fire_a_schedule_now_through_the_deprecated_key_url(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let (_, key) = app.identity.create_api_key(session.org_id).await.unwrap();
    let id = create_schedule(&app, &session, json!({"cron": "0 0 1 1 *"})).await;
    let url = format!(
        "{}/organizations/{}/triggers/{id}/scheduled/key/{key}",
        app.address, session.org_id
    );
    let disabled = app.http.post(&url).send().await.unwrap();
    assert_eq!(disabled.status(), StatusCode::NOT_FOUND);
    enable(&app, &session, id).await;
    let wrong = app
        .http
        .post(url.replace(&key, "te_wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let fired = app.http.post(&url).send().await.unwrap();
    assert_eq!(fired.status(), StatusCode::NO_CONTENT);
    assert_eq!(fired.headers()["deprecation"], "true");
    assert_eq!(slots(&app, id).await.len(), 1);
}
