//! Extractors whose rejections are [`ApiError`]s, so a malformed request gets the same
//! problem+json shape as every other error, naming what was wrong.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FormRejection, JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ApiError;

/// A JSON body. Wrong media type: 415; over the limit: 413; syntax or shape errors, or a string
/// holding U+0000 (which the store cannot keep, see [`crate::nul`]): 422 with the path of the
/// offending field.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "expected `Content-Type: application/json`".into(),
            ));
        }
        let body = Bytes::from_request(request, state)
            .await
            .map_err(unreadable_body)?;
        if crate::nul::may_hold(&body) {
            if let Some(path) = serde_json::from_slice::<Value>(&body)
                .ok()
                .as_ref()
                .and_then(crate::nul::find)
            {
                return Err(holds_nul(if path.is_empty() {
                    "body".into()
                } else {
                    path
                }));
            }
        }
        match axum::Json::<T>::from_bytes(&body) {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// `application/json`, or a `+json` type (`application/merge-patch+json`), as axum's `Json` reads.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"))
}

fn unreadable_body(error: BytesRejection) -> ApiError {
    if error.status() == 413 {
        ApiError::PayloadTooLarge(super::BODY_LIMIT)
    } else {
        ApiError::invalid("body", error.body_text())
    }
}

fn holds_nul(field: impl Into<String>) -> ApiError {
    ApiError::invalid(
        field,
        "must not contain U+0000 (NUL), which the store cannot keep",
    )
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::UnsupportedMediaType("expected `Content-Type: application/json`".into())
        }
        JsonRejection::JsonDataError(error) => {
            // serde_path_to_error's message reads "<path>: <reason>"; the path names the field.
            let text = error.body_text();
            let detail = text
                .trim_start_matches("Failed to deserialize the JSON body into the target type: ");
            match detail.split_once(": ") {
                Some((path, reason)) if !path.contains(' ') => ApiError::invalid(path, reason),
                _ => ApiError::invalid("body", detail),
            }
        }
        JsonRejection::JsonSyntaxError(error) => ApiError::invalid("body", error.body_text()),
        JsonRejection::BytesRejection(error) if error.status() == 413 => {
            ApiError::PayloadTooLarge(super::BODY_LIMIT)
        }
        other => ApiError::invalid("body", other.body_text()),
    }
}

/// Path parameters. A value that does not parse (a bad UUID) is 422 naming the parameter.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Ok(raw) = RawPathParams::from_request_parts(parts, state).await {
            if let Some((key, _)) = raw.iter().find(|(_, value)| value.contains('\0')) {
                return Err(holds_nul(key));
            }
        }
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(PathRejection::FailedToDeserializePathParams(error)) => {
                let field = match error.kind() {
                    axum::extract::path::ErrorKind::ParseErrorAtKey { key, .. }
                    | axum::extract::path::ErrorKind::DeserializeError { key, .. }
                    | axum::extract::path::ErrorKind::InvalidUtf8InPathParam { key } => key.clone(),
                    _ => "path".to_owned(),
                };
                Err(ApiError::invalid(field, error.body_text()))
            }
            Err(other) => Err(ApiError::invalid("path", other.body_text())),
        }
    }
}

/// An `application/x-www-form-urlencoded` body (the token endpoint's, per RFC 6749).
pub struct ApiForm<T>(pub T);

impl<S, T> FromRequest<S> for ApiForm<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Read once to look for U+0000, then handed to axum's `Form` as it came.
        let (parts, body) = request.into_parts();
        let body = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(unreadable_body)?;
        if let Some((field, _)) = url::form_urlencoded::parse(&body)
            .find(|(key, value)| key.contains('\0') || value.contains('\0'))
        {
            return Err(ApiError::OAuth {
                status: axum::http::StatusCode::BAD_REQUEST,
                code: "invalid_request",
                description: format!(
                    "`{}` must not contain U+0000 (NUL)",
                    field.replace('\0', "\\u0000")
                ),
            });
        }
        let request = Request::from_parts(parts, axum::body::Body::from(body));
        match axum::Form::<T>::from_request(request, state).await {
            Ok(axum::Form(value)) => Ok(Self(value)),
            Err(FormRejection::InvalidFormContentType(_)) => Err(ApiError::UnsupportedMediaType(
                "expected `Content-Type: application/x-www-form-urlencoded`".into(),
            )),
            Err(FormRejection::BytesRejection(error)) if error.status() == 413 => {
                Err(ApiError::PayloadTooLarge(super::BODY_LIMIT))
            }
            Err(rejection) => Err(ApiError::OAuth {
                status: axum::http::StatusCode::BAD_REQUEST,
                code: "invalid_request",
                description: rejection.body_text(),
            }),
        }
    }
}
