//! Liveness for load balancers and orchestrators.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz))
}

/// 200 once the engine is ready to answer reads consistently; 503 while projections catch up.
async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, Json(json!({"status": "ok"})))
    } else {
        let checkpoint = state.projections.checkpoint();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "starting", "projection_checkpoint": checkpoint})),
        )
    }
}
