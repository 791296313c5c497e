//! The tamper-evident log for auditors: `GET /log/head` (the latest position and its hash, to note
//! and later check) and `GET /log/verify` (the chain recomputed over a bounded range).
//!
//! The log is every organisation's, so these answer positions, hashes and a verdict only, never
//! an event's content.

use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::error::responses::{
    InternalError, InvalidField, TooManyRequests, Unauthorized, Unavailable,
};
use super::error::ApiError;
use super::AppState;
use crate::store::chain::{Break, BreakReason};

/// The most positions one `GET /log/verify` recomputes: 10,000 events read in ten pages take a
/// fraction of a second, so a request cannot hold a connection and a core for long. A whole
/// log is verified in ranges, or with `trigger-engine log verify`.
const MAX_RANGE: i64 = 10_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(head))
        .routes(routes!(verify))
}

/// The last position of the global log and the hash of the event there.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogHead {
    /// 0 for an empty log.
    pub position: i64,
    /// SHA-256, 64 lower-case hexadecimal digits; 64 zeros for an empty log.
    pub hash: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// The first position to recompute (default 1); the hash stored before it is taken as given.
    #[param(minimum = 1)]
    from: Option<i64>,
    /// The last position to recompute (default: 9,999 after `from`). A request checks at most
    /// 10,000 positions and stops at the head: the answer's `to` says where it stopped.
    #[param(minimum = 1)]
    to: Option<i64>,
}

/// Whether the chain holds over `from..=to`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogVerdict {
    pub from: i64,
    /// The end of the range: the one asked for, or the head if it comes first.
    pub to: i64,
    pub holds: bool,
    /// The last position found to hold (`from - 1` when none did).
    pub verified_to: i64,
    /// The recomputed hash at `verified_to`: compare it with a head recorded there.
    pub hash: String,
    /// The first position that does not match; `null` when the chain holds.
    #[schema(required = true)]
    pub broken: Option<LogBreak>,
}

/// The first position that does not match, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogBreak {
    pub position: i64,
    pub reason: LogBreakReason,
}

/// Why a position does not match.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogBreakReason {
    /// No event holds the position, though the log goes beyond it: deleted.
    Missing,
    /// The stored hash does not follow from the event and its predecessor: edited, moved,
    /// swapped or inserted.
    Altered,
    /// The event has no hash: written without the engine.
    Unchained,
    /// The head row names another last position or hash.
    HeadDiffers,
    /// Not the hash recorded.
    NotAsRecorded,
}

impl From<Break> for LogBreak {
    fn from(broken: Break) -> Self {
        Self {
            position: broken.position,
            reason: match broken.reason {
                BreakReason::Missing => LogBreakReason::Missing,
                BreakReason::Altered => LogBreakReason::Altered,
                BreakReason::Unchained => LogBreakReason::Unchained,
                BreakReason::HeadDiffers => LogBreakReason::HeadDiffers,
                BreakReason::NotAsRecorded => LogBreakReason::NotAsRecorded,
            },
        }
    }
}

/// Get Log Head
///
/// The last position of the global log and its hash. Note both: a later `GET /log/verify` (or
/// `trigger-engine log verify --expect POSITION:HASH`) proves that nothing up to there changed.
#[utoipa::path(
    get,
    path = "/log/head",
    operation_id = "get_log_head",
    tag = super::openapi::OPERATIONS,
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 200, description = "The log head.", body = LogHead),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
#[tracing::instrument(skip_all)]
async fn head(
    State(state): State<AppState>,
    // roles: auditor or admin, once user roles land (issue 12).
    Caller(_caller): Caller,
) -> Result<Json<LogHead>, ApiError> {
    let head = state.store.chain_head().await?;
    Ok(Json(LogHead {
        position: head.position,
        hash: hex::encode(head.hash),
    }))
}

/// Verify Log
///
/// Recomputes the chain of hashes over a range (at most 10,000 positions a request; the answer's
/// `to` says where it stopped) and names the first position that does not match.
#[utoipa::path(
    get,
    path = "/log/verify",
    operation_id = "verify_log",
    tag = super::openapi::OPERATIONS,
    security(("OAuth2PasswordBearer" = [])),
    params(RangeQuery),
    responses(
        (status = 200, description = "The verdict: `holds`, or the first position that does not match.", body = LogVerdict),
        (status = 401, response = Unauthorized),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
#[tracing::instrument(skip_all)]
async fn verify(
    State(state): State<AppState>,
    // roles: auditor or admin, once user roles land (issue 12).
    Caller(_caller): Caller,
    query: Result<Query<RangeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<LogVerdict>, ApiError> {
    let Query(query) =
        query.map_err(|rejection| ApiError::invalid("query", rejection.body_text()))?;
    let from = query.from.unwrap_or(1);
    if from < 1 {
        return Err(ApiError::invalid("from", "must be at least 1"));
    }
    let to = query.to.unwrap_or(from.saturating_add(MAX_RANGE - 1));
    if to < from {
        return Err(ApiError::invalid("to", "must not be below `from`"));
    }
    // A longer range is cut, not refused: the answer's `to` says where this request stopped,
    // and the next one starts after it.
    let to = to.min(from.saturating_add(MAX_RANGE - 1));
    // Nothing beyond the head exists yet to be verified: the answer's `to` says how far it went.
    let head = state.store.chain_head().await?.position;
    if from > head + 1 {
        return Err(ApiError::invalid(
            "from",
            format!("lies beyond the log's head, {head}"),
        ));
    }
    let to = to.min(head);
    let verdict = state.store.verify_chain(from, Some(to)).await?;
    Ok(Json(LogVerdict {
        from,
        to,
        holds: verdict.broken.is_none(),
        verified_to: verdict.to,
        hash: hex::encode(verdict.hash),
        broken: verdict.broken.map(LogBreak::from),
    }))
}
