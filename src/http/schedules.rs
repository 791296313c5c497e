//! Schedule triggers over HTTP: the next fire times of one and firing the slots of a past range
//! (extensions), and the seed's deprecated URL that fires one now.

use aggregates::event::Stamp;
use aggregates::schedule::Schedule;
use aggregates::{Actor, Firing, RunCause, TriggerStatus};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Datelike;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::Caller;
use super::error::responses::{
    Conflict, Forbidden, Gone, InternalError, InvalidApiKey, InvalidField, NotFound,
    PayloadTooLarge, TooManyRequests, Unauthorized, Unavailable, UnsupportedMediaType,
};
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath};
use super::request_id::RequestId;
use super::webhooks::{mark_deprecated, verify_org_key};
use super::AppState;
use crate::catalogue::Catalogue;
use crate::providers::ProviderId;
use crate::runs::{Fired, Runs};
use crate::scheduler::PROVIDER;

/// The most slots one backfill fires: 10,000 runs are recorded in a few seconds, and a wider
/// range is backfilled in several requests.
const MAX_BACKFILL_SLOTS: usize = 10_000;

/// Run ids listed in a backfill's answer.
const LISTED_RUNS: usize = 100;

/// Slots recorded per commit by a backfill.
const BACKFILL_CHUNK: usize = 250;

/// How long a backfill's answer waits for the read model to show its runs.
const READ_YOUR_WRITES_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Fire times shown unless the caller asks for another number, and the most shown.
const DEFAULT_COUNT: usize = 5;
const MAX_COUNT: usize = 100;

// The key URL is served on purpose: its handler is `#[deprecated]` so that utoipa marks the
// operation deprecated in the document.
#[allow(deprecated)]
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upcoming))
        .routes(routes!(backfill))
        .routes(routes!(fire_with_api_key))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CountQuery {
    /// How many fire times, 1 to 100 (default 5).
    // The bounds are MAX_COUNT's, repeated because the attribute takes literals only; the API
    // tests hold the document and the validation to the same edges.
    #[param(minimum = 1, maximum = 100, default = 5)]
    count: Option<usize>,
    /// List the fire times after this instant (RFC 3339) instead of after now: to look ahead at
    /// a daylight-saving change, say.
    after: Option<DateTime<Utc>>,
}

/// A schedule's next fire times.
#[derive(Debug, Serialize, ToSchema)]
pub struct Upcoming {
    pub project_trigger_id: Uuid,
    /// Whether the trigger is enabled: the times are when it fires if it is (or is enabled now).
    pub enabled: bool,
    /// The IANA time zone the cron fields are read in; `null` for intervals and one-offs.
    #[schema(required = true)]
    pub timezone: Option<String>,
    pub next: Vec<FireTime>,
}

/// One slot.
#[derive(Debug, Serialize, ToSchema)]
pub struct FireTime {
    /// The instant, in UTC.
    pub at: DateTime<Utc>,
    /// The same instant on the schedule's wall clock (RFC 3339 with its offset).
    pub local: String,
    /// Set when daylight saving moves or merges this slot: the wall-clock time does not exist
    /// that day (fires at the first valid instant) or occurs twice (fires once, at the first).
    #[schema(required = true)]
    pub note: Option<String>,
}

/// Get Trigger Schedule
///
/// The next fire times of a `schedule/on_schedule` trigger, with notes where daylight saving
/// moves one.
#[utoipa::path(
    get,
    path = "/triggers/{project_trigger_id}/schedule",
    operation_id = "get_trigger_schedule",
    tag = super::openapi::TRIGGERS,
    security(("OAuth2PasswordBearer" = [])),
    params(("project_trigger_id" = Uuid, Path, description = "The trigger's id."), CountQuery),
    responses(
        (status = 200, description = "The next fire times.", body = Upcoming),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
async fn upcoming(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<Uuid>,
    query: Result<Query<CountQuery>, QueryRejection>,
) -> Result<Json<Upcoming>, ApiError> {
    let Query(query) =
        query.map_err(|rejection| ApiError::invalid("query", rejection.body_text()))?;
    let count = query.count.unwrap_or(DEFAULT_COUNT);
    if !(1..=MAX_COUNT).contains(&count) {
        return Err(ApiError::invalid(
            "count",
            format!("must be between 1 and {MAX_COUNT}"),
        ));
    }
    let record = state
        .store
        .trigger_view(id)
        .await?
        .map(|view| view.record)
        .filter(|record| record.org_id == caller.org_id && !record.is_deleted())
        .filter(|record| ProviderId::of(&record.provider_id) == Some(PROVIDER))
        .ok_or(ApiError::NotFound("schedule trigger"))?;
    let config = record.trigger_config.clone().unwrap_or(Value::Null);
    let schedule = Schedule::from_config(&config)
        .map_err(|error| ApiError::Internal(format!("stored schedule unreadable: {error}")))?;
    let now = Utc::now();
    let enabled = record.status == TriggerStatus::Enabled;
    let anchor = match (enabled, record.enabled_at) {
        (true, Some(at)) => at,
        _ => now,
    };
    let timezone = config
        .get("timezone")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| config.get("cron").map(|_| "UTC".to_owned()));
    let zone: chrono_tz::Tz = timezone
        .as_deref()
        .and_then(|name| name.parse().ok())
        .unwrap_or(chrono_tz::UTC);
    let next = schedule
        .upcoming(query.after.unwrap_or(now), anchor, count)
        .into_iter()
        // RFC 3339 has four-digit years: a long interval's slots past 9999 cannot be written as
        // the `date-time` the document promises, and no one waits for them.
        .take_while(|slot| slot.at.year() <= 9999)
        .map(|slot| FireTime {
            at: slot.at,
            local: slot.at.with_timezone(&zone).to_rfc3339(),
            note: slot.note.map(|note| note.describe()),
        })
        .collect();
    Ok(Json(Upcoming {
        project_trigger_id: id,
        enabled,
        timezone,
        next,
    }))
}

/// Which past slots to fire.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    /// The first instant of the range (RFC 3339); a slot at exactly this instant is included.
    pub from: DateTime<Utc>,
    /// The last instant of the range, included; not in the future (future slots fire by themselves).
    pub to: DateTime<Utc>,
    /// Count the slots and the runs they would start, and record nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a backfill fired.
#[derive(Debug, Serialize, ToSchema)]
pub struct Backfill {
    pub project_trigger_id: Uuid,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub dry_run: bool,
    /// The schedule's slots in the range.
    pub slots: usize,
    /// Slots fired now (or, in a dry run, that would be): each a new run.
    pub fired: usize,
    /// Slots that had fired before: their runs are left as they are.
    pub already_fired: usize,
    /// The runs of the first 100 slots fired (in a dry run, that would be), oldest slot first.
    pub run_ids: Vec<Uuid>,
}

/// Backfill Trigger Schedule
///
/// Fires every slot of an enabled schedule trigger in `from`..`to` (both included, at most 10,000
/// slots, none in the future), in the caller's name. A slot's run id is the slot's own, so a slot
/// that already fired (on time, caught up, or by an earlier backfill) is not fired again, and
/// repeating a backfill fires nothing new. Backfilled runs are explicit requests: the trigger's
/// `overlap` policy does not apply to them; a paused trigger's are held. `dry_run` counts and
/// records nothing.
#[utoipa::path(
    post,
    path = "/triggers/{project_trigger_id}/schedule/backfill",
    operation_id = "backfill_trigger_schedule",
    tag = super::openapi::TRIGGERS,
    security(("OAuth2PasswordBearer" = [])),
    params(("project_trigger_id" = Uuid, Path, description = "The schedule trigger's id.")),
    request_body = BackfillRequest,
    responses(
        (status = 200, description = "The slots fired, or that a dry run would fire.", body = Backfill),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
async fn backfill(
    State(state): State<AppState>,
    Caller(caller): Caller,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(request): ApiJson<BackfillRequest>,
) -> Result<Json<Backfill>, ApiError> {
    let now = Utc::now();
    if request.to > now {
        return Err(ApiError::invalid(
            "to",
            "must not be in the future: future slots fire by themselves",
        ));
    }
    if request.from > request.to {
        return Err(ApiError::invalid("from", "must not be after `to`"));
    }
    let record = state
        .store
        .trigger_view(id)
        .await?
        .map(|view| view.record)
        .filter(|record| record.org_id == caller.org_id && !record.is_deleted())
        .filter(|record| ProviderId::of(&record.provider_id) == Some(PROVIDER))
        .ok_or(ApiError::NotFound("schedule trigger"))?;
    if record.status != TriggerStatus::Enabled {
        return Err(ApiError::Conflict(
            "the trigger is disabled: enable it to backfill its schedule".into(),
        ));
    }
    let config = record.trigger_config.clone().unwrap_or(Value::Null);
    let schedule = Schedule::from_config(&config)
        .map_err(|error| ApiError::Internal(format!("stored schedule unreadable: {error}")))?;
    let anchor = record.enabled_at.unwrap_or(record.updated_at);
    // `between` is (from, to]: start a nanosecond early so a slot at `from` itself is included.
    let slots = schedule.between(
        request.from - chrono::Duration::nanoseconds(1),
        request.to,
        anchor,
        MAX_BACKFILL_SLOTS + 1,
    );
    if slots.len() > MAX_BACKFILL_SLOTS {
        return Err(ApiError::invalid(
            "to",
            format!(
                "the range holds more than {MAX_BACKFILL_SLOTS} slots: backfill it in narrower ranges"
            ),
        ));
    }
    let shown = Catalogue::builtin()
        .find(&record.provider_id, &record.trigger_id)
        .map_or(Value::Null, |definition| definition.redact(&config));
    let firing_of = |at: DateTime<Utc>| {
        Firing::of(
            &record,
            RunCause::ScheduleSlot { at },
            json!({"scheduled_at": at, "fired_at": now, "schedule": shown, "backfill": true}),
            now,
        )
    };
    let slot_runs: Vec<(DateTime<Utc>, Uuid)> = slots
        .iter()
        .map(|slot| {
            let cause = RunCause::ScheduleSlot { at: slot.at };
            (slot.at, aggregates::run_id(id, &cause))
        })
        .collect();
    let ids: Vec<Uuid> = slot_runs.iter().map(|(_, run_id)| *run_id).collect();
    let existing = state.store.existing_runs(&ids).await?;
    let missing: Vec<(DateTime<Utc>, Uuid)> = slot_runs
        .iter()
        .filter(|(_, run_id)| !existing.contains(run_id))
        .copied()
        .collect();
    let stamp = Stamp {
        at: now,
        by: Actor::User(caller.user_id),
    };
    let mut fired = Vec::new();
    let mut last_position = None;
    if request.dry_run {
        fired = missing.iter().map(|(_, run_id)| *run_id).collect();
    } else {
        for chunk in missing.chunks(BACKFILL_CHUNK) {
            let mut appends = Vec::with_capacity(chunk.len());
            for (at, _) in chunk {
                let (_, append) =
                    Runs::request(firing_of(*at), stamp.clone(), record.paused, &request_id)?;
                appends.push(append);
            }
            match state.store.append_together(appends).await {
                Ok(positions) => {
                    last_position = positions.last().copied().or(last_position);
                    fired.extend(chunk.iter().map(|(_, run_id)| *run_id));
                }
                // One of them fired meanwhile (the scheduler, another backfill): one by one, each
                // append is its own dedupe.
                Err(crate::store::StoreError::Conflict) => {
                    for (at, _) in chunk {
                        let fire = state.runs.fire(
                            firing_of(*at),
                            stamp.clone(),
                            record.paused,
                            &request_id,
                        );
                        if let Fired::New { run_id, position } = fire.await? {
                            fired.push(run_id);
                            last_position = Some(position);
                        }
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
        state.runs.projections().wake();
    }
    if let Some(position) = last_position {
        state
            .projections
            .wait_for(position, READ_YOUR_WRITES_WAIT)
            .await;
    }
    Ok(Json(Backfill {
        project_trigger_id: id,
        from: request.from,
        to: request.to,
        dry_run: request.dry_run,
        slots: slots.len(),
        fired: fired.len(),
        already_fired: slots.len() - fired.len(),
        run_ids: fired.into_iter().take(LISTED_RUNS).collect(),
    }))
}

/// Scheduled Trigger
///
/// Deprecated: schedules fire by themselves. Fires the schedule trigger now, authorised by an API
/// key of the organisation in the path. Answers carry `Deprecation: true`.
#[utoipa::path(
    post,
    path = "/organizations/{org_id}/triggers/{project_trigger_id}/scheduled/key/{api_key}",
    operation_id = "scheduled_trigger",
    tag = super::openapi::TRIGGERS,
    params(
        ("org_id" = Uuid, Path, description = "The trigger's organisation."),
        ("project_trigger_id" = Uuid, Path, description = "The schedule trigger to fire."),
        ("api_key" = String, Path, description = "An API key of the organisation."),
    ),
    responses(
        (status = 204, description = "Fired.",
            headers(("Deprecation" = String, description = "`true`: this URL is deprecated"),
                ("Link" = String, description = "The successor: `</triggers/{project_trigger_id}/schedule>; rel=\"successor-version\"`"))),
        (status = 401, response = InvalidApiKey),
        (status = 404, response = NotFound),
        (status = 410, response = Gone),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
#[deprecated = "schedules fire by themselves"]
async fn fire_with_api_key(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    ApiPath((org_id, id, api_key)): ApiPath<(Uuid, Uuid, String)>,
) -> Result<Response, ApiError> {
    let key_id = verify_org_key(&state, org_id, &api_key).await?;
    let record = state
        .store
        .trigger_view(id)
        .await?
        .map(|view| view.record)
        .filter(|record| {
            record.org_id == org_id && ProviderId::of(&record.provider_id) == Some(PROVIDER)
        })
        .ok_or(ApiError::NotFound("schedule trigger"))?;
    if record.is_deleted() {
        return Err(ApiError::Gone("trigger"));
    }
    if record.status != TriggerStatus::Enabled {
        return Err(ApiError::NotFound("enabled trigger"));
    }
    state.rate_limits.check_webhook(id)?;
    let now = Utc::now();
    let config = record.trigger_config.clone().unwrap_or(Value::Null);
    let shown = Catalogue::builtin()
        .find(&record.provider_id, &record.trigger_id)
        .map_or(Value::Null, |definition| definition.redact(&config));
    let firing = Firing::of(
        &record,
        RunCause::ScheduleSlot { at: now },
        json!({"scheduled_at": now, "fired_at": now, "schedule": shown, "manual": true}),
        now,
    );
    let stamp = Stamp {
        at: now,
        by: Actor::ApiKey(key_id),
    };
    state
        .runs
        .fire(firing, stamp, record.paused, &request_id)
        .await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    mark_deprecated(&mut response, &format!("/triggers/{id}/schedule"));
    Ok(response)
}
