//! Pause and resume over a real socket: a paused trigger still takes deliveries (the sender sees
//! 2xx and nothing is lost) but its runs are held, not executed; resume releases them, oldest
//! first. Disable keeps its meaning: deliveries are refused.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{eventually, spawn_app, Session, TestApp, TestDb};

crate::on_every_store!(
    it_should_hold_a_paused_triggers_runs_and_release_them_oldest_first_on_resume,
    it_should_release_each_held_run_once_when_two_processes_share_the_store,
    it_should_keep_refusing_deliveries_to_a_disabled_trigger_whether_paused_or_not,
);

async fn post(app: &TestApp, session: &Session, path: &str) -> StatusCode {
    app.request(Method::POST, path, session)
        .send()
        .await
        .unwrap()
        .status()
}

async fn deliver(app: &TestApp, trigger: Uuid, n: usize) -> StatusCode {
    app.http
        .post(format!("{}/v1/webhooks/{trigger}", app.address))
        .json(&json!({"n": n}))
        .send()
        .await
        .unwrap()
        .status()
}

async fn statuses(app: &TestApp, session: &Session, trigger: Uuid) -> Vec<String> {
    let response = app
        .request(Method::GET, &format!("/triggers/{trigger}/runs"), session)
        .send()
        .await
        .unwrap();
    let page: Value = response.json().await.unwrap();
    page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["status"].as_str().unwrap().to_owned())
        .collect()
}

async fn it_should_hold_a_paused_triggers_runs_and_release_them_oldest_first_on_resume(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let paused = app
        .enabled_trigger(session.org_id, "webhook", "on_request", json!({}))
        .await;
    let running = app
        .enabled_trigger(session.org_id, "webhook", "on_request", json!({}))
        .await;
    assert_eq!(app.trigger_json(&session, paused).await["paused"], false);

    let path = format!("/triggers/{paused}/pause");
    assert_eq!(post(&app, &session, &path).await, StatusCode::NO_CONTENT);
    assert_eq!(app.trigger_json(&session, paused).await["paused"], true);
    assert_eq!(
        post(&app, &session, &path).await,
        StatusCode::NO_CONTENT,
        "pausing a paused trigger changes nothing"
    );
    for n in 0..3 {
        assert_eq!(deliver(&app, paused, n).await, StatusCode::NO_CONTENT);
    }
    // A run of another trigger fired after them goes all the way: by then the executor has looked
    // at the queue, and the held runs were not in it.
    assert_eq!(deliver(&app, running, 0).await, StatusCode::NO_CONTENT);
    eventually(20, "the other trigger's run to succeed", || async {
        statuses(&app, &session, running).await == ["succeeded"]
    })
    .await;
    assert_eq!(statuses(&app, &session, paused).await, ["held"; 3]);

    let resume = format!("/triggers/{paused}/resume");
    assert_eq!(post(&app, &session, &resume).await, StatusCode::NO_CONTENT);
    assert_eq!(app.trigger_json(&session, paused).await["paused"], false);
    eventually(20, "the held runs to succeed", || async {
        statuses(&app, &session, paused).await == ["succeeded"; 3]
    })
    .await;

    // Released oldest first, each once; pause and resume are in the trigger's history.
    let log = app.store.read_log(0, 10_000).await.unwrap();
    let runs = app.runs_of(paused).await;
    let mut oldest_first: Vec<Uuid> = runs.iter().map(|run| run.record.run_id).collect();
    oldest_first.reverse();
    let released: Vec<Uuid> = log
        .iter()
        .filter(|event| event.event_type == "RunReleased")
        .map(|event| event.stream_uuid().unwrap())
        .collect();
    assert_eq!(released, oldest_first);
    let lifecycle: Vec<&str> = log
        .iter()
        .filter(|event| event.aggregate_id == paused.to_string())
        .map(|event| event.event_type.as_str())
        .collect();
    assert_eq!(
        lifecycle,
        [
            "TriggerCreated",
            "TriggerEnabled",
            "TriggerPaused",
            "TriggerResumed"
        ]
    );
    let paused_by = log
        .iter()
        .find(|event| event.event_type == "TriggerPaused")
        .and_then(|event| event.meta("actor").map(str::to_owned));
    assert_eq!(paused_by, Some(format!("user:{}", session.user_id)));
}

async fn it_should_keep_refusing_deliveries_to_a_disabled_trigger_whether_paused_or_not(
    db: TestDb,
) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let trigger = app
        .enabled_trigger(session.org_id, "webhook", "on_request", json!({}))
        .await;
    let pause = format!("/triggers/{trigger}/pause");
    assert_eq!(post(&app, &session, &pause).await, StatusCode::NO_CONTENT);
    let disable = format!("/triggers/{trigger}/disable");
    assert_eq!(post(&app, &session, &disable).await, StatusCode::NO_CONTENT);
    assert_eq!(deliver(&app, trigger, 0).await, StatusCode::NOT_FOUND);
    let unknown = format!("/triggers/{}/pause", Uuid::new_v4());
    assert_eq!(post(&app, &session, &unknown).await, StatusCode::NOT_FOUND);

    let auditor = app
        .join(session.org_id, trigger_engine::identity::Role::Auditor)
        .await;
    let resume = format!("/triggers/{trigger}/resume");
    assert_eq!(post(&app, &auditor, &resume).await, StatusCode::FORBIDDEN);
}

async fn it_should_release_each_held_run_once_when_two_processes_share_the_store(db: TestDb) {
    let first = spawn_app(&db).await;
    let second = spawn_app(&db).await;
    let session = first.sign_up().await;
    let trigger = first
        .enabled_trigger(session.org_id, "webhook", "on_request", json!({}))
        .await;
    let pause = format!("/triggers/{trigger}/pause");
    assert_eq!(post(&first, &session, &pause).await, StatusCode::NO_CONTENT);
    // Deliveries reach either process; both hold the runs.
    for n in 0..10 {
        let through = if n % 2 == 0 { &first } else { &second };
        assert_eq!(deliver(through, trigger, n).await, StatusCode::NO_CONTENT);
    }
    eventually(20, "every run held", || async {
        let runs = second.runs_of(trigger).await;
        runs.len() == 10
            && runs
                .iter()
                .all(|run| run.record.status == aggregates::RunStatus::Held)
    })
    .await;
    // Resumed through the other process: both releasers and both executors race for the runs.
    let resume = format!("/triggers/{trigger}/resume");
    assert_eq!(
        post(&second, &session, &resume).await,
        StatusCode::NO_CONTENT
    );
    eventually(30, "every held run to succeed", || async {
        statuses(&first, &session, trigger).await == ["succeeded"; 10]
    })
    .await;
    let released = first
        .store
        .read_log(0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|event| event.event_type == "RunReleased")
        .count();
    assert_eq!(released, 10, "each held run released once");
    first.shutdown().await;
    second.shutdown().await;
}
