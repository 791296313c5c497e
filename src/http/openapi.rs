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
//! Swagger UI's files are compiled into the binary (utoipa-swagger-ui's `vendored` feature): the
//! engine often runs where there is no internet, so neither building it nor viewing `/docs`
//! downloads anything.

use axum::Router;
use utoipa::openapi::security::{Flow, OAuth2, Password, Scopes, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::{Config, SwaggerUi};

use super::error::responses::{
    BadSignature, Conflict, Gone, InternalError, InvalidApiKey, InvalidField, NotConfigured,
    NotFound, OAuthError, PayloadTooLarge, ProviderFailed, TooManyRequests, Unauthorized,
    Unavailable, UnsupportedMediaType,
};
use super::error::Problem;
use super::AppState;

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

/// Tags: the seed API's one section, and what the engine serves beyond it.
pub const TRIGGERS: &str = "Triggers";
pub const CONNECTIONS: &str = "Connections";
pub const AUTH: &str = "Authentication";
pub const OPERATIONS: &str = "Operations";
pub const RUNS: &str = "Runs";

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
            `x-request-id` header: the caller's, when it sent a usable one, or a new one."
    ),
    modifiers(&SecuritySchemes),
    components(
        schemas(Problem),
        responses(
            Unauthorized,
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
            NotConfigured
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
    SwaggerUi::new(DOCS_PATH)
        .url(DOCUMENT_PATH, document)
        // Swagger UI otherwise sends the document to validator.swagger.io for a badge whenever
        // it is not served from localhost: the page would reach outside, and show our API to a
        // third party. CI validates the document instead.
        .config(Config::default().validator_url("none"))
        .into()
}
