//! "Why didn't it fire?" (an extension beyond the seed API): every occurrence the engine saw or
//! expected for a trigger in a window, with what came of it and why.
//!
//! Read from three places: the log (the trigger's lifecycle and failed polls; its runs through the
//! run read model), the schedule itself (the slots it should have fired, matched to their runs by
//! the slot's run id), and the recent-outcomes store for what the log does not hold (rejected,
//! ignored, filtered, rate-limited, refused and duplicate deliveries; see `src/outcomes.rs`).

use std::collections::HashMap;

use aggregates::{RunCause, RunStatus, Schedule, Trigger as TriggerStream, TriggerEvent};
use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use projections::runs::RunView;
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
use super::AppState;
use crate::providers::ProviderId;
use crate::scheduler::CatchUp;
use crate::store::nodes::Uptime;
use crate::store::run_views::status_name;
use crate::store::LoggedEvent;

/// The window unless the caller gives one, and the widest one served.
const DEFAULT_WINDOW_HOURS: i64 = 24;
const MAX_WINDOW_DAYS: i64 = 31;

/// Occurrences per answer unless the caller asks for another number, and the most.
const DEFAULT_LIMIT: u32 = 500;
const MAX_LIMIT: u32 = 1_000;

/// A slot this recent that has not fired yet is due, not missed.
const DUE_GRACE: chrono::Duration = chrono::Duration::seconds(5);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(explain))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExplainQuery {
    /// The window's start (RFC 3339); default a day before `to`. At most 31 days before `to`.
    from: Option<DateTime<Utc>>,
    /// The window's end (RFC 3339); default now.
    to: Option<DateTime<Utc>>,
    /// Occurrences answered at most, 1 to 1000 (default 500), oldest first.
    #[param(minimum = 1, maximum = 1000, default = 500)]
    limit: Option<u32>,
}

/// What kind of occurrence it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OccurrenceKind {
    /// A webhook delivery.
    Delivery,
    /// A slot of the trigger's schedule.
    ScheduleSlot,
    /// An item a poll found.
    PolledItem,
    /// A poll (shown when it failed).
    Poll,
    /// A run a bulk replay started.
    Replay,
    /// A change to the trigger: created, enabled, disabled, config changed, paused, resumed,
    /// deleted.
    Lifecycle,
}

/// One occurrence and what came of it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Occurrence {
    pub at: DateTime<Utc>,
    pub kind: OccurrenceKind,
    /// `fired`, `held` (the trigger was paused), `skipped` (a schedule's overlap policy),
    /// `caught_up`, `backfilled`, `not_caught_up`, `missed`, `due`, `upcoming`, `duplicate`,
    /// `ignored`, `filtered`, `filter_error`, `rejected`, `rate_limited`, `refused` (the trigger
    /// was disabled), `poll_failed`, `auto_disabled`; for lifecycle changes `created`, `enabled`,
    /// `disabled`, `config_changed`, `paused`, `resumed`, `deleted`.
    pub outcome: String,
    /// Why, in words: the event type it saw, the filter's error, the signature's fault (never a
    /// secret or the body), the overlap, the catch-up policy, the poll's error.
    #[schema(required = true)]
    pub reason: Option<String>,
    /// The run it started, or the run a duplicate repeats.
    #[schema(required = true)]
    pub run_id: Option<Uuid>,
    /// Where that run stands now.
    #[schema(required = true)]
    pub run_status: Option<String>,
    /// Who caused it (lifecycle changes): `user:<id>`, `api_key:<id>`, `system:<part>`.
    #[schema(required = true)]
    pub actor: Option<String>,
}

/// Outcomes past the per-trigger cap (or recorded while the engine was behind): counted, not kept.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotKept {
    pub count: i64,
    pub since: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
}

/// A trigger's occurrences in a window, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Explanation {
    pub project_trigger_id: Uuid,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub occurrences: Vec<Occurrence>,
    /// More occurred than `limit`: narrow the window to see the rest.
    pub truncated: bool,
    /// Outcomes of this trigger the engine counted but did not keep; `null` when none.
    #[schema(required = true)]
    pub not_kept: Option<NotKept>,
}

/// Explain Trigger
///
/// Why a trigger fired or did not, in a window: each delivery (fired with its run, duplicate of a
/// run, ignored with the event it saw, filtered, filter error, signature rejected, rate limited,
/// refused while disabled, held while paused), each slot of a schedule (fired, skipped by
/// overlap, caught up, not caught up by the catch-up policy or because no engine process was
/// alive, and when the engine came back), each polled item and failed poll, and the trigger's
/// lifecycle changes with who made them. Outcomes the log does not record are kept for a while
/// (7 days, 1,000 a trigger by default); beyond that they are counted in `not_kept`.
#[utoipa::path(
    get,
    path = "/triggers/{project_trigger_id}/explain",
    operation_id = "explain_trigger",
    tag = super::openapi::TRIGGERS,
    security(("OAuth2PasswordBearer" = [])),
    params(("project_trigger_id" = Uuid, Path, description = "The trigger's id."), ExplainQuery),
    responses(
        (status = 200, description = "The window's occurrences, oldest first.", body = Explanation),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
async fn explain(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<Uuid>,
    query: Result<Query<ExplainQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Explanation>, ApiError> {
    let Query(query) =
        query.map_err(|rejection| ApiError::invalid("query", rejection.body_text()))?;
    let now = Utc::now();
    let to = query.to.unwrap_or(now);
    let from = query
        .from
        .unwrap_or(to - chrono::Duration::hours(DEFAULT_WINDOW_HOURS));
    if from > to {
        return Err(ApiError::invalid("from", "must not be after `to`"));
    }
    if to - from > chrono::Duration::days(MAX_WINDOW_DAYS) {
        return Err(ApiError::invalid(
            "from",
            format!("the window is at most {MAX_WINDOW_DAYS} days"),
        ));
    }
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let limit = limit as usize;
    let record = state
        .store
        .trigger_view(id)
        .await?
        .map(|view| view.record)
        .filter(|record| record.org_id == caller.org_id && !record.is_deleted())
        .ok_or(ApiError::NotFound("trigger"))?;

    let mut occurrences = Vec::new();
    let history = state
        .store
        .stream_history(TriggerStream::TYPE, &id.to_string())
        .await?;
    let enabled_spans = lifecycle(&history, from, to, &mut occurrences)?;

    let fetch = limit as i64 + 1;
    let runs = state
        .store
        .trigger_runs_between(id, from, to, fetch)
        .await?;
    for run in &runs {
        let kind = match run.record.firing.cause {
            RunCause::Delivery { .. } => OccurrenceKind::Delivery,
            RunCause::PolledItem { .. } => OccurrenceKind::PolledItem,
            RunCause::Replay { .. } => OccurrenceKind::Replay,
            // Slots are listed from the schedule, with their runs.
            RunCause::ScheduleSlot { .. } => continue,
        };
        occurrences.push(of_run(run.record.firing.received_at, kind, run));
    }

    if ProviderId::of(&record.provider_id) == Some(ProviderId::Schedule) {
        let config = record.trigger_config.clone().unwrap_or(Value::Null);
        if let Ok(schedule) = Schedule::from_config(&config) {
            let lease =
                chrono::Duration::from_std(state.node_lease).unwrap_or(chrono::Duration::MAX);
            let uptime = state.store.engine_uptime(from, now - lease).await?;
            let slots = SlotContext {
                schedule: &schedule,
                config: &config,
                anchor: record.enabled_at.unwrap_or(record.updated_at),
                now,
                uptime,
            };
            slots
                .explain(
                    &state,
                    id,
                    &enabled_spans,
                    from,
                    to,
                    limit,
                    &mut occurrences,
                )
                .await?;
        }
    }

    for outcome in state.store.trigger_outcomes(id, from, to, fetch).await? {
        occurrences.push(Occurrence {
            at: outcome.at,
            kind: match outcome.source.as_str() {
                "poll" => OccurrenceKind::Poll,
                _ => OccurrenceKind::Delivery,
            },
            outcome: outcome.outcome,
            reason: outcome.reason,
            run_id: outcome.run_id,
            run_status: None,
            actor: None,
        });
    }

    occurrences.sort_by_key(|occurrence| occurrence.at);
    let truncated = occurrences.len() > limit;
    occurrences.truncate(limit);
    let not_kept = state
        .store
        .outcomes_not_kept(id)
        .await?
        .map(|not_kept| NotKept {
            count: not_kept.count,
            since: not_kept.since,
            last_at: not_kept.last_at,
        });
    Ok(Json(Explanation {
        project_trigger_id: id,
        from,
        to,
        occurrences,
        truncated,
        not_kept,
    }))
}

fn of_run(at: DateTime<Utc>, kind: OccurrenceKind, run: &RunView) -> Occurrence {
    let record = &run.record;
    let (outcome, reason) = match record.status {
        RunStatus::Held => ("held", Some("the trigger was paused".to_owned())),
        RunStatus::Skipped => ("skipped", record.skipped_because.clone()),
        _ => ("fired", None),
    };
    Occurrence {
        at,
        kind,
        outcome: outcome.to_owned(),
        reason,
        run_id: Some(record.run_id),
        run_status: Some(status_name(record.status).to_owned()),
        actor: None,
    }
}

/// From when to when a trigger was enabled; `None` while it still is.
type EnabledSpan = (DateTime<Utc>, Option<DateTime<Utc>>);

/// Lists the lifecycle changes and failed polls in the window, and returns the spans in which the
/// trigger was enabled (the last one open-ended while it still is).
fn lifecycle(
    history: &[LoggedEvent],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    occurrences: &mut Vec<Occurrence>,
) -> Result<Vec<EnabledSpan>, ApiError> {
    let mut spans: Vec<EnabledSpan> = Vec::new();
    let mut failures = 0u64;
    for logged in history {
        let Some(event) = logged.trigger_event()? else {
            continue;
        };
        let at = event.stamp().at;
        let (outcome, reason) = match &event {
            TriggerEvent::TriggerCreated { .. } => ("created", None),
            TriggerEvent::TriggerEnabled { .. } => {
                spans.push((at, None));
                ("enabled", None)
            }
            TriggerEvent::TriggerDisabled { .. } | TriggerEvent::TriggerDeleted { .. } => {
                if let Some(open) = spans.last_mut().filter(|span| span.1.is_none()) {
                    open.1 = Some(at);
                }
                match event {
                    TriggerEvent::TriggerDisabled { .. } => ("disabled", None),
                    _ => ("deleted", None),
                }
            }
            TriggerEvent::TriggerAutoDisabled { reason, .. } => {
                if let Some(open) = spans.last_mut().filter(|span| span.1.is_none()) {
                    open.1 = Some(at);
                }
                ("auto_disabled", Some(reason.clone()))
            }
            TriggerEvent::TriggerConfigUpdated { .. } => ("config_changed", None),
            TriggerEvent::TriggerPaused { .. } => ("paused", None),
            TriggerEvent::TriggerResumed { .. } => ("resumed", None),
            TriggerEvent::CursorAdvanced { cursor_data, .. } => {
                let status = &cursor_data["poll_status"];
                let now_failing = status["consecutive_failures"].as_u64().unwrap_or(0);
                let failed = now_failing > failures;
                failures = now_failing;
                if !failed || at < from || at > to {
                    continue;
                }
                let error = status["last_error"].as_str().unwrap_or("unknown error");
                occurrences.push(Occurrence {
                    at,
                    kind: OccurrenceKind::Poll,
                    outcome: "poll_failed".into(),
                    reason: Some(format!("{error} ({now_failing} in a row)")),
                    run_id: None,
                    run_status: None,
                    actor: None,
                });
                continue;
            }
            TriggerEvent::WebhookRecorded { .. } | TriggerEvent::WebhookCleared { .. } => continue,
        };
        if at < from || at > to {
            continue;
        }
        occurrences.push(Occurrence {
            at,
            kind: OccurrenceKind::Lifecycle,
            outcome: outcome.to_owned(),
            reason,
            run_id: None,
            run_status: None,
            actor: logged.meta("actor").map(str::to_owned),
        });
    }
    Ok(spans)
}

/// What the slots of a schedule are explained with.
struct SlotContext<'a> {
    schedule: &'a Schedule,
    config: &'a Value,
    anchor: DateTime<Utc>,
    now: DateTime<Utc>,
    /// When the engine's processes were up, from the window's start on.
    uptime: Vec<Uptime>,
}

impl SlotContext<'_> {
    #[allow(clippy::too_many_arguments)]
    async fn explain(
        &self,
        state: &AppState,
        id: Uuid,
        enabled_spans: &[EnabledSpan],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
        occurrences: &mut Vec<Occurrence>,
    ) -> Result<(), ApiError> {
        // `between` is (from, to]: start a nanosecond early so a slot at `from` is included.
        let slots: Vec<DateTime<Utc>> = self
            .schedule
            .between(
                from - chrono::Duration::nanoseconds(1),
                to,
                self.anchor,
                limit + 1,
            )
            .into_iter()
            .map(|slot| slot.at)
            .filter(|at| {
                enabled_spans
                    .iter()
                    .any(|(start, end)| at >= start && end.is_none_or(|end| *at < end))
            })
            .collect();
        let ids: HashMap<Uuid, DateTime<Utc>> = slots
            .iter()
            .map(|at| {
                (
                    aggregates::run_id(id, &RunCause::ScheduleSlot { at: *at }),
                    *at,
                )
            })
            .collect();
        let run_ids: Vec<Uuid> = ids.keys().copied().collect();
        let runs = state.store.run_views(&run_ids).await?;
        let by_slot: HashMap<DateTime<Utc>, &RunView> = runs
            .values()
            .filter_map(|run| ids.get(&run.record.run_id).map(|at| (*at, run)))
            .collect();
        for at in slots {
            occurrences.push(match by_slot.get(&at) {
                Some(run) => self.fired(at, run),
                None => self.unfired(at),
            });
        }
        Ok(())
    }

    fn fired(&self, at: DateTime<Utc>, run: &RunView) -> Occurrence {
        let mut occurrence = of_run(at, OccurrenceKind::ScheduleSlot, run);
        if occurrence.outcome != "fired" {
            return occurrence;
        }
        let payload = &run.record.firing.payload;
        let fired_at = payload["fired_at"]
            .as_str()
            .and_then(|fired| fired.parse::<DateTime<Utc>>().ok());
        if payload["backfill"] == true {
            occurrence.outcome = "backfilled".into();
            occurrence.reason = fired_at.map(|fired| format!("backfilled at {fired}"));
        // An on-time firing's `fired_at` is its slot; any other was caught up.
        } else if let Some(fired) = fired_at.filter(|fired| *fired > at) {
            occurrence.outcome = "caught_up".into();
            occurrence.reason = Some(format!(
                "missed at its time; fired at {} when an engine process caught up",
                fired.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            ));
        }
        occurrence
    }

    fn unfired(&self, at: DateTime<Utc>) -> Occurrence {
        let (policy, window) = CatchUp::from_config(self.config);
        let engine_back = came_back_after(&self.uptime, at, self.now);
        let (outcome, reason) = if at > self.now {
            ("upcoming", None)
        } else if let Some(back) = engine_back {
            let policy = match policy {
                CatchUp::None => "`catch_up` is `none`: missed slots do not fire".to_owned(),
                CatchUp::Latest => {
                    "`catch_up` is `latest`: only the latest missed slot fires".to_owned()
                }
                CatchUp::All => format!(
                    "`catch_up` is `all`, but only within its window of {} s",
                    window.as_secs()
                ),
            };
            (
                "not_caught_up",
                Some(format!(
                    "missed while no engine process was alive; the engine came back at {}; \
                     {policy}",
                    back.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                )),
            )
        } else if self.now - at < DUE_GRACE {
            ("due", Some("due now; not fired yet".to_owned()))
        } else {
            (
                "missed",
                Some(
                    "no run was recorded for this slot, though an engine process was alive"
                        .to_owned(),
                ),
            )
        };
        Occurrence {
            at,
            kind: OccurrenceKind::ScheduleSlot,
            outcome: outcome.to_owned(),
            reason,
            run_id: None,
            run_status: None,
            actor: None,
        }
    }
}

/// When the engine came back from the outage `at` fell in: `None` when one of its processes was up
/// at `at`. A live process is up until `now`; any other was up until its last heartbeat (its
/// leaving, or its last beat before it crashed).
fn came_back_after(
    uptime: &[Uptime],
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let up_at = |span: &Uptime| {
        let until = if span.live { now } else { span.last_seen_at };
        span.started_at <= at && at <= until
    };
    if uptime.iter().any(up_at) {
        return None;
    }
    uptime
        .iter()
        .map(|span| span.started_at)
        .filter(|started| *started > at)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + chrono::Duration::minutes(minute)
    }

    fn up(from: i64, to: i64) -> Uptime {
        Uptime {
            started_at: at(from),
            last_seen_at: at(to),
            live: false,
        }
    }

    #[test]
    fn it_should_name_the_end_of_the_outage_each_slot_fell_in() {
        // Up 0-10, down, up 20-30 (two processes overlapping at 25-26), down, up 40 and live.
        let live = Uptime {
            live: true,
            ..up(40, 50)
        };
        let uptime = [up(0, 10), up(20, 26), up(25, 30), live];
        let now = at(50) + chrono::Duration::seconds(10);
        let back = |minute| came_back_after(&uptime, at(minute), now);
        assert_eq!(back(5), None);
        assert_eq!(back(15), Some(at(20)));
        assert_eq!(back(28), None, "the second process was up");
        assert_eq!(back(35), Some(at(40)));
        // The live process is up until now, though its last beat was before.
        assert_eq!(came_back_after(&uptime, now, now), None);
        // A process that stopped beating was up until its last beat.
        let after_it = at(10) + chrono::Duration::seconds(1);
        assert_eq!(came_back_after(&uptime, after_it, now), Some(at(20)));
    }
}
