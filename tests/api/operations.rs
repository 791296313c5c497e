//! What operators rely on: rate limits that refuse without changing anything, readiness that
//! follows the projection's lag, and metrics by route template.

use std::num::NonZeroU32;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use trigger_engine::identity::Role;

use crate::helpers::{
    eventually, spawn_app, spawn_app_with, Session, TestApp, TestDb, ADMIN_EMAIL, ADMIN_PASSWORD,
};

crate::on_every_store!(
    it_should_refuse_token_attempts_over_the_limit_for_one_username_and_address,
    it_should_refuse_an_organisation_over_its_limit_without_slowing_another,
    it_should_be_ready_only_while_the_read_model_keeps_up_with_the_log,
    it_should_export_request_counts_by_route_template_and_the_projection_lag,
);

fn per(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

async fn password_grant(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    app.http
        .post(format!("{}/token", app.address))
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
}

async fn create_trigger(app: &TestApp, session: &Session) -> reqwest::Response {
    app.request(Method::POST, "/projects/p/triggers", session)
        .json(&json!({
            "provider_id": "rss",
            "trigger_id": "on_new_item",
            "trigger_config": {"feed_url": "https://example.com/feed.xml"}
        }))
        .send()
        .await
        .unwrap()
}

/// Checks a 429 problem document and returns its `Retry-After` in seconds.
async fn expect_too_many_requests(response: reqwest::Response) -> u64 {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in whole seconds");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["status"], 429);
    assert_eq!(problem["type"], "/problems/too-many-requests");
    assert!(retry_after >= 1);
    retry_after
}

async fn it_should_refuse_token_attempts_over_the_limit_for_one_username_and_address(db: TestDb) {
    let app = spawn_app_with(&db, |config| {
        config.token_burst = per(3);
        config.token_rate_per_minute = per(1);
    })
    .await;
    for attempt in 1..=3 {
        let wrong = password_grant(&app, ADMIN_EMAIL, "wrong").await;
        assert_eq!(wrong.status(), StatusCode::BAD_REQUEST, "attempt {attempt}");
    }
    let refused = password_grant(&app, ADMIN_EMAIL, "wrong").await;
    let retry_after = expect_too_many_requests(refused).await;
    assert!(retry_after <= 60, "one attempt a minute: {retry_after}");
    // The limit is on guesses, so the right password is refused too, and so is the same address in
    // another case: the store treats them as one user.
    let right = password_grant(&app, &ADMIN_EMAIL.to_uppercase(), ADMIN_PASSWORD).await;
    expect_too_many_requests(right).await;

    let org = app.identity.create_org("another").await.unwrap();
    app.identity
        .create_user(org, "someone@example.com", "their password", Role::Member)
        .await
        .unwrap();
    let other = password_grant(&app, "someone@example.com", "their password").await;
    assert_eq!(
        other.status(),
        StatusCode::OK,
        "another username from the same address is not limited"
    );
    app.shutdown().await;
}

async fn it_should_refuse_an_organisation_over_its_limit_without_slowing_another(db: TestDb) {
    let app = spawn_app_with(&db, |config| {
        config.api_burst = per(2);
        config.api_rate_per_second = per(1);
    })
    .await;
    let (busy, quiet) = (app.sign_up().await, app.sign_up().await);
    // The burst passes; requests sent faster than one a second then meet the limit. Each attempt
    // notes the log head first, so the refused one can be shown to have written nothing.
    let mut created = 0;
    let refused = loop {
        let head = app.store.head().await.unwrap();
        let response = create_trigger(&app, &busy).await;
        match response.status() {
            StatusCode::CREATED => created += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(
                    app.store.head().await.unwrap(),
                    head,
                    "the refused request wrote nothing"
                );
                break response;
            }
            other => panic!("unexpected {other}"),
        }
        assert!(created < 20, "twenty requests and none refused");
    };
    assert!(created >= 2, "the burst of 2 passes");
    assert_eq!(expect_too_many_requests(refused).await, 1);
    let views = app
        .store
        .org_trigger_views(busy.org_id, None)
        .await
        .unwrap();
    assert_eq!(
        views.len(),
        created,
        "only the accepted requests created triggers"
    );

    let other = create_trigger(&app, &quiet).await;
    assert_eq!(
        other.status(),
        StatusCode::CREATED,
        "another organisation has its own limit"
    );
    app.shutdown().await;
}

async fn it_should_be_ready_only_while_the_read_model_keeps_up_with_the_log(db: TestDb) {
    let app = spawn_app_with(&db, |config| config.ready_max_lag = 0).await;
    let readyz = format!("{}/readyz", app.address);
    let http = app.http.clone();
    eventually(10, "readyz to answer 200", || {
        let (http, url) = (http.clone(), readyz.clone());
        async move { http.get(&url).send().await.unwrap().status() == StatusCode::OK }
    })
    .await;
    let ready: Value = app
        .http
        .get(&readyz)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["lag"], 0);

    // An event the projector has no reader for stops the read model while the log moves on.
    let id = app.stall_projection().await;

    let stuck = app.http.get(&readyz).send().await.unwrap();
    assert_eq!(stuck.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(stuck.headers()["content-type"], "application/problem+json");
    let problem: Value = stuck.json().await.unwrap();
    assert_eq!(problem["check"], "projection_lag", "{problem}");
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("1 events behind"));
    let healthz = app
        .http
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(
        healthz.status(),
        StatusCode::OK,
        "still alive, just not ready"
    );

    // Once the event is readable the projector folds it, and the engine is ready again.
    app.unstall_projection(id).await;
    eventually(10, "readyz to answer 200 again", || {
        let (http, url) = (http.clone(), readyz.clone());
        async move { http.get(&url).send().await.unwrap().status() == StatusCode::OK }
    })
    .await;
    let view = app.store.trigger_view(id).await.unwrap().unwrap();
    assert_eq!(view.record.status, aggregates::TriggerStatus::Enabled);
    app.shutdown().await;
}

async fn it_should_export_request_counts_by_route_template_and_the_projection_lag(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let created: Value = create_trigger(&app, &session).await.json().await.unwrap();
    let id = created["project_trigger_id"].as_str().unwrap().to_owned();
    let one = app
        .request(Method::GET, &format!("/triggers/{id}"), &session)
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), StatusCode::OK);
    let nowhere = app
        .request(Method::GET, &format!("/nowhere/{id}"), &session)
        .send()
        .await
        .unwrap();
    assert_eq!(nowhere.status(), StatusCode::NOT_FOUND);

    let scrape = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), StatusCode::OK);
    assert!(scrape.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = scrape.text().await.unwrap();
    let head = app.store.head().await.unwrap();
    for line in [
        r#"trigger_engine_http_requests_total{method="POST",route="/token",status="200"} 1"#,
        r#"trigger_engine_http_requests_total{method="POST",route="/projects/{project_id}/triggers",status="201"} 1"#,
        r#"trigger_engine_http_requests_total{method="GET",route="/triggers/{project_trigger_id}",status="200"} 1"#,
        r#"trigger_engine_http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        r#"trigger_engine_http_request_duration_seconds_count{method="GET",route="/triggers/{project_trigger_id}"} 1"#,
        r#"trigger_engine_projection_lag{projection="triggers"} 0"#,
        &format!(r#"trigger_engine_projection_checkpoint{{projection="triggers"}} {head}"#),
        "trigger_engine_store_up 1",
    ] {
        assert!(
            text.lines().any(|got| got == line),
            "no line `{line}` in\n{text}"
        );
    }
    assert!(
        !text.contains(&id),
        "a raw path with an id made it into a label"
    );
    assert!(text.ends_with("# EOF\n"));
    app.shutdown().await;
}
