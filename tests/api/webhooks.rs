//! `POST /v1/webhooks/{webhook_id}`: deliveries signed exactly as each provider signs them, over a
//! real socket; what fires, what is ignored, what is refused (and then records nothing), and
//! deduplication, also across a restart.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::Utc;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;
use trigger_engine::identity::Secret;
use uuid::Uuid;

use crate::helpers::{spawn_app, spawn_app_with, TestApp, TestDb};

crate::on_every_store!(
    it_should_fire_a_stripe_trigger_once_per_event,
    it_should_refuse_forged_and_stale_stripe_deliveries_and_record_nothing,
    it_should_accept_any_of_several_secrets_while_one_is_rotated,
    it_should_fire_only_for_the_triggers_own_event,
    it_should_answer_404_for_disabled_and_unknown_and_410_for_deleted_triggers,
    it_should_fire_github_typeform_and_standard_webhooks_as_they_sign,
    it_should_deduplicate_by_idempotency_key_across_a_restart,
    it_should_route_a_slack_app_event_to_every_matching_trigger,
    it_should_route_a_github_app_delivery_by_repository,
    it_should_limit_deliveries_per_trigger,
    it_should_fire_through_the_deprecated_api_key_url_and_say_it_is_deprecated,
);

pub(crate) const STRIPE_SECRET: &str = "whsec_test_stripe_secret";

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// `Stripe-Signature` as Stripe builds it: `t=<unix>,v1=<hex HMAC of "{t}.{body}">`.
pub(crate) fn stripe_signature(secret: &str, timestamp: i64, body: &str) -> String {
    let signed = hmac(secret.as_bytes(), format!("{timestamp}.{body}").as_bytes());
    format!("t={timestamp},v1={}", hex::encode(signed))
}

pub(crate) fn stripe_event(id: &str, event_type: &str) -> String {
    json!({"id": id, "object": "event", "type": event_type,
           "data": {"object": {"id": "cus_1", "object": "customer"}}})
    .to_string()
}

pub(crate) async fn stripe_trigger(app: &TestApp, secret: Value) -> Uuid {
    app.enabled_trigger(
        Uuid::new_v4(),
        "stripe",
        "on_customer_created",
        json!({"signing_secret": secret}),
    )
    .await
}

pub(crate) async fn deliver(
    app: &TestApp,
    webhook_id: &str,
    headers: &[(&str, String)],
    body: &str,
) -> reqwest::Response {
    let mut request = app
        .http
        .post(format!("{}/v1/webhooks/{webhook_id}", app.address))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.unwrap()
}

async fn deliver_stripe(app: &TestApp, trigger: Uuid, secret: &str, body: &str) -> StatusCode {
    let signature = stripe_signature(secret, Utc::now().timestamp(), body);
    deliver(
        app,
        &trigger.to_string(),
        &[("stripe-signature", signature)],
        body,
    )
    .await
    .status()
}

async fn it_should_fire_a_stripe_trigger_once_per_event(db: TestDb) {
    let app = spawn_app(&db).await;
    let trigger = stripe_trigger(&app, json!(STRIPE_SECRET)).await;
    let event = stripe_event("evt_1", "customer.created");

    assert_eq!(
        deliver_stripe(&app, trigger, STRIPE_SECRET, &event).await,
        StatusCode::NO_CONTENT
    );
    let head = app.store.head().await.unwrap();
    // Stripe retries a delivery it got no 2xx for; a retry must not fire again.
    assert_eq!(
        deliver_stripe(&app, trigger, STRIPE_SECRET, &event).await,
        StatusCode::NO_CONTENT
    );
    // The built-in executor may record the first run's attempt meanwhile: look for firings.
    let fired_again = app
        .store
        .read_log(head, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|event| event.event_type == "RunRequested")
        .count();
    assert_eq!(fired_again, 0, "a duplicate records nothing");

    let other = stripe_event("evt_2", "customer.created");
    assert_eq!(
        deliver_stripe(&app, trigger, STRIPE_SECRET, &other).await,
        StatusCode::NO_CONTENT
    );

    let runs = app.runs_of(trigger).await;
    assert_eq!(runs.len(), 2);
    let payloads: Vec<&Value> = runs
        .iter()
        .map(|run| &run.record.firing.payload["id"])
        .collect();
    assert!(payloads.contains(&&json!("evt_1")) && payloads.contains(&&json!("evt_2")));
    assert_eq!(runs[0].record.firing.provider_id, "stripe");
}

async fn it_should_refuse_forged_and_stale_stripe_deliveries_and_record_nothing(db: TestDb) {
    let app = spawn_app(&db).await;
    let trigger = stripe_trigger(&app, json!(STRIPE_SECRET)).await;
    let event = stripe_event("evt_1", "customer.created");
    let head = app.store.head().await.unwrap();
    let now = Utc::now().timestamp();

    let wrong_secret = stripe_signature("whsec_not_the_secret", now, &event);
    let tampered = stripe_signature(STRIPE_SECRET, now, &event.replace("cus_1", "cus_2"));
    let stale = stripe_signature(STRIPE_SECRET, now - 301, &event);
    for (case, headers) in [
        ("wrong secret", vec![("stripe-signature", wrong_secret)]),
        ("tampered body", vec![("stripe-signature", tampered)]),
        ("stale timestamp", vec![("stripe-signature", stale)]),
        ("no signature", vec![]),
    ] {
        let response = deliver(&app, &trigger.to_string(), &headers, &event).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{case}"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["type"], "/problems/bad-signature", "{case}");
    }
    assert_eq!(
        app.store.head().await.unwrap(),
        head,
        "forged deliveries record nothing"
    );
    assert!(app.runs_of(trigger).await.is_empty());

    let metrics = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"webhook_deliveries_total{provider="stripe",outcome="rejected"} 4"#),
        "rejections are counted:\n{metrics}"
    );
}

async fn it_should_accept_any_of_several_secrets_while_one_is_rotated(db: TestDb) {
    let app = spawn_app(&db).await;
    let trigger = stripe_trigger(&app, json!(["whsec_old", "whsec_new"])).await;
    let first = stripe_event("evt_old", "customer.created");
    let second = stripe_event("evt_new", "customer.created");
    assert_eq!(
        deliver_stripe(&app, trigger, "whsec_old", &first).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        deliver_stripe(&app, trigger, "whsec_new", &second).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.runs_of(trigger).await.len(), 2);

    // Stripe signs with every active secret during its own rotation: one header, two v1 values.
    let body = stripe_event("evt_both", "customer.created");
    let now = Utc::now().timestamp();
    let unknown = hex::encode(hmac(b"whsec_unknown", format!("{now}.{body}").as_bytes()));
    let known = stripe_signature("whsec_new", now, &body);
    let header = format!("{known},v1={unknown}");
    let response = deliver(
        &app,
        &trigger.to_string(),
        &[("stripe-signature", header)],
        &body,
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

async fn it_should_fire_only_for_the_triggers_own_event(db: TestDb) {
    let app = spawn_app(&db).await;
    let trigger = stripe_trigger(&app, json!(STRIPE_SECRET)).await;
    let head = app.store.head().await.unwrap();
    let invoice = stripe_event("evt_9", "invoice.paid");
    assert_eq!(
        deliver_stripe(&app, trigger, STRIPE_SECRET, &invoice).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.store.head().await.unwrap(),
        head,
        "another event fires nothing"
    );
}

async fn it_should_answer_404_for_disabled_and_unknown_and_410_for_deleted_triggers(db: TestDb) {
    let app = spawn_app(&db).await;
    let event = stripe_event("evt_1", "customer.created");
    let disabled = stripe_trigger(&app, json!(STRIPE_SECRET)).await;
    app.run(disabled, aggregates::TriggerAction::DisableTrigger)
        .await;
    let deleted = stripe_trigger(&app, json!(STRIPE_SECRET)).await;
    app.run(deleted, aggregates::TriggerAction::DeleteTrigger)
        .await;
    let head = app.store.head().await.unwrap();

    assert_eq!(
        deliver_stripe(&app, disabled, STRIPE_SECRET, &event).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        deliver_stripe(&app, deleted, STRIPE_SECRET, &event).await,
        StatusCode::GONE
    );
    assert_eq!(
        deliver_stripe(&app, Uuid::new_v4(), STRIPE_SECRET, &event).await,
        StatusCode::NOT_FOUND
    );
    let not_an_id = deliver(&app, "not-a-trigger", &[], "{}").await;
    assert_eq!(not_an_id.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.store.head().await.unwrap(), head);
}

async fn it_should_fire_github_typeform_and_standard_webhooks_as_they_sign(db: TestDb) {
    let app = spawn_app(&db).await;
    let org = Uuid::new_v4();

    // GitHub: X-Hub-Signature-256 = "sha256=" + hex HMAC of the body.
    let github = app
        .enabled_trigger(
            org,
            "github",
            "on_issue_opened",
            json!({"signing_secret": "gh-secret"}),
        )
        .await;
    let github_send = |event: &'static str, delivery: &'static str, body: String| {
        let signature = format!(
            "sha256={}",
            hex::encode(hmac(b"gh-secret", body.as_bytes()))
        );
        let app = &app;
        async move {
            deliver(
                app,
                &github.to_string(),
                &[
                    ("x-hub-signature-256", signature),
                    ("x-github-event", event.to_owned()),
                    ("x-github-delivery", delivery.to_owned()),
                ],
                &body,
            )
            .await
            .status()
        }
    };
    let opened = json!({"action": "opened", "issue": {"number": 1}}).to_string();
    let closed = json!({"action": "closed", "issue": {"number": 1}}).to_string();
    assert_eq!(
        github_send("ping", "d-0", json!({"zen": "hi"}).to_string()).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        github_send("issues", "d-1", opened.clone()).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        github_send("issues", "d-1", opened).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        github_send("issues", "d-2", closed).await,
        StatusCode::NO_CONTENT
    );
    let runs = app.runs_of(github).await;
    assert_eq!(
        runs.len(),
        1,
        "one opened issue, delivered twice; ping and closed ignored"
    );

    // Typeform: Typeform-Signature = "sha256=" + base64 HMAC of the body; keyed by response token.
    let typeform = app
        .enabled_trigger(
            org,
            "typeform",
            "on_form_response",
            json!({"signing_secret": "tf-secret"}),
        )
        .await;
    let response = json!({"event_id": "e1", "event_type": "form_response",
                          "form_response": {"form_id": "lT4Z3j", "token": "tok-1"}})
    .to_string();
    let signature = format!(
        "sha256={}",
        STANDARD.encode(hmac(b"tf-secret", response.as_bytes()))
    );
    for _ in 0..2 {
        let answer = deliver(
            &app,
            &typeform.to_string(),
            &[("typeform-signature", signature.clone())],
            &response,
        )
        .await;
        assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    }
    let bad = deliver(
        &app,
        &typeform.to_string(),
        &[("typeform-signature", "sha256=AAAA".into())],
        &response,
    )
    .await;
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.runs_of(typeform).await.len(), 1);

    // Standard Webhooks: v1,<base64 HMAC of "{id}.{timestamp}.{body}"> keyed by the whsec_ secret.
    let key = b"a standard webhooks key!";
    let secret = format!("whsec_{}", STANDARD.encode(key));
    let generic = app
        .enabled_trigger(
            org,
            "webhook",
            "on_request",
            json!({"signing_secret": secret}),
        )
        .await;
    let body = json!({"type": "order.created"}).to_string();
    let timestamp = Utc::now().timestamp().to_string();
    let signed = STANDARD.encode(hmac(key, format!("msg_1.{timestamp}.{body}").as_bytes()));
    let headers = [
        ("webhook-id", "msg_1".to_owned()),
        ("webhook-timestamp", timestamp),
        ("webhook-signature", format!("v1,{signed}")),
    ];
    assert_eq!(
        deliver(&app, &generic.to_string(), &headers, &body)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        deliver(&app, &generic.to_string(), &headers, &body)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let unsigned = deliver(&app, &generic.to_string(), &headers[..2], &body).await;
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
    let runs = app.runs_of(generic).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].record.firing.payload,
        json!({"type": "order.created"})
    );
}

async fn it_should_deduplicate_by_idempotency_key_across_a_restart(db: TestDb) {
    let app = spawn_app(&db).await;
    let trigger = app
        .enabled_trigger(Uuid::new_v4(), "webhook", "on_request", json!({}))
        .await;
    let keyed = [("idempotency-key", "order-42".to_owned())];
    assert_eq!(
        deliver(&app, &trigger.to_string(), &keyed, "plain text")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    app.shutdown().await;

    let app = spawn_app(&db).await;
    assert_eq!(
        deliver(&app, &trigger.to_string(), &keyed, "plain text")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    // Without a key, each request is its own firing.
    assert_eq!(
        deliver(&app, &trigger.to_string(), &[], "{}")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        deliver(&app, &trigger.to_string(), &[], "{}")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let runs = app.runs_of(trigger).await;
    assert_eq!(runs.len(), 3);
    assert!(runs
        .iter()
        .any(|run| run.record.firing.payload == json!("plain text")));
}

fn slack_headers(secret: &str, body: &str) -> Vec<(&'static str, String)> {
    let timestamp = Utc::now().timestamp().to_string();
    let signature = hmac(
        secret.as_bytes(),
        format!("v0:{timestamp}:{body}").as_bytes(),
    );
    vec![
        ("x-slack-request-timestamp", timestamp),
        (
            "x-slack-signature",
            format!("v0={}", hex::encode(signature)),
        ),
    ]
}

async fn it_should_route_a_slack_app_event_to_every_matching_trigger(db: TestDb) {
    let secret = "slack-app-signing-secret";
    let app = spawn_app_with(&db, |serve| {
        serve.slack_signing_secret = Some(Secret::new(secret));
    })
    .await;
    let challenge =
        json!({"type": "url_verification", "token": "t", "challenge": "ch-123"}).to_string();
    let answer = deliver(
        &app,
        "slack",
        &slack_headers(secret, &challenge),
        &challenge,
    )
    .await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(
        answer.json::<Value>().await.unwrap(),
        json!({"challenge": "ch-123"})
    );

    let anywhere = app
        .enabled_trigger(Uuid::new_v4(), "slack", "on_app_mention", json!({}))
        .await;
    let this_channel = app
        .enabled_trigger(
            Uuid::new_v4(),
            "slack",
            "on_app_mention",
            json!({"team_id": "T1", "channel_id": "C1"}),
        )
        .await;
    let other_team = app
        .enabled_trigger(
            Uuid::new_v4(),
            "slack",
            "on_app_mention",
            json!({"team_id": "T2"}),
        )
        .await;
    let mention = json!({"type": "event_callback", "team_id": "T1", "event_id": "Ev1",
                         "event": {"type": "app_mention", "channel": "C1", "text": "<@U1> hi"}})
    .to_string();
    for _ in 0..2 {
        let answer = deliver(&app, "slack", &slack_headers(secret, &mention), &mention).await;
        assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    }
    assert_eq!(app.runs_of(anywhere).await.len(), 1);
    assert_eq!(app.runs_of(this_channel).await.len(), 1);
    assert!(app.runs_of(other_team).await.is_empty());

    let forged = deliver(
        &app,
        "slack",
        &slack_headers("not-the-secret", &mention),
        &mention,
    )
    .await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let nobody = json!({"type": "event_callback", "team_id": "T9", "event_id": "Ev2",
                        "event": {"type": "reaction_added"}})
    .to_string();
    let answer = deliver(&app, "slack", &slack_headers(secret, &nobody), &nobody).await;
    assert_eq!(
        answer.status(),
        StatusCode::NO_CONTENT,
        "2xx even when no trigger matches"
    );
}

async fn it_should_route_a_github_app_delivery_by_repository(db: TestDb) {
    let secret = "github-app-secret";
    let app = spawn_app_with(&db, |serve| {
        serve.github_webhook_secret = Some(Secret::new(secret));
    })
    .await;
    let hello = app
        .enabled_trigger(
            Uuid::new_v4(),
            "github",
            "on_push",
            json!({"signing_secret": "s", "repository": "octo-org/hello"}),
        )
        .await;
    let other = app
        .enabled_trigger(
            Uuid::new_v4(),
            "github",
            "on_push",
            json!({"signing_secret": "s", "repository": "octo-org/other"}),
        )
        .await;
    let push = json!({"ref": "refs/heads/main", "repository": {"full_name": "octo-org/hello"},
                      "installation": {"id": 7}})
    .to_string();
    let signature = format!(
        "sha256={}",
        hex::encode(hmac(secret.as_bytes(), push.as_bytes()))
    );
    let headers = [
        ("x-hub-signature-256", signature),
        ("x-github-event", "push".to_owned()),
        ("x-github-delivery", "gh-d-1".to_owned()),
    ];
    assert_eq!(
        deliver(&app, "github", &headers, &push).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.runs_of(hello).await.len(), 1);
    assert!(app.runs_of(other).await.is_empty());
}

async fn it_should_limit_deliveries_per_trigger(db: TestDb) {
    let app = spawn_app_with(&db, |serve| {
        serve.webhook_rate_per_second = std::num::NonZeroU32::new(1).unwrap();
        serve.webhook_burst = std::num::NonZeroU32::new(2).unwrap();
    })
    .await;
    let limited = app
        .enabled_trigger(Uuid::new_v4(), "webhook", "on_request", json!({}))
        .await;
    let other = app
        .enabled_trigger(Uuid::new_v4(), "webhook", "on_request", json!({}))
        .await;
    for _ in 0..2 {
        assert_eq!(
            deliver(&app, &limited.to_string(), &[], "{}")
                .await
                .status(),
            StatusCode::NO_CONTENT
        );
    }
    let refused = deliver(&app, &limited.to_string(), &[], "{}").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        deliver(&app, &other.to_string(), &[], "{}").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.runs_of(limited).await.len(), 2);
}

async fn it_should_fire_through_the_deprecated_api_key_url_and_say_it_is_deprecated(db: TestDb) {
    let app = spawn_app(&db).await;
    let org = app.identity.create_org("legacy").await.unwrap();
    let (_, key) = app.identity.create_api_key(org).await.unwrap();
    let other_org = app.identity.create_org("other").await.unwrap();
    let (_, other_key) = app.identity.create_api_key(other_org).await.unwrap();
    let trigger = app
        .enabled_trigger(org, "webhook", "on_request", json!({}))
        .await;
    let url = |org: Uuid, key: &str| {
        format!(
            "{}/organizations/{org}/triggers/{trigger}/webhook/key/{key}",
            app.address
        )
    };
    let post = |url: String| {
        app.http
            .post(url)
            .header("idempotency-key", "legacy-1")
            .json(&json!({"hello": "world"}))
            .send()
    };
    let head = app.store.head().await.unwrap();
    for (case, url, status) in [
        (
            "a wrong key",
            url(org, "te_not-a-key"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "another organisation's key",
            url(org, &other_key),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "another organisation's trigger",
            url(other_org, &other_key),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let response = post(url).await.unwrap();
        assert_eq!(response.status(), status, "{case}");
    }
    let wrong_kind = app
        .http
        .post(format!("{}?provider_id=stripe", url(org, &key)))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_kind.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.store.head().await.unwrap(), head, "nothing fired");

    for _ in 0..2 {
        let response = post(format!(
            "{}?provider_id=webhook&trigger_id=on_request",
            url(org, &key)
        ))
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(response.headers()["deprecation"], "true");
        assert_eq!(
            response.headers()["link"],
            format!("</v1/webhooks/{trigger}>; rel=\"successor-version\"").as_str()
        );
    }
    let runs = app.runs_of(trigger).await;
    assert_eq!(runs.len(), 1, "one Idempotency-Key, one run");
    assert_eq!(runs[0].record.firing.payload, json!({"hello": "world"}));
    let history = app
        .store
        .stream_history("run", &runs[0].record.run_id.to_string())
        .await
        .unwrap();
    assert!(history[0].meta("actor").unwrap().starts_with("api_key:"));
}
