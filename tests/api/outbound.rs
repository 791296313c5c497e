//! The outbound guard over real sockets: a source URL at a denied address is a 422 at create;
//! at poll time a name resolving to loopback, a redirect into a denied address and a next-page
//! link into one are failed polls that fire nothing and never reach the denied server; the allow
//! list admits one exact address and not its neighbour; reads stop at the size cap; hostile XML
//! is a failed poll.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use trigger_engine::outbound::{self, Allowed, Denied, Guard};
use trigger_engine::poller::Polled;

use crate::helpers::{expect_problem, spawn_app_with, TestApp, TestDb};

crate::on_every_store!(
    it_should_refuse_a_source_at_a_denied_address_and_record_nothing,
    it_should_refuse_a_redirect_into_a_denied_address,
    it_should_refuse_a_next_page_into_a_denied_address_and_fire_nothing,
    it_should_admit_the_allowed_address_but_not_its_neighbour,
    it_should_stop_reading_at_the_size_cap_and_refuse_hostile_xml,
);

/// A server on `address` that answers every request with `answer`, counting them.
async fn serve<F>(address: &str, answer: F) -> (String, Arc<AtomicUsize>)
where
    F: Fn(&str, &str) -> Response + Clone + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind(format!("{address}:0"))
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let (counted, own) = (hits.clone(), base.clone());
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let (counted, own, answer) = (counted.clone(), own.clone(), answer.clone());
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            answer(&own, &uri.to_string())
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, hits)
}

fn rss(base: &str) -> String {
    format!(
        r#"<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><link>{base}</link>
           <item><guid>secret-1</guid><title>internal</title><pubDate>Sun, 02 Mar 2025 09:00:00 +0000</pubDate></item>
           </channel></rss>"#
    )
}

fn feed(base: &str, _path: &str) -> Response {
    ([(header::CONTENT_TYPE, "application/rss+xml")], rss(base)).into_response()
}

async fn poll_failure(app: &TestApp, id: Uuid) -> String {
    match app.pollers.poll(id).await.unwrap() {
        Polled::Failed { error, .. } => error,
        other => panic!("the poll should have failed: {other:?}"),
    }
}

async fn last_error(app: &TestApp, id: Uuid) -> String {
    let record = app.store.trigger_view(id).await.unwrap().unwrap().record;
    record.cursor_data.unwrap()["poll_status"]["last_error"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn it_should_refuse_a_source_at_a_denied_address_and_record_nothing(db: TestDb) {
    let app = spawn_app_with(&db, |serve| serve.outbound_allow = Allowed::default()).await;
    let session = app.sign_up().await;
    for (provider, trigger, field) in [
        ("rss", "on_new_item", "feed_url"),
        ("http", "on_new_records", "url"),
    ] {
        for url in [
            "http://127.0.0.1:8080/",
            "http://127.1/",
            "http://0x7f.1/",
            "http://2130706433/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://0.0.0.0/",
            "http://localhost/",
            "http://api.localhost/",
        ] {
            let mut config = json!({field: url});
            if provider == "http" {
                config["id_field"] = json!("id");
            }
            let body =
                json!({"provider_id": provider, "trigger_id": trigger, "trigger_config": config});
            let response = app
                .request(Method::POST, "/projects/p/triggers", &session)
                .json(&body)
                .send()
                .await
                .unwrap();
            let problem = expect_problem(
                response,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&format!("trigger_config.{field}")),
            )
            .await;
            let detail = problem["detail"].as_str().unwrap();
            assert!(detail.contains(outbound::ALLOW_OPTION), "{url}: {detail}");
        }
    }
    let listed: Value = app
        .request(Method::GET, "/projects/p/triggers", &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([]), "nothing recorded");
    let public = json!({"provider_id": "rss", "trigger_id": "on_new_item",
        "trigger_config": {"feed_url": "https://blog.example.com/feed.xml"}});
    let created = app
        .request(Method::POST, "/projects/p/triggers", &session)
        .json(&public)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    app.shutdown().await;
}

/// The resolver judges the address a name resolves to, at the connect: `localhost` resolves
/// to loopback, and the guarded client never reaches the server listening there.
#[tokio::test]
async fn it_should_refuse_a_name_that_resolves_to_a_denied_address() {
    let (base, hits) = serve("127.0.0.1", feed).await;
    let port = base.rsplit(':').next().unwrap();
    let by_name = format!("http://localhost:{port}/feed.xml");
    let client = Guard::default()
        .client(Duration::from_secs(5), Duration::from_secs(5))
        .unwrap();
    let error = client.get(&by_name).send().await.unwrap_err();
    let denied = outbound::denial_of(&error).expect("refused by the guard");
    assert!(
        matches!(
            denied,
            Denied::Address {
                reason: "loopback",
                ..
            }
        ),
        "{denied}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0, "never connected");
    let allowed: Allowed = "localhost".parse().unwrap();
    let client = Guard::new(allowed)
        .client(Duration::from_secs(5), Duration::from_secs(5))
        .unwrap();
    let answered = client.get(&by_name).send().await.unwrap();
    assert_eq!(answered.status(), StatusCode::OK, "the name, once allowed");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

async fn it_should_refuse_a_redirect_into_a_denied_address(db: TestDb) {
    let (internal, internal_hits) = serve("127.0.0.2", feed).await;
    let target = format!("{internal}/feed.xml");
    let (public, _) = serve("127.0.0.1", move |base, path| {
        let to = match path {
            "/to-internal" => target.clone(),
            "/to-localhost" => target.replace("127.0.0.2", "localhost"),
            "/to-ipv6" => target.replace("127.0.0.2", "[::ffff:127.0.0.2]"),
            "/to-self" => format!("{base}/feed.xml"),
            _ => return feed(base, path),
        };
        (AxumStatus::FOUND, [(header::LOCATION, to)]).into_response()
    })
    .await;
    let app = spawn_app_with(&db, |_| {}).await;
    let session = app.sign_up().await;
    for (path, refused) in [
        ("/to-internal", "127.0.0.2"),
        ("/to-localhost", "localhost"),
        ("/to-ipv6", "::ffff:127.0.0.2"),
    ] {
        let config = json!({"feed_url": format!("{public}{path}")});
        let id = app
            .enabled_trigger(session.org_id, "rss", "on_new_item", config)
            .await;
        let error = poll_failure(&app, id).await;
        assert!(error.contains(refused), "{path}: {error}");
        assert!(app.runs_of(id).await.is_empty());
        assert!(last_error(&app, id).await.contains(refused));
    }
    assert_eq!(internal_hits.load(Ordering::SeqCst), 0, "never reached");
    let config = json!({"feed_url": format!("{public}/to-self")});
    let id = app
        .enabled_trigger(session.org_id, "rss", "on_new_item", config)
        .await;
    assert!(
        matches!(
            app.pollers.poll(id).await.unwrap(),
            Polled::Succeeded { .. }
        ),
        "a redirect within the allowed address is followed"
    );
    app.shutdown().await;
}

async fn it_should_refuse_a_next_page_into_a_denied_address_and_fire_nothing(db: TestDb) {
    let (internal, internal_hits) = serve("127.0.0.2", feed).await;
    let (public, _) = serve("127.0.0.1", move |_, path| {
        let next = format!("{internal}/older");
        if path.starts_with("/records") {
            let link = format!("<{next}>; rel=\"next\"");
            let body = json!([{"id": "r1", "at": "2026-01-01T00:00:00Z"}]).to_string();
            return (
                [
                    (header::LINK, link),
                    (header::CONTENT_TYPE, "application/json".into()),
                ],
                body,
            )
                .into_response();
        }
        let atom = format!(
            r#"<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>
               <link rel="next" href="{next}"/>
               <entry><id>urn:1</id><published>2026-01-01T00:00:00Z</published></entry></feed>"#
        );
        ([(header::CONTENT_TYPE, "application/atom+xml")], atom).into_response()
    })
    .await;
    let app = spawn_app_with(&db, |_| {}).await;
    let session = app.sign_up().await;
    let config = json!({"feed_url": format!("{public}/atom"), "since": "2025-01-01T00:00:00Z"});
    let id = app
        .enabled_trigger(session.org_id, "rss", "on_new_item", config)
        .await;
    let error = poll_failure(&app, id).await;
    assert!(
        error.contains("127.0.0.2") && error.contains("loopback"),
        "{error}"
    );
    assert!(
        app.runs_of(id).await.is_empty(),
        "no item of the response fires"
    );

    // A JSON endpoint's `Link` header: its first poll records the cursor, its second follows.
    let config =
        json!({"url": format!("{public}/records"), "id_field": "id", "timestamp_field": "at"});
    let id = app
        .enabled_trigger(session.org_id, "http", "on_new_records", config.clone())
        .await;
    let mut batch = app.pollers.plan(id).await.unwrap().unwrap();
    batch.next.last_processed_event_id = Some("r0".into());
    batch.next.last_processed_event_timestamp = Some("2025-01-01T00:00:00Z".parse().unwrap());
    batch.next.seen_ids.clear();
    app.pollers.commit(id, batch).await.unwrap();
    let error = poll_failure(&app, id).await;
    assert!(error.contains("127.0.0.2"), "{error}");
    assert!(app.runs_of(id).await.is_empty());
    assert_eq!(internal_hits.load(Ordering::SeqCst), 0, "never reached");
    app.shutdown().await;
}

async fn it_should_admit_the_allowed_address_but_not_its_neighbour(db: TestDb) {
    let (allowed, allowed_hits) = serve("127.0.0.1", feed).await;
    let (neighbour, neighbour_hits) = serve("127.0.0.2", feed).await;
    let app = spawn_app_with(&db, |_| {}).await;
    let session = app.sign_up().await;
    let admitted = app
        .enabled_trigger(
            session.org_id,
            "rss",
            "on_new_item",
            json!({"feed_url": format!("{allowed}/feed.xml")}),
        )
        .await;
    assert!(matches!(
        app.pollers.poll(admitted).await.unwrap(),
        Polled::Succeeded { .. }
    ));
    assert_eq!(allowed_hits.load(Ordering::SeqCst), 1);
    let refused = app
        .enabled_trigger(
            session.org_id,
            "rss",
            "on_new_item",
            json!({"feed_url": format!("{neighbour}/feed.xml")}),
        )
        .await;
    let error = poll_failure(&app, refused).await;
    assert!(
        error.contains("127.0.0.2") && error.contains("loopback"),
        "{error}"
    );
    assert_eq!(neighbour_hits.load(Ordering::SeqCst), 0);
    // The same address written as IPv6 is the same address, refused the same way.
    let mapped = neighbour.replace("127.0.0.2", "[::ffff:127.0.0.2]");
    let refused = app
        .enabled_trigger(
            session.org_id,
            "rss",
            "on_new_item",
            json!({"feed_url": format!("{mapped}/feed.xml")}),
        )
        .await;
    assert!(poll_failure(&app, refused).await.contains("loopback"));
    assert_eq!(neighbour_hits.load(Ordering::SeqCst), 0);
    app.shutdown().await;
}

fn hostile(_base: &str, path: &str) -> Response {
    match path {
        "/endless" => {
            let chunk = axum::body::Bytes::from(vec![b' '; 1 << 20]);
            let stream =
                futures::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
            let body = axum::body::Body::from_stream(stream);
            ([(header::CONTENT_TYPE, "application/rss+xml")], body).into_response()
        }
        "/laughs" => {
            let mut dtd = String::from(r#"<!ENTITY l0 "lol">"#);
            for level in 1..=9 {
                let previous = format!("&l{};", level - 1).repeat(10);
                dtd.push_str(&format!(r#"<!ENTITY l{level} "{previous}">"#));
            }
            format!("<?xml version=\"1.0\"?><!DOCTYPE rss [{dtd}]><rss><channel><item><guid>1</guid><title>&l9;</title></item></channel></rss>").into_response()
        }
        "/external" => {
            r#"<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>
            <rss><channel><item><guid>1</guid><title>&x;</title></item></channel></rss>"#
                .into_response()
        }
        _ => {
            let depth = 100_000;
            format!(
                "<rss><channel><item><guid>1</guid>{}{}</item></channel></rss>",
                "<x>".repeat(depth),
                "</x>".repeat(depth)
            )
            .into_response()
        }
    }
}

async fn it_should_stop_reading_at_the_size_cap_and_refuse_hostile_xml(db: TestDb) {
    let (source, _) = serve("127.0.0.1", hostile).await;
    let app = spawn_app_with(&db, |_| {}).await;
    let session = app.sign_up().await;
    for (path, expected) in [
        ("/endless", "more than"),
        ("/laughs", "entity"),
        ("/external", "entity"),
        ("/deep", "deep"),
    ] {
        let config =
            json!({"feed_url": format!("{source}{path}"), "since": "2025-01-01T00:00:00Z"});
        let id = app
            .enabled_trigger(session.org_id, "rss", "on_new_item", config)
            .await;
        let started = Instant::now();
        let error = poll_failure(&app, id).await;
        assert!(error.contains(expected), "{path}: {error}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{path} refused in {:?}",
            started.elapsed()
        );
        assert!(app.runs_of(id).await.is_empty());
    }
    app.shutdown().await;
}
