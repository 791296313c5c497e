//! The trigger cache behind deliveries and `GET /triggers/{id}`: a process serves its own
//! writes at once, and another process's as soon as its projector has seen them, even for a
//! trigger it already holds.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{spawn_app, Session, TestApp, TestDb};
use crate::webhooks::deliver;

crate::on_every_store!(it_should_serve_a_change_made_through_another_process_once_it_has_seen_it,);

async fn delivered(app: &TestApp, trigger: Uuid) -> StatusCode {
    deliver(app, &trigger.to_string(), &[], r#"{"n": 1}"#)
        .await
        .status()
}

async fn status(app: &TestApp, session: &Session, trigger: Uuid) -> String {
    let body = app.trigger_json(session, trigger).await;
    body["status"].as_str().unwrap().to_owned()
}

async fn act(app: &TestApp, session: &Session, trigger: Uuid, action: &str) {
    let response = app
        .request(
            Method::POST,
            &format!("/triggers/{trigger}/{action}"),
            session,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT, "{action}");
}

/// Waits until `app`'s projector has seen the whole log as it stands.
async fn seen_everything(app: &TestApp) {
    let head = app.store.head().await.unwrap();
    assert!(
        app.projections
            .wait_for(head, Duration::from_secs(10))
            .await,
        "the projector reaches the log's head"
    );
}

async fn it_should_serve_a_change_made_through_another_process_once_it_has_seen_it(db: TestDb) {
    let first = spawn_app(&db).await;
    let second = spawn_app(&db).await;
    let session = first.sign_up().await;
    let trigger = first
        .enabled_trigger(session.org_id, "webhook", "on_request", json!({}))
        .await;
    // Both processes read the trigger, and so hold it.
    for app in [&first, &second] {
        seen_everything(app).await;
        assert_eq!(status(app, &session, trigger).await, "ENABLED");
        assert_eq!(delivered(app, trigger).await, StatusCode::NO_CONTENT);
    }

    act(&first, &session, trigger, "disable").await;
    // The process that made the change serves it at once: its answer waited for its reads.
    assert_eq!(delivered(&first, trigger).await, StatusCode::NOT_FOUND);
    assert_eq!(status(&first, &session, trigger).await, "DISABLED");
    // The other serves it once its projector has seen the change, though it held the trigger.
    seen_everything(&second).await;
    assert_eq!(delivered(&second, trigger).await, StatusCode::NOT_FOUND);
    assert_eq!(status(&second, &session, trigger).await, "DISABLED");

    act(&second, &session, trigger, "enable").await;
    assert_eq!(delivered(&second, trigger).await, StatusCode::NO_CONTENT);
    seen_everything(&first).await;
    assert_eq!(status(&first, &session, trigger).await, "ENABLED");
    assert_eq!(delivered(&first, trigger).await, StatusCode::NO_CONTENT);
    first.shutdown().await;
    second.shutdown().await;
}
