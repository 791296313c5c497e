//! An acknowledged write survives the engine being killed (SIGKILL) right after it answered.

use serde_json::{json, Value};

use crate::helpers::{admin_token, start_engine, TestDb};

crate::on_every_store!(it_should_keep_acknowledged_writes_when_killed_right_after);

async fn it_should_keep_acknowledged_writes_when_killed_right_after(db: TestDb) {
    let http = reqwest::Client::new();
    let (mut engine, address) = start_engine(&db, &http, &[]).await;
    let token = admin_token(&http, &address).await;
    let mut acknowledged = Vec::new();
    for n in 0..5 {
        let response = http
            .post(format!("{address}/projects/durable/triggers"))
            .bearer_auth(&token)
            .json(&json!({
                "provider_id": "rss",
                "trigger_id": "on_new_item",
                "trigger_config": {"feed_url": format!("https://example.com/{n}.xml")}
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let created: Value = response.json().await.unwrap();
        acknowledged.push(created["project_trigger_id"].as_str().unwrap().to_owned());
    }
    let enable = http
        .post(format!("{address}/triggers/{}/enable", acknowledged[4]))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(enable.status(), 204);
    // No graceful shutdown: the process dies at once, as in a crash.
    engine.kill().await.unwrap();

    let (mut engine, address) = start_engine(&db, &http, &[]).await;
    for (n, id) in acknowledged.iter().enumerate() {
        let response = http
            .get(format!("{address}/triggers/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "trigger {n} was lost");
        let trigger: Value = response.json().await.unwrap();
        let expected = if n == 4 { "ENABLED" } else { "DISABLED" };
        assert_eq!(trigger["status"], expected);
    }
    // The restarted process chains onto the head the killed one left.
    let enable = http
        .post(format!("{address}/triggers/{}/enable", acknowledged[0]))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(enable.status(), 204);
    engine.kill().await.unwrap();
    let store = trigger_engine::store::Store::connect(&db.url, 1)
        .await
        .unwrap();
    let verdict = store.verify_chain(1, None).await.unwrap();
    assert_eq!(verdict.broken, None);
    assert!(verdict.to >= 7, "two lives' events: {}", verdict.to);
    store.close().await;
}
