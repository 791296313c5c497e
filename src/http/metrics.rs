//! `GET /metrics`: Prometheus metrics in the OpenMetrics text format, which Prometheus scrapes
//! natively.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `trigger_engine_http_requests_total` | counter | `method`, `route`, `status` |
//! | `trigger_engine_http_request_duration_seconds` | histogram | `method`, `route` |
//! | `trigger_engine_projection_lag` | gauge: events in the log not yet in the read model | `projection` |
//! | `trigger_engine_projection_checkpoint` | gauge: the last position folded | `projection` |
//! | `trigger_engine_store_up` | gauge: 1 if the store answered this scrape's queries, else 0 | |
//!
//! `route` is the route template (`/triggers/{project_trigger_id}`), never the path a client sent:
//! ids in labels would make a new series per trigger. The projection gauges are read from the store
//! at each scrape, so they are never stale, and are left out when the store does not answer.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::responses::InternalError;
use super::error::ApiError;
use super::AppState;

const PREFIX: &str = "trigger_engine";

/// The media type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `route` of requests no route matched: one series for all of them, whatever their paths.
const UNMATCHED: &str = "unmatched";

/// Latency buckets in seconds: Prometheus's default buckets, 5 ms to 10 s. A command takes about
/// 1-2 ms in the store (docs/benchmarks.md) and a password grant tens of milliseconds, so requests
/// fall in the lower buckets and anything slow still lands in a bucket of its own.
const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(scrape))
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct WebhookLabels {
    provider: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OriginLabels {
    origin: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ProjectionLabels {
    projection: &'static str,
}

/// The request metrics of one engine. Each engine has its own registry (tests run several engines
/// in one process); clones share it.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    webhooks: Family<WebhookLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        let mut registry = Registry::with_prefix(PREFIX);
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template and status code",
            requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time from receiving a request to its response head, by route template",
            Unit::Seconds,
            latency.clone(),
        );
        let webhooks = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook deliveries by provider and outcome: fired, duplicate, ignored (not the \
             trigger's event), filtered (the trigger's filter is false), filter_error (the \
             filter failed on the delivery: a missing field, a type mismatch), rejected (bad \
             signature or stale timestamp; nothing recorded)",
            webhooks.clone(),
        );
        Self {
            registry: Arc::new(registry),
            requests,
            latency,
            webhooks,
        }
    }
}

impl Metrics {
    /// Counts one webhook delivery's outcome (`fired`, `duplicate`, `ignored`, `filtered`,
    /// `filter_error`, `rejected`).
    pub fn webhook(&self, provider: &str, outcome: &'static str) {
        self.webhooks
            .get_or_create(&WebhookLabels {
                provider: provider.to_owned(),
                outcome,
            })
            .inc();
    }

    fn observe(&self, method: &'static str, route: String, status: StatusCode, seconds: f64) {
        self.latency
            .get_or_create(&RouteLabels {
                method,
                route: route.clone(),
            })
            .observe(seconds);
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status: status.as_u16(),
            })
            .inc();
    }
}

/// Middleware: counts and times every request, by the route that served it.
pub async fn record(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |path| path.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.observe(
        method,
        route,
        response.status(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The standard methods by name and any other as `other`: a client may send any token as a method,
/// and each distinct label value is a new series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Metrics
///
/// Prometheus metrics in the OpenMetrics text format: requests and latency by route template, the
/// trigger read model's lag and checkpoint, and whether the store answers. The projection gauges
/// are read from the store at each scrape and left out when it does not answer.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = super::openapi::OPERATIONS,
    responses(
        (status = 200, description = "The metrics, ending with `# EOF`.", body = String,
            content_type = OPENMETRICS,
            example = "# TYPE trigger_engine_store_up gauge\ntrigger_engine_store_up 1\n# EOF\n"),
        (status = 500, response = InternalError),
    )
)]
async fn scrape(State(state): State<AppState>) -> Result<Response, ApiError> {
    // Gauges read at scrape time go in a registry of their own, built afresh each time, so a store
    // that does not answer leaves them out rather than repeating an old value.
    let mut now = Registry::with_prefix(PREFIX);
    let store_up = Gauge::<i64>::default();
    match projection_progresses(&state.store).await {
        Ok((head, checkpoints)) => {
            store_up.set(1);
            let lag = Family::<ProjectionLabels, Gauge>::default();
            let checkpoint = Family::<ProjectionLabels, Gauge>::default();
            for (projection, position) in checkpoints {
                let labels = ProjectionLabels { projection };
                lag.get_or_create(&labels)
                    .set(head.saturating_sub(position).max(0));
                checkpoint.get_or_create(&labels).set(position);
            }
            now.register(
                "projection_lag",
                "Events in the log that the read model has not folded yet",
                lag,
            );
            now.register(
                "projection_checkpoint",
                "The last log position the read model has folded",
                checkpoint,
            );
        }
        Err(error) => tracing::warn!(%error, "metrics: cannot read the projections' progress"),
    }
    register_circuits(&mut now, &state.circuits);
    now.register(
        "store_up",
        "1 if the store answered this scrape's queries, else 0",
        store_up,
    );
    let mut body = String::new();
    encode_registry(&mut body, &state.metrics.registry)
        .and_then(|()| encode_registry(&mut body, &now))
        .and_then(|()| encode_eof(&mut body))
        .map_err(|_| ApiError::Internal("encoding metrics".into()))?;
    Ok(([(header::CONTENT_TYPE, OPENMETRICS)], body).into_response())
}

/// Each executor target's circuit: its state (0 closed, 1 half-open, 2 open) and how often it has
/// opened since the process started. Only targets that have failed are listed.
fn register_circuits(registry: &mut Registry, circuits: &crate::executor::Circuits) {
    let state = Family::<OriginLabels, Gauge>::default();
    let opened = Family::<OriginLabels, Counter>::default();
    for circuit in circuits.status() {
        let labels = OriginLabels {
            origin: circuit.origin,
        };
        state.get_or_create(&labels).set(circuit.state.gauge());
        opened.get_or_create(&labels).inc_by(circuit.opened_total);
    }
    registry.register(
        "executor_circuit_state",
        "Each executor target's circuit breaker: 0 closed, 1 half-open (one probe out), 2 open \
         (no calls until its cool-down passes)",
        state,
    );
    registry.register(
        "executor_circuit_opened",
        "Times each executor target's circuit has opened since this process started",
        opened,
    );
}

/// The log head and each live read model's checkpoint. Checkpoints are read before the head, so
/// a lag can only look larger than it is, never negative.
async fn projection_progresses(
    store: &crate::store::Store,
) -> Result<(i64, Vec<(&'static str, i64)>), crate::store::StoreError> {
    let checkpoints = store.checkpoints().await?;
    let head = store.head().await?;
    let live = projections::NAMES
        .iter()
        .filter_map(|name| {
            let found = checkpoints
                .iter()
                .find(|checkpoint| checkpoint.name == *name)?;
            Some((*name, found.position))
        })
        .collect();
    Ok((head, live))
}
