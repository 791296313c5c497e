//! The HTTP surface. Each module serves one concern and exposes `router()`; this one merges them
//! and adds what every route shares: request ids, the body limit, problem+json for unknown routes.
//!
//! # Layout
//! - [`health`]: `GET /healthz` (liveness) and `GET /readyz` (readiness).
//! - [`metrics`]: `GET /metrics`, and the middleware that counts and times every request.
//! - [`token`]: `POST /token`, the OAuth2 password grant.
//! - [`triggers`]: the trigger endpoints of the Triggers API.
//! - [`connections`]: the organisation's connections (credentials for providers), write-only.
//! - [`providers`]: the native trigger catalogue.
//! - [`runs`]: a trigger's runs, retrying one, and its test samples.
//! - [`events`]: `GET /events`, the organisation's events from the log, as pages or live (SSE).
//! - [`history`]: a trigger's and a run's events for auditors, and a trigger as it stood at any moment.
//! - [`schedules`]: a schedule trigger's next fire times; the deprecated URL firing one now.
//! - [`pollers`]: the deprecated URL that polls a polling trigger now.
//! - [`executor`]: `GET /executor/status`, this process's executor and its circuit breakers.
//! - [`log`]: `GET /log/head` and `GET /log/verify`, the tamper-evident log for auditors.
//! - [`webhooks`]: `POST /v1/webhooks/{webhook_id}`, providers' deliveries that fire triggers.
//! - [`openapi`]: `GET /openapi.json`, the OpenAPI document generated from the modules above, and
//!   `GET /docs`, Swagger UI showing it.
//! - [`auth`]: the bearer-token extractor, which also checks the caller's role; [`extract`]: JSON,
//!   form and path extractors whose rejections are problem documents; [`request_id`]:
//!   `x-request-id`; [`error`]: the one error type; [`rate_limit`]: the token endpoint's and each
//!   organisation's rate limits.

pub mod auth;
pub mod connections;
pub mod error;
pub mod events;
pub mod executor;
pub mod explain;
pub mod extract;
pub mod health;
pub mod history;
pub mod log;
pub mod metrics;
pub mod openapi;
pub mod pollers;
pub mod providers;
pub mod rate_limit;
pub mod replays;
pub mod request_id;
pub mod runs;
pub mod schedules;
pub mod token;
pub mod triggers;
pub mod webhooks;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::commands::Commands;
use crate::connections::Connections;
use crate::filter::Filters;
use crate::identity::Identity;
use crate::identity::Secret;
use crate::poller::Poller;
use crate::projector::ProjectionHandle;
use crate::registration::Registration;
use crate::runs::Runs;
use crate::store::Store;

/// Largest request body accepted: 1 MiB, the limit the API promises; larger bodies get 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// What every handler may reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub commands: Commands,
    pub runs: Runs,
    pub projections: ProjectionHandle,
    pub identity: Identity,
    pub connections: Connections,
    /// Keeps provider webhooks in step with triggers (enable, disable, delete).
    pub registration: Registration,
    /// Set once the read model has caught up with the log found at start-up.
    pub ready: Arc<AtomicBool>,
    pub rate_limits: rate_limit::RateLimits,
    pub metrics: metrics::Metrics,
    /// `/readyz` fails beyond this projection lag, in events (`ServeConfig::ready_max_lag`).
    pub ready_max_lag: u64,
    pub webhook_apps: WebhookApps,
    /// Polls a polling trigger on demand (the deprecated polling key URL).
    pub pollers: Poller,
    /// The live event streams open, per organisation, and their shutdown signal.
    pub event_streams: events::EventStreams,
    /// Triggers' filters, compiled once per config; shared with the poller.
    pub filters: Filters,
    /// The executor's circuit breakers in this process (`GET /executor/status`, `/metrics`).
    pub circuits: Arc<crate::executor::Circuits>,
    /// Executor calls in flight at once in this process; 0 when it runs no executor.
    pub executor_concurrency: usize,
    /// Where deliveries leave what the log does not record, for `explain`.
    pub outcomes: crate::outcomes::Outcomes,
    /// How long a process is counted alive after its last heartbeat (`ServeConfig::node_lease_seconds`).
    pub node_lease: std::time::Duration,
    /// The triggers' read model in memory, for the reads on every request's path.
    pub triggers: crate::trigger_cache::TriggerCache,
}

/// The app-level webhook secrets (one Slack app, one GitHub App for every organisation).
#[derive(Clone, Default)]
pub struct WebhookApps {
    pub slack: Option<Secret>,
    pub github: Option<Secret>,
}

pub fn router(state: AppState) -> Router {
    // Each module's routes carry their OpenAPI operations; splitting them gives the axum router
    // and the document that describes exactly it.
    let (routes, document) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(health::router())
        .merge(token::router())
        .merge(triggers::router())
        .merge(connections::router())
        .merge(providers::router())
        .merge(webhooks::router())
        .merge(runs::router())
        .merge(replays::router())
        .merge(history::router())
        .merge(explain::router())
        .merge(events::router())
        .merge(schedules::router())
        .merge(pollers::router())
        .merge(log::router())
        .merge(metrics::router())
        .merge(executor::router())
        .split_for_parts();
    routes
        .merge(openapi::router(document))
        .fallback(|| async { error::ApiError::NotFound("route") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(request_id::assign))
        // `Router::layer` wraps each route after it is matched, so the middleware sees its template.
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::record,
        ))
        .with_state(state)
}
