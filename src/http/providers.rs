//! The native trigger catalogue: `GET /providers/{provider_id}/triggers[/{trigger_id}]`.

use axum::routing::get;
use axum::{Json, Router};

use super::error::ApiError;
use super::extract::ApiPath;
use super::AppState;
use crate::catalogue::{Catalogue, TriggerDefinition};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/providers/{provider_id}/triggers", get(list))
        .route("/providers/{provider_id}/triggers/{trigger_id}", get(one))
}

/// Every trigger the provider offers; 404 for a provider we do not know.
async fn list(
    ApiPath(provider_id): ApiPath<String>,
) -> Result<Json<Vec<TriggerDefinition>>, ApiError> {
    let triggers = Catalogue::builtin()
        .triggers_of(&provider_id)
        .ok_or(ApiError::NotFound("provider"))?;
    Ok(Json(triggers.to_vec()))
}

async fn one(
    ApiPath((provider_id, trigger_id)): ApiPath<(String, String)>,
) -> Result<Json<TriggerDefinition>, ApiError> {
    Catalogue::builtin()
        .find(&provider_id, &trigger_id)
        .cloned()
        .map(Json)
        .ok_or(ApiError::NotFound("trigger definition"))
}
