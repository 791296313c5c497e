//! The one error type of the HTTP edge: every failure leaves as an RFC 9457 problem document
//! (`application/problem+json`) that names what was wrong. 5xx are logged with their cause and
//! answered without internals.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::commands::CommandError;
use crate::identity::IdentityError;
use crate::store::StoreError;
use aggregates::TriggerError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: no bearer token, or one that is malformed, forged or expired. Carries the
    /// `WWW-Authenticate: Bearer` challenge (RFC 6750 §3).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 404: no such resource, or one that belongs to another organisation (indistinguishable).
    #[error("{0} not found")]
    NotFound(&'static str),
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
    /// 500: a fault on our side; the cause is logged, never returned.
    #[error("internal error: {0}")]
    Internal(String),
    /// 503: the engine should not take traffic now; `check` names the readiness check that failed.
    #[error("{detail}")]
    Unavailable { check: &'static str, detail: String },
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
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::OAuth { status, .. } => *status,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The problem type: a stable, relative URI per kind of problem (RFC 9457 §3.1.1).
    fn kind(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "/problems/unauthorized",
            Self::NotFound(_) => "/problems/not-found",
            Self::Conflict(_) => "/problems/conflict",
            Self::PayloadTooLarge(_) => "/problems/payload-too-large",
            Self::UnsupportedMediaType(_) => "/problems/unsupported-media-type",
            Self::Invalid { .. } => "/problems/invalid-field",
            Self::OAuth { .. } => "/problems/oauth",
            Self::TooManyRequests { .. } => "/problems/too-many-requests",
            Self::Internal(_) => "/problems/internal",
            Self::Unavailable { .. } => "/problems/unavailable",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            Self::Internal(cause) => {
                tracing::error!(%cause, "request failed");
                "the server could not complete the request".to_owned()
            }
            other => other.to_string(),
        };
        let mut body = Map::new();
        body.insert("type".into(), json!(self.kind()));
        body.insert(
            "title".into(),
            json!(status.canonical_reason().unwrap_or("Error")),
        );
        body.insert("status".into(), json!(status.as_u16()));
        body.insert("detail".into(), json!(detail));
        match &self {
            Self::Invalid { field, .. } => {
                body.insert("field".into(), json!(field));
            }
            Self::OAuth {
                code, description, ..
            } => {
                body.insert("error".into(), json!(code));
                body.insert("error_description".into(), json!(description));
            }
            Self::Unavailable { check, .. } => {
                body.insert("check".into(), json!(check));
            }
            _ => {}
        }
        let mut response = (status, axum::Json(Value::Object(body))).into_response();
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
        if matches!(self, Self::OAuth { .. }) {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        response
    }
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

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict => Self::Conflict(error.to_string()),
            other => Self::Internal(other.to_string()),
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
            other => Self::Internal(other.to_string()),
        }
    }
}
