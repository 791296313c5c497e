//! Polling triggers end to end, against a local feed server whose items change between polls:
//! history is not replayed, each new item fires once, items sharing a timestamp all fire, JSON
//! and Atom pages are followed to the cursor (and no further, even round a loop), a connection's
//! credential travels in the configured header, failures back off, show (in the trigger and in
//! its explanation) and finally disable the trigger, and firing with advancing is one commit: a
//! crash before it, or a stale poll racing a newer one, neither loses nor repeats an item.

use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use trigger_engine::poller::Polled;

use crate::helpers::{eventually, spawn_app_with, Session, TestApp, TestDb};

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
    it_should_page_through_a_paged_atom_feed_until_the_cursor,
    it_should_stop_paging_a_feed_whose_pages_loop,
    it_should_send_the_connections_credential_in_the_configured_header,
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
    // The explanation names each failed poll with its error, and the disabling with its reason.
    let explanation: Value = app
        .request(Method::GET, &format!("/triggers/{id}/explain"), &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let occurrences = explanation["occurrences"].as_array().unwrap();
    let failed: Vec<&Value> = occurrences
        .iter()
        .filter(|occurrence| occurrence["outcome"] == "poll_failed")
        .collect();
    assert_eq!(failed.len(), 3, "{explanation}");
    assert!(failed
        .iter()
        .all(|poll| poll["kind"] == "poll" && poll["reason"].as_str().unwrap().contains("503")));
    let disabled = occurrences
        .iter()
        .find(|occurrence| occurrence["outcome"] == "auto_disabled")
        .unwrap_or_else(|| panic!("no auto_disabled in {explanation}"));
    assert_eq!(disabled["kind"], "lifecycle");
    assert_eq!(disabled["reason"], reasons[0].as_str());
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
        false,
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

/// An Atom feed split into pages (RFC 5005 paged feeds) at `/atom`: newest first, `page_size`
/// entries a page, each page linking the next with a relative `<link rel="next"
/// href="atom?page=N"/>`. With `looping`, the last page links back to the first (`atom`).
#[derive(Clone, Default)]
struct PagedFeed {
    state: Arc<Mutex<PagedFeedState>>,
    base: String,
}

#[derive(Default)]
struct PagedFeedState {
    /// (id, RFC 3339 time), oldest first.
    items: Vec<(String, String)>,
    page_size: usize,
    looping: bool,
    /// The pages asked for, in order.
    requested: Vec<usize>,
}

impl PagedFeed {
    async fn start(items: &[(&str, &str)], page_size: usize) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let feed = Self {
            state: Arc::default(),
            base: format!("http://{}", listener.local_addr().unwrap()),
        };
        feed.state.lock().unwrap().page_size = page_size;
        feed.add(items);
        let app = axum::Router::new()
            .route("/atom", axum::routing::get(paged_atom))
            .with_state(feed.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        feed
    }

    fn add(&self, items: &[(&str, &str)]) {
        let mut state = self.state.lock().unwrap();
        for (id, at) in items {
            state.items.push(((*id).into(), (*at).into()));
        }
    }

    fn requested(&self) -> Vec<usize> {
        self.state.lock().unwrap().requested.clone()
    }

    fn config(&self) -> Value {
        json!({"feed_url": format!("{}/atom", self.base), "polling_frequency": 20})
    }
}

async fn paged_atom(
    State(feed): State<PagedFeed>,
    Query(query): Query<std::collections::HashMap<String, usize>>,
) -> Response {
    let mut state = feed.state.lock().unwrap();
    let page = query.get("page").copied().unwrap_or(0);
    state.requested.push(page);
    let size = state.page_size;
    let entries: String = state
        .items
        .iter()
        .rev()
        .skip(page * size)
        .take(size)
        .map(|(id, at)| {
            format!(
                "<entry><id>{id}</id><title>Entry {id}</title><link href=\"{}/{id}\"/><published>{at}</published></entry>",
                feed.base
            )
        })
        .collect();
    let next = if (page + 1) * size < state.items.len() {
        format!(r#"<link rel="next" href="atom?page={}"/>"#, page + 1)
    } else if state.looping {
        r#"<link rel="next" href="atom"/>"#.to_owned()
    } else {
        String::new()
    };
    let body = format!(
        r#"<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Paged feed</title><link rel="self" href="{}/atom?page={page}"/><link href="{}"/>{next}{entries}</feed>"#,
        feed.base, feed.base
    );
    ([("content-type", "application/atom+xml")], body).into_response()
}

async fn it_should_page_through_a_paged_atom_feed_until_the_cursor(db: TestDb) {
    let feed = PagedFeed::start(
        &[
            ("h1", "2025-01-01T10:00:00Z"),
            ("h2", "2025-01-01T10:01:00Z"),
            ("h3", "2025-01-01T10:02:00Z"),
        ],
        2,
    )
    .await;
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let id = app
        .enabled_trigger(session.org_id, "rss", "on_new_item", feed.config())
        .await;
    eventually(15, "a first cursor", || async {
        cursor(&app, id).await["last_processed_event_id"] == "h3"
    })
    .await;
    assert!(
        feed.requested().iter().all(|&page| page == 0),
        "the first poll reads where the feed stands, not its history: {:?}",
        feed.requested()
    );
    // A burst of five, more than a page: [n5 n4] [n3 n2] [n1 h3], the third reaching the cursor.
    feed.add(&[
        ("n1", "2025-01-01T11:00:00Z"),
        ("n2", "2025-01-01T11:01:00Z"),
        ("n3", "2025-01-01T11:02:00Z"),
        ("n4", "2025-01-01T11:03:00Z"),
        ("n5", "2025-01-01T11:04:00Z"),
    ]);
    eventually(15, "the whole burst fired", || async {
        fired(&app, id).await.len() >= 5
    })
    .await;
    // A few more polls: nothing fires twice, and no poll reads past the cursor's page.
    let read = feed.requested().len();
    eventually(15, "more polls", || async {
        feed.requested().len() >= read + 3
    })
    .await;
    assert_eq!(fired(&app, id).await, ["n1", "n2", "n3", "n4", "n5"]);
    let requested = feed.requested();
    assert!(requested.contains(&2), "{requested:?}");
    assert!(
        requested.iter().all(|&page| page <= 2),
        "pages older than the cursor are not read: {requested:?}"
    );
    let cursor = cursor(&app, id).await;
    assert_eq!(cursor["last_processed_event_id"], "n5");
    assert_eq!(
        cursor["last_processed_event_timestamp"],
        "2025-01-01T11:04:00Z"
    );
    let runs = app.runs_of(id).await;
    let oldest = runs
        .iter()
        .find(|run| run.record.firing.payload["item"]["guid"] == "n1")
        .unwrap();
    assert_eq!(oldest.record.firing.payload["feed"]["title"], "Paged feed");
    assert_eq!(
        oldest.record.firing.payload["feed"]["url"],
        format!("{}/atom", feed.base),
        "the feed's URL, whichever page the item was on"
    );
    app.shutdown().await;
}

async fn it_should_stop_paging_a_feed_whose_pages_loop(db: TestDb) {
    let feed = PagedFeed::start(
        &[
            ("i1", "2025-02-01T10:00:00Z"),
            ("i2", "2025-02-01T11:00:00Z"),
            ("i3", "2025-02-01T12:00:00Z"),
            ("i4", "2025-02-01T13:00:00Z"),
        ],
        2,
    )
    .await;
    feed.state.lock().unwrap().looping = true;
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    // Every item is after `since`, so no page reaches the cursor; only the loop ends the poll.
    // Polled on enabling, then not for an hour.
    let mut config = feed.config();
    config["since"] = json!("2025-01-15T00:00:00Z");
    config["polling_frequency"] = json!(3_600_000);
    let id = app
        .enabled_trigger(session.org_id, "rss", "on_new_item", config)
        .await;
    eventually(15, "the first poll advanced the cursor", || async {
        cursor(&app, id).await["last_processed_event_id"] == "i4"
    })
    .await;
    assert_eq!(fired(&app, id).await, ["i1", "i2", "i3", "i4"]);
    assert_eq!(
        feed.requested(),
        [0, 1],
        "the link back to the first page is not followed"
    );
    app.shutdown().await;
}

/// The credential a test's connection holds: distinctive, so finding it anywhere is a leak.
const API_KEY: &str = "te_test_K3y_n3v3r_sh0wn";

/// JSON records at `/records` (as `{"data": [...]}`, newest first, one page) for requests whose
/// `X-Api-Key` is [`API_KEY`]; 401 for any other.
#[derive(Clone, Default)]
struct KeyedRecords {
    state: Arc<Mutex<KeyedRecordsState>>,
    base: String,
}

#[derive(Default)]
struct KeyedRecordsState {
    /// (id, RFC 3339 time), oldest first.
    items: Vec<(String, String)>,
    accepted: usize,
    refused: usize,
}

impl KeyedRecords {
    async fn start(items: &[(&str, &str)]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let source = Self {
            state: Arc::default(),
            base: format!("http://{}", listener.local_addr().unwrap()),
        };
        source.add(items);
        let app = axum::Router::new()
            .route("/records", axum::routing::get(keyed_records))
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

    fn counts(&self) -> (usize, usize) {
        let state = self.state.lock().unwrap();
        (state.accepted, state.refused)
    }

    fn config(&self) -> Value {
        json!({
            "url": format!("{}/records", self.base),
            "items_path": "/data",
            "id_field": "id",
            "timestamp_field": "created_at",
            "header_name": "X-Api-Key",
            // The API's floor; the helpers' engine polls as often as that.
            "polling_frequency": "1000",
        })
    }
}

async fn keyed_records(State(source): State<KeyedRecords>, headers: HeaderMap) -> Response {
    let mut state = source.state.lock().unwrap();
    if headers.get("x-api-key").and_then(|key| key.to_str().ok()) != Some(API_KEY) {
        state.refused += 1;
        return (AxumStatus::UNAUTHORIZED, "an API key, please").into_response();
    }
    state.accepted += 1;
    let newest_first: Vec<Value> = state
        .items
        .iter()
        .rev()
        .map(|(id, at)| json!({"id": id, "created_at": at}))
        .collect();
    axum::Json(json!({"data": newest_first})).into_response()
}

async fn trigger_text(app: &TestApp, session: &Session, id: Uuid) -> String {
    let response = app
        .request(Method::GET, &format!("/triggers/{id}"), session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

async fn it_should_send_the_connections_credential_in_the_configured_header(db: TestDb) {
    let source = KeyedRecords::start(&[("1", "2025-01-01T10:00:00Z")]).await;
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let connection = crate::connections::create_connection(
        &app,
        &session,
        json!({"provider_id": "http", "name": "Ticket API", "credentials": {"api_key": API_KEY}}),
    )
    .await;
    assert_eq!(connection.status(), StatusCode::CREATED);
    let connection: Uuid = connection.json::<Value>().await.unwrap()["connection_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let created = app
        .request(Method::POST, "/projects/p1/triggers", &session)
        .json(&json!({
            "provider_id": "http",
            "trigger_id": "on_new_records",
            "connection_id": connection,
            "trigger_config": source.config(),
        }))
        .send()
        .await
        .unwrap();
    let status = created.status();
    let created: Value = created.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let keyed: Uuid = created["project_trigger_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let enabled = app
        .request(Method::POST, &format!("/triggers/{keyed}/enable"), &session)
        .send()
        .await
        .unwrap();
    assert!(enabled.status().is_success(), "{}", enabled.status());
    // The same config without a connection: nothing to send, so the source refuses it.
    let mut config = source.config();
    config["polling_frequency"] = json!(20);
    let keyless = app
        .enabled_trigger(session.org_id, "http", "on_new_records", config)
        .await;
    eventually(15, "a first cursor, polled with the key", || async {
        cursor(&app, keyed).await["last_processed_event_id"] == "1"
    })
    .await;
    eventually(15, "the keyless trigger's polls refused", || async {
        cursor(&app, keyless).await["poll_status"]["last_error"]
            .as_str()
            .is_some_and(|error| error.contains("401"))
    })
    .await;

    source.add(&[("2", "2025-01-01T11:00:00Z"), ("3", "2025-01-01T11:00:00Z")]);
    eventually(15, "the new records fired", || async {
        fired(&app, keyed).await.len() >= 2
    })
    .await;
    let (accepted, refused) = source.counts();
    eventually(15, "more polls of both", || async {
        let (now_accepted, now_refused) = source.counts();
        now_accepted >= accepted + 2 && now_refused >= refused + 2
    })
    .await;
    assert_eq!(fired(&app, keyed).await, ["2", "3"]);
    assert!(fired(&app, keyless).await.is_empty(), "no header, no items");
    assert!(
        cursor(&app, keyless).await["poll_status"]["consecutive_failures"]
            .as_u64()
            .is_some_and(|failures| failures >= 2)
    );

    // The trigger names its connection; nothing it answers holds the credential.
    let shown = trigger_text(&app, &session, keyed).await;
    assert!(!shown.contains(API_KEY), "{shown}");
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["connection_id"], connection.to_string());
    assert_eq!(shown["trigger_config"]["header_name"], "X-Api-Key");
    let failing = trigger_text(&app, &session, keyless).await;
    assert!(!failing.contains(API_KEY), "{failing}");
    app.shutdown().await;
}
