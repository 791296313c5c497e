//! "Why didn't it fire?": `GET /triggers/{id}/explain` names each delivery's outcome (fired,
//! duplicate, ignored with the event it saw, filtered, signature rejected, refused while
//! disabled, held while paused) and the trigger's lifecycle with who changed it; a schedule's
//! slots fired on time, caught up, or not caught up while no engine process was alive; a flood
//! of forged deliveries leaves a bounded number of rows and is counted; a delivery over the
//! trigger's rate is named; and bad windows are refused.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{
    eventually, expect_problem, spawn_app, spawn_app_with, Session, TestApp, TestDb,
};
use crate::webhooks::{deliver, stripe_signature};

crate::on_every_store!(
    it_should_explain_each_delivery_and_change_of_a_trigger,
    it_should_keep_a_bounded_number_of_outcomes_under_a_flood_of_forged_requests,
    it_should_explain_the_slots_missed_while_no_engine_was_alive,
    it_should_refuse_a_window_it_cannot_explain,
    it_should_explain_a_delivery_over_the_triggers_rate,
);

const SECRET: &str = "whsec_explaintest";
/// In the delivered customers: must never appear in an explanation.
const PRIVATE: &str = "private-marker";

async fn stripe_trigger(app: &TestApp, session: &Session) -> Uuid {
    let created = app
        .request(Method::POST, "/projects/p1/triggers", session)
        .json(&json!({
            "provider_id": "stripe",
            "trigger_id": "on_customer_created",
            "trigger_config": {"signing_secret": SECRET,
                               "filter": r#"payload.data.object.email.endsWith("@acme.com")"#},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let id: Uuid = created.json::<Value>().await.unwrap()["project_trigger_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    act(app, session, id, "enable").await;
    id
}

async fn act(app: &TestApp, session: &Session, id: Uuid, action: &str) {
    let response = app
        .request(Method::POST, &format!("/triggers/{id}/{action}"), session)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{action}: {}",
        response.status()
    );
}

fn event(id: &str, kind: &str, email: &str) -> String {
    json!({"id": id, "object": "event", "type": kind,
           "data": {"object": {"id": "cus_1", "email": email, "note": PRIVATE}}})
    .to_string()
}

async fn send(app: &TestApp, trigger: Uuid, body: &str, signature: Option<String>) -> StatusCode {
    let headers: Vec<(&str, String)> = signature
        .map(|signature| vec![("stripe-signature", signature)])
        .unwrap_or_default();
    deliver(app, &trigger.to_string(), &headers, body)
        .await
        .status()
}

async fn signed(app: &TestApp, trigger: Uuid, body: &str) -> StatusCode {
    let signature = stripe_signature(SECRET, Utc::now().timestamp(), body);
    send(app, trigger, body, Some(signature)).await
}

async fn explain(app: &TestApp, session: &Session, id: Uuid, query: &str) -> Value {
    let response = app
        .request(
            Method::GET,
            &format!("/triggers/{id}/explain{query}"),
            session,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// The (kind, outcome) pairs of an explanation, in order.
fn outcomes(explanation: &Value) -> Vec<(String, String)> {
    explanation["occurrences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|occurrence| {
            (
                occurrence["kind"].as_str().unwrap().to_owned(),
                occurrence["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn find<'a>(explanation: &'a Value, outcome: &str) -> Vec<&'a Value> {
    explanation["occurrences"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|occurrence| occurrence["outcome"] == outcome)
        .collect()
}

async fn it_should_explain_each_delivery_and_change_of_a_trigger(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let trigger = stripe_trigger(&app, &session).await;

    let fired = event("evt_1", "customer.created", "ada@acme.com");
    assert_eq!(signed(&app, trigger, &fired).await, StatusCode::NO_CONTENT);
    assert_eq!(signed(&app, trigger, &fired).await, StatusCode::NO_CONTENT);
    let updated = event("evt_2", "customer.updated", "ada@acme.com");
    assert_eq!(
        signed(&app, trigger, &updated).await,
        StatusCode::NO_CONTENT
    );
    let elsewhere = event("evt_3", "customer.created", "bob@example.com");
    assert_eq!(
        signed(&app, trigger, &elsewhere).await,
        StatusCode::NO_CONTENT
    );
    let forged = event("evt_4", "customer.created", "eve@acme.com");
    let wrong = stripe_signature("whsec_not_the_secret", Utc::now().timestamp(), &forged);
    assert_eq!(
        send(&app, trigger, &forged, Some(wrong)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, trigger, &forged, None).await,
        StatusCode::UNAUTHORIZED
    );
    act(&app, &session, trigger, "disable").await;
    let while_disabled = event("evt_5", "customer.created", "ada@acme.com");
    assert_eq!(
        signed(&app, trigger, &while_disabled).await,
        StatusCode::NOT_FOUND
    );
    act(&app, &session, trigger, "enable").await;
    act(&app, &session, trigger, "pause").await;
    let while_paused = event("evt_6", "customer.created", "ada@acme.com");
    assert_eq!(
        signed(&app, trigger, &while_paused).await,
        StatusCode::NO_CONTENT
    );
    act(&app, &session, trigger, "resume").await;

    let runs = app.runs_of(trigger).await;
    let run_of = |event_id: &str| {
        runs.iter()
            .find(|run| run.record.firing.payload["id"] == event_id)
            .map(|run| run.record.run_id.to_string())
            .unwrap()
    };
    // The outcomes the log does not hold are written off the request's path.
    let expected = [
        ("delivery", "fired"),
        ("delivery", "duplicate"),
        ("delivery", "ignored"),
        ("delivery", "filtered"),
        ("delivery", "rejected"),
        ("delivery", "rejected"),
        ("delivery", "refused"),
        ("delivery", "held"),
    ];
    let complete = || async {
        let seen = outcomes(&explain(&app, &session, trigger, "").await);
        expected.iter().all(|(kind, outcome)| {
            seen.iter()
                .filter(|pair| pair.0 == *kind && pair.1 == *outcome)
                .count()
                == expected
                    .iter()
                    .filter(|pair| pair == &&(*kind, *outcome))
                    .count()
        })
    };
    eventually(20, "every delivery's outcome", complete).await;
    let explanation = explain(&app, &session, trigger, "").await;
    let text = explanation.to_string();
    assert!(!text.contains(SECRET), "no secret in {text}");
    assert!(!text.contains(PRIVATE), "no body in {text}");

    let first = &find(&explanation, "fired")[0];
    assert_eq!(first["run_id"], run_of("evt_1"));
    assert!(first["run_status"].is_string(), "{first}");
    let duplicate = &find(&explanation, "duplicate")[0];
    assert_eq!(
        duplicate["run_id"],
        run_of("evt_1"),
        "a duplicate names the run it repeats"
    );
    let ignored = &find(&explanation, "ignored")[0];
    assert_eq!(ignored["reason"], "another event type: customer.updated");
    let filtered = &find(&explanation, "filtered")[0];
    assert_eq!(filtered["reason"], "the filter was false");
    let rejected: HashSet<&str> = find(&explanation, "rejected")
        .iter()
        .map(|occurrence| occurrence["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        rejected,
        HashSet::from([
            "signature: signature does not match",
            "signature: missing `stripe-signature` header"
        ])
    );
    assert!(find(&explanation, "refused")[0]["reason"]
        .as_str()
        .unwrap()
        .contains("disabled"));
    let held = &find(&explanation, "held")[0];
    assert_eq!(held["run_id"], run_of("evt_6"));

    let changes: Vec<&str> = explanation["occurrences"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|occurrence| occurrence["kind"] == "lifecycle")
        .map(|occurrence| occurrence["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        changes,
        ["created", "enabled", "disabled", "enabled", "paused", "resumed"]
    );
    let by = format!("user:{}", session.user_id);
    assert_eq!(find(&explanation, "paused")[0]["actor"], by.as_str());
    assert_eq!(explanation["not_kept"], Value::Null);
    assert_eq!(explanation["truncated"], false);

    // A window that holds none of it; a limit that holds part of it.
    let later = Utc::now() + chrono::Duration::hours(1);
    let window = format!(
        "?from={}&to={}",
        urlencode(&later.to_rfc3339()),
        urlencode(&(later + chrono::Duration::hours(1)).to_rfc3339())
    );
    let empty = explain(&app, &session, trigger, &window).await;
    assert_eq!(empty["occurrences"], json!([]), "{empty}");
    let two = explain(&app, &session, trigger, "?limit=2").await;
    assert_eq!(two["occurrences"].as_array().unwrap().len(), 2);
    assert_eq!(two["truncated"], true);

    let stranger = app.sign_up().await;
    let hidden = app
        .request(
            Method::GET,
            &format!("/triggers/{trigger}/explain"),
            &stranger,
        )
        .send()
        .await
        .unwrap();
    expect_problem(hidden, StatusCode::NOT_FOUND, None).await;
    app.shutdown().await;
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

const CAP: i64 = 50;
const FORGED: usize = 2_000;

async fn it_should_keep_a_bounded_number_of_outcomes_under_a_flood_of_forged_requests(db: TestDb) {
    let app = Arc::new(spawn_app_with(&db, |serve| serve.outcomes_per_trigger = CAP).await);
    let session = app.sign_up().await;
    let trigger = stripe_trigger(&app, &session).await;

    let mut senders = Vec::new();
    for sender in 0..16 {
        let app = app.clone();
        senders.push(tokio::spawn(async move {
            for n in (sender..FORGED).step_by(16) {
                let body = event(
                    &format!("evt_forged_{n}"),
                    "customer.created",
                    "eve@acme.com",
                );
                let forged = stripe_signature("whsec_forged", Utc::now().timestamp(), &body);
                let status = send(&app, trigger, &body, Some(forged)).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED);
            }
        }));
    }
    // A real delivery in the middle of the flood is fired as ever.
    let real = event("evt_real", "customer.created", "ada@acme.com");
    assert_eq!(signed(&app, trigger, &real).await, StatusCode::NO_CONTENT);
    for sender in senders {
        sender.await.unwrap();
    }
    assert_eq!(app.runs_of(trigger).await.len(), 1);

    // Every forged request is accounted for: kept (at most the cap) or counted.
    let accounted = || async {
        let explanation = explain(&app, &session, trigger, "?limit=1000").await;
        let counted = explanation["not_kept"]["count"].as_i64().unwrap_or(0);
        let kept = find(&explanation, "rejected").len() as i64;
        kept + counted == FORGED as i64
    };
    eventually(30, "every forged request kept or counted", accounted).await;
    let kept = app.store.kept_outcomes(trigger).await.unwrap();
    assert!(kept <= CAP, "{kept} outcomes kept, over the cap of {CAP}");
    assert!(kept > 0);
    let explanation = explain(&app, &session, trigger, "?limit=1000").await;
    assert_eq!(
        explanation["not_kept"]["count"].as_i64().unwrap(),
        FORGED as i64 - kept
    );
    assert_eq!(find(&explanation, "fired").len(), 1);
    // Nothing is recorded for an id that is no trigger.
    let nobody = Uuid::new_v4();
    let body = event("evt_x", "customer.created", "eve@acme.com");
    assert_eq!(send(&app, nobody, &body, None).await, StatusCode::NOT_FOUND);
    assert_eq!(app.store.kept_outcomes(nobody).await.unwrap(), 0);
    Arc::into_inner(app).unwrap().shutdown().await;
}

async fn it_should_explain_the_slots_missed_while_no_engine_was_alive(db: TestDb) {
    // No executor: the runs stay requested, nothing but the scheduler writes.
    let quiet = |serve: &mut trigger_engine::config::ServeConfig| {
        serve.executor.executor_concurrency = 0;
    };
    let first = spawn_app_with(&db, quiet).await;
    let session = first.sign_up().await;
    let created = first
        .request(Method::POST, "/projects/p1/triggers", &session)
        .json(
            &json!({"provider_id": "schedule", "trigger_id": "on_schedule",
                      "trigger_config": {"interval_seconds": 1, "catch_up": "latest"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let id: Uuid = created.json::<Value>().await.unwrap()["project_trigger_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    act(&first, &session, id, "enable").await;
    let on_time = || async { first.runs_of(id).await.len() >= 2 };
    eventually(20, "two slots fired on time", on_time).await;
    first.shutdown().await;

    // Two outages: slots pass while no engine process is alive, twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let second = spawn_app_with(&db, quiet).await;
    caught_up(&second, &session, id, 1).await;
    second.shutdown().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let app = spawn_app_with(&db, quiet).await;
    caught_up(&app, &session, id, 2).await;

    let explanation = explain(&app, &session, id, "").await;
    assert!(find(&explanation, "fired").len() >= 2, "{explanation}");
    let at = |occurrence: &Value| -> chrono::DateTime<Utc> {
        occurrence["at"].as_str().unwrap().parse().unwrap()
    };
    let missed = find(&explanation, "not_caught_up");
    let mut comebacks = Vec::new();
    for slot in &missed {
        let reason = slot["reason"].as_str().unwrap();
        assert!(reason.contains("no engine process was alive"), "{reason}");
        assert!(reason.contains("`latest`"), "{reason}");
        assert_eq!(slot["run_id"], Value::Null);
        let back: chrono::DateTime<Utc> = reason
            .split("the engine came back at ")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .and_then(|back| back.parse().ok())
            .unwrap_or_else(|| panic!("when the engine came back: {reason}"));
        assert!(back > at(slot), "{reason}");
        comebacks.push((at(slot), back));
    }
    // Each outage's missed slots name that outage's end, which comes before the next outage.
    let ends: HashSet<_> = comebacks.iter().map(|(_, back)| *back).collect();
    assert_eq!(ends.len(), 2, "two outages, two comebacks: {explanation}");
    let first_end = *ends.iter().min().unwrap();
    for (slot, back) in &comebacks {
        assert_eq!(*back == first_end, *slot < first_end, "{explanation}");
    }
    let caught = find(&explanation, "caught_up");
    assert_eq!(caught.len(), 2, "{explanation}");
    assert!(caught.iter().all(|slot| slot["run_id"].is_string()));
    // Each outage's missed slots come before the one caught up after it.
    for (slot, back) in &comebacks {
        assert!(
            caught
                .iter()
                .any(|caught| *slot < at(caught) && at(caught) < *back),
            "{explanation}"
        );
    }
    app.shutdown().await;
}

/// Waits until `slots` missed slots of trigger `id` have been caught up.
async fn caught_up(app: &TestApp, session: &Session, id: Uuid, slots: usize) {
    let caught_up = || async {
        let explanation = explain(app, session, id, "").await;
        find(&explanation, "caught_up").len() >= slots
    };
    eventually(20, "the latest missed slot caught up", caught_up).await;
}

async fn it_should_refuse_a_window_it_cannot_explain(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let trigger = stripe_trigger(&app, &session).await;
    for (query, field) in [
        (
            "?from=2026-12-02T10%3A00%3A00Z&to=2026-12-01T10%3A00%3A00Z",
            "from",
        ),
        (
            "?from=2026-01-01T00%3A00%3A00Z&to=2026-12-01T00%3A00%3A00Z",
            "from",
        ),
        ("?limit=0", "limit"),
        ("?limit=1001", "limit"),
        ("?from=yesterday", "query"),
    ] {
        let response = app
            .request(
                Method::GET,
                &format!("/triggers/{trigger}/explain{query}"),
                &session,
            )
            .send()
            .await
            .unwrap();
        expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, Some(field)).await;
    }
    let unknown = app
        .request(
            Method::GET,
            &format!("/triggers/{}/explain", Uuid::new_v4()),
            &session,
        )
        .send()
        .await
        .unwrap();
    expect_problem(unknown, StatusCode::NOT_FOUND, None).await;
    app.shutdown().await;
}

async fn it_should_explain_a_delivery_over_the_triggers_rate(db: TestDb) {
    let app = spawn_app_with(&db, |serve| {
        serve.webhook_rate_per_second = std::num::NonZeroU32::new(1).unwrap();
        serve.webhook_burst = std::num::NonZeroU32::new(1).unwrap();
    })
    .await;
    let session = app.sign_up().await;
    let trigger = stripe_trigger(&app, &session).await;
    let first = event("evt_1", "customer.created", "ada@acme.com");
    assert_eq!(signed(&app, trigger, &first).await, StatusCode::NO_CONTENT);
    let second = event("evt_2", "customer.created", "ada@acme.com");
    assert_eq!(
        signed(&app, trigger, &second).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    let limited =
        || async { !find(&explain(&app, &session, trigger, "").await, "rate_limited").is_empty() };
    eventually(20, "the refused delivery in the explanation", limited).await;
    let explanation = explain(&app, &session, trigger, "").await;
    assert_eq!(find(&explanation, "fired").len(), 1);
    assert_eq!(find(&explanation, "rate_limited").len(), 1);
    app.shutdown().await;
}
