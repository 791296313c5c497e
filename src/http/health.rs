//! Liveness and readiness for load balancers and orchestrators.
//!
//! `GET /healthz` (liveness) answers 200 once the engine has started and caught up with the log
//! it found at start-up, and stays 200 after: restarting the process would not help with anything
//! it could report later. `GET /readyz` (readiness) answers 200 only while this engine can serve
//! fresh reads right now: the store answers queries and its latest write got through, and the trigger read model is at most
//! `TRIGGER_ENGINE_READY_MAX_LAG` events behind the log. A load balancer stops sending traffic to
//! an engine that is not ready, and sends it again once it is, without restarting it.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::responses::Unavailable;
use super::error::ApiError;
use super::AppState;
use crate::store::{Store, StoreError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// Whether the engine is ready to answer reads consistently.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
struct Health {
    /// `ok` once ready; `starting` while the read model catches up with the log.
    status: &'static str,
    /// While `starting`: the log position the read model has folded so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = i64)]
    projection_checkpoint: Option<i64>,
}

/// Health
///
/// Liveness: 200 once the engine is ready to answer reads consistently; 503 while projections
/// catch up with the log found at start-up. It stays 200 after; `GET /readyz` tells whether the
/// engine should take traffic now.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "health",
    tag = super::openapi::OPERATIONS,
    responses(
        (status = 200, description = "Ready.", body = Health),
        (status = 503, description = "Starting: the read model is catching up.", body = Health,
            example = json!({"status": "starting", "projection_checkpoint": 1234})),
    )
)]
async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    if state.ready.load(Ordering::Acquire) {
        let health = Health {
            status: "ok",
            projection_checkpoint: None,
        };
        (StatusCode::OK, Json(health))
    } else {
        let health = Health {
            status: "starting",
            projection_checkpoint: Some(state.projections.checkpoint()),
        };
        (StatusCode::SERVICE_UNAVAILABLE, Json(health))
    }
}

/// The engine can take traffic: the store answers and the read model keeps up with the log.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ready", "head": 1234, "checkpoint": 1230, "lag": 4}))]
struct Readiness {
    /// Always `ready`.
    status: &'static str,
    /// The log's last position.
    head: i64,
    /// The last log position the trigger read model has folded.
    checkpoint: i64,
    /// Events appended to the log and not yet folded into the read model: at most
    /// `TRIGGER_ENGINE_READY_MAX_LAG`.
    lag: u64,
}

/// Readiness
///
/// 200 while the store answers and takes writes, and the read model keeps up with the log;
/// otherwise 503, with the
/// failed check in the problem's `check` member (`store` or `projection_lag`).
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readiness",
    tag = super::openapi::OPERATIONS,
    responses(
        (status = 200, description = "Ready to take traffic.", body = Readiness),
        (status = 503, response = Unavailable),
    )
)]
async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    // Reads alone cannot tell: SQLite serves them while another process holds its write lock.
    if state.store.writes_failing() {
        tracing::warn!("not ready: the store's latest write failed as unavailable");
        return Err(ApiError::Unavailable {
            check: "store",
            detail: "the store is not taking writes".into(),
        });
    }
    let progress = projection_progress(&state.store).await.map_err(|error| {
        tracing::warn!(%error, "not ready: the store did not answer");
        ApiError::Unavailable {
            check: "store",
            detail: "the store did not answer a query".into(),
        }
    })?;
    let lag = progress.lag();
    if lag > state.ready_max_lag {
        return Err(ApiError::Unavailable {
            check: "projection_lag",
            detail: format!(
                "the read models are {lag} events behind the log (at most {} allowed)",
                state.ready_max_lag
            ),
        });
    }
    Ok(Json(Readiness {
        status: "ready",
        head: progress.head,
        checkpoint: progress.checkpoint,
        lag,
    }))
}

/// How far a projection has got through the log.
pub(crate) struct Progress {
    pub head: i64,
    pub checkpoint: i64,
}

impl Progress {
    /// Events appended but not yet folded into the read model.
    pub fn lag(&self) -> u64 {
        u64::try_from(self.head - self.checkpoint).unwrap_or(0)
    }
}

/// The slowest live read model's progress. The checkpoint is read before the head, so an event
/// appended and folded between the two reads can only make the lag look larger, never negative.
pub(crate) async fn projection_progress(store: &Store) -> Result<Progress, StoreError> {
    let checkpoint = store
        .checkpoints()
        .await?
        .into_iter()
        .filter(|checkpoint| projections::NAMES.contains(&checkpoint.name.as_str()))
        .map(|checkpoint| checkpoint.position)
        .min()
        .unwrap_or(0);
    let head = store.head().await?;
    Ok(Progress { head, checkpoint })
}
