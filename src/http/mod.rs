//! The HTTP surface. Each module serves one concern and exposes `router()`; this one merges them.
//!
//! # Layout
//! - [`health`]: `GET /healthz`.

pub mod health;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::Router;

use crate::commands::Commands;
use crate::projector::ProjectionHandle;
use crate::store::Store;

/// What every handler may reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub commands: Commands,
    pub projections: ProjectionHandle,
    /// Set once the read model has caught up with the log found at start-up.
    pub ready: Arc<AtomicBool>,
}

pub fn router(state: AppState) -> Router {
    Router::new().merge(health::router()).with_state(state)
}
