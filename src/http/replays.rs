//! Bulk replay (extensions beyond the seed API): select runs by trigger, project, provider, status
//! and time, and run them again in the background (`src/replayer.rs`); follow or cancel a replay.

use std::collections::HashSet;

use aggregates::event::Stamp;
use aggregates::{
    Actor, Replay, ReplayCommand, ReplayItem, ReplaySelection, ReplayState, RunStatus,
};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use projections::replays::ReplayView;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::Caller;
use super::error::responses::{
    Conflict, Forbidden, InternalError, InvalidField, NotFound, PayloadTooLarge, TooManyRequests,
    Unauthorized, Unavailable, UnsupportedMediaType,
};
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath};
use super::request_id::RequestId;
use super::runs::{cursor, page_limit, parse_cursor};
use super::AppState;
use crate::commands::READ_YOUR_WRITES_WAIT;
use crate::store::replay_views::{ReplaysAfter, RunSelection};
use crate::store::streams::EventMetadata;
use crate::store::StoreError;

/// The most runs one replay covers: its matched runs are recorded in its first event.
pub const MAX_REPLAY_RUNS: usize = 10_000;

/// Run ids a dry run lists.
const LISTED_RUNS: usize = 100;

/// The most trigger ids a selection names.
const MAX_TRIGGER_IDS: usize = 1_000;

/// Attempts at recording a cancel while the replayers record steps of the same replay.
const CANCEL_ATTEMPTS: usize = 5;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request_replay))
        .routes(routes!(list_replays))
        .routes(routes!(get_replay))
        .routes(routes!(cancel_replay))
}

/// The statuses of the runs a replay may select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplayableStatus {
    /// Waiting for a retry: retried now, in place.
    Failed,
    /// Out of attempts: retried in place.
    DeadLettered,
    /// Run again as a new run carrying the original payload and `replay_of`.
    Succeeded,
}

impl From<ReplayableStatus> for RunStatus {
    fn from(status: ReplayableStatus) -> Self {
        match status {
            ReplayableStatus::Failed => Self::Failed,
            ReplayableStatus::DeadLettered => Self::DeadLettered,
            ReplayableStatus::Succeeded => Self::Succeeded,
        }
    }
}

/// Which runs to replay: every part given must match.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Runs of these triggers (at most 1,000 ids, each one of the organisation's).
    #[serde(default)]
    pub trigger_ids: Option<Vec<Uuid>>,
    /// Runs of this project's triggers.
    #[serde(default)]
    pub project_id: Option<String>,
    /// Runs of this provider's triggers, e.g. `stripe`.
    #[serde(default)]
    pub provider_id: Option<String>,
    /// Runs in these statuses; default `failed` and `dead_lettered`.
    #[serde(default)]
    #[schema(min_items = 1)]
    pub statuses: Option<Vec<ReplayableStatus>>,
    /// Runs requested at or after this instant (RFC 3339).
    #[serde(default)]
    pub requested_from: Option<DateTime<Utc>>,
    /// Runs requested at or before this instant (RFC 3339).
    #[serde(default)]
    pub requested_to: Option<DateTime<Utc>>,
    /// Count the matching runs and list the first 100; record nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a dry run matched.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayPreview {
    pub dry_run: bool,
    /// Runs the selection matches (at most 10,000: a wider selection is refused).
    pub matched: usize,
    /// The first 100 of them, oldest first.
    pub run_ids: Vec<Uuid>,
}

/// The selection as the replay recorded it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Selection {
    pub trigger_ids: Vec<Uuid>,
    #[schema(required = true)]
    pub project_id: Option<String>,
    #[schema(required = true)]
    pub provider_id: Option<String>,
    pub statuses: Vec<ReplayableStatus>,
    #[schema(required = true)]
    pub requested_from: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub requested_to: Option<DateTime<Utc>>,
}

/// Where a replay stands.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplayStateName {
    /// Runs are being released, or some released ones have not finished.
    Running,
    /// Every matched run was released and has finished.
    Finished,
    /// Cancelled: runs not released by then never will be.
    Cancelled,
}

/// A bulk replay and its progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayResource {
    pub replay_id: Uuid,
    pub state: ReplayStateName,
    pub selection: Selection,
    /// Runs the selection matched when the replay was requested.
    pub matched: usize,
    /// Runs released so far (retried, or run again).
    pub released: usize,
    /// Released runs that have finished: `succeeded` plus `failed`.
    pub done: usize,
    pub succeeded: usize,
    /// Released runs that dead-lettered again (or whose trigger was deleted meanwhile).
    pub failed: usize,
    pub requested_at: DateTime<Utc>,
    /// Who asked for it: `user:<id>` or `api_key:<id>`.
    pub requested_by: String,
    /// Who cancelled it, for a cancelled replay; else `null`.
    #[schema(required = true)]
    pub cancelled_by: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl From<ReplayView> for ReplayResource {
    fn from(view: ReplayView) -> Self {
        let done = view.done();
        let selection = view.selection;
        Self {
            replay_id: view.replay_id,
            state: match view.state {
                ReplayState::Running => ReplayStateName::Running,
                ReplayState::Finished => ReplayStateName::Finished,
                ReplayState::Cancelled => ReplayStateName::Cancelled,
            },
            selection: Selection {
                trigger_ids: selection.trigger_ids,
                project_id: selection.project_id,
                provider_id: selection.provider_id,
                statuses: selection
                    .statuses
                    .into_iter()
                    .filter_map(|status| match status {
                        RunStatus::Failed => Some(ReplayableStatus::Failed),
                        RunStatus::DeadLettered => Some(ReplayableStatus::DeadLettered),
                        RunStatus::Succeeded => Some(ReplayableStatus::Succeeded),
                        _ => None,
                    })
                    .collect(),
                requested_from: selection.requested_from,
                requested_to: selection.requested_to,
            },
            matched: view.matched,
            released: view.released,
            done,
            succeeded: view.succeeded,
            failed: view.failed,
            requested_at: view.requested_at,
            requested_by: view.requested_by.to_string(),
            cancelled_by: view.cancelled_by.map(|actor| actor.to_string()),
            updated_at: view.updated_at,
        }
    }
}

/// A page of replays, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayPage {
    pub replays: Vec<ReplayResource>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Replays per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200, default = 50)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(
        pattern = r"^-?[0-9]{1,15}\.[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    cursor: Option<String>,
}

/// Replay Runs
///
/// Selects the organisation's runs by trigger, project, provider, status (`failed`,
/// `dead_lettered`, `succeeded`; default the first two) and time requested, and replays them in
/// the background, in the caller's name: a failed or dead-lettered run is retried in place, a
/// succeeded one is run again as a new run with the original payload and `replay_of`. The
/// matched runs are fixed now (at most 10,000); each is replayed at most once by this replay,
/// at the executor's pace. `dry_run` answers the count and the first 100 run ids, recording
/// nothing.
#[utoipa::path(
    post,
    path = "/runs/replay",
    operation_id = "replay_runs",
    tag = super::openapi::RUNS,
    security(("OAuth2PasswordBearer" = [])),
    request_body = ReplayRequest,
    responses(
        (status = 200, description = "A dry run: what the selection matches.", body = ReplayPreview),
        (status = 202, description = "The replay, under way.", body = ReplayResource,
            headers(("Location" = String, description = "`/replays/{replay_id}`"))),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
async fn request_replay(
    State(state): State<AppState>,
    Caller(caller): Caller,
    RequestId(request_id): RequestId,
    ApiJson(request): ApiJson<ReplayRequest>,
) -> Result<Response, ApiError> {
    let statuses: Vec<RunStatus> = match &request.statuses {
        Some(statuses) if statuses.is_empty() => {
            return Err(ApiError::invalid("statuses", "names at least one status"));
        }
        Some(statuses) => {
            let mut unique = Vec::new();
            for status in statuses {
                let status = RunStatus::from(*status);
                if !unique.contains(&status) {
                    unique.push(status);
                }
            }
            unique
        }
        None => vec![RunStatus::Failed, RunStatus::DeadLettered],
    };
    if let (Some(from), Some(to)) = (request.requested_from, request.requested_to) {
        if from > to {
            return Err(ApiError::invalid(
                "requested_from",
                "must not be after `requested_to`",
            ));
        }
    }
    let named = request.trigger_ids.clone().unwrap_or_default();
    if named.len() > MAX_TRIGGER_IDS {
        return Err(ApiError::invalid(
            "trigger_ids",
            format!("names at most {MAX_TRIGGER_IDS} triggers"),
        ));
    }
    // The organisation's live triggers the selection's trigger parts keep: every run matched
    // belongs to one, so no run of another organisation can be selected.
    let triggers = state.store.org_trigger_views(caller.org_id, None).await?;
    let own: HashSet<Uuid> = triggers
        .iter()
        .map(|view| view.record.project_trigger_id)
        .collect();
    if let Some(unknown) = named.iter().find(|id| !own.contains(id)) {
        return Err(ApiError::invalid(
            "trigger_ids",
            format!("{unknown} is not a trigger of this organisation"),
        ));
    }
    let trigger_ids: Vec<Uuid> = triggers
        .iter()
        .map(|view| &view.record)
        .filter(|record| named.is_empty() || named.contains(&record.project_trigger_id))
        .filter(|record| {
            request
                .project_id
                .as_ref()
                .is_none_or(|project| &record.project_id == project)
        })
        .filter(|record| {
            request
                .provider_id
                .as_ref()
                .is_none_or(|provider| &record.provider_id == provider)
        })
        .map(|record| record.project_trigger_id)
        .collect();
    let selected = state
        .store
        .selected_runs(
            &RunSelection {
                trigger_ids: &trigger_ids,
                statuses: &statuses,
                requested_from: request.requested_from,
                requested_to: request.requested_to,
            },
            MAX_REPLAY_RUNS + 1,
        )
        .await?;
    if selected.len() > MAX_REPLAY_RUNS {
        return Err(ApiError::invalid(
            "selection",
            format!(
                "matches more than {MAX_REPLAY_RUNS} runs: narrow it by time, trigger, project or \
                 provider"
            ),
        ));
    }
    if request.dry_run {
        return Ok(Json(ReplayPreview {
            dry_run: true,
            matched: selected.len(),
            run_ids: selected
                .iter()
                .take(LISTED_RUNS)
                .map(|view| view.record.run_id)
                .collect(),
        })
        .into_response());
    }
    if selected.is_empty() {
        return Err(ApiError::invalid("selection", "matches no run"));
    }
    let items = selected
        .iter()
        .map(|view| ReplayItem {
            run_id: view.record.run_id,
            project_trigger_id: view.record.firing.project_trigger_id,
            rerun: view.record.status == RunStatus::Succeeded,
        })
        .collect();
    let replay_id = Uuid::new_v4();
    let actor = Actor::User(caller.user_id);
    let events = Replay::default().decide(ReplayCommand::Request {
        replay_id,
        org_id: caller.org_id,
        selection: ReplaySelection {
            trigger_ids: named,
            project_id: request.project_id,
            provider_id: request.provider_id,
            statuses,
            requested_from: request.requested_from,
            requested_to: request.requested_to,
        },
        items,
        stamp: Stamp {
            at: Utc::now(),
            by: actor.clone(),
        },
    })?;
    let metadata = EventMetadata {
        actor,
        org_id: caller.org_id,
        request_id,
    };
    let position = state
        .store
        .append::<Replay>(replay_id, 0, &events, &metadata)
        .await?;
    state.runs.projections().wake();
    let view = visible(&state, replay_id, position).await?;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/replays/{replay_id}"))],
        Json(ReplayResource::from(view)),
    )
        .into_response())
}

/// The replay once the read model shows `position`.
async fn visible(state: &AppState, replay_id: Uuid, position: i64) -> Result<ReplayView, ApiError> {
    state
        .projections
        .wait_for(position, READ_YOUR_WRITES_WAIT)
        .await;
    state
        .store
        .replay_view(replay_id)
        .await?
        .ok_or_else(|| ApiError::Internal("the replay is not readable yet; try again".into()))
}

/// The caller's replay, or 404.
async fn own_replay(
    state: &AppState,
    org_id: Uuid,
    replay_id: Uuid,
) -> Result<ReplayView, ApiError> {
    state
        .store
        .replay_view(replay_id)
        .await?
        .filter(|view| view.org_id == org_id)
        .ok_or(ApiError::NotFound("replay"))
}

/// List Replays
///
/// The organisation's bulk replays, newest first.
#[utoipa::path(
    get,
    path = "/replays",
    operation_id = "list_replays",
    tag = super::openapi::RUNS,
    security(("OAuth2PasswordBearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of replays.", body = ReplayPage),
        (status = 401, response = Unauthorized),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
async fn list_replays(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ReplayPage>, ApiError> {
    let Query(query) =
        query.map_err(|rejection| ApiError::invalid("query", rejection.body_text()))?;
    let limit = page_limit(query.limit)?;
    let after =
        query
            .cursor
            .as_deref()
            .map(parse_cursor)
            .transpose()?
            .map(|(requested_at, replay_id)| ReplaysAfter {
                requested_at,
                replay_id,
            });
    let mut views = state
        .store
        .org_replays(caller.org_id, after, i64::from(limit) + 1)
        .await?;
    let next_cursor = if views.len() > limit as usize {
        views.truncate(limit as usize);
        views
            .last()
            .map(|last| cursor(&last.requested_at, last.replay_id))
    } else {
        None
    };
    Ok(Json(ReplayPage {
        replays: views.into_iter().map(ReplayResource::from).collect(),
        next_cursor,
    }))
}

/// Get Replay
///
/// A bulk replay: its selection, how many runs it matched, released and finished, and its state.
#[utoipa::path(
    get,
    path = "/replays/{replay_id}",
    operation_id = "get_replay",
    tag = super::openapi::RUNS,
    security(("OAuth2PasswordBearer" = [])),
    params(("replay_id" = Uuid, Path, description = "The replay's id.")),
    responses(
        (status = 200, description = "The replay.", body = ReplayResource),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
async fn get_replay(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(replay_id): ApiPath<Uuid>,
) -> Result<Json<ReplayResource>, ApiError> {
    let view = own_replay(&state, caller.org_id, replay_id).await?;
    Ok(Json(view.into()))
}

/// Cancel Replay
///
/// Stops a running replay: runs it has not released yet never will be; released runs carry on
/// to their end. 409 once it has finished or was cancelled.
#[utoipa::path(
    post,
    path = "/replays/{replay_id}/cancel",
    operation_id = "cancel_replay",
    tag = super::openapi::RUNS,
    security(("OAuth2PasswordBearer" = [])),
    params(("replay_id" = Uuid, Path, description = "The replay's id.")),
    responses(
        (status = 200, description = "The replay, cancelled.", body = ReplayResource),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
async fn cancel_replay(
    State(state): State<AppState>,
    Caller(caller): Caller,
    RequestId(request_id): RequestId,
    ApiPath(replay_id): ApiPath<Uuid>,
) -> Result<Json<ReplayResource>, ApiError> {
    own_replay(&state, caller.org_id, replay_id).await?;
    let actor = Actor::User(caller.user_id);
    let metadata = EventMetadata {
        actor: actor.clone(),
        org_id: caller.org_id,
        request_id,
    };
    for _ in 0..CANCEL_ATTEMPTS {
        let loaded = state.store.load::<Replay>(replay_id).await?;
        let events = loaded.state.decide(ReplayCommand::Cancel {
            stamp: Stamp {
                at: Utc::now(),
                by: actor.clone(),
            },
        })?;
        match state
            .store
            .append::<Replay>(replay_id, loaded.sequence, &events, &metadata)
            .await
        {
            Ok(position) => {
                state.runs.projections().wake();
                return Ok(Json(visible(&state, replay_id, position).await?.into()));
            }
            // A replayer recorded a step meanwhile: decide again on the newer state.
            Err(StoreError::Conflict) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(ApiError::Conflict(
        "the replay is changing too fast; try again".into(),
    ))
}
