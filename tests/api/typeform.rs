//! Typeform webhook registration, against a local server that speaks Typeform's webhook API:
//! enabling a Typeform trigger creates the form's webhook there and records it in `webhook_data`;
//! disabling or deleting removes it; a Typeform that refuses leaves the trigger as it was.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Json, Router};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::connections::{typeform_connection_of, TOKEN};
use crate::helpers::{expect_problem, spawn_app_with, Session, TestApp, TestDb};

crate::on_every_store!(
    it_should_register_the_webhook_at_typeform_on_enable_and_remove_it_on_disable_and_delete,
    it_should_leave_the_trigger_disabled_when_typeform_refuses_or_is_unreachable,
    it_should_keep_the_trigger_enabled_when_typeform_refuses_to_remove_the_webhook,
    it_should_take_a_webhook_already_gone_at_typeform_as_removed,
    it_should_need_a_public_url_to_register_a_webhook,
);

/// The engine's public URL in these tests, where Typeform is told to deliver.
const PUBLIC_URL: &str = "https://engine.example.com";
const SIGNING_SECRET: &str = "whisper-to-typeform";
const FORM_ID: &str = "lT4Z3j";

/// One call the fake Typeform received.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: &'static str,
    pub form_id: String,
    pub tag: String,
    pub body: Option<Value>,
}

#[derive(Default)]
struct Fake {
    calls: Vec<Call>,
    /// The webhooks that exist, by (form id, tag): the PUT body that made each.
    webhooks: BTreeMap<(String, String), Value>,
    /// When set, every call is answered with this status and a Typeform error body.
    refuse: Option<u16>,
}

/// A local server that speaks Typeform's create-or-update and delete webhook API, checks the
/// bearer token and the body as Typeform would, and records every call.
pub struct FakeTypeform {
    pub url: String,
    state: Arc<Mutex<Fake>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeTypeform {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(Fake::default()));
        let app = Router::new()
            .route(
                "/forms/{form_id}/webhooks/{tag}",
                put(put_webhook).delete(delete_webhook),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, state, server }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn webhooks(&self) -> BTreeMap<(String, String), Value> {
        self.state.lock().unwrap().webhooks.clone()
    }

    /// From now on, answer every call with `status` (`None`: behave).
    pub fn refuse(&self, status: Option<u16>) {
        self.state.lock().unwrap().refuse = status;
    }

    /// Forgets a webhook, as its owner deleting it in Typeform's UI would.
    pub fn forget(&self, form_id: &str, tag: &str) {
        self.state
            .lock()
            .unwrap()
            .webhooks
            .remove(&(form_id.to_owned(), tag.to_owned()));
    }
}

impl Drop for FakeTypeform {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Shared = State<Arc<Mutex<Fake>>>;

fn typeform_error(status: u16, code: &str, description: &str) -> Response {
    (
        AxumStatus::from_u16(status).unwrap(),
        Json(json!({"code": code, "description": description})),
    )
        .into_response()
}

/// Typeform's own checks, the bearer token then (for a PUT) the body's fields and types: the
/// answer to refuse the call with, if it fails one.
fn refusal(fake: &Fake, headers: &HeaderMap, body: Option<&Value>) -> Option<Response> {
    if let Some(status) = fake.refuse {
        return Some(typeform_error(status, "REFUSED", "refused for the test"));
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return Some(typeform_error(
            401,
            "AUTHENTICATION_FAILED",
            "Authentication credentials not found on the Request Headers",
        ));
    }
    let body = body?;
    let valid = body["url"]
        .as_str()
        .is_some_and(|url| url.starts_with("https://"))
        && body["enabled"].is_boolean()
        && body["secret"].is_string()
        && body["verify_ssl"].is_boolean()
        && body.as_object().unwrap().len() == 4;
    (!valid).then(|| typeform_error(400, "VALIDATION_ERROR", "bad webhook body"))
}

async fn put_webhook(
    State(state): Shared,
    Path((form_id, tag)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut fake = state.lock().unwrap();
    fake.calls.push(Call {
        method: "PUT",
        form_id: form_id.clone(),
        tag: tag.clone(),
        body: Some(body.clone()),
    });
    if let Some(refused) = refusal(&fake, &headers, Some(&body)) {
        return refused;
    }
    let created = fake
        .webhooks
        .insert((form_id.clone(), tag.clone()), body.clone())
        .is_none();
    let status = if created {
        AxumStatus::CREATED
    } else {
        AxumStatus::OK
    };
    let mut answer = body;
    answer["form_id"] = json!(form_id);
    answer["tag"] = json!(tag);
    (status, Json(answer)).into_response()
}

async fn delete_webhook(
    State(state): Shared,
    Path((form_id, tag)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut fake = state.lock().unwrap();
    fake.calls.push(Call {
        method: "DELETE",
        form_id: form_id.clone(),
        tag: tag.clone(),
        body: None,
    });
    if let Some(refused) = refusal(&fake, &headers, None) {
        return refused;
    }
    match fake.webhooks.remove(&(form_id, tag)) {
        Some(_) => AxumStatus::NO_CONTENT.into_response(),
        None => typeform_error(404, "FORM_WEBHOOK_NOT_FOUND", "Webhook not found"),
    }
}

/// An engine whose Typeform is `typeform`.
async fn engine(db: &TestDb, typeform: &FakeTypeform) -> TestApp {
    let url = typeform.url.parse().unwrap();
    spawn_app_with(db, |config| {
        config.typeform_api_url = url;
        config.public_url = Some(PUBLIC_URL.parse().unwrap());
    })
    .await
}

/// A Typeform trigger with a connection of `session`'s organisation; returns its path.
async fn typeform_trigger(app: &TestApp, session: &Session) -> (Uuid, String) {
    let connection = typeform_connection_of(app, session).await;
    let response = app
        .request(Method::POST, "/projects/p1/triggers", session)
        .json(&json!({
            "provider_id": "typeform",
            "trigger_id": "on_form_response",
            "connection_id": connection,
            "trigger_config": {"form_id": FORM_ID, "signing_secret": SIGNING_SECRET}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    let id: Uuid = created["project_trigger_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    (id, format!("/triggers/{id}"))
}

async fn post(app: &TestApp, session: &Session, path: &str) -> reqwest::Response {
    app.request(Method::POST, path, session)
        .send()
        .await
        .unwrap()
}

async fn trigger(app: &TestApp, session: &Session, path: &str) -> Value {
    let response = app
        .request(Method::GET, path, session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn tag(id: Uuid) -> String {
    format!("trigger-engine-{id}")
}

async fn it_should_register_the_webhook_at_typeform_on_enable_and_remove_it_on_disable_and_delete(
    db: TestDb,
) {
    let typeform = FakeTypeform::start().await;
    let app = engine(&db, &typeform).await;
    let session = app.sign_up().await;
    let (id, path) = typeform_trigger(&app, &session).await;
    assert!(typeform.calls().is_empty(), "creating registers nothing");

    let enabled = post(&app, &session, &format!("{path}/enable")).await;
    assert_eq!(enabled.status(), StatusCode::NO_CONTENT);
    let expected_body = json!({
        "url": format!("{PUBLIC_URL}/v1/webhooks/{id}"),
        "enabled": true,
        "secret": SIGNING_SECRET,
        "verify_ssl": true,
    });
    assert_eq!(
        typeform.calls(),
        [Call {
            method: "PUT",
            form_id: FORM_ID.into(),
            tag: tag(id),
            body: Some(expected_body.clone()),
        }]
    );
    assert_eq!(
        typeform.webhooks(),
        BTreeMap::from([((FORM_ID.to_owned(), tag(id)), expected_body)])
    );
    let shown = trigger(&app, &session, &path).await;
    assert_eq!(shown["status"], "ENABLED");
    assert_eq!(
        shown["webhook_data"],
        json!({"form_id": FORM_ID, "webhook_tag": tag(id)})
    );
    // Neither the secret nor the token shows.
    assert!(!shown.to_string().contains(SIGNING_SECRET), "{shown}");
    assert!(!shown.to_string().contains(TOKEN), "{shown}");

    // Enabling again asks nothing of Typeform.
    let again = post(&app, &session, &format!("{path}/enable")).await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
    assert_eq!(typeform.calls().len(), 1);

    let disabled = post(&app, &session, &format!("{path}/disable")).await;
    assert_eq!(disabled.status(), StatusCode::NO_CONTENT);
    let calls = typeform.calls();
    assert_eq!(
        (calls[1].method, calls[1].tag.as_str()),
        ("DELETE", tag(id).as_str())
    );
    assert!(typeform.webhooks().is_empty());
    let shown = trigger(&app, &session, &path).await;
    assert_eq!(shown["status"], "DISABLED");
    assert_eq!(shown["webhook_data"], Value::Null);
    // Disabling again asks nothing of Typeform either.
    let again = post(&app, &session, &format!("{path}/disable")).await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
    assert_eq!(typeform.calls().len(), 2);

    // Enabled once more, then deleted: the webhook goes with it.
    let enabled = post(&app, &session, &format!("{path}/enable")).await;
    assert_eq!(enabled.status(), StatusCode::NO_CONTENT);
    assert_eq!(typeform.webhooks().len(), 1);
    let deleted = app
        .request(Method::DELETE, &path, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let methods: Vec<_> = typeform.calls().iter().map(|call| call.method).collect();
    assert_eq!(methods, ["PUT", "DELETE", "PUT", "DELETE"]);
    assert!(typeform.webhooks().is_empty());
    let gone = app
        .request(Method::GET, &path, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);

    // The whole story is in the trigger's history, webhook included.
    let history: Vec<String> = app
        .store
        .stream_history("trigger", &id.to_string())
        .await
        .unwrap()
        .iter()
        .map(|event| event.event_type.clone())
        .collect();
    assert_eq!(
        history,
        [
            "TriggerCreated",
            "WebhookRecorded",
            "TriggerEnabled",
            "WebhookCleared",
            "TriggerDisabled",
            "WebhookRecorded",
            "TriggerEnabled",
            "WebhookCleared",
            "TriggerDeleted",
        ]
    );
    app.shutdown().await;
}

async fn it_should_leave_the_trigger_disabled_when_typeform_refuses_or_is_unreachable(db: TestDb) {
    let typeform = FakeTypeform::start().await;
    let app = engine(&db, &typeform).await;
    let session = app.sign_up().await;
    let (_, path) = typeform_trigger(&app, &session).await;
    let head = app.store.head().await.unwrap();
    for status in [401, 500] {
        typeform.refuse(Some(status));
        let refused = post(&app, &session, &format!("{path}/enable")).await;
        let problem = expect_problem(refused, StatusCode::BAD_GATEWAY, None).await;
        assert_eq!(problem["type"], "/problems/provider-failed");
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains("Typeform") && detail.contains(&status.to_string()),
            "{detail}"
        );
        assert!(!detail.contains(TOKEN), "{detail}");
    }
    // A Typeform that does not answer at all: a port nothing listens on any more, on an engine
    // of its own.
    let freed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let unreachable_url = format!("http://{}", freed.local_addr().unwrap());
    drop(freed);
    // Bound to a name: a temporary would delete the database's folder under the running engine.
    let elsewhere_db = TestDb::sqlite();
    let elsewhere = spawn_app_with(&elsewhere_db, |config| {
        config.typeform_api_url = unreachable_url.parse().unwrap();
        config.public_url = Some(PUBLIC_URL.parse().unwrap());
    })
    .await;
    let other = elsewhere.sign_up().await;
    let (_, other_path) = typeform_trigger(&elsewhere, &other).await;
    let unreachable = post(&elsewhere, &other, &format!("{other_path}/enable")).await;
    let problem = expect_problem(unreachable, StatusCode::BAD_GATEWAY, None).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{problem}"
    );
    assert_eq!(
        trigger(&elsewhere, &other, &other_path).await["status"],
        "DISABLED"
    );
    elsewhere.shutdown().await;

    assert_eq!(
        app.store.head().await.unwrap(),
        head,
        "no event was recorded"
    );
    let shown = trigger(&app, &session, &path).await;
    assert_eq!(shown["status"], "DISABLED");
    assert_eq!(shown["webhook_data"], Value::Null);
    assert!(typeform.webhooks().is_empty());

    // Once Typeform accepts, the same request succeeds.
    typeform.refuse(None);
    let enabled = post(&app, &session, &format!("{path}/enable")).await;
    assert_eq!(enabled.status(), StatusCode::NO_CONTENT);
    assert_eq!(trigger(&app, &session, &path).await["status"], "ENABLED");
    app.shutdown().await;
}

async fn it_should_keep_the_trigger_enabled_when_typeform_refuses_to_remove_the_webhook(
    db: TestDb,
) {
    let typeform = FakeTypeform::start().await;
    let app = engine(&db, &typeform).await;
    let session = app.sign_up().await;
    let (_, path) = typeform_trigger(&app, &session).await;
    let enabled = post(&app, &session, &format!("{path}/enable")).await;
    assert_eq!(enabled.status(), StatusCode::NO_CONTENT);
    let before = trigger(&app, &session, &path).await;

    typeform.refuse(Some(503));
    let refused = post(&app, &session, &format!("{path}/disable")).await;
    expect_problem(refused, StatusCode::BAD_GATEWAY, None).await;
    let refused = app
        .request(Method::DELETE, &path, &session)
        .send()
        .await
        .unwrap();
    expect_problem(refused, StatusCode::BAD_GATEWAY, None).await;
    assert_eq!(trigger(&app, &session, &path).await, before);
    assert_eq!(typeform.webhooks().len(), 1);

    typeform.refuse(None);
    let disabled = post(&app, &session, &format!("{path}/disable")).await;
    assert_eq!(disabled.status(), StatusCode::NO_CONTENT);
    assert!(typeform.webhooks().is_empty());
    app.shutdown().await;
}

async fn it_should_take_a_webhook_already_gone_at_typeform_as_removed(db: TestDb) {
    let typeform = FakeTypeform::start().await;
    let app = engine(&db, &typeform).await;
    let session = app.sign_up().await;
    let (id, path) = typeform_trigger(&app, &session).await;
    let enabled = post(&app, &session, &format!("{path}/enable")).await;
    assert_eq!(enabled.status(), StatusCode::NO_CONTENT);
    typeform.forget(FORM_ID, &tag(id));
    let disabled = post(&app, &session, &format!("{path}/disable")).await;
    assert_eq!(disabled.status(), StatusCode::NO_CONTENT);
    let shown = trigger(&app, &session, &path).await;
    assert_eq!(shown["status"], "DISABLED");
    assert_eq!(shown["webhook_data"], Value::Null);
    app.shutdown().await;
}

async fn it_should_need_a_public_url_to_register_a_webhook(db: TestDb) {
    let typeform = FakeTypeform::start().await;
    let url = typeform.url.parse().unwrap();
    let app = spawn_app_with(&db, |config| {
        config.typeform_api_url = url;
        config.public_url = None;
    })
    .await;
    let session = app.sign_up().await;
    let (_, path) = typeform_trigger(&app, &session).await;
    let refused = post(&app, &session, &format!("{path}/enable")).await;
    let problem = expect_problem(refused, StatusCode::SERVICE_UNAVAILABLE, None).await;
    assert_eq!(problem["type"], "/problems/not-configured");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("TRIGGER_ENGINE_PUBLIC_URL"),
        "{problem}"
    );
    assert!(typeform.calls().is_empty());
    assert_eq!(trigger(&app, &session, &path).await["status"], "DISABLED");
    app.shutdown().await;
}
