//! Polling triggers end to end, against a local feed server whose items change between polls:
//! history is not replayed, each new item fires once, items sharing a timestamp all fire, JSON
//! pages are followed to the cursor, failures back off, show and finally disable the trigger,
//! and firing with advancing is one commit: a crash before it, or a stale poll racing a newer
//! one, neither loses nor repeats an item.

use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use trigger_engine::poller::Polled;

use crate::helpers::{eventually, spawn_app_with, TestApp, TestDb};

/// An engine that polls (the helpers' default engine does not).
async fn spawn_app(db: &TestDb) -> TestApp {
    spawn_app_with(db, |serve| serve.polling = true).await
}

crate::on_every_store!(
    it_should_not_replay_history_and_fire_each_new_item_once,
    it_should_page_through_json_records_until_the_cursor,
    it_should_back_off_show_the_error_and_recover_without_loss,
    it_should_disable_itself_after_too_many_failures_with_the_reason,
    it_should_fire_items_after_since_on_the_first_poll,
    it_should_fire_and_advance_in_one_commit_that_neither_loses_nor_repeats,
);

/// A source whose items the test changes: served as RSS at `/feed.xml` and as JSON records at
/// `/records`, newest first, `page_size` a page, with `Link: <...>; rel="next"`.
#[derive(Clone, Default)]
struct Source {
    state: Arc<Mutex<SourceState>>,
    base: String,
}

#[derive(Default)]
struct SourceState {
    /// (id, RFC 3339 time), oldest first.
    items: Vec<(String, String)>,
    failing: Option<u16>,
    page_size: usize,
    requests: usize,
}

impl Source {
    async fn start(items: &[(&str, &str)]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let source = Self {
            state: Arc::default(),
            base: format!("http://{}", listener.local_addr().unwrap()),
        };
        source.state.lock().unwrap().page_size = 100;
        source.add(items);
        let app = axum::Router::new()
            .route("/feed.xml", axum::routing::get(feed))
            .route("/records", axum::routing::get(records))
            .with_state(source.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        source
    }

    fn add(&self, items: &[(&str, &str)]) {
        let mut state = self.state.lock().unwrap();
        for (id, at) in items {
            state.items.push(((*id).into(), (*at).into()));
        }
    }

    fn fail_with(&self, status: Option<u16>) {
        self.state.lock().unwrap().failing = status;
    }

    fn requests(&self) -> usize {
        self.state.lock().unwrap().requests
    }
}

fn failing(state: &mut SourceState) -> Option<Response> {
    state.requests += 1;
    state.failing.map(|status| {
        (
            AxumStatus::from_u16(status).unwrap(),
            "the source is having a bad day",
        )
            .into_response()
    })
}

async fn feed(State(source): State<Source>) -> Response {
    let mut state = source.state.lock().unwrap();
    if let Some(failure) = failing(&mut state) {
        return failure;
    }
    let items: String = state
        .items
        .iter()
        .rev()
        .map(|(id, at)| {
            let date = chrono::DateTime::parse_from_rfc3339(at).unwrap().to_rfc2822();
            format!("<item><guid>{id}</guid><title>Item {id}</title><link>{}/{id}</link><pubDate>{date}</pubDate></item>", source.base)
        })
        .collect();
    let body = format!(
        r#"<?xml version="1.0"?><rss version="2.0"><channel><title>Test feed</title><link>{}</link>{items}</channel></rss>"#,
        source.base
    );
    ([("content-type", "application/rss+xml")], body).into_response()
}

async fn records(
    State(source): State<Source>,
    Query(query): Query<std::collections::HashMap<String, usize>>,
) -> Response {
    let mut state = source.state.lock().unwrap();
    if let Some(failure) = failing(&mut state) {
        return failure;
    }
    let page = query.get("page").copied().unwrap_or(0);
    let newest_first: Vec<Value> = state
        .items
        .iter()
        .rev()
        .map(|(id, at)| json!({"id": id, "created_at": at, "subject": format!("record {id}")}))
        .collect();
    let size = state.page_size;
    let chunk: Vec<Value> = newest_first
        .iter()
        .skip(page * size)
        .take(size)
        .cloned()
        .collect();
    let mut headers = HeaderMap::new();
    if (page + 1) * size < newest_first.len() {
        let next = format!("</records?page={}>; rel=\"next\"", page + 1);
        headers.insert("link", next.parse().unwrap());
    }
    (headers, axum::Json(json!({"data": chunk}))).into_response()
}

fn rss_config(source: &Source) -> Value {
    json!({"feed_url": format!("{}/feed.xml", source.base), "polling_frequency": 20})
}

/// The polled item ids of the trigger's runs, sorted (one poll fires its items in one instant).
async fn fired(app: &TestApp, id: Uuid) -> Vec<String> {
    let mut ids: Vec<String> = app
        .runs_of(id)
        .await
        .into_iter()
        .map(|run| match run.record.firing.cause {
            aggregates::RunCause::PolledItem { id } => id,
            other => panic!("a polling run caused by {other:?}"),
        })
        .collect();
    ids.sort();
    ids
}

async fn cursor(app: &TestApp, id: Uuid) -> Value {
    let record = app.store.trigger_view(id).await.unwrap().unwrap().record;
    record.cursor_data.unwrap_or(Value::Null)
}

/// Waits until the source has answered `polls` more requests: polls happen, whatever they find.
async fn polls(source: &Source, polls: usize) {
    let start = source.requests();
    eventually(15, "more polls", || async {
        source.requests() >= start + polls
    })
    .await;
}

async fn it_should_not_replay_history_and_fire_each_new_item_once(db: TestDb) {
    let source =
        Source::start(&[("a", "2025-01-01T10:00:00Z"), ("b", "2025-01-01T11:00:00Z")]).await;
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let id = app
        .enabled_trigger(session.org_id, "rss", "on_new_item", rss_config(&source))
        .await;
    eventually(15, "a first cursor", || async {
        cursor(&app, id).await["last_processed_event_id"] == "b"
    })
    .await;
    polls(&source, 2).await;
    assert!(fired(&app, id).await.is_empty(), "history is not replayed");

    // A burst, two of it sharing a timestamp with each other and one with the watermark.
    source.add(&[
        ("c", "2025-01-01T11:00:00Z"),
        ("d", "2025-01-01T12:00:00Z"),
        ("e", "2025-01-01T12:00:00Z"),
    ]);
    eventually(15, "the burst fired", || async {
        fired(&app, id).await.len() >= 3
    })
    .await;
    polls(&source, 3).await;
    let runs = fired(&app, id).await;
    assert_eq!(runs, ["c", "d", "e"], "each new item once");
    let cursor = cursor(&app, id).await;
    assert_eq!(
        cursor["last_processed_event_timestamp"],
        "2025-01-01T12:00:00Z"
    );
    let run = &app.runs_of(id).await[0];
    assert_eq!(run.record.firing.payload["feed"]["title"], "Test feed");
    assert!(run.record.firing.payload["item"]["title"]
        .as_str()
        .unwrap()
        .starts_with("Item "));

    // What GET /triggers/{id} shows: the cursor with its poll status.
    let shown: Value = app
        .request(Method::GET, &format!("/triggers/{id}"), &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        shown["cursor_data"]["poll_status"]["consecutive_failures"],
        0
    );
    app.shutdown().await;
}

async fn it_should_page_through_json_records_until_the_cursor(db: TestDb) {
    let source =
        Source::start(&[("1", "2025-01-01T10:00:00Z"), ("2", "2025-01-01T10:01:00Z")]).await;
    source.state.lock().unwrap().page_size = 2;
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let config = json!({
        "url": format!("{}/records", source.base),
        "items_path": "/data",
        "id_field": "id",
        "timestamp_field": "created_at",
        "polling_frequency": "20",
    });
    let id = app
        .enabled_trigger(session.org_id, "http", "on_new_records", config)
        .await;
    eventually(15, "a first cursor", || async {
        cursor(&app, id).await["last_processed_event_id"] == "2"
    })
    .await;
    // Five new records: three pages of two, the third reaching the cursor.
    source.add(&[
        ("3", "2025-01-01T10:02:00Z"),
        ("4", "2025-01-01T10:03:00Z"),
        ("5", "2025-01-01T10:04:00Z"),
        ("6", "2025-01-01T10:05:00Z"),
        ("7", "2025-01-01T10:06:00Z"),
    ]);
    eventually(15, "every new record fired", || async {
        fired(&app, id).await.len() >= 5
    })
    .await;
    polls(&source, 3).await;
    assert_eq!(fired(&app, id).await, ["3", "4", "5", "6", "7"]);
    let runs = app.runs_of(id).await;
    assert!(runs
        .iter()
        .any(|run| run.record.firing.payload["record"]["id"] == "7"));
    app.shutdown().await;
}

async fn it_should_back_off_show_the_error_and_recover_without_loss(db: TestDb) {
    let source = Source::start(&[("a", "2025-01-01T10:00:00Z")]).await;
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let id = app
        .enabled_trigger(session.org_id, "rss", "on_new_item", rss_config(&source))
        .await;
    eventually(15, "a first cursor", || async {
        cursor(&app, id).await["last_processed_event_id"] == "a"
    })
    .await;
    source.fail_with(Some(500));
    source.add(&[("b", "2025-01-01T11:00:00Z")]);
    eventually(15, "two failures recorded", || async {
        cursor(&app, id).await["poll_status"]["consecutive_failures"]
            .as_u64()
            .is_some_and(|failures| failures >= 2)
    })
    .await;
    let shown: Value = app
        .request(Method::GET, &format!("/triggers/{id}"), &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let status = &shown["cursor_data"]["poll_status"];
    assert!(
        status["last_error"].as_str().unwrap().contains("500"),
        "{status}"
    );
    assert!(fired(&app, id).await.is_empty());
    source.fail_with(None);
    eventually(15, "the item fired after recovery", || async {
        fired(&app, id).await == ["b"]
    })
    .await;
    eventually(15, "the failures reset", || async {
        cursor(&app, id).await["poll_status"]["consecutive_failures"] == 0
    })
    .await;
    app.shutdown().await;
}

async fn it_should_disable_itself_after_too_many_failures_with_the_reason(db: TestDb) {
    let source = Source::start(&[("a", "2025-01-01T10:00:00Z")]).await;
    source.fail_with(Some(503));
    let app = spawn_app_with(&db, |serve| {
        serve.polling = true;
        serve.poll_max_failures = 3;
    })
    .await;
    let session = app.sign_up().await;
    let id = app
        .enabled_trigger(session.org_id, "rss", "on_new_item", rss_config(&source))
        .await;
    eventually(15, "the trigger disabled itself", || async {
        let view = app.store.trigger_view(id).await.unwrap().unwrap();
        view.record.status == aggregates::TriggerStatus::Disabled
    })
    .await;
    let mut reasons = Vec::new();
    for event in app.store.read_log(0, 1_000_000).await.unwrap() {
        if event.aggregate_id != id.to_string() {
            continue;
        }
        if let Some(aggregates::TriggerEvent::TriggerAutoDisabled { reason, .. }) =
            event.trigger_event().unwrap()
        {
            reasons.push(reason);
        }
    }
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("3 polls in a row failed"),
        "{}",
        reasons[0]
    );
    assert!(reasons[0].contains("503"), "{}", reasons[0]);
    assert_eq!(
        cursor(&app, id).await["poll_status"]["consecutive_failures"],
        3
    );
    let requests = source.requests();
    // Disabled means no more polls: a few poll intervals later, nobody asked again.
    app.shutdown().await;
    assert_eq!(source.requests(), requests);
}

async fn it_should_fire_items_after_since_on_the_first_poll(db: TestDb) {
    let source = Source::start(&[
        ("old", "2025-01-01T10:00:00Z"),
        ("new-1", "2025-02-01T10:00:00Z"),
        ("new-2", "2025-02-02T10:00:00Z"),
    ])
    .await;
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let mut config = rss_config(&source);
    config["since"] = json!("2025-01-15T00:00:00Z");
    let id = app
        .enabled_trigger(session.org_id, "rss", "on_new_item", config)
        .await;
    eventually(15, "the items since fired", || async {
        fired(&app, id).await.len() >= 2
    })
    .await;
    polls(&source, 2).await;
    assert_eq!(fired(&app, id).await, ["new-1", "new-2"]);
    app.shutdown().await;
}

async fn it_should_fire_and_advance_in_one_commit_that_neither_loses_nor_repeats(db: TestDb) {
    let source = Source::start(&[("a", "2025-01-01T10:00:00Z")]).await;
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let (_, key) = app.identity.create_api_key(session.org_id).await.unwrap();
    // Polled on enabling, then not for an hour: the test polls by hand.
    let config =
        json!({"feed_url": format!("{}/feed.xml", source.base), "polling_frequency": 3_600_000});
    let id = app
        .enabled_trigger(session.org_id, "rss", "on_new_item", config)
        .await;
    eventually(15, "a first cursor", || async {
        cursor(&app, id).await["last_processed_event_id"] == "a"
    })
    .await;
    source.add(&[("b", "2025-01-01T11:00:00Z"), ("c", "2025-01-01T12:00:00Z")]);

    // A poll that crashes before its commit has recorded nothing: no run, no cursor move.
    let crashed = app.pollers.plan(id).await.unwrap().unwrap();
    assert_eq!(crashed.new.len(), 2);
    drop(crashed);
    assert!(fired(&app, id).await.is_empty());
    assert_eq!(cursor(&app, id).await["last_processed_event_id"], "a");

    // A poll whose cursor moved under it (here by a failed poll recording its failure) records
    // nothing at all: not its runs either.
    let stale = app.pollers.plan(id).await.unwrap().unwrap();
    source.fail_with(Some(500));
    let failed = app.pollers.poll(id).await.unwrap();
    assert!(matches!(failed, Polled::Failed { .. }), "{failed:?}");
    source.fail_with(None);
    assert_eq!(app.pollers.commit(id, stale).await.unwrap(), None);
    assert!(fired(&app, id).await.is_empty());

    let fresh = app.pollers.plan(id).await.unwrap().unwrap();
    assert_eq!(app.pollers.commit(id, fresh).await.unwrap(), Some(2));
    assert_eq!(fired(&app, id).await, ["b", "c"]);

    // An item whose run exists already (an earlier enabling replayed it through `since`) is
    // left out, and the rest of the poll still commits.
    source.add(&[("d", "2025-01-01T13:00:00Z"), ("e", "2025-01-01T14:00:00Z")]);
    let record = app.store.trigger_view(id).await.unwrap().unwrap().record;
    let earlier = aggregates::Firing::of(
        &record,
        aggregates::RunCause::PolledItem { id: "d".into() },
        json!({}),
        chrono::Utc::now(),
    );
    let (_, append) = trigger_engine::runs::Runs::request(
        earlier,
        aggregates::event::Stamp {
            at: chrono::Utc::now(),
            by: aggregates::Actor::system("test"),
        },
        "test",
    )
    .unwrap();
    app.store.append_together(vec![append]).await.unwrap();
    // The next poll, through the deprecated URL: `e` fires, `d` does not fire again.
    let url = format!(
        "{}/organizations/{}/triggers/{id}/polling/key/{key}",
        app.address, session.org_id
    );
    let wrong = app
        .http
        .post(url.replace(&key, "te_wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let polled = app.http.post(&url).send().await.unwrap();
    assert_eq!(polled.status(), StatusCode::NO_CONTENT);
    assert_eq!(polled.headers()["deprecation"], "true");
    assert_eq!(
        fired(&app, id).await,
        ["b", "c", "d", "e"],
        "nothing lost, nothing repeated"
    );
    eventually(15, "the cursor advanced", || async {
        cursor(&app, id).await["last_processed_event_id"] == "e"
    })
    .await;
    let other = app
        .enabled_trigger(
            session.org_id,
            "schedule",
            "on_schedule",
            json!({"cron": "0 0 1 1 *"}),
        )
        .await;
    let not_polling = app
        .http
        .post(url.replace(&id.to_string(), &other.to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(not_polling.status(), StatusCode::NOT_FOUND);
    app.shutdown().await;
}
