//! The OpenAPI document and the page that renders it, fetched over the socket: that it describes
//! every path of the seed API the engine serves, with the seed's operation titles, the OAuth2
//! password scheme, the statuses each operation answers, and schemas that match real answers.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use trigger_engine::identity::Role;

use crate::helpers::{eventually, spawn_app, spawn_app_with, Session, TestApp, TestDb};

crate::on_every_store!(
    it_should_serve_an_openapi_3_1_document_of_every_route,
    it_should_require_the_oauth2_password_scheme_on_the_trigger_endpoints,
    it_should_list_every_status_each_operation_answers,
    it_should_describe_what_the_engine_really_answers,
    it_should_describe_the_refusals_of_the_rate_limits_and_of_readiness,
    it_should_render_the_document_for_people_from_the_binary_alone,
    it_should_declare_what_validation_accepts,
);

/// The webhook handler's path.
const WEBHOOKS: &str = "/v1/webhooks/{webhook_id}";

/// The scheme's name, as the document defines it.
const SCHEME: &str = "OAuth2PasswordBearer";

/// Every operation the engine serves: method, path, operation id, summary (the seed's title where
/// the seed has the endpoint), and whether it needs a token. The connection endpoints are beyond
/// the seed, which names `connection_id` but not the resource.
const OPERATIONS: &[(&str, &str, &str, &str, bool)] = &[
    (
        "post",
        "/token",
        "issue_access_token",
        "Issue Access Token",
        false,
    ),
    (
        "get",
        "/projects/{project_id}/triggers",
        "get_triggers",
        "Get Triggers",
        true,
    ),
    (
        "post",
        "/projects/{project_id}/triggers",
        "create_trigger",
        "Create Trigger",
        true,
    ),
    (
        "get",
        "/triggers",
        "get_triggers_by_user_org",
        "Get Triggers By User Org",
        true,
    ),
    (
        "get",
        "/triggers/{project_trigger_id}",
        "get_trigger",
        "Get Trigger",
        true,
    ),
    (
        "delete",
        "/triggers/{project_trigger_id}",
        "delete_trigger",
        "Delete Trigger",
        true,
    ),
    (
        "post",
        "/triggers/{project_trigger_id}/enable",
        "enable_trigger",
        "Enable Trigger",
        true,
    ),
    (
        "post",
        "/triggers/{project_trigger_id}/disable",
        "disable_trigger",
        "Disable Trigger",
        true,
    ),
    (
        "post",
        "/triggers/{project_trigger_id}/pause",
        "pause_trigger",
        "Pause Trigger",
        true,
    ),
    (
        "post",
        "/triggers/{project_trigger_id}/resume",
        "resume_trigger",
        "Resume Trigger",
        true,
    ),
    (
        "get",
        "/providers/{provider_id}/triggers",
        "get_available_triggers_by_provider",
        "Get Available Triggers By Provider",
        false,
    ),
    (
        "get",
        "/providers/{provider_id}/triggers/{trigger_id}",
        "get_specific_trigger_from_provider",
        "Get Specific Trigger From Provider",
        false,
    ),
    (
        "get",
        "/connections",
        "get_connections",
        "Get Connections",
        true,
    ),
    (
        "post",
        "/connections",
        "create_connection",
        "Create Connection",
        true,
    ),
    (
        "delete",
        "/connections/{connection_id}",
        "delete_connection",
        "Delete Connection",
        true,
    ),
    (
        "post",
        "/v1/webhooks/{webhook_id}",
        "handle_webhook",
        "Webhook Handler",
        false,
    ),
    (
        "get",
        "/api/v0/project-triggers/{project_trigger_id}/test-samples",
        "get_trigger_test_samples",
        "Get Trigger Test Samples",
        true,
    ),
    (
        "get",
        "/triggers/{project_trigger_id}/runs",
        "get_trigger_runs",
        "Get Trigger Runs",
        true,
    ),
    (
        "post",
        "/runs/{run_id}/retry",
        "retry_run",
        "Retry Run",
        true,
    ),
    (
        "get",
        "/triggers/{project_trigger_id}/history",
        "get_trigger_history",
        "Get Trigger History",
        true,
    ),
    (
        "get",
        "/runs/{run_id}/history",
        "get_run_history",
        "Get Run History",
        true,
    ),
    ("get", "/events", "get_events", "Get Events", true),
    (
        "post",
        "/organizations/{org_id}/triggers/{project_trigger_id}/webhook/key/{api_key}",
        "webhook_trigger",
        "Webhook Trigger",
        false,
    ),
    (
        "get",
        "/triggers/{project_trigger_id}/schedule",
        "get_trigger_schedule",
        "Get Trigger Schedule",
        true,
    ),
    (
        "post",
        "/triggers/{project_trigger_id}/schedule/backfill",
        "backfill_trigger_schedule",
        "Backfill Trigger Schedule",
        true,
    ),
    (
        "post",
        "/organizations/{org_id}/triggers/{project_trigger_id}/scheduled/key/{api_key}",
        "scheduled_trigger",
        "Scheduled Trigger",
        false,
    ),
    (
        "post",
        "/organizations/{org_id}/triggers/{project_trigger_id}/polling/key/{api_key}",
        "polling_trigger",
        "Polling Trigger",
        false,
    ),
    (
        "get",
        "/triggers/{project_trigger_id}/explain",
        "explain_trigger",
        "Explain Trigger",
        true,
    ),
    ("post", "/runs/replay", "replay_runs", "Replay Runs", true),
    ("get", "/replays", "list_replays", "List Replays", true),
    (
        "get",
        "/replays/{replay_id}",
        "get_replay",
        "Get Replay",
        true,
    ),
    (
        "post",
        "/replays/{replay_id}/cancel",
        "cancel_replay",
        "Cancel Replay",
        true,
    ),
    ("get", "/healthz", "health", "Health", false),
    ("get", "/readyz", "readiness", "Readiness", false),
    ("get", "/metrics", "metrics", "Metrics", false),
    ("get", "/log/head", "get_log_head", "Get Log Head", true),
    ("get", "/log/verify", "verify_log", "Verify Log", true),
    (
        "get",
        "/executor/status",
        "get_executor_status",
        "Get Executor Status",
        true,
    ),
];

const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn document(app: &TestApp) -> Value {
    let response = app
        .http
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{:?}",
        response.headers()["content-type"]
    );
    response.json().await.unwrap()
}

fn operation<'a>(document: &'a Value, method: &str, path: &str) -> &'a Value {
    let operation = &document["paths"][path][method];
    assert!(operation.is_object(), "{method} {path} is not documented");
    operation
}

/// Follows a local `$ref` (`#/components/...`), failing the test when it points nowhere.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("{reference} is not local"));
            let target = document
                .pointer(pointer)
                .unwrap_or_else(|| panic!("{reference} points nowhere"));
            resolve(document, target)
        }
        None => value,
    }
}

fn schema<'a>(document: &'a Value, name: &str) -> &'a Value {
    let schema = &document["components"]["schemas"][name];
    assert!(schema.is_object(), "no schema {name}");
    schema
}

fn property_names(schema: &Value) -> BTreeSet<String> {
    schema["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no properties in {schema}"))
        .keys()
        .cloned()
        .collect()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

/// Every `$ref` anywhere in `value`.
fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                found.push(reference.clone());
            }
            map.values().for_each(|v| references(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, found)),
        _ => {}
    }
}

async fn it_should_serve_an_openapi_3_1_document_of_every_route(db: TestDb) {
    let app = spawn_app(&db).await;
    let document = document(&app).await;
    let version = document["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "openapi is {version}");
    assert!(document["info"]["title"].is_string() && document["info"]["version"].is_string());

    // Exactly the served operations: none missing, none invented.
    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|key| HTTP_METHODS.contains(&key.as_str()))
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    let served: BTreeSet<(String, String)> = OPERATIONS
        .iter()
        .map(|(method, path, ..)| (method.to_string(), path.to_string()))
        .collect();
    assert_eq!(documented, served);

    let mut ids = BTreeSet::new();
    for (method, path, id, summary, _) in OPERATIONS {
        let operation = operation(&document, method, path);
        assert_eq!(operation["operationId"], *id, "{method} {path}");
        assert_eq!(operation["summary"], *summary, "{method} {path}");
        assert!(ids.insert(*id), "operation id {id} is used twice");
        // Every `{name}` of the path is a required path parameter.
        let declared: BTreeSet<&str> = operation["parameters"]
            .as_array()
            .map(|parameters| {
                parameters
                    .iter()
                    .filter(|p| p["in"] == "path" && p["required"] == true)
                    .map(|p| p["name"].as_str().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        let in_path: BTreeSet<&str> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        assert_eq!(declared, in_path, "{method} {path}");
    }

    // Every reference resolves.
    let mut found = Vec::new();
    references(&document, &mut found);
    assert!(!found.is_empty());
    for reference in &found {
        resolve(&document, &json!({ "$ref": reference }));
    }

    // Each path really is served with the documented method: nothing answers "no such route".
    let session = app.sign_up().await;
    for (method, path, ..) in OPERATIONS {
        let concrete = path
            .replace("{project_id}", "p1")
            .replace("{project_trigger_id}", &uuid::Uuid::new_v4().to_string())
            .replace("{provider_id}", "rss")
            .replace("{trigger_id}", "on_new_item")
            .replace("{run_id}", &uuid::Uuid::new_v4().to_string())
            .replace("{webhook_id}", &uuid::Uuid::new_v4().to_string())
            .replace("{org_id}", &uuid::Uuid::new_v4().to_string())
            .replace("{api_key}", "te_not-a-key")
            .replace("{connection_id}", &uuid::Uuid::new_v4().to_string());
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let response = app
            .request(method.clone(), &concrete, &session)
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {concrete}"
        );
        if status == StatusCode::NOT_FOUND {
            let problem: Value = response.json().await.unwrap();
            assert_ne!(problem["detail"], "route not found", "{method} {concrete}");
        }
    }
    app.shutdown().await;
}

async fn it_should_require_the_oauth2_password_scheme_on_the_trigger_endpoints(db: TestDb) {
    let app = spawn_app(&db).await;
    let document = document(&app).await;
    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .unwrap();
    let scheme = &schemes[SCHEME];
    assert_eq!(scheme["type"], "oauth2");
    assert_eq!(scheme["flows"]["password"]["tokenUrl"], "/token");
    assert!(scheme["flows"]["password"]["scopes"].is_object());

    for (method, path, _, _, needs_token) in OPERATIONS {
        let operation = operation(&document, method, path);
        let requirements = operation["security"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for requirement in &requirements {
            for name in requirement.as_object().unwrap().keys() {
                assert!(
                    schemes.contains_key(name),
                    "{method} {path} requires {name}"
                );
            }
        }
        if *needs_token {
            assert_eq!(requirements, [json!({ SCHEME: [] })], "{method} {path}");
        } else {
            assert!(requirements.is_empty(), "{method} {path} needs no token");
        }
    }
    // The token endpoint the scheme names takes the form the password flow posts.
    let token = operation(&document, "post", "/token");
    let form = &token["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"];
    let form = resolve(&document, form);
    let mut required: Vec<&str> = form["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    required.sort();
    assert_eq!(required, ["grant_type", "password", "username"]);
    app.shutdown().await;
}

async fn it_should_list_every_status_each_operation_answers(db: TestDb) {
    let app = spawn_app(&db).await;
    let document = document(&app).await;
    let expected: &[(&str, &str, &[&str])] = &[
        (
            "post",
            "/token",
            &["200", "400", "413", "415", "429", "500", "503"],
        ),
        (
            "get",
            "/projects/{project_id}/triggers",
            &["200", "401", "422", "429", "500", "503"],
        ),
        (
            "post",
            "/projects/{project_id}/triggers",
            &[
                "201", "401", "403", "409", "413", "415", "422", "429", "500", "503",
            ],
        ),
        ("get", "/triggers", &["200", "401", "429", "500", "503"]),
        (
            "get",
            "/triggers/{project_trigger_id}",
            &["200", "401", "404", "422", "429", "500", "503"],
        ),
        (
            "delete",
            "/triggers/{project_trigger_id}",
            &[
                "204", "401", "403", "404", "409", "422", "429", "500", "502", "503",
            ],
        ),
        (
            "post",
            "/triggers/{project_trigger_id}/enable",
            &[
                "204", "401", "403", "404", "409", "422", "429", "500", "502", "503",
            ],
        ),
        (
            "post",
            "/triggers/{project_trigger_id}/pause",
            &[
                "204", "401", "403", "404", "409", "422", "429", "500", "503",
            ],
        ),
        (
            "post",
            "/triggers/{project_trigger_id}/resume",
            &[
                "204", "401", "403", "404", "409", "422", "429", "500", "503",
            ],
        ),
        (
            "post",
            "/triggers/{project_trigger_id}/disable",
            &[
                "204", "401", "403", "404", "409", "422", "429", "500", "502", "503",
            ],
        ),
        (
            "get",
            "/providers/{provider_id}/triggers",
            &["200", "404", "422"],
        ),
        (
            "get",
            "/providers/{provider_id}/triggers/{trigger_id}",
            &["200", "404", "422"],
        ),
        ("get", "/connections", &["200", "401", "429", "500", "503"]),
        (
            "post",
            "/connections",
            &[
                "201", "401", "403", "413", "415", "422", "429", "500", "503",
            ],
        ),
        (
            "delete",
            "/connections/{connection_id}",
            &[
                "204", "401", "403", "404", "409", "422", "429", "500", "503",
            ],
        ),
        (
            "post",
            "/v1/webhooks/{webhook_id}",
            &[
                "200", "204", "401", "404", "410", "413", "422", "429", "500", "503",
            ],
        ),
        (
            "get",
            "/api/v0/project-triggers/{project_trigger_id}/test-samples",
            &["200", "401", "404", "422", "429", "500", "503"],
        ),
        (
            "get",
            "/triggers/{project_trigger_id}/runs",
            &["200", "401", "404", "422", "429", "500", "503"],
        ),
        (
            "get",
            "/triggers/{project_trigger_id}/history",
            &["200", "401", "404", "422", "429", "500", "503"],
        ),
        (
            "get",
            "/runs/{run_id}/history",
            &["200", "401", "404", "422", "429", "500", "503"],
        ),
        (
            "get",
            "/events",
            &["200", "401", "422", "429", "500", "503"],
        ),
        (
            "post",
            "/runs/{run_id}/retry",
            &[
                "202", "401", "403", "404", "409", "422", "429", "500", "503",
            ],
        ),
        (
            "post",
            "/organizations/{org_id}/triggers/{project_trigger_id}/webhook/key/{api_key}",
            &[
                "204", "401", "404", "410", "413", "422", "429", "500", "503",
            ],
        ),
        (
            "get",
            "/triggers/{project_trigger_id}/schedule",
            &["200", "401", "404", "422", "429", "500", "503"],
        ),
        (
            "post",
            "/triggers/{project_trigger_id}/schedule/backfill",
            &[
                "200", "401", "403", "404", "409", "413", "415", "422", "429", "500", "503",
            ],
        ),
        (
            "post",
            "/organizations/{org_id}/triggers/{project_trigger_id}/scheduled/key/{api_key}",
            &["204", "401", "404", "410", "422", "429", "500", "503"],
        ),
        (
            "post",
            "/organizations/{org_id}/triggers/{project_trigger_id}/polling/key/{api_key}",
            &["204", "401", "404", "410", "422", "429", "500", "503"],
        ),
        (
            "get",
            "/triggers/{project_trigger_id}/explain",
            &["200", "401", "404", "422", "429", "500", "503"],
        ),
        (
            "post",
            "/runs/replay",
            &[
                "200", "202", "401", "403", "413", "415", "422", "429", "500", "503",
            ],
        ),
        (
            "get",
            "/replays",
            &["200", "401", "422", "429", "500", "503"],
        ),
        (
            "get",
            "/replays/{replay_id}",
            &["200", "401", "404", "422", "429", "500", "503"],
        ),
        (
            "post",
            "/replays/{replay_id}/cancel",
            &[
                "200", "401", "403", "404", "409", "422", "429", "500", "503",
            ],
        ),
        ("get", "/healthz", &["200", "503"]),
        ("get", "/readyz", &["200", "503"]),
        ("get", "/metrics", &["200", "500"]),
        ("get", "/log/head", &["200", "401", "429", "500", "503"]),
        (
            "get",
            "/log/verify",
            &["200", "401", "403", "422", "429", "500", "503"],
        ),
        ("get", "/executor/status", &["200", "401", "403", "429"]),
    ];
    assert_eq!(expected.len(), OPERATIONS.len());
    for (method, path, statuses) in expected {
        let responses = operation(&document, method, path)["responses"]
            .as_object()
            .unwrap();
        let documented: Vec<&str> = responses.keys().map(String::as_str).collect();
        assert_eq!(&documented, statuses, "{method} {path}");
        for (status, response) in responses {
            let response = resolve(&document, response);
            assert!(
                response["description"].is_string(),
                "{method} {path} {status}"
            );
            // Every error is a problem document; the 503 of /healthz is its own body.
            let is_error = status.as_str() >= "400" && *path != "/healthz";
            if is_error {
                let problem = &response["content"]["application/problem+json"]["schema"];
                assert_eq!(
                    resolve(&document, problem),
                    schema(&document, "Problem"),
                    "{method} {path} {status}"
                );
            }
            // Only a readiness probe and the catalogue need no store; whatever does answers 503
            // while it is away, saying when to come back.
            if status == "503" && *path != "/healthz" {
                let retry_after = &response["headers"]["Retry-After"];
                assert_eq!(
                    retry_after["schema"]["type"], "integer",
                    "{method} {path}: {response}"
                );
            }
            if status == "429" {
                let retry_after = &response["headers"]["Retry-After"];
                assert_eq!(
                    retry_after["schema"]["type"], "integer",
                    "{method} {path}: {response}"
                );
            }
            // A webhook sender proves itself by its signature, not a bearer token: no challenge.
            if status == "401" && *path != WEBHOOKS && !path.contains("/key/") {
                let challenge = &response["headers"]["WWW-Authenticate"];
                assert!(
                    challenge["description"]
                        .as_str()
                        .unwrap()
                        .contains("Bearer"),
                    "{method} {path}: {response}"
                );
            }
        }
    }
    // The rate limits: per organisation on every operation that takes a token, per client address
    // and username on the token endpoint, per trigger on webhooks; nothing else is limited.
    for (method, path, _, _, needs_token) in OPERATIONS {
        let limited = *needs_token
            || *path == "/token"
            || *path == WEBHOOKS
            || path.ends_with("/webhook/key/{api_key}")
            || path.ends_with("/scheduled/key/{api_key}")
            || path.ends_with("/polling/key/{api_key}");
        let responses = &operation(&document, method, path)["responses"];
        assert_eq!(
            responses.get("429").is_some(),
            limited,
            "{method} {path}: 429"
        );
    }
    let legacy = operation(
        &document,
        "post",
        "/organizations/{org_id}/triggers/{project_trigger_id}/webhook/key/{api_key}",
    );
    assert_eq!(
        legacy["deprecated"], true,
        "the key URL is marked deprecated"
    );
    let scheduled = operation(
        &document,
        "post",
        "/organizations/{org_id}/triggers/{project_trigger_id}/scheduled/key/{api_key}",
    );
    assert_eq!(scheduled["deprecated"], true);
    let polling = operation(
        &document,
        "post",
        "/organizations/{org_id}/triggers/{project_trigger_id}/polling/key/{api_key}",
    );
    assert_eq!(polling["deprecated"], true);
    for path in ["/projects/{project_id}/triggers", "/connections"] {
        let created = &operation(&document, "post", path)["responses"]["201"];
        assert!(created["headers"]["Location"].is_object(), "{path}");
    }
    app.shutdown().await;
}

/// Checks a real response against what the document says `method path` answers: the status is
/// documented, the body has the documented media type and validates against the documented
/// schema (OpenAPI 3.1 schemas are JSON Schema 2020-12), and the documented headers are there.
/// Returns the body.
async fn assert_documented(
    document: &Value,
    method: &str,
    path: &str,
    response: reqwest::Response,
) -> Value {
    let status = response.status().as_u16().to_string();
    let what = format!("{method} {path} answering {status}");
    let documented = operation(document, method, path)["responses"]
        .get(&status)
        .unwrap_or_else(|| panic!("{what}: the status is not documented"));
    let documented = resolve(document, documented);
    for header in documented["headers"]
        .as_object()
        .into_iter()
        .flat_map(|h| h.keys())
    {
        assert!(
            response.headers().contains_key(header.as_str()),
            "{what}: no {header}"
        );
    }
    let media_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned());
    let body = response.bytes().await.unwrap();
    let Some(content) = documented.get("content") else {
        assert!(body.is_empty(), "{what}: a body where none is documented");
        return Value::Null;
    };
    let media_type = media_type.unwrap_or_else(|| panic!("{what}: no content-type"));
    let schema = content
        .as_object()
        .unwrap()
        .iter()
        .find(|(documented, _)| same_media_type(documented, &media_type))
        .unwrap_or_else(|| panic!("{what}: {media_type} is not documented"))
        .1["schema"]
        .clone();
    let is_json = {
        let essence = media_type.split(';').next().unwrap().trim();
        essence == "application/json" || essence.ends_with("+json")
    };
    let body: Value = if is_json {
        serde_json::from_slice(&body).unwrap()
    } else {
        Value::String(String::from_utf8(body.to_vec()).unwrap())
    };
    // Every member of an object body is described, not just allowed by an open schema: a client
    // reads only what the document names.
    if let (Some(members), Some(described)) = (
        body.as_object(),
        resolve(document, &schema)["properties"].as_object(),
    ) {
        for member in members.keys() {
            assert!(
                described.contains_key(member),
                "{what}: `{member}` is not described in {schema}"
            );
        }
    }
    // The schema's `$ref`s point into the document's components: give them the same root.
    let mut root = schema;
    root["components"] = document["components"].clone();
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|error| panic!("{what}: the schema does not compile: {error}"));
    let errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:?} in {body}");
    body
}

/// Whether a response's `content-type` is the media type a document's content key names. A key
/// with parameters (`application/openmetrics-text; version=1.0.0; charset=utf-8`) names them all;
/// one without names the type whatever its parameters.
fn same_media_type(documented: &str, sent: &str) -> bool {
    let parts = |value: &str| -> Vec<String> {
        value
            .split(';')
            .map(|part| part.trim().to_ascii_lowercase().replace(' ', ""))
            .collect()
    };
    let (documented, sent) = (parts(documented), parts(sent));
    if documented.len() == 1 {
        documented[0] == sent[0]
    } else {
        documented == sent
    }
}

async fn it_should_describe_what_the_engine_really_answers(db: TestDb) {
    let app = spawn_app(&db).await;
    let document = document(&app).await;

    // The Trigger schema has exactly the seed's fields and `paused` (issue 13's extension), every
    // one always present.
    let trigger = schema(&document, "Trigger");
    let seed_fields: BTreeSet<String> = [
        "project_trigger_id",
        "project_id",
        "connection_id",
        "provider_id",
        "trigger_id",
        "webhook_data",
        "cursor_data",
        "trigger_config",
        "status",
        "created_at",
        "updated_at",
        "created_by",
        "updated_by",
        "paused",
    ]
    .map(String::from)
    .into();
    assert_eq!(property_names(trigger), seed_fields);
    let required: BTreeSet<String> = trigger["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(required, seed_fields);
    let status = resolve(&document, &trigger["properties"]["status"]);
    assert_eq!(status["enum"], json!(["ENABLED", "DISABLED"]));
    assert_eq!(status["default"], "DISABLED");
    let create = schema(&document, "CreateTrigger");
    assert_eq!(create["required"], json!(["provider_id", "trigger_id"]));
    assert_eq!(create["additionalProperties"], false);
    let problem = schema(&document, "Problem");
    assert_eq!(
        problem["required"],
        json!(["type", "title", "status", "detail"])
    );
    // Every member an error can carry: `field` (422), `error` and `error_description` (the token
    // endpoint), `role` (403), `check` (503 from /readyz).
    let members: BTreeSet<String> = [
        "type",
        "title",
        "status",
        "detail",
        "field",
        "error",
        "error_description",
        "role",
        "check",
    ]
    .map(String::from)
    .into();
    assert_eq!(property_names(problem), members);

    let url = |path: &str| format!("{}{path}", app.address);
    let http = &app.http;

    // An auditor's write: refused as documented, naming the role.
    let auditor = app.sign_up_as(Role::Auditor).await;
    let forbidden = app
        .request(
            Method::DELETE,
            &format!("/connections/{}", uuid::Uuid::new_v4()),
            &auditor,
        )
        .send()
        .await
        .unwrap();
    let forbidden = assert_documented(
        &document,
        "delete",
        "/connections/{connection_id}",
        forbidden,
    )
    .await;
    assert_eq!(forbidden["type"], "/problems/forbidden");
    assert_eq!(forbidden["role"], "auditor");

    let token_path = "/token";
    let token = http
        .post(url(token_path))
        .form(&[
            ("grant_type", "password"),
            ("username", crate::helpers::ADMIN_EMAIL),
            ("password", crate::helpers::ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_documented(&document, "post", token_path, token).await;
    let refused = http
        .post(url(token_path))
        .form(&[
            ("grant_type", "password"),
            ("username", "nobody@example.com"),
            ("password", "x"),
        ])
        .send()
        .await
        .unwrap();
    let refused = assert_documented(&document, "post", token_path, refused).await;
    assert_eq!(refused["error"], "invalid_grant");
    let not_a_form = http
        .post(url(token_path))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_documented(&document, "post", token_path, not_a_form).await;

    let session = app.sign_up().await;
    let project = "/projects/{project_id}/triggers";
    let rss = json!({
        "provider_id": "rss",
        "trigger_id": "on_new_item",
        "trigger_config": {"feed_url": "https://example.com/feed.xml"}
    });
    let created = app
        .request(Method::POST, "/projects/p1/triggers", &session)
        .json(&rss)
        .send()
        .await
        .unwrap();
    let created = assert_documented(&document, "post", project, created).await;
    assert_eq!(keys(&created), seed_fields);
    let id = created["project_trigger_id"].as_str().unwrap().to_owned();
    let invalid = app
        .request(Method::POST, "/projects/p1/triggers", &session)
        .json(&json!({"provider_id": "nope", "trigger_id": "on_new_item"}))
        .send()
        .await
        .unwrap();
    let invalid = assert_documented(&document, "post", project, invalid).await;
    assert_eq!(invalid["field"], "provider_id");
    let anonymous = http
        .post(url("/projects/p1/triggers"))
        .json(&rss)
        .send()
        .await
        .unwrap();
    assert_documented(&document, "post", project, anonymous).await;
    let not_json = app
        .request(Method::POST, "/projects/p1/triggers", &session)
        .body(rss.to_string())
        .send()
        .await
        .unwrap();
    assert_documented(&document, "post", project, not_json).await;
    let too_large = app
        .request(Method::POST, "/projects/p1/triggers", &session)
        .header("content-type", "application/json")
        // Just over the 1 MiB limit: the engine answers without reading the rest, and a rest
        // larger than the socket's buffers would make the client's send fail before the answer.
        .body(vec![b' '; 1024 * 1024 + 1024])
        .send()
        .await
        .unwrap();
    assert_documented(&document, "post", project, too_large).await;
    let listed = app
        .request(Method::GET, "/projects/p1/triggers", &session)
        .send()
        .await
        .unwrap();
    assert_documented(&document, "get", project, listed).await;
    let all = app
        .request(Method::GET, "/triggers", &session)
        .send()
        .await
        .unwrap();
    assert_documented(&document, "get", "/triggers", all).await;

    let one = "/triggers/{project_trigger_id}";
    let here = format!("/triggers/{id}");
    for (verb, then) in [("enable", "ENABLED"), ("disable", "DISABLED")] {
        let changed = app
            .request(Method::POST, &format!("{here}/{verb}"), &session)
            .send()
            .await
            .unwrap();
        let template = format!("{one}/{verb}");
        assert_documented(&document, "post", &template, changed).await;
        let fetched = app
            .request(Method::GET, &here, &session)
            .send()
            .await
            .unwrap();
        assert_eq!(
            assert_documented(&document, "get", one, fetched).await["status"],
            then
        );
    }
    let bad_id = app
        .request(Method::GET, "/triggers/not-a-uuid", &session)
        .send()
        .await
        .unwrap();
    assert_documented(&document, "get", one, bad_id).await;
    let deleted = app
        .request(Method::DELETE, &here, &session)
        .send()
        .await
        .unwrap();
    assert_documented(&document, "delete", one, deleted).await;
    let gone = app
        .request(Method::DELETE, &here, &session)
        .send()
        .await
        .unwrap();
    assert_documented(&document, "delete", one, gone).await;
    let missing = app
        .request(Method::POST, &format!("{here}/enable"), &session)
        .send()
        .await
        .unwrap();
    assert_documented(
        &document,
        "post",
        "/triggers/{project_trigger_id}/enable",
        missing,
    )
    .await;

    // Connections: the credentials are write-only, so the schemas say so and answers lack them.
    let create_connection = schema(&document, "CreateConnection");
    assert_eq!(
        create_connection["required"],
        json!(["provider_id", "name", "credentials"])
    );
    assert_eq!(
        create_connection["properties"]["credentials"]["writeOnly"],
        true
    );
    let connection_fields: BTreeSet<String> = [
        "connection_id",
        "org_id",
        "provider_id",
        "name",
        "created_at",
        "created_by",
    ]
    .map(String::from)
    .into();
    assert_eq!(
        property_names(schema(&document, "Connection")),
        connection_fields
    );
    let connections = "/connections";
    let connection = json!({
        "provider_id": "typeform",
        "name": "Forms",
        "credentials": {"access_token": "tfp_documented"}
    });
    let created = app
        .request(Method::POST, connections, &session)
        .json(&connection)
        .send()
        .await
        .unwrap();
    let created = assert_documented(&document, "post", connections, created).await;
    assert_eq!(keys(&created), connection_fields);
    let invalid = app
        .request(Method::POST, connections, &session)
        .json(&json!({"provider_id": "typeform", "name": "Forms", "credentials": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        assert_documented(&document, "post", connections, invalid).await["field"],
        "credentials"
    );
    let listed = app
        .request(Method::GET, connections, &session)
        .send()
        .await
        .unwrap();
    assert_documented(&document, "get", connections, listed).await;
    let one_connection = "/connections/{connection_id}";
    let here = format!(
        "/connections/{}",
        created["connection_id"].as_str().unwrap()
    );
    let deleted = app
        .request(Method::DELETE, &here, &session)
        .send()
        .await
        .unwrap();
    assert_documented(&document, "delete", one_connection, deleted).await;
    let gone = app
        .request(Method::DELETE, &here, &session)
        .send()
        .await
        .unwrap();
    assert_documented(&document, "delete", one_connection, gone).await;

    // The whole catalogue, and what is not in it.
    let providers = "/providers/{provider_id}/triggers";
    let definition = "/providers/{provider_id}/triggers/{trigger_id}";
    for provider in trigger_engine::catalogue::Catalogue::builtin().providers() {
        let listed = http
            .get(url(&format!("/providers/{provider}/triggers")))
            .send()
            .await
            .unwrap();
        let listed = assert_documented(&document, "get", providers, listed).await;
        for listed in listed.as_array().unwrap() {
            let path = format!(
                "/providers/{provider}/triggers/{}",
                listed["trigger_id"].as_str().unwrap()
            );
            let fetched = http.get(url(&path)).send().await.unwrap();
            assert_documented(&document, "get", definition, fetched).await;
        }
    }
    let unknown = http
        .get(url("/providers/nope/triggers"))
        .send()
        .await
        .unwrap();
    assert_documented(&document, "get", providers, unknown).await;
    let unknown = http
        .get(url("/providers/rss/triggers/nope"))
        .send()
        .await
        .unwrap();
    assert_documented(&document, "get", definition, unknown).await;

    let health = http.get(url("/healthz")).send().await.unwrap();
    assert_documented(&document, "get", "/healthz", health).await;
    let ready = http.get(url("/readyz")).send().await.unwrap();
    assert_eq!(
        assert_documented(&document, "get", "/readyz", ready).await["status"],
        "ready"
    );
    let metrics = http.get(url("/metrics")).send().await.unwrap();
    let metrics = assert_documented(&document, "get", "/metrics", metrics).await;
    assert!(metrics.as_str().unwrap().ends_with("# EOF\n"), "{metrics}");
    app.shutdown().await;
}

/// The answers the default limits make rare: a 429 from each rate limit and a 503 from
/// `/readyz`, validated against the document like every other answer.
async fn it_should_describe_the_refusals_of_the_rate_limits_and_of_readiness(db: TestDb) {
    let one = std::num::NonZeroU32::new(1).unwrap();
    let app = spawn_app_with(&db, |config| {
        config.token_burst = one;
        config.token_rate_per_minute = one;
        config.api_burst = one;
        config.api_rate_per_second = one;
        config.ready_max_lag = 0;
    })
    .await;
    let document = document(&app).await;
    let url = |path: &str| format!("{}{path}", app.address);
    let http = &app.http;

    // A user's one token attempt passes, the next is refused.
    let org_id = app.identity.create_org("limited").await.unwrap();
    let email = "limited@example.com";
    let user_id = app
        .identity
        .create_user(org_id, email, "a password", Role::Member)
        .await
        .unwrap();
    let grant = || {
        http.post(url("/token")).form(&[
            ("grant_type", "password"),
            ("username", email),
            ("password", "a password"),
        ])
    };
    let granted = grant().send().await.unwrap();
    let granted = assert_documented(&document, "post", "/token", granted).await;
    let session = Session {
        org_id,
        user_id,
        token: granted["access_token"].as_str().unwrap().to_owned(),
    };
    let again = grant().send().await.unwrap();
    assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);
    let refused = assert_documented(&document, "post", "/token", again).await;
    assert_eq!(refused["type"], "/problems/too-many-requests");

    // The organisation's burst of one passes; requests faster than one a second then meet the
    // limit.
    let refused = loop {
        let response = app
            .request(Method::GET, "/triggers", &session)
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            break response;
        }
        assert_documented(&document, "get", "/triggers", response).await;
    };
    let refused = assert_documented(&document, "get", "/triggers", refused).await;
    assert_eq!(refused["status"], 429);

    let readyz = url("/readyz");
    eventually(10, "readyz to answer 200", || {
        let readyz = readyz.clone();
        async move { http.get(&readyz).send().await.unwrap().status() == StatusCode::OK }
    })
    .await;
    let ready = http.get(&readyz).send().await.unwrap();
    assert_documented(&document, "get", "/readyz", ready).await;
    let stalled = app.stall_projection().await;
    let unready = http.get(&readyz).send().await.unwrap();
    assert_eq!(unready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let problem = assert_documented(&document, "get", "/readyz", unready).await;
    assert_eq!(problem["check"], "projection_lag");
    app.unstall_projection(stalled).await;
    app.shutdown().await;
}

async fn it_should_render_the_document_for_people_from_the_binary_alone(db: TestDb) {
    let app = spawn_app(&db).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let docs = no_redirects
        .get(format!("{}/docs", app.address))
        .send()
        .await
        .unwrap();
    assert!(docs.status().is_redirection(), "{}", docs.status());
    assert_eq!(docs.headers()["location"], "/docs/");

    // Followed, as a browser does: a page of HTML.
    let page = app
        .http
        .get(format!("{}/docs", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.url().path(), "/docs/");
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.to_lowercase().contains("<html"), "{html}");

    // Everything the page loads comes from the engine itself, and is there.
    let assets: Vec<&str> = html
        .split(['"', '\''])
        .filter(|s| s.ends_with(".js") || s.ends_with(".css"))
        .collect();
    assert!(!assets.is_empty(), "{html}");
    for asset in assets {
        assert!(
            !asset.contains("//"),
            "the page loads {asset} from elsewhere"
        );
        let response = app
            .http
            .get(format!(
                "{}/docs/{}",
                app.address,
                asset.trim_start_matches("./")
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
    }
    let initializer = app
        .http
        .get(format!("{}/docs/swagger-initializer.js", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(initializer.contains("/openapi.json"), "{initializer}");
    // Nor does the page send the document to Swagger's online validator.
    assert!(
        initializer.contains(r#""validatorUrl": "none""#),
        "{initializer}"
    );
    app.shutdown().await;
}

/// A schema of the document, compiled as OpenAPI 3.1 reads it (JSON Schema 2020-12, formats
/// checked).
fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|error| panic!("{schema} does not compile: {error}"))
}

fn parameter<'a>(document: &'a Value, method: &str, path: &str, name: &str) -> &'a Value {
    let parameters = operation(document, method, path)["parameters"]
        .as_array()
        .unwrap();
    &parameters
        .iter()
        .find(|parameter| parameter["name"] == name)
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))["schema"]
}

/// A generated client builds only requests the document allows: each body and query value here
/// is checked against the document, sent, and must be accepted exactly when the document allows
/// it (and refused with a 422 otherwise).
async fn it_should_declare_what_validation_accepts(db: TestDb) {
    let app = spawn_app(&db).await;
    let document = document(&app).await;
    let session = app.sign_up().await;

    // One branch per catalogue trigger, holding exactly the schema that validation uses.
    let catalogue = trigger_engine::catalogue::Catalogue::builtin();
    let create_trigger = schema(&document, "CreateTrigger");
    let providers: Vec<&str> = catalogue.providers().collect();
    assert_eq!(
        create_trigger["properties"]["provider_id"]["enum"],
        json!(providers)
    );
    let branches = create_trigger["oneOf"].as_array().unwrap();
    assert_eq!(branches.len(), catalogue.definitions().count());
    for definition in catalogue.definitions() {
        let branch = branches
            .iter()
            .find(|branch| {
                branch["properties"]["provider_id"]["const"] == definition.provider_id
                    && branch["properties"]["trigger_id"]["const"] == definition.trigger_id
            })
            .unwrap_or_else(|| panic!("no branch for {}", definition.trigger_id));
        let config = &branch["properties"]["trigger_config"];
        let portable = definition.portable_config_schema();
        assert!(
            *config == portable || config["oneOf"][1] == portable,
            "{}/{}: {config}",
            definition.provider_id,
            definition.trigger_id
        );
        assert!(!portable.to_string().contains("iana-time-zone"));
    }

    let create_trigger = validator(create_trigger);
    let bodies = [
        json!({"provider_id": "webhook", "trigger_id": "on_request"}),
        json!({"provider_id": "webhook", "trigger_id": "on_request", "trigger_config": null}),
        json!({"provider_id": "schedule", "trigger_id": "on_schedule",
            "trigger_config": {"cron": "*/5 * * * *", "timezone": "Europe/Paris"}}),
        json!({"provider_id": "rss", "trigger_id": "on_new_item",
            "trigger_config": {"feed_url": "https://feeds.example.com/rss"}}),
        json!({"provider_id": "nope", "trigger_id": "on_request"}),
        json!({"provider_id": "stripe", "trigger_id": "on_request"}),
        json!({"provider_id": "schedule", "trigger_id": "on_schedule"}),
        json!({"provider_id": "schedule", "trigger_id": "on_schedule",
            "trigger_config": {"cron": "0 9 * * *", "timezone": "Mars/Olympus"}}),
        json!({"provider_id": "schedule", "trigger_id": "on_schedule",
            "trigger_config": {"interval_seconds": 60, "timezone": "UTC"}}),
        json!({"provider_id": "webhook", "trigger_id": "on_request",
            "trigger_config": {"unknown": 1}}),
        json!({"provider_id": "rss", "trigger_id": "on_new_item",
            "trigger_config": {"feed_url": "ftp://feeds.example.com/rss"}}),
    ];
    let mut created = std::collections::HashMap::new();
    for body in bodies {
        let allowed = create_trigger.is_valid(&body);
        let response = app
            .request(Method::POST, "/projects/p1/triggers", &session)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let expected = if allowed {
            StatusCode::CREATED
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        assert_eq!(
            status, expected,
            "{body}: the document allows it: {allowed}"
        );
        if allowed {
            let trigger: Value = response.json().await.unwrap();
            created.insert(
                body["provider_id"].as_str().unwrap().to_owned(),
                trigger["project_trigger_id"].as_str().unwrap().to_owned(),
            );
        }
    }

    let create_connection = schema(&document, "CreateConnection");
    assert_eq!(
        create_connection["properties"]["provider_id"]["enum"],
        json!(providers)
    );
    let create_connection = validator(create_connection);
    let bodies = [
        json!({"provider_id": "rss", "name": "mine", "credentials": {"token": "t"}}),
        json!({"provider_id": "typeform", "name": "Forms", "credentials": {"access_token": "tfp_x"}}),
        json!({"provider_id": "typeform", "name": "Forms", "credentials": {"token": "tfp_x"}}),
        json!({"provider_id": "typeform", "name": "Forms", "credentials": {"access_token": ""}}),
        json!({"provider_id": "rss", "name": " \t ", "credentials": {"token": "t"}}),
        json!({"provider_id": "rss", "name": "mine", "credentials": {}}),
        json!({"provider_id": "nope", "name": "mine", "credentials": {"token": "t"}}),
    ];
    for body in bodies {
        let allowed = create_connection.is_valid(&body);
        let status = app
            .request(Method::POST, "/connections", &session)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status();
        let expected = if allowed {
            StatusCode::CREATED
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        assert_eq!(
            status, expected,
            "{body}: the document allows it: {allowed}"
        );
    }

    // Query parameters, at and just past their declared edges.
    let schedule = &created["schedule"];
    let count = validator(parameter(
        &document,
        "get",
        "/triggers/{project_trigger_id}/schedule",
        "count",
    ));
    for value in [0, 1, 100, 101] {
        let status = app
            .request(
                Method::GET,
                &format!("/triggers/{schedule}/schedule?count={value}"),
                &session,
            )
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(
            status.is_success(),
            count.is_valid(&json!(value)),
            "count={value}"
        );
    }
    let webhook = &created["webhook"];
    let runs = "/triggers/{project_trigger_id}/runs";
    let limit = validator(parameter(&document, "get", runs, "limit"));
    let cursor = validator(parameter(&document, "get", runs, "cursor"));
    let run_id = uuid::Uuid::new_v4();
    for (query, allowed) in [
        ("limit=0".to_owned(), limit.is_valid(&json!(0))),
        ("limit=1".to_owned(), limit.is_valid(&json!(1))),
        ("limit=200".to_owned(), limit.is_valid(&json!(200))),
        ("limit=201".to_owned(), limit.is_valid(&json!(201))),
        (format!("cursor=1700000000000.{run_id}"), true),
        (format!("cursor=-5.{run_id}"), true),
        (format!("cursor=99999999999999999.{run_id}"), false),
        ("cursor=abc".to_owned(), false),
        (format!("cursor={run_id}"), false),
    ] {
        if let Some(value) = query.strip_prefix("cursor=") {
            assert_eq!(cursor.is_valid(&json!(value)), allowed, "{query}");
        }
        let status = app
            .request(
                Method::GET,
                &format!("/triggers/{webhook}/runs?{query}"),
                &session,
            )
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.is_success(), allowed, "{query}: {status}");
        if !allowed {
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        }
    }

    // A cursor the endpoint hands out is one the document allows.
    let enabled = app
        .request(
            Method::POST,
            &format!("/triggers/{webhook}/enable"),
            &session,
        )
        .send()
        .await
        .unwrap();
    assert!(enabled.status().is_success());
    for n in 0..2 {
        let delivered = app
            .http
            .post(format!("{}/v1/webhooks/{webhook}", app.address))
            .json(&json!({"n": n}))
            .send()
            .await
            .unwrap();
        assert!(delivered.status().is_success());
    }
    let webhook_id: uuid::Uuid = webhook.parse().unwrap();
    assert_eq!(app.runs_of(webhook_id).await.len(), 2);
    let page: Value = app
        .request(
            Method::GET,
            &format!("/triggers/{webhook}/runs?limit=1"),
            &session,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(cursor.is_valid(&page["next_cursor"]), "{page}");
    app.shutdown().await;
}
