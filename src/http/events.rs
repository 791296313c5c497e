//! `GET /events`: the organisation's own events from the global log, in position order, as pages
//! or followed live as Server-Sent Events (an extension beyond the seed API, for auditors and
//! integrations).
//!
//! Positions keep their global numbering, so one organisation's view has gaps; each page says up
//! to which position it has looked (`next_after`), and a scan reads a bounded window of the log,
//! so an organisation with few events in a long log is not a full scan per page. A live stream
//! reads the same pages; when it has caught up it looks again every [`FOLLOW_INTERVAL`], which
//! sees other engine processes' writes too, and its SSE `id:` is the position, so a reconnect
//! with `Last-Event-ID` resumes exactly after the last event received.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aggregates::{Trigger as TriggerStream, TriggerEvent};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::Caller;
use super::error::responses::{
    InternalError, InvalidField, TooManyRequests, Unauthorized, Unavailable,
};
use super::error::ApiError;
use super::history::redacted_trigger_data;
use super::AppState;
use crate::catalogue::{Catalogue, TriggerDefinition};
use crate::store::{LoggedEvent, Store};

/// Events per page unless the caller asks for another size, and the most a page holds.
const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 500;

/// How many positions of the global log one page looks through at most.
const SCAN_WINDOW: i64 = 10_000;

/// How often a caught-up stream looks for new events: a write shows up within this.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

/// How often an idle stream sends a comment, so proxies keep it and a gone client is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// Live streams one organisation may hold open at once, across its users.
pub const MAX_STREAMS_PER_ORG: usize = 8;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events))
}

/// One event of the organisation's log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeedEvent {
    /// Its place in the global log.
    pub position: i64,
    /// The kind of stream: `trigger` or `run`.
    pub stream_type: String,
    /// The trigger's or the run's id.
    pub stream_id: String,
    /// Its place in its own stream, from 1.
    pub sequence: i64,
    pub recorded_at: DateTime<Utc>,
    pub event_type: String,
    /// Who caused it: `user:<id>`, `api_key:<id>`, or the engine's own `system:...`.
    #[schema(required = true)]
    pub actor: Option<String>,
    /// The `x-request-id` of the request that caused it, if one did.
    #[schema(required = true)]
    pub request_id: Option<String>,
    /// The event's fields; a trigger's `trigger_config` without its secrets.
    #[schema(value_type = Object)]
    pub data: Value,
}

/// A page of the organisation's events.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedPage {
    /// In position order.
    pub events: Vec<FeedEvent>,
    /// Pass as `after` for the next page: the position this page has looked up to (the last
    /// event's, when the page is full). Equal to `after` when there is nothing newer yet.
    pub next_after: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Events after this position (default 0: from the start). A live stream resumes after
    /// `Last-Event-ID` instead, when the request carries it.
    #[param(minimum = 0)]
    after: Option<i64>,
    /// Events per page, 1 to 500 (default 100).
    // MAX_PAGE's bounds, repeated as the attribute takes literals only.
    #[param(minimum = 1, maximum = 500, default = 100)]
    limit: Option<i64>,
}

/// The organisations' open live streams, and the signal that closes them all on shutdown (the
/// server's graceful shutdown waits for every response to end).
#[derive(Clone, Default)]
pub struct EventStreams {
    open: Arc<Mutex<HashMap<Uuid, usize>>>,
    closing: CancellationToken,
}

impl EventStreams {
    /// Ends every live stream: the engine is shutting down.
    pub fn close_all(&self) {
        self.closing.cancel();
    }

    fn open(&self, org_id: Uuid) -> Result<StreamSlot, ApiError> {
        let mut open = self
            .open
            .lock()
            .expect("the stream count is never poisoned");
        let count = open.entry(org_id).or_default();
        if *count >= MAX_STREAMS_PER_ORG {
            return Err(ApiError::TooManyStreams(MAX_STREAMS_PER_ORG));
        }
        *count += 1;
        Ok(StreamSlot {
            streams: self.clone(),
            org_id,
        })
    }
}

/// One open stream, counted until it is dropped (the client went away, or shutdown).
struct StreamSlot {
    streams: EventStreams,
    org_id: Uuid,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self
            .streams
            .open
            .lock()
            .expect("the stream count is never poisoned");
        if let Some(count) = open.get_mut(&self.org_id) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.org_id);
            }
        }
    }
}

/// Get Events
///
/// The caller's organisation's events from the global log, in position order (another
/// organisation's never appear; positions keep their global numbering). With
/// `Accept: text/event-stream` the log is followed live as Server-Sent Events: `id:` is the
/// position, `event:` the event type, `data:` the event as in a page; a reconnect with
/// `Last-Event-ID` resumes after it. At most 8 live streams per organisation (429 beyond).
#[utoipa::path(
    get,
    path = "/events",
    operation_id = "get_events",
    tag = super::openapi::HISTORY,
    security(("OAuth2PasswordBearer" = [])),
    params(FeedQuery),
    responses(
        (status = 200, description = "A page of events, or with `Accept: text/event-stream` a \
            live stream of them.",
            content((FeedPage = "application/json"), (String = "text/event-stream"))),
        (status = 401, response = Unauthorized),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
async fn events(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    query: Result<Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|rejection| ApiError::invalid("query", rejection.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        ));
    }
    let after = query.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::invalid("after", "must not be negative"));
    }
    if !wants_stream(&headers) {
        let page = read_page(&state.store, caller.org_id, after, limit).await?;
        return Ok(Json(page).into_response());
    }
    let after = match headers.get("last-event-id") {
        None => after,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse::<i64>().ok())
            .filter(|position| *position >= 0)
            .ok_or_else(|| {
                ApiError::invalid("Last-Event-ID", "must be a position this stream sent")
            })?,
    };
    let slot = state.event_streams.open(caller.org_id)?;
    let follow = Follow {
        store: state.store.clone(),
        closing: state.event_streams.closing.clone(),
        org_id: caller.org_id,
        after,
        limit,
        pending: VecDeque::new(),
        _slot: slot,
    };
    let stream = futures::stream::unfold(follow, |mut follow| async move {
        let event = follow.next().await?;
        Some((Ok::<_, Infallible>(event), follow))
    });
    // The keep-alive also bounds how long a slot outlives a client that went away: the engine
    // notices at its next write.
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|media| {
            media
                .split(';')
                .next()
                .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

/// A live stream's place in the log.
struct Follow {
    store: Arc<Store>,
    closing: CancellationToken,
    org_id: Uuid,
    after: i64,
    limit: i64,
    pending: VecDeque<FeedEvent>,
    _slot: StreamSlot,
}

impl Follow {
    /// The next SSE event, waiting for one; `None` once the engine shuts down.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if self.closing.is_cancelled() {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                return Some(sse_event(&event));
            }
            let wait = match read_page(&self.store, self.org_id, self.after, self.limit).await {
                Ok(page) => {
                    let caught_up = page.events.is_empty() && page.next_after == self.after;
                    self.after = page.next_after;
                    self.pending.extend(page.events);
                    caught_up.then_some(FOLLOW_INTERVAL)
                }
                Err(error) => {
                    // The store is away: keep the stream and try again, as a client would.
                    tracing::warn!(%error, "event stream could not read the log; retrying");
                    Some(Duration::from_secs(1))
                }
            };
            if let Some(wait) = wait {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = self.closing.cancelled() => return None,
                }
            }
        }
    }
}

fn sse_event(event: &FeedEvent) -> Event {
    Event::default()
        .id(event.position.to_string())
        .event(event.event_type.clone())
        .json_data(event)
        .expect("a feed event serialises to JSON")
}

async fn read_page(
    store: &Store,
    org_id: Uuid,
    after: i64,
    limit: i64,
) -> Result<FeedPage, ApiError> {
    // Everything up to the head is committed (positions are handed out in commit order), so a
    // page that looked up to it will never see an event appear behind it.
    let head = store.head().await?;
    let until = head.min(after.saturating_add(SCAN_WINDOW)).max(after);
    let logged = store.org_log(org_id, after, until, limit).await?;
    let next_after = match logged.last() {
        Some(last) if logged.len() as i64 == limit => last.position,
        _ => until,
    };
    let mut events = Vec::with_capacity(logged.len());
    for event in &logged {
        events.push(feed_event(store, event).await?);
    }
    Ok(FeedPage { events, next_after })
}

async fn feed_event(store: &Store, event: &LoggedEvent) -> Result<FeedEvent, ApiError> {
    let data = if event.aggregate_type == TriggerStream::TYPE {
        let definition = definition_of(store, event).await?;
        redacted_trigger_data(event, definition)
    } else {
        super::history::event_data(&event.payload)
    };
    Ok(FeedEvent {
        position: event.position,
        stream_type: event.aggregate_type.clone(),
        stream_id: event.aggregate_id.clone(),
        sequence: event.sequence,
        recorded_at: event.recorded_at,
        event_type: event.event_type.clone(),
        actor: event.meta("actor").map(str::to_owned),
        request_id: event.meta("request_id").map(str::to_owned),
        data,
    })
}

/// The definition that says which of a trigger event's config fields are secrets: named by the
/// event itself on create, else by the trigger's record. Only events that carry a config need it.
async fn definition_of(
    store: &Store,
    event: &LoggedEvent,
) -> Result<Option<&'static TriggerDefinition>, ApiError> {
    match event.trigger_event() {
        Ok(Some(TriggerEvent::TriggerCreated {
            provider_id,
            trigger_id,
            ..
        })) => Ok(Catalogue::builtin().find(&provider_id, &trigger_id)),
        Ok(Some(TriggerEvent::TriggerConfigUpdated { .. })) => {
            let Ok(id) = event.aggregate_id.parse::<Uuid>() else {
                return Ok(None);
            };
            Ok(store.trigger_view(id).await?.and_then(|view| {
                Catalogue::builtin().find(&view.record.provider_id, &view.record.trigger_id)
            }))
        }
        _ => Ok(None),
    }
}
