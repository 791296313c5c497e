//! `trigger_config.filter` end to end: a trigger created over HTTP with a CEL filter fires for
//! the deliveries that make it true, answers 204 without firing for the others (false, or a
//! filter that fails on them, counted apart in the metrics), for its own URL and for an app's;
//! a polled item the filter refuses is not fired; and a filter that cannot compile is refused
//! on create with a 422 naming it, creating nothing.

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use trigger_engine::identity::Secret;
use trigger_engine::poller::Polled;
use uuid::Uuid;

use crate::feed_server::FeedServer;
use crate::helpers::{expect_problem, spawn_app, spawn_app_with, Session, TestApp, TestDb};
use crate::webhooks::{deliver, stripe_signature};

crate::on_every_store!(
    it_should_fire_only_the_deliveries_its_filter_lets_through,
    it_should_give_the_filter_the_trigger_s_event_type,
    it_should_filter_each_trigger_an_app_delivery_is_routed_to,
    it_should_not_fire_the_polled_items_its_filter_refuses,
    it_should_refuse_a_filter_that_cannot_compile_and_create_nothing,
    it_should_document_the_filter_in_the_catalogue,
);

/// Matches the schema's `whsec_` pattern: these triggers are created over HTTP, validated.
const SECRET: &str = "whsec_filtertest";

async fn create(app: &TestApp, session: &Session, body: Value) -> reqwest::Response {
    app.request(Method::POST, "/projects/p1/triggers", session)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Creates a Stripe `on_customer_created` trigger with `filter` over HTTP and enables it.
async fn stripe_trigger(app: &TestApp, session: &Session, filter: &str) -> Uuid {
    let response = create(
        app,
        session,
        json!({
            "provider_id": "stripe",
            "trigger_id": "on_customer_created",
            "trigger_config": {"signing_secret": SECRET, "filter": filter},
        }),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    let id: Uuid = created["project_trigger_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let enabled = app
        .request(Method::POST, &format!("/triggers/{id}/enable"), session)
        .send()
        .await
        .unwrap();
    assert_eq!(enabled.status(), StatusCode::NO_CONTENT);
    id
}

/// Delivers a `customer.created` event whose customer is `customer`, signed as Stripe signs.
async fn deliver_customer(
    app: &TestApp,
    trigger: Uuid,
    event_id: &str,
    customer: Value,
) -> StatusCode {
    let body = json!({"id": event_id, "object": "event", "type": "customer.created",
                      "data": {"object": customer}})
    .to_string();
    let signature = stripe_signature(SECRET, Utc::now().timestamp(), &body);
    deliver(
        app,
        &trigger.to_string(),
        &[("stripe-signature", signature)],
        &body,
    )
    .await
    .status()
}

/// The event ids of the trigger's runs, sorted.
async fn fired(app: &TestApp, trigger: Uuid) -> Vec<String> {
    let mut ids: Vec<String> = app
        .runs_of(trigger)
        .await
        .iter()
        .map(|run| {
            run.record.firing.payload["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    ids.sort();
    ids
}

async fn metrics(app: &TestApp) -> String {
    app.http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn counted(metrics: &str, provider: &str, outcome: &str) -> Option<u64> {
    let series = format!(
        r#"trigger_engine_webhook_deliveries_total{{provider="{provider}",outcome="{outcome}"}} "#
    );
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .map(|count| count.parse().unwrap())
}

async fn it_should_fire_only_the_deliveries_its_filter_lets_through(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let trigger = stripe_trigger(
        &app,
        &session,
        r#"payload.data.object.email.endsWith("@acme.com")"#,
    )
    .await;

    let ours = json!({"id": "cus_1", "email": "ada@acme.com"});
    let theirs = json!({"id": "cus_2", "email": "bob@example.com"});
    let no_email = json!({"id": "cus_3", "name": "Carol"});
    let not_text = json!({"id": "cus_4", "email": 42});
    for (event, customer) in [
        ("evt_ours", ours),
        ("evt_theirs", theirs),
        ("evt_no_email", no_email),
        ("evt_not_text", not_text),
    ] {
        assert_eq!(
            deliver_customer(&app, trigger, event, customer).await,
            StatusCode::NO_CONTENT,
            "{event}: every authentic delivery is acknowledged"
        );
    }

    assert_eq!(fired(&app, trigger).await, ["evt_ours"]);
    let metrics = metrics(&app).await;
    assert_eq!(counted(&metrics, "stripe", "fired"), Some(1), "{metrics}");
    assert_eq!(
        counted(&metrics, "stripe", "filtered"),
        Some(1),
        "{metrics}"
    );
    assert_eq!(
        counted(&metrics, "stripe", "filter_error"),
        Some(2),
        "a missing field and a type mismatch fail, apart from false:\n{metrics}"
    );
    app.shutdown().await;
}

async fn it_should_give_the_filter_the_trigger_s_event_type(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let ours = stripe_trigger(&app, &session, r#"event_type == "customer.created""#).await;
    let other = stripe_trigger(&app, &session, r#"event_type == "customer.deleted""#).await;
    let customer = json!({"id": "cus_1"});
    assert_eq!(
        deliver_customer(&app, ours, "evt_1", customer.clone()).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        deliver_customer(&app, other, "evt_2", customer).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(fired(&app, ours).await, ["evt_1"]);
    assert!(fired(&app, other).await.is_empty());
    app.shutdown().await;
}

async fn it_should_filter_each_trigger_an_app_delivery_is_routed_to(db: TestDb) {
    let secret = "github-app-secret";
    let app = spawn_app_with(&db, |serve| {
        serve.github_webhook_secret = Some(Secret::new(secret));
    })
    .await;
    let session = app.sign_up().await;
    let mut triggers = Vec::new();
    for filter in [
        r#"payload.ref == "refs/heads/main""#,
        r#"payload.ref == "refs/heads/dev""#,
    ] {
        let response = create(
            &app,
            &session,
            json!({
                "provider_id": "github",
                "trigger_id": "on_push",
                "trigger_config": {"signing_secret": "s", "repository": "octo-org/hello",
                                   "filter": filter},
            }),
        )
        .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let id: Uuid = response.json::<Value>().await.unwrap()["project_trigger_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let enabled = app
            .request(Method::POST, &format!("/triggers/{id}/enable"), &session)
            .send()
            .await
            .unwrap();
        assert_eq!(enabled.status(), StatusCode::NO_CONTENT);
        triggers.push(id);
    }
    let push = json!({"ref": "refs/heads/main", "repository": {"full_name": "octo-org/hello"}})
        .to_string();
    let signature = {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(push.as_bytes());
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };
    let headers = [
        ("x-hub-signature-256", signature),
        ("x-github-event", "push".to_owned()),
        ("x-github-delivery", "gh-d-1".to_owned()),
    ];
    assert_eq!(
        deliver(&app, "github", &headers, &push).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.runs_of(triggers[0]).await.len(), 1, "main matches");
    assert!(app.runs_of(triggers[1]).await.is_empty(), "dev does not");
    let metrics = metrics(&app).await;
    assert_eq!(
        counted(&metrics, "github", "filtered"),
        Some(1),
        "{metrics}"
    );
    app.shutdown().await;
}

async fn it_should_not_fire_the_polled_items_its_filter_refuses(db: TestDb) {
    let feeds = FeedServer::start(1).await;
    let at = |day: u32| {
        chrono::NaiveDate::from_ymd_opt(2025, 2, day)
            .unwrap()
            .and_hms_opt(10, 0, 0)
            .unwrap()
            .and_utc()
    };
    feeds.add(0, "wanted-1", at(1));
    feeds.add(0, "unwanted", at(2));
    feeds.add(0, "wanted-2", at(3));
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let id = app
        .enabled_trigger(
            session.org_id,
            "rss",
            "on_new_item",
            json!({"feed_url": feeds.url(0), "since": "2025-01-15T00:00:00Z",
                   "filter": r#"payload.item.title.startsWith("Item wanted")"#}),
        )
        .await;
    let polled = app.pollers.poll(id).await.unwrap();
    assert_eq!(
        polled,
        Polled::Succeeded {
            fired: 2,
            conflict: false
        }
    );
    let mut items: Vec<String> = app
        .runs_of(id)
        .await
        .into_iter()
        .map(|run| match run.record.firing.cause {
            aggregates::RunCause::PolledItem { id } => id,
            other => panic!("a polling run caused by {other:?}"),
        })
        .collect();
    items.sort();
    assert_eq!(items, ["wanted-1", "wanted-2"]);

    // The cursor moved past the refused item: it is not considered again, and neither is a new
    // one the filter refuses.
    feeds.add(0, "unwanted-2", at(4));
    let polled = app.pollers.poll(id).await.unwrap();
    assert_eq!(
        polled,
        Polled::Succeeded {
            fired: 0,
            conflict: false
        }
    );
    feeds.add(0, "wanted-3", at(5));
    let polled = app.pollers.poll(id).await.unwrap();
    assert_eq!(
        polled,
        Polled::Succeeded {
            fired: 1,
            conflict: false
        }
    );
    app.shutdown().await;
}

async fn it_should_refuse_a_filter_that_cannot_compile_and_create_nothing(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let head = app.store.head().await.unwrap();
    let with_filter = |provider: &str, trigger: &str, filter: Value| {
        json!({"provider_id": provider, "trigger_id": trigger,
               "trigger_config": {"filter": filter}})
    };
    for (case, body, detail) in [
        (
            "a syntax error",
            with_filter("webhook", "on_request", json!("payload.amount >")),
            "is not valid CEL: 1:",
        ),
        (
            "an unknown variable",
            with_filter("webhook", "on_request", json!("data.amount > 1")),
            "refers to `data`, which is not a variable here",
        ),
        (
            "an unknown function",
            with_filter(
                "webhook",
                "on_request",
                json!("payload.email.endswith(\"x\")"),
            ),
            "calls `endswith`",
        ),
        (
            "too long",
            with_filter("webhook", "on_request", json!("x".repeat(4097))),
            "must be at most 4096 characters long",
        ),
        (
            "not a string",
            with_filter("webhook", "on_request", json!(true)),
            "must be a string",
        ),
        (
            "on a schedule, which has no deliveries to filter",
            json!({"provider_id": "schedule", "trigger_id": "on_schedule",
                   "trigger_config": {"cron": "* * * * *", "filter": "true"}}),
            "is not a known field",
        ),
    ] {
        let problem = expect_problem(
            create(&app, &session, body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("trigger_config.filter"),
        )
        .await;
        let said = problem["detail"].as_str().unwrap();
        assert!(said.contains(detail), "{case}: {said}");
    }
    assert_eq!(app.store.head().await.unwrap(), head, "nothing recorded");
    let listed: Value = app
        .request(Method::GET, "/projects/p1/triggers", &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([]), "nothing created");

    // A sound one on the same trigger is created.
    let sound = with_filter("webhook", "on_request", json!("has(payload.amount)"));
    assert_eq!(
        create(&app, &session, sound).await.status(),
        StatusCode::CREATED
    );
    app.shutdown().await;
}

async fn it_should_document_the_filter_in_the_catalogue(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    for (provider, trigger) in [("stripe", "on_customer_created"), ("rss", "on_new_item")] {
        let definition: Value = app
            .request(
                Method::GET,
                &format!("/providers/{provider}/triggers/{trigger}"),
                &session,
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let filter = &definition["config_schema"]["properties"]["filter"];
        assert_eq!(filter["type"], "string", "{provider}: {definition}");
        assert_eq!(filter["maxLength"], 4096);
        assert!(filter["description"].as_str().unwrap().contains("CEL"));
        assert!(filter["examples"][0].is_string());
    }
    app.shutdown().await;
}
