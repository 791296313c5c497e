//! U+0000 in what the engine is asked to record, which PostgreSQL's `text` and `jsonb` cannot
//! hold: a client's request is refused with a 422 naming the field and records nothing; a
//! provider's delivery is kept, the character replaced; and the same on both stores.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestDb};

crate::on_every_store!(
    it_should_refuse_a_request_holding_nul_naming_the_field,
    it_should_keep_a_delivery_holding_nul_with_the_character_replaced,
);

async fn it_should_refuse_a_request_holding_nul_naming_the_field(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let head = app.store.head().await.unwrap();

    let cases = [
        (
            "/projects/p/triggers",
            r#"{"provider_id":"http","trigger_id":"on_new_records","trigger_config":{"url":"https://feeds.example.com/a","id_field":"i\u0000d"}}"#,
            "trigger_config.id_field",
        ),
        (
            "/projects/p/triggers",
            r#"{"provider_id":"webhook","trigger_id":"on_request","trigger_config":{"k\u0000":1}}"#,
            "trigger_config.k\\u0000",
        ),
        (
            "/projects/p%00q/triggers",
            r#"{"provider_id":"webhook","trigger_id":"on_request"}"#,
            "project_id",
        ),
        (
            "/connections",
            r#"{"provider_id":"rss","name":"a\u0000b","credentials":{"token":"t"}}"#,
            "name",
        ),
        (
            "/connections",
            r#"{"provider_id":"rss","name":"mine","credentials":{"token":["t\u0000"]}}"#,
            "credentials.token[0]",
        ),
    ];
    for (path, body, field) in cases {
        let response = app
            .request(Method::POST, path, &session)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path} {body}"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["field"], field, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains("U+0000"),
            "{problem}"
        );
    }
    // The token endpoint's form: refused as RFC 6749 says, before any lookup.
    let response = app
        .http
        .post(format!("{}/token", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=password&username=a%00b%40example.com&password=x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["error"], "invalid_request", "{problem}");
    assert!(
        problem["error_description"]
            .as_str()
            .unwrap()
            .contains("username"),
        "{problem}"
    );

    assert_eq!(
        app.store.head().await.unwrap(),
        head,
        "a refused request records nothing"
    );

    // An escaped backslash before `u0000` is text, not the character: accepted.
    let response = app
        .request(Method::POST, "/projects/p/triggers", &session)
        .header("content-type", "application/json")
        .body(r#"{"provider_id":"http","trigger_id":"on_new_records","trigger_config":{"url":"https://feeds.example.com/a","id_field":"i\\u0000d"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["trigger_config"]["id_field"], "i\\u0000d");

    app.shutdown().await;
}

async fn it_should_keep_a_delivery_holding_nul_with_the_character_replaced(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let trigger = app
        .enabled_trigger(session.org_id, "webhook", "on_request", json!({}))
        .await;
    let bodies: [(&str, &str); 3] = [
        ("application/json", r#"{"text":"a\u0000b","n":1}"#),
        ("application/json", r#"{"k\u0000":[" \u0000"],"n":2}"#),
        ("text/plain", "raw\0text"),
    ];
    for (content_type, body) in bodies {
        let response = app
            .http
            .post(format!("{}/v1/webhooks/{trigger}", app.address))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{body}: {}",
            response.status()
        );
    }
    let mut payloads: Vec<Value> = app
        .runs_of(trigger)
        .await
        .into_iter()
        .map(|run| run.record.firing.payload)
        .collect();
    payloads.sort_by_key(|payload| payload.to_string());
    assert_eq!(
        payloads,
        vec![
            json!("raw\u{FFFD}text"),
            json!({"k\u{FFFD}": [" \u{FFFD}"], "n": 2}),
            json!({"text": "a\u{FFFD}b", "n": 1}),
        ]
    );
    app.shutdown().await;
}
