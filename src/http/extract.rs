//! Extractors whose rejections are [`ApiError`]s, so a malformed request gets the same
//! problem+json shape as every other error, naming what was wrong.

use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body. Wrong media type: 415; over the limit: 413; syntax or shape errors: 422 with the
/// path of the offending field.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
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
