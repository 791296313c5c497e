//! `GET /executor/status`: this process's executor and the circuit breaker of each target it has
//! failed to reach, for operators (administrators only).

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::error::responses::{Forbidden, TooManyRequests, Unauthorized};
use super::AppState;
use crate::executor::circuit::CircuitStatus;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status))
}

/// The executor of the engine process that answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutorStatus {
    /// Executor calls in flight at once in this process; 0 when it runs no executor.
    pub concurrency: usize,
    /// Consecutive failures that open a target's circuit.
    pub circuit_threshold: u32,
    /// Each target this process has failed to reach since it started, by origin. A target not
    /// listed has never failed: its circuit is closed.
    pub targets: Vec<CircuitStatus>,
}

/// Get Executor Status
///
/// The executor of the engine process that answered and its circuit breakers: a target that keeps
/// failing (network errors, timeouts, 5xx, 429) is not called for a cool-down, then probed once;
/// its runs wait meanwhile without using up attempts. Circuits are per process: with several
/// processes, each answers for itself.
#[utoipa::path(
    get,
    path = "/executor/status",
    operation_id = "get_executor_status",
    tag = super::openapi::OPERATIONS,
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 200, description = "The executor's state.", body = ExecutorStatus),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
    )
)]
async fn status(State(state): State<AppState>, _caller: Caller) -> Json<ExecutorStatus> {
    Json(ExecutorStatus {
        concurrency: state.executor_concurrency,
        circuit_threshold: state.circuits.settings().threshold,
        targets: state.circuits.status(),
    })
}
