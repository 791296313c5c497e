//! Where runs go.

use crate::delivery::{DeliveryRequest, HttpExecutor, Outcome};

/// The executor a run is delivered to.
pub enum Target {
    /// No executor configured: every run counts as executed the moment it is attempted, so the
    /// default engine works end to end (and its run history shows what would have been sent).
    BuiltIn,
    /// `TRIGGER_ENGINE_EXECUTOR_URL`: POST the run, signed.
    Http(HttpExecutor),
}

impl Target {
    pub async fn deliver(&self, request: &DeliveryRequest) -> Outcome {
        match self {
            Self::BuiltIn => {
                tracing::info!(run_id = %request.run_id, project_id = %request.firing.project_id,
                    "built-in executor: run recorded as executed");
                Outcome::Delivered
            }
            Self::Http(executor) => executor.deliver(request).await,
        }
    }

    /// Where `project_id`'s runs go, for the circuit breaker: the built-in executor has no origin
    /// (it cannot be down).
    pub fn origin(&self, project_id: &str) -> Option<String> {
        match self {
            Self::BuiltIn => None,
            Self::Http(executor) => executor.origin_for(project_id),
        }
    }
}
