//! Bearer authentication (RFC 6750): the caller's user, organisation and role, from its access
//! token; and authorisation, the role the request's method needs.
//!
//! The role is checked here, in the extractor every bearer-token handler takes, rather than in each
//! handler: a new write handler cannot forget it. What a request needs follows from its method
//! alone ([`required_role`]): reads are open to every role, anything else needs `member`. The
//! OpenAPI document states the same rule per operation (`x-required-role`), from the same function.

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::Method;
use chrono::Utc;

use super::error::ApiError;
use super::AppState;
use crate::identity::{Principal, Role};

/// The authenticated caller. Handlers that take it answer 401 to anyone without a valid token,
/// 429 once the caller's organisation is over its rate limit, and 403 when the caller's role is
/// below what the request's method needs ([`required_role`]), before anything is read or written.
pub struct Caller(pub Principal);

/// The least role a request with `method` needs. GET (and HEAD, which axum serves with the GET
/// handler) only reads, so every role may; every other method changes something, which the
/// `auditor` role may not. The few operations for administrators alone are listed in
/// [`ADMIN_ONLY`].
pub fn required_role(method: &Method) -> Role {
    if method == Method::GET || method == Method::HEAD {
        Role::Auditor
    } else {
        Role::Member
    }
}

/// The routes open to a set of roles rather than to a role and those above it.
/// `GET /log/verify` reads the whole global log (every organisation's positions): it is for
/// auditors and administrators, not for members going about their work.
const AUDIT_ONLY: &[&str] = &["/log/verify"];

/// The routes for administrators alone. `GET /executor/status` describes the engine process, not
/// an organisation: its targets are the operator's configuration.
const ADMIN_ONLY: &[&str] = &["/executor/status"];

/// The roles that may call `method` on the route `path` (its template, e.g.
/// `/triggers/{project_trigger_id}`): the one place both the check and the document read.
pub fn allowed_roles(method: &Method, path: &str) -> Vec<Role> {
    if AUDIT_ONLY.contains(&path) {
        return vec![Role::Auditor, Role::Admin];
    }
    if ADMIN_ONLY.contains(&path) {
        return vec![Role::Admin];
    }
    let required = required_role(method);
    Role::ALL
        .into_iter()
        .filter(|role| role.allows(required))
        .collect()
}

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
        let path = parts
            .extensions
            .get::<MatchedPath>()
            .map_or_else(|| parts.uri.path(), MatchedPath::as_str);
        let allowed = allowed_roles(&parts.method, path);
        if !allowed.contains(&principal.role) {
            return Err(ApiError::Forbidden {
                role: principal.role,
                allowed,
            });
        }
        Ok(Self(principal))
    }
}
