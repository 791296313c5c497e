//! The one error type of the HTTP edge: every failure leaves as an RFC 9457 problem document
//! (`application/problem+json`) that names what was wrong. 5xx are logged with their cause and
//! answered without internals.
//!
//! The body is the [`Problem`] struct, so the schema the OpenAPI document shows is derived from
//! the very type that is serialised; [`responses`] names one reusable response per variant.

use aggregates::ReplayError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::commands::CommandError;
use crate::connections::ConnectionError;
use crate::identity::{IdentityError, Role};
use crate::registration::RegistrationError;
use crate::runs::RunCommandError;
use crate::store::StoreError;
use aggregates::{RunError, TriggerError};

/// The `Retry-After` of a 503 for an unavailable store. A PostgreSQL restart (fast shutdown, then
/// start-up) is over in a few seconds, and the engine recovers on its own first query after it
/// (pooled connections are checked before use, so no restart is needed): a client that waits this
/// long usually gets through on its first retry, and one that is early costs the store at most one
/// request in this many seconds. Longer outages (a failover) just take several retries.
pub const STORE_RETRY_AFTER_SECS: u64 = 5;

/// Roles as a sentence names them: "`member` or `admin`".
fn names(roles: &[Role]) -> String {
    let quoted: Vec<String> = roles.iter().map(|role| format!("`{role}`")).collect();
    match quoted.split_last() {
        None => "no role".to_owned(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// When an organisation at its most open event streams may try again.
pub const STREAM_RETRY_AFTER_SECS: u64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: no bearer token, or one that is malformed, forged or expired. Carries the
    /// `WWW-Authenticate: Bearer` challenge (RFC 6750 §3).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 401 for a webhook delivery whose signature does not verify (no bearer challenge: the
    /// sender proves itself by signing, not with a token).
    #[error("{0}")]
    BadSignature(String),
    /// 401 for an API key in a path that is not one of that organisation's keys.
    #[error("invalid API key")]
    InvalidApiKey,
    /// 403: the caller's role does not allow the request (an `auditor` writing); `role` names the
    /// caller's role. Refused before anything was read or written.
    #[error("the `{role}` role may not do this: it is open to {}", names(allowed))]
    Forbidden { role: Role, allowed: Vec<Role> },
    /// 404: no such resource, or one that belongs to another organisation (indistinguishable).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 410: the resource existed and was deleted; a sender should stop calling.
    #[error("{0} was deleted")]
    Gone(&'static str),
    /// 409: the change conflicts with the resource's current state or with a concurrent change.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is over the configured limit.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 415: the body is not of a media type the endpoint reads.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: a field of the request is malformed or breaks a rule; `field` names it.
    #[error("invalid `{field}`: {detail}")]
    Invalid { field: String, detail: String },
    /// 400 with RFC 6749 §5.2 members (`error`, `error_description`): the token endpoint's errors.
    #[error("{description}")]
    OAuth {
        status: StatusCode,
        code: &'static str,
        description: String,
    },
    /// 429: the caller is over a rate limit. Carries `Retry-After` with the whole seconds (at
    /// least 1) after which a retry can pass.
    #[error("too many requests; retry in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    /// 429: the organisation has as many event streams open as it may (`GET /events` with
    /// `Accept: text/event-stream`). Carries `Retry-After`.
    #[error("this organisation already has {0} event streams open, the most it may; close one, or read pages without following")]
    TooManyStreams(usize),
    /// 500: a fault on our side; the cause is logged, never returned.
    #[error("internal error: {0}")]
    Internal(String),
    /// 503: the engine should not take traffic now; `check` names the readiness check that failed.
    #[error("{detail}")]
    Unavailable { check: &'static str, detail: String },
    /// 503: the store cannot be reached or will not take the work now (down, restarting,
    /// refusing connections, locked past its wait). Carries `Retry-After`
    /// ([`STORE_RETRY_AFTER_SECS`]); the cause is logged, never returned. Nothing was recorded
    /// unless the database committed just as the connection broke: a retry is then answered as
    /// the duplicate it is.
    #[error("the store is unavailable; retry in {STORE_RETRY_AFTER_SECS} s")]
    StoreUnavailable(#[source] StoreError),
    /// 502: a provider refused a call the request needed, or could not be reached; the detail
    /// says which provider and what it answered. Nothing was changed.
    #[error("{0}")]
    BadGateway(String),
    /// 503: this engine was started without an option the request needs; the detail names it.
    /// Nothing was changed.
    #[error("{0}")]
    NotConfigured(String),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            detail: detail.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) | Self::BadSignature(_) | Self::InvalidApiKey => {
                StatusCode::UNAUTHORIZED
            }
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Gone(_) => StatusCode::GONE,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::OAuth { status, .. } => *status,
            Self::TooManyRequests { .. } | Self::TooManyStreams(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable { .. } | Self::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::NotConfigured(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The problem type: a stable, relative URI per kind of problem (RFC 9457 §3.1.1).
    fn kind(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "/problems/unauthorized",
            Self::BadSignature(_) => "/problems/bad-signature",
            Self::InvalidApiKey => "/problems/invalid-api-key",
            Self::Forbidden { .. } => "/problems/forbidden",
            Self::NotFound(_) => "/problems/not-found",
            Self::Gone(_) => "/problems/gone",
            Self::Conflict(_) => "/problems/conflict",
            Self::PayloadTooLarge(_) => "/problems/payload-too-large",
            Self::UnsupportedMediaType(_) => "/problems/unsupported-media-type",
            Self::Invalid { .. } => "/problems/invalid-field",
            Self::OAuth { .. } => "/problems/oauth",
            Self::TooManyRequests { .. } | Self::TooManyStreams(_) => "/problems/too-many-requests",
            Self::Internal(_) => "/problems/internal",
            Self::Unavailable { .. } | Self::StoreUnavailable(_) => "/problems/unavailable",
            Self::BadGateway(_) => "/problems/provider-failed",
            Self::NotConfigured(_) => "/problems/not-configured",
        }
    }
}

/// An RFC 9457 problem document: the body of every error response.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "/problems/invalid-field",
    "title": "Unprocessable Entity",
    "status": 422,
    "detail": "invalid `trigger_config.feed_url`: is required",
    "field": "trigger_config.feed_url"
}))]
pub struct Problem {
    /// The kind of problem: a stable, relative URI per kind (RFC 9457 §3.1.1), e.g.
    /// `/problems/not-found`.
    #[serde(rename = "type")]
    #[schema(format = "uri-reference")]
    pub kind: &'static str,
    /// The reason phrase of `status`.
    pub title: &'static str,
    /// The HTTP status code of the response.
    pub status: u16,
    /// What was wrong, for people.
    pub detail: String,
    /// 422 only: the request field at fault, e.g. `provider_id` or `trigger_config.feed_url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub field: Option<String>,
    /// Token endpoint only: the RFC 6749 §5.2 error code (`invalid_request`, `invalid_grant`,
    /// `unsupported_grant_type`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub error: Option<&'static str>,
    /// Token endpoint only: RFC 6749 §5.2's human-readable text, the same as `detail`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub error_description: Option<String>,
    /// 403 only: the caller's role, which the operation's `x-required-role` does not include.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, example = "auditor")]
    pub role: Option<&'static str>,
    /// 503 only: the readiness check that failed, `store` or `projection_lag`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, example = "projection_lag")]
    pub check: Option<&'static str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            Self::Internal(cause) => {
                tracing::error!(%cause, "request failed");
                "the server could not complete the request".to_owned()
            }
            Self::StoreUnavailable(cause) => {
                tracing::warn!(%cause, "store unavailable; answered 503");
                self.to_string()
            }
            other => other.to_string(),
        };
        let mut problem = Problem {
            kind: self.kind(),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            field: None,
            error: None,
            error_description: None,
            role: None,
            check: None,
        };
        match &self {
            Self::Invalid { field, .. } => problem.field = Some(field.clone()),
            Self::OAuth {
                code, description, ..
            } => {
                problem.error = Some(code);
                problem.error_description = Some(description.clone());
            }
            Self::Forbidden { role, .. } => problem.role = Some(role.as_str()),
            Self::Unavailable { check, .. } => problem.check = Some(check),
            Self::StoreUnavailable(_) => problem.check = Some("store"),
            _ => {}
        }
        let mut response = (status, axum::Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Self::Unauthorized(_) = self {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        if let Self::TooManyRequests { retry_after_secs } = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        if let Self::TooManyStreams(_) = self {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(STREAM_RETRY_AFTER_SECS),
            );
        }
        // A readiness refusal (a lagging read model, an unreachable store) is as passing as an
        // outage met by a request: the same wait suits a balancer's next probe.
        if matches!(self, Self::StoreUnavailable(_) | Self::Unavailable { .. }) {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(STORE_RETRY_AFTER_SECS),
            );
        }
        if matches!(self, Self::OAuth { .. }) {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        response
    }
}

/// The error responses of the OpenAPI document, one per [`ApiError`] variant, so that each
/// operation lists the statuses it can answer by naming them: `(status = 404, response = NotFound)`.
/// They are documentation only; the bodies are built by [`ApiError::into_response`].
pub mod responses {
    use utoipa::ToResponse;

    use super::Problem;

    /// No bearer token, or one that is malformed, forged or expired. The response carries the
    /// `WWW-Authenticate: Bearer` challenge (RFC 6750 §3); get a token from `POST /token`.
    #[derive(ToResponse)]
    #[response(
        content_type = "application/problem+json",
        headers(("WWW-Authenticate" = String, description = "`Bearer error=\"invalid_token\"` (RFC 6750 §3)"))
    )]
    pub struct Unauthorized(pub Problem);

    /// The caller's role does not allow this operation: an `auditor` may only read. `role` names
    /// the caller's role; the operation's `x-required-role` says which it needs. Nothing was
    /// recorded.
    #[derive(ToResponse)]
    #[response(content_type = "application/problem+json")]
    pub struct Forbidden(pub Problem);

    /// No such resource, or one that belongs to another organisation: the two are answered alike.
    #[derive(ToResponse)]
    #[response(content_type = "application/problem+json")]
    pub struct NotFound(pub Problem);

    /// The webhook delivery's signature does not verify with the trigger's signing secret(s), or
    /// its timestamp is outside the provider's tolerance. Nothing was recorded.
    #[derive(ToResponse)]
    #[response(content_type = "application/problem+json")]
    pub struct BadSignature(pub Problem);

    /// The API key in the path is not one of the organisation's keys. Nothing was recorded.
    #[derive(ToResponse)]
    #[response(content_type = "application/problem+json")]
    pub struct InvalidApiKey(pub Problem);

    /// The trigger was deleted: the sender should stop delivering to this URL.
    #[derive(ToResponse)]
    #[response(content_type = "application/problem+json")]
    pub struct Gone(pub Problem);

    /// The change conflicts with the resource's state or with a concurrent change; retrying may
    /// succeed.
    #[derive(ToResponse)]
    #[response(content_type = "application/problem+json")]
    pub struct Conflict(pub Problem);

    /// The body is larger than 1 MiB.
    #[derive(ToResponse)]
    #[response(content_type = "application/problem+json")]
    pub struct PayloadTooLarge(pub Problem);

    /// The body is not of the media type the endpoint reads.
    #[derive(ToResponse)]
    #[response(content_type = "application/problem+json")]
    pub struct UnsupportedMediaType(pub Problem);

    /// A field of the request (body or path) is malformed or breaks a rule; `field` names it.
    #[derive(ToResponse)]
    #[response(content_type = "application/problem+json")]
    pub struct InvalidField(pub Problem);

    /// The token request was refused; `error` is the RFC 6749 §5.2 code. Never cached.
    #[derive(ToResponse)]
    #[response(
        content_type = "application/problem+json",
        headers(("Cache-Control" = String, description = "`no-store` (RFC 6749 §5.2)"))
    )]
    pub struct OAuthError(pub Problem);

    /// Over a rate limit: `POST /token` counts attempts per client address and username, the
    /// endpoints that take a bearer token count requests per organisation. The request was refused
    /// before it did anything; retry after `Retry-After` seconds.
    #[derive(ToResponse)]
    #[response(
        content_type = "application/problem+json",
        headers(("Retry-After" = u64, description = "Whole seconds, at least 1, after which a retry can pass (RFC 9110 §10.2.3)"))
    )]
    pub struct TooManyRequests(pub Problem);

    /// A fault on the server's side; the body names no internals.
    #[derive(ToResponse)]
    #[response(content_type = "application/problem+json")]
    pub struct InternalError(pub Problem);

    /// The engine cannot serve this now: its store cannot be reached (`check` is `store`), or,
    /// from `/readyz`, a readiness check failed (`check` names it: `store` or `projection_lag`).
    /// Nothing was recorded (a retry of a delivery that was is answered as a duplicate); retry
    /// after `Retry-After` seconds.
    #[derive(ToResponse)]
    #[response(
        content_type = "application/problem+json",
        headers(("Retry-After" = u64, description = "Whole seconds after which a retry may pass (RFC 9110 §10.2.3)"))
    )]
    pub struct Unavailable(pub Problem);

    /// A provider the request had to call (Typeform, to register or remove the trigger's
    /// webhook) refused or could not be reached; `detail` says what it answered. Nothing was
    /// changed: retry once the cause is fixed.
    #[derive(ToResponse)]
    #[response(content_type = "application/problem+json")]
    pub struct ProviderFailed(pub Problem);

    /// Either the engine was started without an option this request needs
    /// (`/problems/not-configured`; `detail` names it: `TRIGGER_ENGINE_ENCRYPTION_KEY` for
    /// connections' credentials, `TRIGGER_ENGINE_PUBLIC_URL` for registering provider webhooks),
    /// or its store cannot be reached now (`/problems/unavailable`, with `Retry-After`). Either
    /// way nothing was changed. One status has one response in OpenAPI, hence one for both.
    #[derive(ToResponse)]
    #[response(
        content_type = "application/problem+json",
        headers(("Retry-After" = u64, description = "Whole seconds after which a retry may pass; only when the store cannot be reached"))
    )]
    pub struct NotConfiguredOrUnavailable(pub Problem);
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Rejected(TriggerError::NotFound | TriggerError::Deleted) => {
                Self::NotFound("trigger")
            }
            CommandError::Rejected(TriggerError::InvalidField { field, reason }) => {
                Self::invalid(field, reason)
            }
            CommandError::Rejected(
                rejected @ (TriggerError::AlreadyExists | TriggerError::CursorConflict { .. }),
            ) => Self::Conflict(rejected.to_string()),
            CommandError::Rejected(
                rejected
                @ (TriggerError::UnknownCommand(_) | TriggerError::MalformedCommand { .. }),
            ) => Self::invalid("command", rejected.to_string()),
            CommandError::Contended => Self::Conflict(CommandError::Contended.to_string()),
            CommandError::Store(store) => store.into(),
        }
    }
}

impl From<RunCommandError> for ApiError {
    fn from(error: RunCommandError) -> Self {
        match error {
            RunCommandError::Rejected(RunError::NotFound) => Self::NotFound("run"),
            RunCommandError::Rejected(refused) => Self::Conflict(refused.to_string()),
            RunCommandError::Contended => Self::Conflict(RunCommandError::Contended.to_string()),
            RunCommandError::Store(store) => store.into(),
        }
    }
}

impl From<ReplayError> for ApiError {
    fn from(error: ReplayError) -> Self {
        match error {
            ReplayError::NotFound => Self::NotFound("replay"),
            ReplayError::NothingSelected => Self::invalid("selection", "matches no run"),
            refused @ (ReplayError::AlreadyExists
            | ReplayError::StaleStep { .. }
            | ReplayError::Over(_)) => Self::Conflict(refused.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict => Self::Conflict(error.to_string()),
            // The request's own data: the extractors name the field first, this is the net.
            StoreError::HoldsNul { .. } => Self::invalid("body", error.to_string()),
            unavailable if unavailable.is_unavailable() => Self::StoreUnavailable(unavailable),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<ConnectionError> for ApiError {
    fn from(error: ConnectionError) -> Self {
        match error {
            ConnectionError::NotConfigured => Self::NotConfigured(error.to_string()),
            ConnectionError::UnknownProvider(_) => Self::invalid("provider_id", error.to_string()),
            ConnectionError::EmptyName => Self::invalid("name", "must not be empty"),
            ConnectionError::EmptyCredentials => Self::invalid("credentials", "must not be empty"),
            ConnectionError::MissingCredential { name, .. } => {
                Self::invalid(format!("credentials.{name}"), error.to_string())
            }
            ConnectionError::NotFound => Self::NotFound("connection"),
            ConnectionError::InUse { .. } => Self::Conflict(error.to_string()),
            ConnectionError::Undecryptable(_) | ConnectionError::UndecryptableWebhookSecret(_) => {
                Self::Internal(error.to_string())
            }
            ConnectionError::Store(store) => store.into(),
        }
    }
}

impl From<RegistrationError> for ApiError {
    fn from(error: RegistrationError) -> Self {
        match error {
            RegistrationError::Command(command) => command.into(),
            RegistrationError::Connection(connection) => connection.into(),
            RegistrationError::NeedsPublicUrl => Self::NotConfigured(error.to_string()),
            RegistrationError::ConnectionRequired { .. }
            | RegistrationError::UnusableConnection(_) => {
                Self::invalid("connection_id", error.to_string())
            }
            RegistrationError::MissingConfig { field } => {
                Self::invalid(field, "is required to register the webhook")
            }
            RegistrationError::Provider { .. } => Self::BadGateway(error.to_string()),
        }
    }
}

impl From<IdentityError> for ApiError {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::InvalidToken => Self::Unauthorized("invalid access token"),
            IdentityError::ExpiredToken => Self::Unauthorized("access token expired"),
            IdentityError::InvalidGrant => Self::OAuth {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_grant",
                description: error.to_string(),
            },
            IdentityError::Store(store) => store.into(),
            other => Self::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 409 cannot be provoked deterministically over the socket (trigger ids are the server's, and
    /// concurrent changes are retried), so the mapping from the command path is checked here.
    #[tokio::test]
    async fn it_should_answer_a_conflicting_change_with_409_problem_json() {
        for error in [
            CommandError::Contended,
            CommandError::Rejected(TriggerError::AlreadyExists),
            CommandError::Store(StoreError::Conflict),
        ] {
            let response = ApiError::from(error).into_response();
            assert_eq!(response.status(), StatusCode::CONFLICT);
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "application/problem+json"
            );
            let body = axum::body::to_bytes(response.into_body(), 4096)
                .await
                .unwrap();
            let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(problem["status"], 409);
            assert_eq!(problem["type"], "/problems/conflict");
        }
    }

    #[tokio::test]
    async fn it_should_answer_an_unreachable_store_with_503_and_retry_after() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        for error in [
            StoreError::from(sqlx::Error::PoolTimedOut),
            StoreError::from(sqlx::Error::Io(refused)),
            StoreError::Closed,
        ] {
            let response = ApiError::from(CommandError::Store(error)).into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()[header::RETRY_AFTER], "5");
            let body = axum::body::to_bytes(response.into_body(), 4096)
                .await
                .unwrap();
            let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(problem["type"], "/problems/unavailable");
            assert_eq!(problem["check"], "store");
        }
        let corrupt = ApiError::from(StoreError::Corrupt("x".into())).into_response();
        assert_eq!(corrupt.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn it_should_hide_the_cause_of_an_internal_error() {
        let response = ApiError::Internal("connection refused to 10.0.0.7".into()).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        assert!(!String::from_utf8_lossy(&body).contains("10.0.0.7"));
    }
}
