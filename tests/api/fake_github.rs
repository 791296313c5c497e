//! A local server that speaks GitHub's repository webhooks API as GitHub documents it: a bearer
//! token, the `Accept` media type and `X-GitHub-Api-Version` it asks for, a User-Agent (GitHub
//! refuses requests without one), JSON bodies, integer hook ids, pages linked by
//! `Link: <...>; rel="next"`, a 422 for a second hook to the same URL, and GitHub's
//! `{"message", "documentation_url"}` error bodies. A test starts one with the repositories that
//! exist, points a client (or the engine, with `TRIGGER_ENGINE_GITHUB_API_URL`) at
//! [`FakeGitHub::url`], and reads what was registered with [`FakeGitHub::hooks`].

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

/// The access token the fake accepts.
pub const GITHUB_TOKEN: &str = "gho_TriggerEngineFakeToken0123456789";

const DOCS: &str = "https://docs.github.com/rest/repos/webhooks";

/// A repository hook the fake holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    pub id: u64,
    /// `owner/name`.
    pub repository: String,
    pub name: String,
    pub active: bool,
    pub events: Vec<String>,
    /// `config.url`: where deliveries go.
    pub url: String,
    pub content_type: String,
    /// `config.secret`: what GitHub signs deliveries with (`X-Hub-Signature-256`).
    pub secret: Option<String>,
    pub insecure_ssl: String,
}

/// One call the fake received: its method and its path with the query.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: &'static str,
    pub path: String,
}

#[derive(Default)]
struct Fake {
    url: String,
    repositories: BTreeSet<String>,
    /// By id, which only grows.
    hooks: Vec<Hook>,
    last_id: u64,
    calls: Vec<Call>,
    /// When set, every call is answered with this status and a GitHub error body.
    refuse: Option<u16>,
    /// When set, pages hold at most this many hooks, whatever `per_page` asks.
    page_size: Option<usize>,
    /// When set, listings show no hooks, as a listing that lags behind a create would.
    hide_hooks: bool,
    /// When set, every page is empty and links a next one.
    endless_pages: bool,
}

/// The fake GitHub API, on 127.0.0.1 and a port of its own; stopped when dropped.
pub struct FakeGitHub {
    /// The API's base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    state: Arc<Mutex<Fake>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeGitHub {
    /// A fake that accepts [`GITHUB_TOKEN`], where the `repositories` (`owner/name`) exist and
    /// have no hooks.
    pub async fn start(repositories: &[&str]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(Fake {
            url: url.clone(),
            repositories: repositories.iter().map(|r| (*r).to_owned()).collect(),
            ..Fake::default()
        }));
        let app = Router::new()
            .route(
                "/repos/{owner}/{repo}/hooks",
                get(list_hooks).post(create_hook),
            )
            .route(
                "/repos/{owner}/{repo}/hooks/{hook_id}",
                get(get_hook).patch(update_hook).delete(delete_hook),
            )
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, state, server }
    }

    /// The hooks that exist, oldest first.
    pub fn hooks(&self) -> Vec<Hook> {
        self.state.lock().unwrap().hooks.clone()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// From now on, answer every call with `status` and a GitHub error body (`None`: behave).
    pub fn refuse(&self, status: Option<u16>) {
        self.state.lock().unwrap().refuse = status;
    }

    /// From now on, cut pages at `size` hooks, as if GitHub's pages were that small.
    pub fn page_size(&self, size: usize) {
        self.state.lock().unwrap().page_size = Some(size);
    }

    /// From now on (`true`), list no hooks, as a listing lagging behind a create would.
    pub fn hide_hooks(&self, hide: bool) {
        self.state.lock().unwrap().hide_hooks = hide;
    }

    /// From now on, answer every list with an empty page linking a next one: a misbehaving
    /// server that never lets a client reach the end.
    pub fn endless_pages(&self) {
        self.state.lock().unwrap().endless_pages = true;
    }

    /// Forgets a hook, as the repository's owner deleting it in GitHub's settings would.
    pub fn forget(&self, id: u64) {
        self.state
            .lock()
            .unwrap()
            .hooks
            .retain(|hook| hook.id != id);
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Shared = State<Arc<Mutex<Fake>>>;

fn github_error(status: u16, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        Json(json!({"message": message, "documentation_url": DOCS, "status": status.to_string()})),
    )
        .into_response()
}

fn validation_failed(message: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({
            "message": "Validation Failed",
            "errors": [{"resource": "Hook", "code": "custom", "message": message}],
            "documentation_url": DOCS,
            "status": "422",
        })),
    )
        .into_response()
}

fn not_found() -> Response {
    github_error(404, "Not Found")
}

/// Records the call, then applies GitHub's checks of every request, the headers then the
/// repository: the answer to refuse the call with, if it fails one.
fn admit(
    fake: &mut Fake,
    method: &'static str,
    path: String,
    headers: &HeaderMap,
    repository: &str,
) -> Option<Response> {
    fake.calls.push(Call { method, path });
    match fake.refuse {
        Some(401) => return Some(github_error(401, "Bad credentials")),
        Some(status) => return Some(github_error(status, "refused for the test")),
        None => {}
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("user-agent").is_none_or(str::is_empty) {
        return Some(github_error(
            403,
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
        ));
    }
    // GitHub also takes `token <t>`; the engine sends the documented `Bearer <t>`.
    if header("authorization") != Some(&format!("Bearer {GITHUB_TOKEN}")) {
        return Some(github_error(401, "Bad credentials"));
    }
    // GitHub would default a missing version and media type; the fake insists, so a client it
    // serves is shown to send them.
    if header("accept") != Some("application/vnd.github+json") {
        return Some(github_error(415, "Unsupported 'Accept' header"));
    }
    if header("x-github-api-version") != Some("2022-11-28") {
        return Some(github_error(
            400,
            "Unsupported 'X-GitHub-Api-Version' header",
        ));
    }
    if !fake.repositories.contains(repository) {
        return Some(not_found());
    }
    None
}

/// The hook as GitHub answers it; the secret masked, as GitHub masks it.
fn hook_json(base: &str, hook: &Hook) -> Value {
    let mut config = json!({
        "content_type": hook.content_type,
        "insecure_ssl": hook.insecure_ssl,
        "url": hook.url,
    });
    if hook.secret.is_some() {
        config["secret"] = json!("********");
    }
    let url = format!("{base}/repos/{}/hooks/{}", hook.repository, hook.id);
    json!({
        "type": "Repository",
        "id": hook.id,
        "name": hook.name,
        "active": hook.active,
        "events": hook.events,
        "config": config,
        "updated_at": "2024-01-01T00:00:00Z",
        "created_at": "2024-01-01T00:00:00Z",
        "test_url": format!("{url}/test"),
        "ping_url": format!("{url}/pings"),
        "deliveries_url": format!("{url}/deliveries"),
        "url": url,
        "last_response": {"code": null, "status": "unused", "message": null},
    })
}

/// Applies a body's `active`, `events` and `config` (each replaces what was) to `hook`, checking
/// types as GitHub does; refused with the message of a 422.
fn apply(hook: &mut Hook, body: &Map<String, Value>) -> Result<(), &'static str> {
    if let Some(active) = body.get("active") {
        hook.active = active.as_bool().ok_or("active is not a boolean")?;
    }
    if let Some(events) = body.get("events") {
        hook.events = events
            .as_array()
            .and_then(|events| {
                events
                    .iter()
                    .map(|e| e.as_str().map(str::to_owned))
                    .collect()
            })
            .ok_or("events is not a list of strings")?;
    }
    if let Some(config) = body.get("config") {
        let Some(config) = config.as_object() else {
            return Err("config is not an object");
        };
        let url = config
            .get("url")
            .and_then(Value::as_str)
            .filter(|url| url.starts_with("https://") || url.starts_with("http://"))
            .ok_or("Config must contain a URL")?;
        let content_type = match config.get("content_type") {
            None => "form",
            Some(Value::String(kind)) if kind == "json" || kind == "form" => kind,
            Some(_) => return Err("content_type is not json or form"),
        };
        let insecure_ssl = match config.get("insecure_ssl") {
            None => "0".to_owned(),
            Some(Value::String(flag)) if flag == "0" || flag == "1" => flag.clone(),
            Some(Value::Number(flag)) if flag.as_u64().is_some_and(|f| f <= 1) => flag.to_string(),
            Some(_) => return Err("insecure_ssl is not 0 or 1"),
        };
        let secret = match config.get("secret") {
            None => None,
            Some(Value::String(secret)) => Some(secret.clone()),
            Some(_) => return Err("secret is not a string"),
        };
        hook.url = url.to_owned();
        hook.content_type = content_type.to_owned();
        hook.insecure_ssl = insecure_ssl;
        hook.secret = secret;
    }
    Ok(())
}

fn duplicate(fake: &Fake, hook: &Hook) -> bool {
    fake.hooks.iter().any(|other| {
        other.id != hook.id && other.repository == hook.repository && other.url == hook.url
    })
}

fn query_string(query: &[(String, String)]) -> String {
    let pairs: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

async fn list_hooks(
    State(state): Shared,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let mut fake = state.lock().unwrap();
    let repository = format!("{owner}/{repo}");
    let path = format!("/repos/{repository}/hooks{}", query_string(&query));
    if let Some(refused) = admit(&mut fake, "GET", path, &headers, &repository) {
        return refused;
    }
    let mut per_page = 30;
    let mut page = 1;
    for (key, value) in &query {
        let number = value.parse::<usize>().ok().filter(|n| *n >= 1);
        match (key.as_str(), number) {
            ("per_page", Some(n)) => per_page = n.min(100),
            ("page", Some(n)) => page = n,
            _ => {}
        }
    }
    let size = fake.page_size.map_or(per_page, |size| size.min(per_page));
    let link = |page: usize| {
        format!(
            "<{}/repos/{repository}/hooks?per_page={per_page}&page={page}>",
            fake.url
        )
    };
    if fake.endless_pages {
        let next = format!("{}; rel=\"next\"", link(page + 1));
        return ([(header::LINK, next)], Json(json!([]))).into_response();
    }
    let hooks: Vec<&Hook> = fake
        .hooks
        .iter()
        .filter(|hook| hook.repository == repository && !fake.hide_hooks)
        .collect();
    let pages = hooks.len().div_ceil(size).max(1);
    let shown: Vec<Value> = hooks
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|hook| hook_json(&fake.url, hook))
        .collect();
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("{}; rel=\"prev\"", link(page - 1)));
    }
    if page < pages {
        links.push(format!("{}; rel=\"next\"", link(page + 1)));
        links.push(format!("{}; rel=\"last\"", link(pages)));
    }
    if page > 1 {
        links.push(format!("{}; rel=\"first\"", link(1)));
    }
    let mut response = Json(json!(shown)).into_response();
    if !links.is_empty() {
        response
            .headers_mut()
            .insert(header::LINK, links.join(", ").parse().unwrap());
    }
    response
}

async fn create_hook(
    State(state): Shared,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let Some(body) = body.as_object() else {
        return github_error(400, "Problems parsing JSON");
    };
    let mut fake = state.lock().unwrap();
    let repository = format!("{owner}/{repo}");
    let path = format!("/repos/{repository}/hooks");
    if let Some(refused) = admit(&mut fake, "POST", path, &headers, &repository) {
        return refused;
    }
    match body.get("name") {
        None => {}
        Some(Value::String(name)) if name == "web" => {}
        Some(_) => return validation_failed("Name must be web"),
    }
    if body.get("config").is_none() {
        return validation_failed("Config must contain a URL");
    }
    let mut hook = Hook {
        id: fake.last_id + 1,
        repository,
        name: "web".into(),
        active: true,
        events: vec!["push".into()],
        url: String::new(),
        content_type: String::new(),
        secret: None,
        insecure_ssl: String::new(),
    };
    if let Err(message) = apply(&mut hook, body) {
        return validation_failed(message);
    }
    if duplicate(&fake, &hook) {
        return validation_failed("Hook already exists on this repository");
    }
    fake.last_id = hook.id;
    let answer = hook_json(&fake.url, &hook);
    fake.hooks.push(hook);
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// The index of the repository's hook `hook_id`, if it has one.
fn hook_at(fake: &Fake, repository: &str, hook_id: &str) -> Option<usize> {
    let id: u64 = hook_id.parse().ok()?;
    fake.hooks
        .iter()
        .position(|hook| hook.id == id && hook.repository == repository)
}

async fn get_hook(
    State(state): Shared,
    Path((owner, repo, hook_id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut fake = state.lock().unwrap();
    let repository = format!("{owner}/{repo}");
    let path = format!("/repos/{repository}/hooks/{hook_id}");
    if let Some(refused) = admit(&mut fake, "GET", path, &headers, &repository) {
        return refused;
    }
    match hook_at(&fake, &repository, &hook_id) {
        Some(at) => Json(hook_json(&fake.url, &fake.hooks[at])).into_response(),
        None => not_found(),
    }
}

async fn update_hook(
    State(state): Shared,
    Path((owner, repo, hook_id)): Path<(String, String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let Some(body) = body.as_object() else {
        return github_error(400, "Problems parsing JSON");
    };
    let mut fake = state.lock().unwrap();
    let repository = format!("{owner}/{repo}");
    let path = format!("/repos/{repository}/hooks/{hook_id}");
    if let Some(refused) = admit(&mut fake, "PATCH", path, &headers, &repository) {
        return refused;
    }
    let Some(at) = hook_at(&fake, &repository, &hook_id) else {
        return not_found();
    };
    let mut hook = fake.hooks[at].clone();
    if let Err(message) = apply(&mut hook, body) {
        return validation_failed(message);
    }
    if duplicate(&fake, &hook) {
        return validation_failed("Hook already exists on this repository");
    }
    let answer = hook_json(&fake.url, &hook);
    fake.hooks[at] = hook;
    Json(answer).into_response()
}

async fn delete_hook(
    State(state): Shared,
    Path((owner, repo, hook_id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut fake = state.lock().unwrap();
    let repository = format!("{owner}/{repo}");
    let path = format!("/repos/{repository}/hooks/{hook_id}");
    if let Some(refused) = admit(&mut fake, "DELETE", path, &headers, &repository) {
        return refused;
    }
    match hook_at(&fake, &repository, &hook_id) {
        Some(at) => {
            fake.hooks.remove(at);
            StatusCode::NO_CONTENT.into_response()
        }
        None => not_found(),
    }
}
