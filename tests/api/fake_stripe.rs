//! A local server that speaks Stripe's webhook endpoints API as Stripe documents it: bearer API
//! key, form-encoded bodies with `key[]` lists and `key[name]` maps, `we_` ids, a `whsec_` secret
//! shown only in the answer to the create call, newest-first pages with `has_more` and
//! `starting_after`, and Stripe's `{"error": {...}}` bodies. A test starts one, points a client
//! (or the engine, with `TRIGGER_ENGINE_STRIPE_API_URL`) at [`FakeStripe::url`], and reads what
//! was registered with [`FakeStripe::endpoints`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use rand::distributions::{Alphanumeric, DistString};
use rand::RngCore;
use serde_json::{json, Value};
use uuid::Uuid;

/// The API key the fake accepts.
pub const STRIPE_KEY: &str = "sk_test_51TriggerEngineFakeKey";

/// The metadata key the engine marks its endpoints with.
pub const TRIGGER_ID_METADATA: &str = "trigger_engine_trigger_id";

/// A webhook endpoint the fake holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub enabled_events: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub description: Option<String>,
    /// `whsec_...`: what Stripe signs deliveries to this endpoint with (the whole string is the
    /// HMAC key of the `Stripe-Signature` header).
    pub secret: String,
}

/// One call the fake received: its method and its path with the query.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: &'static str,
    pub path: String,
}

#[derive(Default)]
struct Fake {
    /// Oldest first; listed newest first, as Stripe lists.
    endpoints: Vec<Endpoint>,
    calls: Vec<Call>,
    /// When set, every call is answered with this status and a Stripe error body.
    refuse: Option<u16>,
    /// When set, pages hold at most this many endpoints, whatever `limit` asks.
    page_size: Option<usize>,
    /// When set, every page is one endpoint never seen before, and says it has more.
    endless_pages: bool,
}

/// The fake Stripe API, on 127.0.0.1 and a port of its own; stopped when dropped.
pub struct FakeStripe {
    /// The API's base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    state: Arc<Mutex<Fake>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeStripe {
    /// A fake that accepts [`STRIPE_KEY`] and holds no endpoints.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(Fake::default()));
        let app = Router::new()
            .route(
                "/v1/webhook_endpoints",
                post(create_endpoint).get(list_endpoints),
            )
            .route("/v1/webhook_endpoints/{id}", delete(delete_endpoint))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, state, server }
    }

    /// The endpoints that exist, oldest first.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.state.lock().unwrap().endpoints.clone()
    }

    /// The endpoints whose metadata names this trigger, oldest first.
    pub fn endpoints_of(&self, project_trigger_id: Uuid) -> Vec<Endpoint> {
        let id = project_trigger_id.to_string();
        self.endpoints()
            .into_iter()
            .filter(|endpoint| endpoint.metadata.get(TRIGGER_ID_METADATA) == Some(&id))
            .collect()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// From now on, answer every call with `status` and a Stripe error body (`None`: behave).
    pub fn refuse(&self, status: Option<u16>) {
        self.state.lock().unwrap().refuse = status;
    }

    /// From now on, cut pages at `size` endpoints, as if Stripe's pages were that small.
    pub fn page_size(&self, size: usize) {
        self.state.lock().unwrap().page_size = Some(size);
    }

    /// From now on, answer every list with an endpoint never seen before and `has_more`: a
    /// misbehaving server that never lets a client reach the end.
    pub fn endless_pages(&self) {
        self.state.lock().unwrap().endless_pages = true;
    }

    /// Forgets an endpoint, as its owner deleting it in Stripe's dashboard would.
    pub fn forget(&self, id: &str) {
        self.state
            .lock()
            .unwrap()
            .endpoints
            .retain(|endpoint| endpoint.id != id);
    }
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Shared = State<Arc<Mutex<Fake>>>;

fn stripe_error(status: u16, kind: &str, code: Option<&str>, message: &str) -> Response {
    let mut error = json!({"type": kind, "message": message});
    if let Some(code) = code {
        error["code"] = json!(code);
    }
    (
        StatusCode::from_u16(status).unwrap(),
        Json(json!({ "error": error })),
    )
        .into_response()
}

fn invalid_request(code: &str, message: &str) -> Response {
    stripe_error(400, "invalid_request_error", Some(code), message)
}

fn invalid_key() -> Response {
    stripe_error(
        401,
        "invalid_request_error",
        Some("api_key_invalid"),
        "Invalid API Key provided: sk_test_****",
    )
}

/// Records the call, then applies Stripe's own first check, the bearer key: the answer to
/// refuse the call with, if it fails.
fn admit(
    fake: &mut Fake,
    method: &'static str,
    path: String,
    headers: &HeaderMap,
) -> Option<Response> {
    fake.calls.push(Call { method, path });
    match fake.refuse {
        Some(401) => return Some(invalid_key()),
        Some(status) if status >= 500 => {
            return Some(stripe_error(
                status,
                "api_error",
                None,
                "refused for the test",
            ))
        }
        Some(status) => {
            return Some(stripe_error(
                status,
                "invalid_request_error",
                Some("refused_for_test"),
                "refused for the test",
            ))
        }
        None => {}
    }
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        None => Some(stripe_error(
            401,
            "invalid_request_error",
            None,
            "You did not provide an API key.",
        )),
        Some(auth) if auth == format!("Bearer {STRIPE_KEY}") => None,
        Some(_) => Some(invalid_key()),
    }
}

/// The endpoint as Stripe answers it; the secret only in the answer to the create call.
fn endpoint_json(endpoint: &Endpoint, with_secret: bool) -> Value {
    let mut answer = json!({
        "id": endpoint.id,
        "object": "webhook_endpoint",
        "api_version": null,
        "application": null,
        "created": 1_700_000_000,
        "description": endpoint.description,
        "enabled_events": endpoint.enabled_events,
        "livemode": false,
        "metadata": endpoint.metadata,
        "status": "enabled",
        "url": endpoint.url,
    });
    if with_secret {
        answer["secret"] = json!(endpoint.secret);
    }
    answer
}

fn fresh_id() -> String {
    format!(
        "we_{}",
        Alphanumeric.sample_string(&mut rand::thread_rng(), 24)
    )
}

fn fresh_secret() -> String {
    let mut bytes = [0; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("whsec_{}", STANDARD_NO_PAD.encode(bytes))
}

/// Reads a create call's form as Stripe does: `enabled_events[]` (or `enabled_events[0]`) is a
/// list, `metadata[key]` a map, and a parameter Stripe does not know is refused.
/// Refused as Stripe refuses a bad request: with an error code and a message.
fn endpoint_from_form(form: Vec<(String, String)>) -> Result<Endpoint, (&'static str, String)> {
    let mut url = None;
    let mut enabled_events = Vec::new();
    let mut metadata = BTreeMap::new();
    let mut description = None;
    for (key, value) in form {
        if key == "url" {
            url = Some(value);
        } else if key == "description" {
            description = Some(value);
        } else if key == "enabled_events[]"
            || key
                .strip_prefix("enabled_events[")
                .and_then(|rest| rest.strip_suffix(']'))
                .is_some_and(|index| index.parse::<usize>().is_ok())
        {
            enabled_events.push(value);
        } else if let Some(name) = key
            .strip_prefix("metadata[")
            .and_then(|rest| rest.strip_suffix(']'))
            .filter(|name| !name.is_empty())
        {
            metadata.insert(name.to_owned(), value);
        } else if key != "api_version" && key != "connect" {
            return Err((
                "parameter_unknown",
                format!("Received unknown parameter: {key}"),
            ));
        }
    }
    let Some(url) = url else {
        return Err((
            "parameter_missing",
            "Missing required param: url.".to_owned(),
        ));
    };
    if !url.starts_with("https://") && !url.starts_with("http://") {
        return Err(("url_invalid", "Invalid URL".to_owned()));
    }
    if enabled_events.is_empty() {
        return Err((
            "parameter_missing",
            "Missing required param: enabled_events.".to_owned(),
        ));
    }
    Ok(Endpoint {
        id: fresh_id(),
        url,
        enabled_events,
        metadata,
        description,
        secret: fresh_secret(),
    })
}

async fn create_endpoint(
    State(state): Shared,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let mut fake = state.lock().unwrap();
    let path = "/v1/webhook_endpoints".to_owned();
    if let Some(refused) = admit(&mut fake, "POST", path, &headers) {
        return refused;
    }
    match endpoint_from_form(form) {
        Ok(endpoint) => {
            let answer = endpoint_json(&endpoint, true);
            fake.endpoints.push(endpoint);
            Json(answer).into_response()
        }
        Err((code, message)) => invalid_request(code, &message),
    }
}

async fn list_endpoints(
    State(state): Shared,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let mut fake = state.lock().unwrap();
    let path = format!(
        "/v1/webhook_endpoints?{}",
        query
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join("&")
    );
    if let Some(refused) = admit(&mut fake, "GET", path, &headers) {
        return refused;
    }
    let mut limit = 10;
    let mut starting_after = None;
    for (key, value) in query {
        match key.as_str() {
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=100).contains(&n) => limit = n,
                _ => {
                    return invalid_request(
                        "parameter_invalid_integer",
                        "This value must be between 1 and 100.",
                    )
                }
            },
            "starting_after" => starting_after = Some(value),
            _ => {
                return invalid_request(
                    "parameter_unknown",
                    &format!("Received unknown parameter: {key}"),
                )
            }
        }
    }
    if fake.endless_pages {
        let made_up = Endpoint {
            id: fresh_id(),
            url: "https://elsewhere.example.com/".into(),
            enabled_events: vec!["charge.succeeded".into()],
            metadata: BTreeMap::new(),
            description: None,
            secret: fresh_secret(),
        };
        return Json(page(&[made_up], true)).into_response();
    }
    let newest_first: Vec<Endpoint> = fake.endpoints.iter().rev().cloned().collect();
    let start = match starting_after {
        None => 0,
        Some(after) => match newest_first.iter().position(|e| e.id == after) {
            Some(at) => at + 1,
            None => {
                return invalid_request(
                    "resource_missing",
                    &format!("No such webhook endpoint: '{after}'"),
                )
            }
        },
    };
    let size = fake.page_size.map_or(limit, |size| size.min(limit));
    let rest = &newest_first[start..];
    let has_more = rest.len() > size;
    Json(page(&rest[..rest.len().min(size)], has_more)).into_response()
}

fn page(endpoints: &[Endpoint], has_more: bool) -> Value {
    json!({
        "object": "list",
        "url": "/v1/webhook_endpoints",
        "has_more": has_more,
        "data": endpoints.iter().map(|e| endpoint_json(e, false)).collect::<Vec<_>>(),
    })
}

async fn delete_endpoint(
    State(state): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut fake = state.lock().unwrap();
    let path = format!("/v1/webhook_endpoints/{id}");
    if let Some(refused) = admit(&mut fake, "DELETE", path, &headers) {
        return refused;
    }
    let Some(at) = fake.endpoints.iter().position(|e| e.id == id) else {
        return stripe_error(
            404,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such webhook endpoint: '{id}'"),
        );
    };
    fake.endpoints.remove(at);
    Json(json!({"id": id, "object": "webhook_endpoint", "deleted": true})).into_response()
}
