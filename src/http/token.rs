//! `POST /token`: the OAuth2 resource owner password credentials grant (RFC 6749 §4.3), rate
//! limited per client address and username to slow password guessing.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::ApiForm;
use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/token", post(token))
}

#[derive(Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

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
