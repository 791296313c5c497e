//! An acknowledged write survives the engine being killed (SIGKILL) right after it answered.

use std::process::Stdio;

use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::helpers::{eventually, TestDb, ADMIN_EMAIL, ADMIN_PASSWORD};

crate::on_every_store!(it_should_keep_acknowledged_writes_when_killed_right_after);

/// A port nobody listens on now; the engine binds it a moment later.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the real binary on `db` and waits until it answers `/healthz`.
async fn start_engine(db: &TestDb, http: &reqwest::Client) -> (Child, String) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_trigger-engine"))
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("TRIGGER_ENGINE_LISTEN", format!("127.0.0.1:{port}"))
        .env("TRIGGER_ENGINE_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("TRIGGER_ENGINE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting trigger-engine serve");
    let address = format!("http://127.0.0.1:{port}");
    let healthz = format!("{address}/healthz");
    eventually(60, "the engine to answer /healthz", || {
        let (http, healthz) = (http.clone(), healthz.clone());
        async move { matches!(http.get(&healthz).send().await, Ok(r) if r.status() == 200) }
    })
    .await;
    (child, address)
}

async fn it_should_keep_acknowledged_writes_when_killed_right_after(db: TestDb) {
    let http = reqwest::Client::new();
    let (mut engine, address) = start_engine(&db, &http).await;
    let token: Value = http
        .post(format!("{address}/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", ADMIN_EMAIL),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
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

    let (mut engine, address) = start_engine(&db, &http).await;
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
    engine.kill().await.unwrap();
}
