//! Liveness for load balancers and orchestrators.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz))
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
/// 200 once the engine is ready to answer reads consistently; 503 while projections catch up with
/// the log found at start-up.
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
