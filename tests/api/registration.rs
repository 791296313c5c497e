//! Stripe and GitHub webhook registration, end to end against local servers that speak their
//! APIs: a connection, a trigger created with the seed's body, enable (the fake records the
//! endpoint or hook), a delivery signed with the registered secret fires, disable removes it.

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::connections::create_connection;
use crate::fake_github::{FakeGitHub, GITHUB_TOKEN};
use crate::fake_stripe::{FakeStripe, STRIPE_KEY, TRIGGER_ID_METADATA};
use crate::helpers::{expect_problem, spawn_app_with, Session, TestApp, TestDb};
use crate::webhooks::{deliver, stripe_event, stripe_signature};

crate::on_every_store!(
    it_should_register_a_stripe_endpoint_on_enable_verify_with_its_secret_and_remove_it,
    it_should_refuse_a_stripe_trigger_with_neither_connection_nor_secret,
    it_should_record_nothing_when_stripe_refuses_and_say_what_it_answered,
    it_should_replace_an_endpoint_an_unfinished_enable_left_at_stripe,
    it_should_register_a_github_hook_on_enable_verify_with_its_secret_and_remove_it,
    it_should_need_a_repository_to_register_a_github_hook,
    it_should_record_nothing_when_github_refuses,
);

const PUBLIC_URL: &str = "https://engine.example.com";
const REPOSITORY: &str = "octo-org/hello-world";

async fn engine(db: &TestDb, stripe: Option<&FakeStripe>, github: Option<&FakeGitHub>) -> TestApp {
    let stripe = stripe.map(|fake| fake.url.parse().unwrap());
    let github = github.map(|fake| fake.url.parse().unwrap());
    spawn_app_with(db, |config| {
        if let Some(url) = stripe {
            config.stripe_api_url = url;
        }
        if let Some(url) = github {
            config.github_api_url = url;
        }
        config.public_url = Some(PUBLIC_URL.parse().unwrap());
    })
    .await
}

async fn connection(app: &TestApp, session: &Session, provider: &str, credentials: Value) -> Uuid {
    let body = json!({"provider_id": provider, "name": provider, "credentials": credentials});
    let response = create_connection(app, session, body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    created["connection_id"].as_str().unwrap().parse().unwrap()
}

async fn create(app: &TestApp, session: &Session, body: Value) -> reqwest::Response {
    app.request(Method::POST, "/projects/p1/triggers", session)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn created_id(response: reqwest::Response) -> Uuid {
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    created["project_trigger_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn post(app: &TestApp, session: &Session, path: &str) -> reqwest::Response {
    app.request(Method::POST, path, session)
        .send()
        .await
        .unwrap()
}

/// The trigger as the API shows it, checked to hold none of the secrets given.
async fn shown(app: &TestApp, session: &Session, id: Uuid, secrets: &[&str]) -> Value {
    let response = app
        .request(Method::GET, &format!("/triggers/{id}"), session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    for secret in secrets {
        assert!(!text.contains(secret), "{text}");
    }
    serde_json::from_str(&text).unwrap()
}

async fn stripe_trigger(app: &TestApp, session: &Session) -> Uuid {
    let connection = connection(app, session, "stripe", json!({"api_key": STRIPE_KEY})).await;
    let response = create(
        app,
        session,
        json!({"provider_id": "stripe", "trigger_id": "on_customer_created",
               "connection_id": connection}),
    )
    .await;
    created_id(response).await
}

async fn deliver_stripe(app: &TestApp, id: Uuid, secret: &str, body: &str) -> StatusCode {
    let signature = stripe_signature(secret, Utc::now().timestamp(), body);
    deliver(
        app,
        &id.to_string(),
        &[("stripe-signature", signature)],
        body,
    )
    .await
    .status()
}

async fn it_should_register_a_stripe_endpoint_on_enable_verify_with_its_secret_and_remove_it(
    db: TestDb,
) {
    let stripe = FakeStripe::start().await;
    let app = engine(&db, Some(&stripe), None).await;
    let session = app.sign_up().await;
    let id = stripe_trigger(&app, &session).await;
    assert!(stripe.endpoints().is_empty(), "creating registers nothing");

    let enabled = post(&app, &session, &format!("/triggers/{id}/enable")).await;
    assert_eq!(enabled.status(), StatusCode::NO_CONTENT);
    let endpoints = stripe.endpoints();
    assert_eq!(endpoints.len(), 1, "{endpoints:?}");
    let endpoint = &endpoints[0];
    assert_eq!(endpoint.url, format!("{PUBLIC_URL}/v1/webhooks/{id}"));
    assert_eq!(endpoint.enabled_events, ["customer.created"]);
    assert_eq!(endpoint.metadata[TRIGGER_ID_METADATA], id.to_string());
    let trigger = shown(&app, &session, id, &[&endpoint.secret, STRIPE_KEY]).await;
    assert_eq!(trigger["status"], "ENABLED");
    assert_eq!(
        trigger["webhook_data"],
        json!({"webhook_endpoint_id": endpoint.id})
    );

    // Enabling again asks nothing more of Stripe.
    let calls = stripe.calls().len();
    let again = post(&app, &session, &format!("/triggers/{id}/enable")).await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
    assert_eq!(stripe.calls().len(), calls);

    let event = stripe_event("evt_registered_1", "customer.created");
    assert_eq!(
        deliver_stripe(&app, id, "whsec_c29tZW9uZSBlbHNl", &event).await,
        StatusCode::UNAUTHORIZED,
        "signed with another secret"
    );
    assert!(app.runs_of(id).await.is_empty());
    assert_eq!(
        deliver_stripe(&app, id, &endpoint.secret, &event).await,
        StatusCode::NO_CONTENT
    );
    let runs = app.runs_of(id).await;
    assert_eq!(
        runs.len(),
        1,
        "the delivery signed with the endpoint's secret fires"
    );

    let disabled = post(&app, &session, &format!("/triggers/{id}/disable")).await;
    assert_eq!(disabled.status(), StatusCode::NO_CONTENT);
    assert!(
        stripe.endpoints().is_empty(),
        "disable removes the endpoint"
    );
    let trigger = shown(&app, &session, id, &[]).await;
    assert_eq!(trigger["status"], "DISABLED");
    assert!(trigger["webhook_data"].is_null(), "{trigger}");
    let secrets: i64 = trigger_engine::on_pool!(&*app.store, |pool| sqlx::query_scalar(
        "SELECT count(*) FROM webhook_secrets"
    )
    .fetch_one(pool)
    .await)
    .unwrap();
    assert_eq!(secrets, 0, "the removed endpoint's secret is forgotten");

    // Enabled again: a new endpoint with a new secret; delete removes it.
    let enabled = post(&app, &session, &format!("/triggers/{id}/enable")).await;
    assert_eq!(enabled.status(), StatusCode::NO_CONTENT);
    let endpoints = stripe.endpoints();
    assert_eq!(endpoints.len(), 1);
    assert_ne!(endpoints[0].secret, endpoint.secret);
    let deleted = app
        .request(Method::DELETE, &format!("/triggers/{id}"), &session)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    assert!(stripe.endpoints().is_empty(), "delete removes the endpoint");
    app.shutdown().await;
}

async fn it_should_refuse_a_stripe_trigger_with_neither_connection_nor_secret(db: TestDb) {
    let app = engine(&db, None, None).await;
    let session = app.sign_up().await;
    let refused = create(
        &app,
        &session,
        json!({"provider_id": "stripe", "trigger_id": "on_customer_created"}),
    )
    .await;
    expect_problem(
        refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("connection_id"),
    )
    .await;
    let listed: Value = app
        .request(Method::GET, "/projects/p1/triggers", &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([]), "nothing was created");
    // The user's own endpoint, with its secret, needs no connection.
    let own = create(
        &app,
        &session,
        json!({"provider_id": "stripe", "trigger_id": "on_customer_created",
               "trigger_config": {"signing_secret": "whsec_bXkgb3du"}}),
    )
    .await;
    assert_eq!(own.status(), StatusCode::CREATED);
    app.shutdown().await;
}

async fn it_should_record_nothing_when_stripe_refuses_and_say_what_it_answered(db: TestDb) {
    let stripe = FakeStripe::start().await;
    let app = engine(&db, Some(&stripe), None).await;
    let session = app.sign_up().await;
    let id = stripe_trigger(&app, &session).await;
    stripe.refuse(Some(401));
    let refused = post(&app, &session, &format!("/triggers/{id}/enable")).await;
    assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);
    let problem: Value = refused.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("Stripe answered 401"), "{detail}");
    assert!(!detail.contains(STRIPE_KEY), "{detail}");
    let trigger = shown(&app, &session, id, &[]).await;
    assert_eq!(trigger["status"], "DISABLED");
    assert!(trigger["webhook_data"].is_null());

    stripe.refuse(None);
    let enabled = post(&app, &session, &format!("/triggers/{id}/enable")).await;
    assert_eq!(enabled.status(), StatusCode::NO_CONTENT);
    stripe.refuse(Some(500));
    let refused = post(&app, &session, &format!("/triggers/{id}/disable")).await;
    assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);
    let trigger = shown(&app, &session, id, &[]).await;
    assert_eq!(
        trigger["status"], "ENABLED",
        "still enabled with its endpoint"
    );
    assert_eq!(stripe.endpoints().len(), 1);
    app.shutdown().await;
}

async fn it_should_replace_an_endpoint_an_unfinished_enable_left_at_stripe(db: TestDb) {
    let stripe = FakeStripe::start().await;
    let app = engine(&db, Some(&stripe), None).await;
    let session = app.sign_up().await;
    let id = stripe_trigger(&app, &session).await;
    // What an enable that created the endpoint and then died before recording it leaves.
    let client = trigger_engine::providers::stripe::api::Client::new(stripe.url.parse().unwrap());
    let key = trigger_engine::identity::Secret::new(STRIPE_KEY);
    let url = format!("{PUBLIC_URL}/v1/webhooks/{id}").parse().unwrap();
    let leftover = client
        .create_endpoint(&key, &url, "customer.created", id)
        .await
        .unwrap();

    let enabled = post(&app, &session, &format!("/triggers/{id}/enable")).await;
    assert_eq!(enabled.status(), StatusCode::NO_CONTENT);
    let endpoints = stripe.endpoints_of(id);
    assert_eq!(
        endpoints.len(),
        1,
        "one endpoint per trigger: {endpoints:?}"
    );
    assert_ne!(endpoints[0].id, leftover.id);
    let event = stripe_event("evt_after_retry", "customer.created");
    assert_eq!(
        deliver_stripe(&app, id, leftover.secret.expose(), &event).await,
        StatusCode::UNAUTHORIZED,
        "the leftover's secret no longer verifies"
    );
    assert_eq!(
        deliver_stripe(&app, id, &endpoints[0].secret, &event).await,
        StatusCode::NO_CONTENT
    );
    app.shutdown().await;
}

async fn github_trigger(app: &TestApp, session: &Session, config: Value) -> reqwest::Response {
    let connection = connection(
        app,
        session,
        "github",
        json!({"access_token": GITHUB_TOKEN}),
    )
    .await;
    create(
        app,
        session,
        json!({"provider_id": "github", "trigger_id": "on_push",
               "connection_id": connection, "trigger_config": config}),
    )
    .await
}

fn github_signature(secret: &str, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn it_should_register_a_github_hook_on_enable_verify_with_its_secret_and_remove_it(
    db: TestDb,
) {
    let github = FakeGitHub::start(&[REPOSITORY]).await;
    let app = engine(&db, None, Some(&github)).await;
    let session = app.sign_up().await;
    let created = github_trigger(&app, &session, json!({"repository": REPOSITORY})).await;
    let id = created_id(created).await;

    let enabled = post(&app, &session, &format!("/triggers/{id}/enable")).await;
    assert_eq!(enabled.status(), StatusCode::NO_CONTENT);
    let hooks = github.hooks();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let hook = &hooks[0];
    assert_eq!(hook.repository, REPOSITORY);
    assert_eq!(hook.url, format!("{PUBLIC_URL}/v1/webhooks/{id}"));
    assert_eq!(hook.events, ["push"]);
    assert_eq!(hook.content_type, "json");
    assert!(hook.active);
    let secret = hook.secret.clone().expect("the engine sets a secret");
    assert!(secret.len() >= 32, "a secret worth the name");
    let trigger = shown(&app, &session, id, &[&secret, GITHUB_TOKEN]).await;
    assert_eq!(
        trigger["webhook_data"],
        json!({"hook_id": hook.id, "repository": REPOSITORY})
    );

    let push =
        json!({"ref": "refs/heads/main", "repository": {"full_name": REPOSITORY}}).to_string();
    let send = |signature: String| {
        let push = push.clone();
        let app = &app;
        async move {
            deliver(
                app,
                &id.to_string(),
                &[
                    ("x-github-event", "push".into()),
                    ("x-github-delivery", "delivery-1".into()),
                    ("x-hub-signature-256", signature),
                ],
                &push,
            )
            .await
            .status()
        }
    };
    assert_eq!(
        send(github_signature("not-the-secret", &push)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(github_signature(&secret, &push)).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.runs_of(id).await.len(), 1);

    let disabled = post(&app, &session, &format!("/triggers/{id}/disable")).await;
    assert_eq!(disabled.status(), StatusCode::NO_CONTENT);
    assert!(github.hooks().is_empty(), "disable removes the hook");
    assert_eq!(
        send(github_signature(&secret, &push)).await,
        StatusCode::NOT_FOUND,
        "a disabled trigger takes no deliveries"
    );
    app.shutdown().await;
}

async fn it_should_need_a_repository_to_register_a_github_hook(db: TestDb) {
    let app = engine(&db, None, None).await;
    let session = app.sign_up().await;
    let refused = github_trigger(&app, &session, json!({})).await;
    expect_problem(
        refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("trigger_config.repository"),
    )
    .await;
    app.shutdown().await;
}

async fn it_should_record_nothing_when_github_refuses(db: TestDb) {
    // The token cannot see the repository: GitHub answers 404.
    let github = FakeGitHub::start(&["someone-else/repository"]).await;
    let app = engine(&db, None, Some(&github)).await;
    let session = app.sign_up().await;
    let created = github_trigger(&app, &session, json!({"repository": REPOSITORY})).await;
    let id = created_id(created).await;
    let refused = post(&app, &session, &format!("/triggers/{id}/enable")).await;
    assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);
    let problem: Value = refused.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("404"), "{detail}");
    assert!(!detail.contains(GITHUB_TOKEN), "{detail}");
    let trigger = shown(&app, &session, id, &[]).await;
    assert_eq!(trigger["status"], "DISABLED");
    assert!(github.hooks().is_empty());
    app.shutdown().await;
}
