//! `GET /events` over the socket: the organisation's own events in position order, as pages and
//! followed live as Server-Sent Events, resumed with `Last-Event-ID`, bounded per organisation
//! and ended on shutdown.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, Session, TestApp, TestDb};

crate::on_every_store!(
    it_should_page_the_organisations_own_events_in_position_order,
    it_should_follow_the_log_live_and_resume_after_the_last_event_id,
    it_should_bound_live_streams_per_organisation_and_end_them_on_shutdown,
);

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn create(app: &TestApp, session: &Session, body: Value) -> String {
    let response = app
        .request(Method::POST, "/projects/p1/triggers", session)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let trigger: Value = response.json().await.unwrap();
    trigger["project_trigger_id"].as_str().unwrap().to_owned()
}

async fn page(app: &TestApp, session: &Session, query: &str) -> Value {
    let response = app
        .request(Method::GET, &format!("/events?{query}"), session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{query}");
    response.json().await.unwrap()
}

async fn it_should_page_the_organisations_own_events_in_position_order(db: TestDb) {
    let app = spawn_app(&db).await;
    let ours = app.sign_up().await;
    let theirs = app.sign_up().await;
    let stripe = create(
        &app,
        &ours,
        json!({"provider_id": "stripe", "trigger_id": "on_customer_created",
            "trigger_config": {"signing_secret": SECRET}}),
    )
    .await;
    let other = create(
        &app,
        &theirs,
        json!({"provider_id": "webhook", "trigger_id": "on_request"}),
    )
    .await;
    let webhook = create(
        &app,
        &ours,
        json!({"provider_id": "webhook", "trigger_id": "on_request"}),
    )
    .await;
    app.request(Method::POST, &format!("/triggers/{webhook}/enable"), &ours)
        .send()
        .await
        .unwrap();

    let all = page(&app, &ours, "").await;
    let events = all["events"].as_array().unwrap();
    let streams: Vec<&str> = events
        .iter()
        .map(|e| e["stream_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        streams,
        [stripe.as_str(), webhook.as_str(), webhook.as_str()],
        "{all}"
    );
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["TriggerCreated", "TriggerCreated", "TriggerEnabled"]
    );
    let positions: Vec<i64> = events
        .iter()
        .map(|e| e["position"].as_i64().unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|pair| pair[0] < pair[1]),
        "{positions:?}"
    );
    assert!(
        !all.to_string().contains(SECRET),
        "secrets are redacted: {all}"
    );
    assert!(events.iter().all(|e| e["stream_type"] == "trigger"));
    assert_eq!(
        events[0]["actor"],
        format!("user:{}", ours.user_id).as_str()
    );
    // The other organisation's create sits between ours in the log: a gap in our positions.
    assert!(positions[1] - positions[0] >= 2, "{positions:?}");
    let head = app.store.head().await.unwrap();
    assert_eq!(all["next_after"], head);

    // Paging: one at a time, each page continuing after the last; caught up, the page is empty.
    let mut after = 0;
    let mut paged = Vec::new();
    loop {
        let one = page(&app, &ours, &format!("after={after}&limit=1")).await;
        let next = one["next_after"].as_i64().unwrap();
        paged.extend(
            one["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["position"].as_i64().unwrap()),
        );
        if next == after {
            break;
        }
        after = next;
    }
    assert_eq!(paged, positions);
    assert_eq!(after, head);

    let theirs_page = page(&app, &theirs, "").await;
    let their_streams: Vec<&str> = theirs_page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["stream_id"].as_str().unwrap())
        .collect();
    assert_eq!(their_streams, [other.as_str()]);

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("after=-1", "after"),
    ] {
        let response = app
            .request(Method::GET, &format!("/events?{query}"), &ours)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["field"], field);
    }
    app.shutdown().await;
}

/// A Server-Sent Events reader over a live response.
struct Sse {
    response: reqwest::Response,
    buffer: String,
}

#[derive(Debug)]
struct Frame {
    id: i64,
    event: String,
    data: Value,
}

impl Sse {
    async fn open(
        app: &TestApp,
        session: &Session,
        last_event_id: Option<i64>,
    ) -> reqwest::Response {
        let mut request = app
            .request(Method::GET, "/events", session)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        request.send().await.unwrap()
    }

    fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped), or `None` when the stream ends.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, String::new(), String::new());
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("id:") {
                        id = Some(value.trim().parse().unwrap());
                    } else if let Some(value) = line.strip_prefix("event:") {
                        event = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                if let Some(id) = id {
                    return Some(Frame {
                        id,
                        event,
                        data: serde_json::from_str(&data).unwrap(),
                    });
                }
            }
            let chunk = self.response.chunk().await.ok()??;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    async fn next_within(&mut self, seconds: u64) -> Frame {
        tokio::time::timeout(Duration::from_secs(seconds), self.next())
            .await
            .expect("an event arrives in time")
            .expect("the stream is still open")
    }
}

async fn it_should_follow_the_log_live_and_resume_after_the_last_event_id(db: TestDb) {
    let app = spawn_app(&db).await;
    let ours = app.sign_up().await;
    let theirs = app.sign_up().await;
    let first = create(
        &app,
        &ours,
        json!({"provider_id": "webhook", "trigger_id": "on_request"}),
    )
    .await;

    let mut stream = Sse::new(Sse::open(&app, &ours, None).await);
    let created = stream.next_within(5).await;
    assert_eq!(created.event, "TriggerCreated");
    assert_eq!(created.data["stream_id"], first.as_str());
    assert_eq!(created.data["position"], created.id);

    // Writes made while the stream is open show up on it; the other organisation's never do.
    create(
        &app,
        &theirs,
        json!({"provider_id": "webhook", "trigger_id": "on_request"}),
    )
    .await;
    let second = create(
        &app,
        &ours,
        json!({"provider_id": "webhook", "trigger_id": "on_request"}),
    )
    .await;
    let live = stream.next_within(5).await;
    assert_eq!(live.event, "TriggerCreated");
    assert_eq!(live.data["stream_id"], second.as_str());
    assert!(
        live.id > created.id + 1,
        "their event sits between: {} {}",
        created.id,
        live.id
    );
    drop(stream);

    // Reconnecting after the first event resumes exactly there: the second comes next, then what
    // was written while no stream was open.
    app.request(Method::POST, &format!("/triggers/{second}/enable"), &ours)
        .send()
        .await
        .unwrap();
    let mut resumed = Sse::new(Sse::open(&app, &ours, Some(created.id)).await);
    let again = resumed.next_within(5).await;
    assert_eq!(again.id, live.id);
    let enabled = resumed.next_within(5).await;
    assert_eq!(enabled.event, "TriggerEnabled");
    assert_eq!(enabled.data["stream_id"], second.as_str());

    let refused = app
        .request(Method::GET, "/events", &ours)
        .header("accept", "text/event-stream")
        .header("last-event-id", "not-a-position")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    drop(resumed);
    app.shutdown().await;
}

async fn it_should_bound_live_streams_per_organisation_and_end_them_on_shutdown(db: TestDb) {
    let app = spawn_app(&db).await;
    let ours = app.sign_up().await;
    let theirs = app.sign_up().await;
    let max = trigger_engine::http::events::MAX_STREAMS_PER_ORG;
    let mut open = Vec::new();
    for _ in 0..max {
        open.push(Sse::new(Sse::open(&app, &ours, None).await));
    }
    let refused = Sse::open(&app, &ours, None).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    let problem: Value = refused.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("event streams"),
        "{problem}"
    );
    // The bound is the organisation's: another one still opens a stream, and pages still answer.
    let mut their_stream = Sse::new(Sse::open(&app, &theirs, None).await);
    page(&app, &ours, "").await;

    // A stream the client closed frees its place, once the engine notices (at the next write
    // to it: an event or a keep-alive).
    drop(open.pop());
    create(
        &app,
        &ours,
        json!({"provider_id": "webhook", "trigger_id": "on_request"}),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let response = Sse::open(&app, &ours, None).await;
        if response.status() == StatusCode::OK {
            open.push(Sse::new(response));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a closed stream's place is free again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Shutdown ends every stream rather than waiting for them.
    tokio::time::timeout(Duration::from_secs(20), app.shutdown())
        .await
        .expect("shutdown does not wait for open streams");
    assert!(their_stream.next().await.is_none(), "the stream ended");
    for mut stream in open {
        while stream.next().await.is_some() {}
    }
}
