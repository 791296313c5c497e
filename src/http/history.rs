//! What happened to a trigger or a run, read from the log for auditors (extensions beyond the seed
//! API): each event with who caused it and through which request, and a trigger as it stood at
//! any moment. The same reading as `trigger-engine history`, over HTTP and scoped to the caller's
//! organisation, with secrets redacted as `GET /triggers/{id}` redacts them.

use aggregates::{Run as RunStream, Trigger as TriggerStream};
use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::Caller;
use super::error::responses::{
    InternalError, InvalidField, NotFound, TooManyRequests, Unauthorized, Unavailable,
};
use super::error::ApiError;
use super::extract::ApiPath;
use super::triggers::Trigger;
use super::AppState;
use crate::catalogue::{Catalogue, TriggerDefinition};
use crate::store::LoggedEvent;

/// Events per page unless the caller asks for another size, and the most a page holds.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 500;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(trigger_history))
        .routes(routes!(run_history))
}

/// One event of a stream, as an auditor reads it.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEvent {
    /// Its place in the global log (gaps are other streams' and organisations' events).
    pub position: i64,
    /// Its place in its own stream, from 1.
    pub sequence: i64,
    /// When it was committed.
    pub recorded_at: DateTime<Utc>,
    /// What happened, e.g. `TriggerCreated`, `RunAttemptFailed`.
    pub event_type: String,
    /// Who caused it: `user:<id>`, `api_key:<id>`, or `engine` for what the engine did itself.
    #[schema(required = true)]
    pub actor: Option<String>,
    /// The `x-request-id` of the request that caused it; `null` for the engine's own work.
    #[schema(required = true)]
    pub request_id: Option<String>,
    /// The event's fields; a trigger's `trigger_config` without its secrets.
    #[schema(value_type = Object)]
    pub data: Value,
}

/// A page of a trigger's history, and with `as_of` or `at_position` the trigger as it stood then.
#[derive(Debug, Serialize, ToSchema)]
pub struct TriggerHistory {
    pub project_trigger_id: Uuid,
    /// Oldest first; with `as_of` or `at_position`, only those up to that point.
    pub events: Vec<HistoryEvent>,
    /// Pass as `after_sequence` for the next page; `null` on the last one.
    #[schema(required = true)]
    pub next_after_sequence: Option<i64>,
    /// With `as_of` or `at_position`: the trigger as it stood then, in the shape of
    /// `GET /triggers/{id}`; `null` before it was created, and without either parameter.
    #[schema(required = true)]
    pub state: Option<Trigger>,
    /// With `state`: the position of the last event it includes.
    #[schema(required = true)]
    pub state_position: Option<i64>,
    /// With `state`: when the trigger had been deleted by then, else `null`.
    #[schema(required = true)]
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A page of a run's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunHistory {
    pub run_id: Uuid,
    /// Oldest first: requested, each attempt and its outcome, retries and who asked for them.
    pub events: Vec<HistoryEvent>,
    /// Pass as `after_sequence` for the next page; `null` on the last one.
    #[schema(required = true)]
    pub next_after_sequence: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Events per page, 1 to 500 (default 100).
    // MAX_PAGE's bounds, repeated as the attribute takes literals only.
    #[param(minimum = 1, maximum = 500, default = 100)]
    limit: Option<usize>,
    /// Only events after this stream sequence: the `next_after_sequence` of the previous page.
    #[param(minimum = 0)]
    after_sequence: Option<i64>,
    /// The trigger as it stood at this instant (RFC 3339): events committed at or before it.
    /// With `at_position` too, the earlier of the two points.
    as_of: Option<DateTime<Utc>>,
    /// The trigger as it stood once the log reached this position.
    #[param(minimum = 0)]
    at_position: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunHistoryQuery {
    /// Events per page, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500, default = 100)]
    limit: Option<usize>,
    /// Only events after this stream sequence: the `next_after_sequence` of the previous page.
    #[param(minimum = 0)]
    after_sequence: Option<i64>,
}

/// Get Trigger History
///
/// The trigger's events, oldest first, with who caused each and through which request; with
/// `as_of` or `at_position`, the trigger as it stood then. A deleted trigger's history stays
/// readable.
#[utoipa::path(
    get,
    path = "/triggers/{project_trigger_id}/history",
    operation_id = "get_trigger_history",
    tag = super::openapi::HISTORY,
    security(("OAuth2PasswordBearer" = [])),
    params(("project_trigger_id" = Uuid, Path, description = "The trigger's id."), HistoryQuery),
    responses(
        (status = 200, description = "A page of the trigger's history.", body = TriggerHistory),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
async fn trigger_history(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<Uuid>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TriggerHistory>, ApiError> {
    let Query(query) =
        query.map_err(|rejection| ApiError::invalid("query", rejection.body_text()))?;
    let limit = page_size(query.limit)?;
    non_negative("after_sequence", query.after_sequence)?;
    non_negative("at_position", query.at_position)?;
    // The read model keeps deleted triggers' records, so it tells the owner of either, and the
    // definition that says which config fields are secrets.
    let record = state
        .store
        .trigger_view(id)
        .await?
        .map(|view| view.record)
        .filter(|record| record.org_id == caller.org_id)
        .ok_or(ApiError::NotFound("trigger"))?;
    let definition = Catalogue::builtin().find(&record.provider_id, &record.trigger_id);
    let stream_id = id.to_string();
    let after_sequence = query.after_sequence.unwrap_or(0);

    let (mut stood, mut deleted_at, mut state_position) = (None, None, None);
    let (page, next_after_sequence) = if query.as_of.is_none() && query.at_position.is_none() {
        // Only the page is read: a polling trigger's stream grows by thousands of cursor moves.
        let events = state
            .store
            .stream_page(
                TriggerStream::TYPE,
                &stream_id,
                after_sequence,
                limit as i64 + 1,
            )
            .await?;
        let (page, next) = paged(&events.iter().collect::<Vec<_>>(), None, limit);
        (page.into_iter().cloned().collect::<Vec<_>>(), next)
    } else {
        // The state at a point needs every event up to it, folded as the aggregate does.
        let events = state
            .store
            .stream_history(TriggerStream::TYPE, &stream_id)
            .await?;
        // With both, the earlier of the two points: the events that are before each.
        let point = |event: &&LoggedEvent| {
            query.as_of.is_none_or(|as_of| event.recorded_at <= as_of)
                && query
                    .at_position
                    .is_none_or(|position| event.position <= position)
        };
        let upto: Vec<&LoggedEvent> = events.iter().take_while(point).collect();
        let mut trigger = TriggerStream::default();
        for event in &upto {
            if let Some(decoded) = event.trigger_event()? {
                trigger.apply(decoded);
            }
            state_position = Some(event.position);
        }
        if let Some(record) = trigger.record() {
            deleted_at = record.deleted_at;
            stood = Some(Trigger::from(record.clone()));
        }
        let (page, next) = paged(&upto, query.after_sequence, limit);
        (page.into_iter().cloned().collect::<Vec<_>>(), next)
    };
    let events = page
        .iter()
        .map(|event| history_event(event, redacted_trigger_data(event, definition)))
        .collect();
    Ok(Json(TriggerHistory {
        project_trigger_id: id,
        events,
        next_after_sequence,
        state: stood,
        state_position,
        deleted_at,
    }))
}

/// Get Run History
///
/// The run's events, oldest first: its request, each attempt and outcome, and retries with who
/// asked for them.
#[utoipa::path(
    get,
    path = "/runs/{run_id}/history",
    operation_id = "get_run_history",
    tag = super::openapi::HISTORY,
    security(("OAuth2PasswordBearer" = [])),
    params(("run_id" = Uuid, Path, description = "The run's id."), RunHistoryQuery),
    responses(
        (status = 200, description = "A page of the run's history.", body = RunHistory),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
async fn run_history(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<Uuid>,
    query: Result<Query<RunHistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RunHistory>, ApiError> {
    let Query(query) =
        query.map_err(|rejection| ApiError::invalid("query", rejection.body_text()))?;
    let limit = page_size(query.limit)?;
    non_negative("after_sequence", query.after_sequence)?;
    let owned = state
        .store
        .run_view(id)
        .await?
        .is_some_and(|view| view.record.firing.org_id == caller.org_id);
    if !owned {
        return Err(ApiError::NotFound("run"));
    }
    let events = state
        .store
        .stream_page(
            RunStream::TYPE,
            &id.to_string(),
            query.after_sequence.unwrap_or(0),
            limit as i64 + 1,
        )
        .await?;
    let (page, next_after_sequence) = paged(&events.iter().collect::<Vec<_>>(), None, limit);
    Ok(Json(RunHistory {
        run_id: id,
        events: page
            .into_iter()
            .map(|event| history_event(event, event_data(&event.payload)))
            .collect(),
        next_after_sequence,
    }))
}

fn page_size(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        ))
    }
}

fn non_negative(field: &str, value: Option<i64>) -> Result<(), ApiError> {
    match value {
        Some(value) if value < 0 => Err(ApiError::invalid(field, "must not be negative")),
        _ => Ok(()),
    }
}

/// The events after `after_sequence`, at most `limit`, and the sequence to continue after when
/// more follow.
fn paged<'a>(
    events: &[&'a LoggedEvent],
    after_sequence: Option<i64>,
    limit: usize,
) -> (Vec<&'a LoggedEvent>, Option<i64>) {
    let mut rest = events
        .iter()
        .copied()
        .filter(|event| event.sequence > after_sequence.unwrap_or(0));
    let page: Vec<&LoggedEvent> = rest.by_ref().take(limit).collect();
    let next = match (rest.next(), page.last()) {
        (Some(_), Some(last)) => Some(last.sequence),
        _ => None,
    };
    (page, next)
}

fn history_event(event: &LoggedEvent, data: Value) -> HistoryEvent {
    HistoryEvent {
        position: event.position,
        sequence: event.sequence,
        recorded_at: event.recorded_at,
        event_type: event.event_type.clone(),
        actor: event.meta("actor").map(str::to_owned),
        request_id: event.meta("request_id").map(str::to_owned),
        data,
    }
}

/// A stored payload is `{"<EventType>": {fields}}`; the fields are what an auditor reads.
pub(super) fn event_data(payload: &Value) -> Value {
    match payload {
        Value::Object(map) if map.len() == 1 => map.values().next().cloned().unwrap_or_default(),
        other => other.clone(),
    }
}

/// A trigger event's fields, its `trigger_config` (on create and on update) redacted by the
/// trigger's definition; without one (a definition the catalogue no longer has, an event that
/// does not read) the config is shown as `null` rather than risk a secret.
pub(super) fn redacted_trigger_data(
    event: &LoggedEvent,
    definition: Option<&TriggerDefinition>,
) -> Value {
    let mut data = event_data(&event.payload);
    if let Value::Object(fields) = &mut data {
        if let Some(config) = fields.get_mut("trigger_config") {
            *config = match (definition, &*config) {
                (_, Value::Null) => Value::Null,
                (Some(definition), config) => definition.redact(config),
                (None, _) => Value::Null,
            };
        }
    }
    data
}
