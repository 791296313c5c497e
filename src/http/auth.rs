//! Bearer authentication (RFC 6750): the caller's user and organisation, from its access token.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::Utc;

use super::error::ApiError;
use super::AppState;
use crate::identity::Principal;

/// The authenticated caller. Handlers that take it answer 401 to anyone without a valid token, and
/// 429 once the caller's organisation is over its rate limit.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or(ApiError::Unauthorized("missing bearer token"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|token| !token.is_empty())
            .ok_or(ApiError::Unauthorized(
                "expected `Authorization: Bearer <token>`",
            ))?;
        let principal = state.identity.verify_token(token, Utc::now())?;
        // Counted here, where the organisation is first known and before the handler reads the
        // body or writes anything: a refused request costs a signature check and nothing more.
        state.rate_limits.check_org(principal.org_id)?;
        Ok(Self(principal))
    }
}
