//! The API's OpenAPI 3.1 document, served as `GET /openapi.json`, and `GET /docs`, Swagger UI
//! rendering it for people.
//!
//! The document is generated, not written: each handler's `#[utoipa::path]` gives its operation,
//! the `ToSchema` derives on the types handlers read and write give the schemas, and the sibling
//! modules register their handlers with `utoipa_axum::routes!`, which takes the path and method
//! from that same annotation. So an endpoint cannot be served without being documented, nor
//! documented under another path or method than it is served on. This module adds what belongs to
//! the whole document: its info, tags, the OAuth2 security scheme and the shared error responses.
//!
//! Two things are added to the generated document as JSON, since they are data rather than types:
//! the catalogue's create bodies ([`declare_catalogue`]) and the role each bearer-token operation
//! needs ([`declare_roles`]), from the very function the `Caller` extractor checks.
//!
//! Swagger UI's files are compiled into the binary (utoipa-swagger-ui's `vendored` feature): the
//! engine often runs where there is no internet, so neither building it nor viewing `/docs`
//! downloads anything.

use axum::Router;
use serde_json::{json, Map, Value};
use utoipa::openapi::security::{Flow, OAuth2, Password, Scopes, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::{Config, SwaggerUi};

use super::auth::allowed_roles;
use super::error::responses::{
    BadSignature, Conflict, Forbidden, Gone, InternalError, InvalidApiKey, InvalidField,
    NotConfiguredOrUnavailable, NotFound, OAuthError, PayloadTooLarge, ProviderFailed,
    TooManyRequests, Unauthorized, Unavailable, UnsupportedMediaType,
};
use super::error::Problem;
use super::AppState;
use crate::catalogue::{Catalogue, TriggerDefinition};
use crate::connections::required_credentials;
use crate::identity::Role;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/openapi.json";
/// Where Swagger UI is served.
pub const DOCS_PATH: &str = "/docs";

/// The name of the security scheme. Each protected handler names it again in
/// `security(("OAuth2PasswordBearer" = []))`, since utoipa takes only a literal there; the API
/// tests check that every requirement names a scheme the document defines. It is the name FastAPI
/// gives an `OAuth2PasswordBearer` scheme, which the seed API (a FastAPI service, by its
/// "Successful Response" descriptions) appears to use: clients generated from either agree.
pub const OAUTH2_PASSWORD: &str = "OAuth2PasswordBearer";

/// The operation extension that names the least role that may call an operation (`auditor`,
/// `member` or `admin`), on every operation that takes a bearer token.
pub const REQUIRED_ROLE: &str = "x-required-role";

/// The operation extension that lists every role that may call it: the roles from
/// [`REQUIRED_ROLE`] up, except on the few operations open to a set of roles
/// (`GET /log/verify`: `auditor` and `admin`).
pub const ALLOWED_ROLES: &str = "x-allowed-roles";

/// Tags: the seed API's one section, and what the engine serves beyond it.
pub const TRIGGERS: &str = "Triggers";
pub const CONNECTIONS: &str = "Connections";
pub const AUTH: &str = "Authentication";
pub const OPERATIONS: &str = "Operations";
pub const RUNS: &str = "Runs";
pub const HISTORY: &str = "History";

/// What the document holds besides the operations, which the routers add.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Triggers API",
        description = "StackAI's Triggers API, served by trigger-engine. Every trigger belongs to \
            the caller's organisation: another organisation's trigger answers 404, like one that \
            does not exist. Every error is an RFC 9457 problem document \
            (`application/problem+json`) naming what was wrong. Over a rate limit (token \
            attempts per client address and username, authenticated requests per organisation) \
            the answer is 429 with `Retry-After`. Every response carries an \
            `x-request-id` header: the caller's, when it sent a usable one, or a new one. No \
            string of a request (body, path or form) may hold U+0000 (NUL), which the store \
            cannot keep: such a request is a 422 naming the field (400 `invalid_request` at \
            `POST /token`). Every user has a role: `auditor` (read-only: every GET), `member` \
            (everything on triggers, connections and runs) or `admin` (everything). Each \
            operation that takes a bearer token names the least role it needs in its \
            `x-required-role` extension and every role that may call it in `x-allowed-roles` \
            (the roles from the least up, except `GET /log/verify`: `auditor` and `admin`), \
            and says so in its description; a caller of another role gets 403 \
            `/problems/forbidden` naming the caller's role, and nothing is recorded. The role is the one the access token was issued with: a role change takes \
            effect with the user's next token. The URLs that carry an API key need no role."
    ),
    modifiers(&SecuritySchemes),
    components(
        schemas(Problem),
        responses(
            Unauthorized,
            Forbidden,
            BadSignature,
            InvalidApiKey,
            NotFound,
            Gone,
            Conflict,
            PayloadTooLarge,
            UnsupportedMediaType,
            InvalidField,
            OAuthError,
            TooManyRequests,
            InternalError,
            Unavailable,
            ProviderFailed,
            NotConfiguredOrUnavailable
        )
    ),
    tags(
        (name = TRIGGERS, description = "Triggers and the native trigger catalogue."),
        (name = CONNECTIONS, description = "Credentials for providers, which triggers name by \
            `connection_id` (beyond the seed API). Credentials are write-only: stored encrypted, \
            never answered."),
        (name = AUTH, description = "Access tokens for the trigger endpoints."),
        (name = OPERATIONS, description = "For load balancers, orchestrators and monitoring."),
        (name = RUNS, description = "Each firing of a trigger and its delivery to the executor \
            (extensions beyond the seed API)."),
        (name = HISTORY, description = "What happened to a trigger or a run, from the log: \
            each event with who caused it and through which request, and a trigger as it stood \
            at any moment (extensions beyond the seed API, for auditors)."),
    )
)]
pub struct ApiDoc;

/// Adds the OAuth2 password flow: `POST /token` turns a user's email and password into the bearer
/// token the trigger endpoints require. Swagger UI's "Authorize" uses it as is.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, document: &mut Document) {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            OAUTH2_PASSWORD,
            SecurityScheme::OAuth2(OAuth2::with_description(
                [Flow::Password(Password::new("/token", Scopes::new()))],
                "The resource owner password grant (RFC 6749 §4.3) at `POST /token`; send the \
                 token as `Authorization: Bearer <access_token>`.",
            )),
        );
    }
}

/// Serves `document` at [`DOCUMENT_PATH`] and Swagger UI at [`DOCS_PATH`] (which redirects to
/// `/docs/`, the folder the page's relative asset paths need).
pub fn router(document: Document) -> Router<AppState> {
    let document = serde_json::to_value(document).expect("an OpenAPI document serialises to JSON");
    SwaggerUi::new(DOCS_PATH)
        .external_url_unchecked(DOCUMENT_PATH, declare_roles(declare_catalogue(document)))
        // Swagger UI otherwise sends the document to validator.swagger.io for a badge whenever
        // it is not served from localhost: the page would reach outside, and show our API to a
        // third party. CI validates the document instead.
        .config(Config::default().validator_url("none"))
        .into()
}

/// Adds to the create bodies what the Rust types cannot say, since it is data: which providers
/// and triggers exist, what each trigger's `trigger_config` must be, and which credentials each
/// provider's connections must hold. Each body becomes a `oneOf` with one branch per trigger (per
/// provider for connections), told apart by the `const` ids, so a client generated from the
/// document can build only requests that validation accepts: the rules beyond JSON Schema (the
/// connection must exist, a cron field's range, the outbound guard) are the only exceptions.
///
/// utoipa's schema types cannot hold `const`, `dependentRequired` or the catalogue's schemas
/// as they are, so this is done on the JSON document.
fn declare_catalogue(mut document: Value) -> Value {
    let catalogue = Catalogue::builtin();
    let providers: Vec<&str> = catalogue.providers().collect();
    let schemas = &mut document["components"]["schemas"];

    let create_trigger = &mut schemas["CreateTrigger"];
    create_trigger["properties"]["provider_id"]["enum"] = json!(providers);
    create_trigger["oneOf"] = catalogue.definitions().map(trigger_branch).collect();

    let create_connection = &mut schemas["CreateConnection"];
    create_connection["properties"]["provider_id"]["enum"] = json!(providers);
    // What `str::trim` leaves must not be empty.
    create_connection["properties"]["name"]["pattern"] = json!("\\S");
    create_connection["properties"]["credentials"]["minProperties"] = json!(1);
    create_connection["oneOf"] = providers.iter().map(|id| connection_branch(id)).collect();
    document
}

/// Adds to every operation that takes a bearer token the roles that may call it: the least as
/// the [`REQUIRED_ROLE`] extension, all of them as [`ALLOWED_ROLES`], a sentence of its
/// description, and the 403 that the other roles get. They come from [`allowed_roles`], which the
/// `Caller` extractor checks: the document cannot say one thing and the engine do another, nor a
/// new write operation go without its 403.
fn declare_roles(mut document: Value) -> Value {
    let Some(paths) = document["paths"].as_object_mut() else {
        return document;
    };
    // A path item also holds `parameters`, `summary` and the like beside its operations.
    const OPERATIONS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item
            .iter_mut()
            .filter(|(key, operation)| OPERATIONS.contains(&key.as_str()) && operation.is_object())
        {
            let Ok(method) = axum::http::Method::from_bytes(method.to_uppercase().as_bytes())
            else {
                continue;
            };
            let takes_token = operation["security"]
                .as_array()
                .is_some_and(|requirements| {
                    requirements
                        .iter()
                        .any(|requirement| requirement.get(OAUTH2_PASSWORD).is_some())
                });
            if takes_token {
                declare_operation_roles(operation, &allowed_roles(&method, path));
            }
        }
    }
    document
}

fn declare_operation_roles(operation: &mut Value, allowed: &[Role]) {
    let least = allowed.iter().min().copied().unwrap_or(Role::Admin);
    operation[REQUIRED_ROLE] = json!(least.as_str());
    operation[ALLOWED_ROLES] = json!(allowed.iter().map(|role| role.as_str()).collect::<Vec<_>>());
    let names: Vec<String> = allowed.iter().map(|role| format!("`{role}`")).collect();
    let everyone = allowed.len() == Role::ALL.len();
    let ranked = allowed
        == Role::ALL
            .into_iter()
            .filter(|role| role.allows(least))
            .collect::<Vec<_>>();
    let sentence = if everyone {
        format!("Open to every role ({}).", names.join(", "))
    } else if ranked {
        format!(
            "Needs the `{least}` role or above ({}): a caller of a lesser role is refused with \
             403 and nothing is recorded.",
            names.join(", ")
        )
    } else {
        format!(
            "Open to the {} roles only: a caller of another role is refused with 403 and \
             nothing is recorded.",
            names.join(" and ")
        )
    };
    operation["description"] = match operation["description"].as_str() {
        Some(description) if !description.is_empty() => {
            json!(format!("{description}\n\n{sentence}"))
        }
        _ => json!(sentence),
    };
    if !everyone {
        operation["responses"]["403"] = json!({ "$ref": "#/components/responses/Forbidden" });
    }
}

/// The create body of one catalogue trigger.
fn trigger_branch(definition: &TriggerDefinition) -> Value {
    let config = definition.portable_config_schema();
    let mut required = vec!["provider_id", "trigger_id"];
    let config = if definition.config_is_optional() {
        // Absent or `null` is the empty config, which this trigger accepts.
        json!({ "oneOf": [{ "type": "null" }, config] })
    } else {
        required.push("trigger_config");
        config
    };
    json!({
        "title": format!("{}/{}", definition.provider_id, definition.trigger_id),
        "type": "object",
        "properties": {
            "provider_id": { "const": definition.provider_id },
            "trigger_id": { "const": definition.trigger_id },
            "trigger_config": config,
        },
        "required": required,
    })
}

/// The create body of one provider's connection.
fn connection_branch(provider_id: &str) -> Value {
    let needed = required_credentials(provider_id);
    let properties: Map<String, Value> = needed
        .iter()
        .map(|name| {
            (
                name.to_string(),
                json!({ "type": "string", "minLength": 1 }),
            )
        })
        .collect();
    json!({
        "title": provider_id,
        "type": "object",
        "properties": {
            "provider_id": { "const": provider_id },
            "credentials": { "type": "object", "properties": properties, "required": needed },
        },
    })
}
