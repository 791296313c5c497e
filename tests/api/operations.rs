//! What operators rely on: rate limits that refuse without changing anything.

use std::num::NonZeroU32;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, Session, TestApp, TestDb, ADMIN_EMAIL, ADMIN_PASSWORD};

crate::on_every_store!(
    it_should_refuse_token_attempts_over_the_limit_for_one_username_and_address,
    it_should_refuse_an_organisation_over_its_limit_without_slowing_another,
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
        .create_user(org, "someone@example.com", "their password")
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
