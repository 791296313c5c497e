//! `GET /triggers/{id}/history` and `GET /runs/{id}/history` over the socket: the same events as
//! `trigger-engine history` reads from the store, who caused each and through which request,
//! secrets redacted, the trigger as it stood at any point, paging, and nothing of another
//! organisation's.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::cli::{engine, lines};
use crate::helpers::{eventually, spawn_app, TestDb};

crate::on_every_store!(
    it_should_answer_a_triggers_history_as_the_cli_reads_it,
    it_should_show_a_trigger_as_it_stood_at_any_point_even_once_deleted,
    it_should_page_a_history_and_refuse_what_it_cannot_read,
    it_should_answer_a_runs_history_from_request_to_outcome,
);

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn it_should_answer_a_triggers_history_as_the_cli_reads_it(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let created: Value = app
        .request(Method::POST, "/projects/p1/triggers", &session)
        .header("x-request-id", "req-create")
        .json(
            &json!({"provider_id": "stripe", "trigger_id": "on_customer_created",
            "trigger_config": {"signing_secret": SECRET}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["project_trigger_id"].as_str().unwrap().to_owned();
    for (action, request_id) in [("enable", "req-enable"), ("disable", "req-disable")] {
        let response = app
            .request(Method::POST, &format!("/triggers/{id}/{action}"), &session)
            .header("x-request-id", request_id)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    let response = app
        .request(Method::GET, &format!("/triggers/{id}/history"), &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let history: Value = response.json().await.unwrap();
    let events = history["events"].as_array().unwrap();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["TriggerCreated", "TriggerEnabled", "TriggerDisabled"]
    );
    let request_ids: Vec<&str> = events
        .iter()
        .map(|e| e["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(request_ids, ["req-create", "req-enable", "req-disable"]);
    let actor = format!("user:{}", session.user_id);
    assert!(
        events.iter().all(|e| e["actor"] == actor.as_str()),
        "{history}"
    );
    assert_eq!(events[0]["data"]["provider_id"], "stripe");
    assert!(events[0]["data"]["trigger_config"].is_object());
    assert!(
        !history.to_string().contains(SECRET),
        "the signing secret is redacted: {history}"
    );
    assert_eq!(history["state"], Value::Null);
    assert_eq!(history["next_after_sequence"], Value::Null);

    // The same events, positions and causes as the auditor's command reads from the store.
    let cli = lines(&engine(&db, &["history", &id]).await);
    let (cli_events, _state) = cli.split_at(cli.len() - 1);
    assert_eq!(cli_events.len(), events.len());
    for (http, cli) in events.iter().zip(cli_events) {
        for field in ["position", "sequence", "event_type", "actor", "request_id"] {
            assert_eq!(http[field], cli[field], "{field}");
        }
        let at = |v: &Value| {
            chrono::DateTime::parse_from_rfc3339(v["recorded_at"].as_str().unwrap()).unwrap()
        };
        assert_eq!(at(http), at(cli));
    }

    // And the state at each point is the one the command folds.
    for event in events {
        let position = event["position"].as_i64().unwrap();
        let http: Value = app
            .request(
                Method::GET,
                &format!("/triggers/{id}/history?at_position={position}"),
                &session,
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let cli = lines(
            &engine(
                &db,
                &["history", &id, "--at-position", &position.to_string()],
            )
            .await,
        );
        let cli_state = &cli.last().unwrap()["state"];
        for field in [
            "project_trigger_id",
            "project_id",
            "provider_id",
            "trigger_id",
            "status",
        ] {
            assert_eq!(
                http["state"][field], cli_state[field],
                "{field} at {position}"
            );
        }
        assert_eq!(http["state_position"], cli.last().unwrap()["position"]);
    }
    app.shutdown().await;
}

async fn it_should_show_a_trigger_as_it_stood_at_any_point_even_once_deleted(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let created: Value = app
        .request(Method::POST, "/projects/p1/triggers", &session)
        .json(&json!({"provider_id": "webhook", "trigger_id": "on_request"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["project_trigger_id"].as_str().unwrap().to_owned();
    for action in ["enable", "disable"] {
        let response = app
            .request(Method::POST, &format!("/triggers/{id}/{action}"), &session)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    let deleted = app
        .request(Method::DELETE, &format!("/triggers/{id}"), &session)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let plain = app
        .request(Method::GET, &format!("/triggers/{id}"), &session)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::NOT_FOUND);

    let history = |query: String| {
        let request = app.request(
            Method::GET,
            &format!("/triggers/{id}/history?{query}"),
            &session,
        );
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{query}");
            response.json::<Value>().await.unwrap()
        }
    };
    let full = history(String::new()).await;
    let events = full["events"].as_array().unwrap();
    assert_eq!(events.len(), 4, "{full}");
    let position = |index: usize| events[index]["position"].as_i64().unwrap();

    // At each event's position: the state the events so far make, shaped as GET /triggers/{id}.
    for (index, status) in [(0, "DISABLED"), (1, "ENABLED"), (2, "DISABLED")] {
        let at = history(format!("at_position={}", position(index))).await;
        assert_eq!(at["state"]["status"], status, "{at}");
        assert_eq!(at["state"]["project_trigger_id"], id.as_str());
        assert_eq!(at["state_position"], position(index));
        assert_eq!(at["events"].as_array().unwrap().len(), index + 1);
        assert_eq!(at["deleted_at"], Value::Null);
        if index == 0 {
            assert_eq!(
                at["state"], created,
                "the state right after creation is what create answered"
            );
        }
    }
    let after_delete = history(format!("at_position={}", position(3))).await;
    assert!(after_delete["deleted_at"].is_string(), "{after_delete}");

    // As of an instant: the events committed at or before it.
    let enabled_at = events[1]["recorded_at"].as_str().unwrap();
    let as_of = history(format!("as_of={}", urlencode(enabled_at))).await;
    assert_eq!(as_of["state"]["status"], "ENABLED", "{as_of}");
    assert_eq!(as_of["events"].as_array().unwrap().len(), 2);
    // Both: the earlier of the two points.
    let both = history(format!(
        "as_of={}&at_position={}",
        urlencode(enabled_at),
        position(0)
    ))
    .await;
    assert_eq!(both["state"]["status"], "DISABLED", "{both}");
    assert_eq!(both["events"].as_array().unwrap().len(), 1);
    let both = history(format!(
        "as_of={}&at_position={}",
        urlencode(enabled_at),
        position(3)
    ))
    .await;
    assert_eq!(both["state"]["status"], "ENABLED", "{both}");
    let before = history("as_of=2000-01-01T00:00:00Z".into()).await;
    assert_eq!(before["state"], Value::Null);
    assert_eq!(before["events"], json!([]));
    app.shutdown().await;
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

async fn it_should_page_a_history_and_refuse_what_it_cannot_read(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let other = app.sign_up().await;
    let created: Value = app
        .request(Method::POST, "/projects/p1/triggers", &session)
        .json(&json!({"provider_id": "webhook", "trigger_id": "on_request"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["project_trigger_id"].as_str().unwrap().to_owned();
    for action in ["enable", "disable", "enable"] {
        app.request(Method::POST, &format!("/triggers/{id}/{action}"), &session)
            .send()
            .await
            .unwrap();
    }
    let page = |query: &str| {
        app.request(
            Method::GET,
            &format!("/triggers/{id}/history?{query}"),
            &session,
        )
        .send()
    };
    let first: Value = page("limit=3").await.unwrap().json().await.unwrap();
    let sequences: Vec<i64> = first["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(sequences, [1, 2, 3]);
    assert_eq!(first["next_after_sequence"], 3);
    let second: Value = page("limit=3&after_sequence=3")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["events"].as_array().unwrap().len(), 1);
    assert_eq!(second["events"][0]["sequence"], 4);
    assert_eq!(second["next_after_sequence"], Value::Null);

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("as_of=yesterday", "query"),
        ("at_position=-1", "at_position"),
        ("after_sequence=-1", "after_sequence"),
    ] {
        let response = page(query).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["field"], field, "{query}: {problem}");
    }

    // Another organisation's trigger is not found, like one that does not exist.
    for path in [
        format!("/triggers/{id}/history"),
        format!("/triggers/{}/history", Uuid::new_v4()),
    ] {
        let response = app
            .request(Method::GET, &path, &other)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    app.shutdown().await;
}

async fn it_should_answer_a_runs_history_from_request_to_outcome(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let other = app.sign_up().await;
    let trigger = app
        .enabled_trigger(session.org_id, "webhook", "on_request", json!({}))
        .await;
    let delivered = app
        .http
        .post(format!("{}/v1/webhooks/{trigger}", app.address))
        .json(&json!({"n": 1}))
        .send()
        .await
        .unwrap();
    assert!(delivered.status().is_success());
    // The built-in executor records the run executed; wait until its outcome is in the log.
    eventually(10, "the run succeeds", || async {
        app.runs_of(trigger)
            .await
            .first()
            .is_some_and(|run| run.record.status == aggregates::RunStatus::Succeeded)
    })
    .await;
    let run_id = app.runs_of(trigger).await[0].record.run_id;

    let response = app
        .request(Method::GET, &format!("/runs/{run_id}/history"), &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let history: Value = response.json().await.unwrap();
    assert_eq!(history["run_id"], run_id.to_string());
    let events = history["events"].as_array().unwrap();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types.first(), Some(&"RunRequested"), "{history}");
    assert!(
        types.len() >= 3,
        "requested, an attempt, its outcome: {types:?}"
    );
    assert_eq!(
        events[0]["data"]["firing"]["payload"],
        json!({"n": 1}),
        "{history}"
    );
    let sequences: Vec<i64> = events
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(sequences, (1..=events.len() as i64).collect::<Vec<_>>());

    for (path, session) in [
        (format!("/runs/{run_id}/history"), &other),
        (format!("/runs/{}/history", Uuid::new_v4()), &session),
    ] {
        let response = app
            .request(Method::GET, &path, session)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    app.shutdown().await;
}
