//! A trigger's runs (extensions beyond the seed API): list them, retry a failed one; and the seed's
//! test samples, which are the payloads of the latest runs.

use aggregates::event::Stamp;
use aggregates::{Actor, RunCause, RunCommand, RunStatus};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use projections::runs::RunView;
use projections::triggers::TriggerView;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::Caller;
use super::error::responses::{
    Conflict, InternalError, InvalidField, NotFound, TooManyRequests, Unauthorized, Unavailable,
};
use super::error::ApiError;
use super::extract::ApiPath;
use super::request_id::RequestId;
use super::AppState;
use crate::catalogue::Catalogue;
use crate::commands::READ_YOUR_WRITES_WAIT;
use crate::identity::Principal;
use crate::store::run_views::RunsAfter;

/// Runs per page unless the caller asks for another size, and the most a page holds.
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;

/// Test samples shown at most.
const SAMPLES: i64 = 3;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(retry))
        .routes(routes!(test_samples))
}

/// One firing of a trigger and where its delivery to the executor stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct Run {
    /// Derived from the trigger and the cause: the same delivery always names the same run. It
    /// is also the idempotency key the executor receives.
    pub run_id: Uuid,
    pub project_trigger_id: Uuid,
    pub project_id: String,
    pub status: RunStatusName,
    /// Attempts started so far.
    pub attempts: u32,
    /// Why the last attempt failed; `null` once one succeeds.
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// When the next attempt is due; `null` while one runs and once the run has finished.
    #[schema(required = true)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// What fired it: `delivery` (with the provider's delivery key), `schedule_slot`,
    /// `polled_item`, or `replay` (a bulk replay ran a succeeded run again).
    #[schema(value_type = Object)]
    pub cause: RunCause,
    /// The run this one replays, for a run a bulk replay started; else `null`.
    #[schema(required = true)]
    pub replay_of: Option<Uuid>,
    /// Why it was skipped, for a `skipped` run; else `null`.
    #[schema(required = true)]
    pub skipped_because: Option<String>,
    /// When the engine received the firing.
    pub received_at: DateTime<Utc>,
    pub requested_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Where a run stands.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatusName {
    /// Waiting for its first attempt, or for a manual retry's.
    Requested,
    /// An attempt is under way.
    Running,
    Succeeded,
    /// The last attempt failed; another is due at `next_attempt_at`.
    Failed,
    /// Attempts are exhausted or the executor refused the run for good; only a retry revives it.
    DeadLettered,
    /// Fired while its trigger was paused: kept, not executed until the trigger resumes.
    Held,
    /// Never to be executed: a schedule slot its `overlap` policy skipped (`skipped_because`).
    Skipped,
}

impl From<RunStatus> for RunStatusName {
    fn from(status: RunStatus) -> Self {
        match status {
            RunStatus::Requested => Self::Requested,
            RunStatus::Running => Self::Running,
            RunStatus::Succeeded => Self::Succeeded,
            RunStatus::Failed => Self::Failed,
            RunStatus::DeadLettered => Self::DeadLettered,
            RunStatus::Held => Self::Held,
            RunStatus::Skipped => Self::Skipped,
        }
    }
}

impl From<RunView> for Run {
    fn from(view: RunView) -> Self {
        let record = view.record;
        Self {
            run_id: record.run_id,
            project_trigger_id: record.firing.project_trigger_id,
            project_id: record.firing.project_id,
            status: record.status.into(),
            attempts: record.attempts,
            last_error: record.last_error,
            next_attempt_at: record.next_attempt_at,
            replay_of: match record.firing.cause {
                RunCause::Replay { of, .. } => Some(of),
                _ => None,
            },
            skipped_because: record.skipped_because,
            cause: record.firing.cause,
            received_at: record.firing.received_at,
            requested_at: record.requested_at,
            updated_at: record.updated_at,
        }
    }
}

/// A page of runs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunPage {
    pub runs: Vec<Run>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Runs per page, 1 to 200 (default 50).
    // The bounds are MAX_PAGE's, repeated because the attribute takes literals only; the API
    // tests hold the document and the validation to the same edges.
    #[param(minimum = 1, maximum = 200, default = 50)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page: opaque, but declared by its shape (what
    /// `parse_cursor` reads) so that a client cannot build one the endpoint refuses.
    #[param(
        pattern = r"^-?[0-9]{1,15}\.[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    cursor: Option<String>,
}

/// The caller's live trigger, or 404.
async fn own_trigger(
    state: &AppState,
    caller: &Principal,
    id: Uuid,
) -> Result<TriggerView, ApiError> {
    state
        .store
        .trigger_view(id)
        .await?
        .filter(|view| view.record.org_id == caller.org_id && !view.record.is_deleted())
        .ok_or(ApiError::NotFound("trigger"))
}

/// Get Trigger Runs
///
/// The trigger's runs, newest first: each firing, its attempts, and its last error.
#[utoipa::path(
    get,
    path = "/triggers/{project_trigger_id}/runs",
    operation_id = "get_trigger_runs",
    tag = super::openapi::RUNS,
    security(("OAuth2PasswordBearer" = [])),
    params(("project_trigger_id" = Uuid, Path, description = "The trigger's id."), PageQuery),
    responses(
        (status = 200, description = "A page of runs.", body = RunPage),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<Uuid>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RunPage>, ApiError> {
    let Query(query) =
        query.map_err(|rejection| ApiError::invalid("query", rejection.body_text()))?;
    let limit = page_limit(query.limit)?;
    let after =
        query
            .cursor
            .as_deref()
            .map(parse_cursor)
            .transpose()?
            .map(|(requested_at, run_id)| RunsAfter {
                requested_at,
                run_id,
            });
    own_trigger(&state, &caller, id).await?;
    // One more than asked tells whether a next page exists.
    let mut views = state
        .store
        .trigger_runs(id, after, i64::from(limit) + 1)
        .await?;
    let next_cursor = if views.len() > limit as usize {
        views.truncate(limit as usize);
        views
            .last()
            .map(|last| cursor(&last.record.requested_at, last.record.run_id))
    } else {
        None
    };
    Ok(Json(RunPage {
        runs: views.into_iter().map(Run::from).collect(),
        next_cursor,
    }))
}

/// The page size asked for (default 50), or 422 naming `limit` outside 1 to 200: the runs' and
/// the replays' lists.
pub(super) fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        ));
    }
    Ok(limit)
}

/// `<epoch milliseconds>.<id>`: where a newest-first page ended, in the list's own order (the
/// runs' and the replays' lists).
pub(super) fn cursor(at: &DateTime<Utc>, id: Uuid) -> String {
    format!("{}.{id}", at.timestamp_millis())
}

/// The instant and id a [`cursor`] names; 422 naming `cursor` for anything else.
pub(super) fn parse_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let invalid = || ApiError::invalid("cursor", "is not a `next_cursor` this endpoint returned");
    let (millis, id) = cursor.split_once('.').ok_or_else(invalid)?;
    let millis = millis.parse::<i64>().map_err(|_| invalid())?;
    Ok((
        DateTime::from_timestamp_millis(millis).ok_or_else(invalid)?,
        Uuid::parse_str(id).map_err(|_| invalid())?,
    ))
}

/// Retry Run
///
/// Runs a failed or dead-lettered run again now, as a new attempt recorded in the caller's name.
/// The answer comes once reads show the run requested again.
#[utoipa::path(
    post,
    path = "/runs/{run_id}/retry",
    operation_id = "retry_run",
    tag = super::openapi::RUNS,
    security(("OAuth2PasswordBearer" = [])),
    params(("run_id" = Uuid, Path, description = "The run's id.")),
    responses(
        (status = 202, description = "The run, due again.", body = Run),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
async fn retry(
    State(state): State<AppState>,
    Caller(caller): Caller,
    RequestId(request_id): RequestId,
    ApiPath(run_id): ApiPath<Uuid>,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    let owned = state
        .store
        .run_view(run_id)
        .await?
        .filter(|view| view.record.firing.org_id == caller.org_id);
    if owned.is_none() {
        return Err(ApiError::NotFound("run"));
    }
    let actor = Actor::User(caller.user_id);
    let stamp = Stamp {
        at: Utc::now(),
        by: actor.clone(),
    };
    let position = state
        .runs
        .execute(
            run_id,
            RunCommand::Retry {
                stamp,
                replay_id: None,
            },
            &actor,
            &request_id,
        )
        .await?;
    if let Some(position) = position {
        state
            .projections
            .wait_for(position, READ_YOUR_WRITES_WAIT)
            .await;
    }
    let view = state
        .store
        .run_view(run_id)
        .await?
        .ok_or(ApiError::NotFound("run"))?;
    Ok((StatusCode::ACCEPTED, Json(Run::from(view))))
}

/// Get Trigger Test Samples
///
/// Get test samples for a trigger: the payloads of its latest runs (up to 3, newest first), or,
/// before it has fired, the catalogue's sample for its provider and trigger. Reading them fires
/// nothing and moves no cursor.
#[utoipa::path(
    get,
    path = "/api/v0/project-triggers/{project_trigger_id}/test-samples",
    operation_id = "get_trigger_test_samples",
    tag = super::openapi::TRIGGERS,
    security(("OAuth2PasswordBearer" = [])),
    params(("project_trigger_id" = Uuid, Path, description = "The trigger's id.")),
    responses(
        (status = 200, description = "Sample payloads, newest first.", body = Vec<Object>),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
async fn test_samples(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let trigger = own_trigger(&state, &caller, id).await?.record;
    let recent = state.store.trigger_runs(id, None, SAMPLES).await?;
    if !recent.is_empty() {
        return Ok(Json(
            recent
                .into_iter()
                .map(|view| view.record.firing.payload)
                .collect(),
        ));
    }
    let sample = Catalogue::builtin()
        .find(&trigger.provider_id, &trigger.trigger_id)
        .map(|definition| definition.sample_payload.clone());
    Ok(Json(sample.into_iter().collect()))
}
