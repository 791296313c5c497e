//! Liveness over a real socket.

use crate::helpers::{eventually, spawn_app, TestDb};

crate::on_every_store!(it_should_answer_healthz_once_ready);

async fn it_should_answer_healthz_once_ready(db: TestDb) {
    let app = spawn_app(&db).await;
    let url = format!("{}/healthz", app.address);
    let http = app.http.clone();
    eventually(10, "healthz to answer 200", || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            matches!(http.get(&url).send().await, Ok(response) if response.status() == 200)
        }
    })
    .await;
    let body: serde_json::Value = app
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "ok");
    app.shutdown().await;
}
