//! `POST /token`: the OAuth2 resource owner password credentials grant (RFC 6749 §4.3), rate
//! limited per client address and username to slow password guessing.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::responses::{
    InternalError, OAuthError, PayloadTooLarge, TooManyRequests, Unavailable, UnsupportedMediaType,
};
use super::error::ApiError;
use super::extract::ApiForm;
use super::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(token))
}

/// An access token request with the resource owner's password (RFC 6749 §4.3.2). The fields are
/// optional here so that a missing one is answered `invalid_request` by the handler, as RFC 6749
/// §5.2 wants, rather than by the form extractor; the schema says what a valid request holds.
#[derive(Deserialize, ToSchema)]
struct TokenRequest {
    /// `password`, the only grant supported.
    #[schema(value_type = String, required = true, example = "password")]
    grant_type: Option<String>,
    /// The user's email address.
    #[schema(value_type = String, required = true, example = "me@example.com")]
    username: Option<String>,
    #[schema(value_type = String, required = true, format = Password)]
    password: Option<String>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Serialize, ToSchema)]
struct TokenResponse {
    /// The bearer token to send as `Authorization: Bearer <access_token>`.
    access_token: String,
    /// Always `bearer`.
    #[schema(example = "bearer")]
    token_type: &'static str,
    /// Seconds until the token expires.
    #[schema(example = 3600)]
    expires_in: u64,
}

/// Issue Access Token
///
/// The OAuth2 resource owner password credentials grant (RFC 6749 §4.3): a user's email and
/// password for a bearer token that the trigger endpoints accept. Attempts are limited per client
/// address and username: over the limit the answer is 429, whether the password is right or not.
#[utoipa::path(
    post,
    path = "/token",
    operation_id = "issue_access_token",
    tag = super::openapi::AUTH,
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The access token.", body = TokenResponse,
            headers(("Cache-Control" = String, description = "`no-store` (RFC 6749 §5.1)"))),
        (status = 400, response = OAuthError),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
#[tracing::instrument(skip_all)]
async fn token(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    ApiForm(request): ApiForm<TokenRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let invalid_request = |description: &str| ApiError::OAuth {
        status: StatusCode::BAD_REQUEST,
        code: "invalid_request",
        description: description.to_owned(),
    };
    match request.grant_type.as_deref() {
        Some("password") => {}
        Some(_) => {
            return Err(ApiError::OAuth {
                status: StatusCode::BAD_REQUEST,
                code: "unsupported_grant_type",
                description: "only grant_type=password is supported".into(),
            })
        }
        None => return Err(invalid_request("missing grant_type")),
    }
    let username = request
        .username
        .ok_or_else(|| invalid_request("missing username"))?;
    let password = request
        .password
        .ok_or_else(|| invalid_request("missing password"))?;
    // Before the password is hashed: a refused guess costs us nothing and tells nothing.
    state.rate_limits.check_token(client.ip(), &username)?;
    let issued = state
        .identity
        .password_grant(&username, &password, Utc::now())
        .await?;
    Ok((
        StatusCode::OK,
        // RFC 6749 §5.1: token responses must not be cached.
        [("cache-control", "no-store")],
        Json(TokenResponse {
            access_token: issued.access_token,
            token_type: "bearer",
            expires_in: issued.expires_in,
        }),
    ))
}
