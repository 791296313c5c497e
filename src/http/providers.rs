//! The native trigger catalogue: `GET /providers/{provider_id}/triggers[/{trigger_id}]`.

use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::responses::{InvalidField, NotFound};
use super::error::ApiError;
use super::extract::ApiPath;
use super::AppState;
use crate::catalogue::{Catalogue, TriggerDefinition};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(one))
}

/// Get Available Triggers By Provider
///
/// Get the list of native triggers available and implemented by Stack AI. No token needed.
#[utoipa::path(
    get,
    path = "/providers/{provider_id}/triggers",
    operation_id = "get_available_triggers_by_provider",
    tag = super::openapi::TRIGGERS,
    params(("provider_id" = String, Path, description = "The provider, e.g. `stripe`.")),
    responses(
        (status = 200, description = "Every trigger the provider offers.", body = Vec<TriggerDefinition>),
        (status = 404, response = NotFound),
        (status = 422, response = InvalidField),
    )
)]
async fn list(
    ApiPath(provider_id): ApiPath<String>,
) -> Result<Json<Vec<TriggerDefinition>>, ApiError> {
    let triggers = Catalogue::builtin()
        .triggers_of(&provider_id)
        .ok_or(ApiError::NotFound("provider"))?;
    Ok(Json(triggers.to_vec()))
}

/// Get Specific Trigger From Provider
///
/// Get the data for a specific native trigger available and implemented by Stack AI, with the
/// JSON Schema its `trigger_config` must satisfy and a sample payload. No token needed.
#[utoipa::path(
    get,
    path = "/providers/{provider_id}/triggers/{trigger_id}",
    operation_id = "get_specific_trigger_from_provider",
    tag = super::openapi::TRIGGERS,
    params(
        ("provider_id" = String, Path, description = "The provider, e.g. `stripe`."),
        ("trigger_id" = String, Path, description = "The provider's trigger, e.g. `on_customer_created`."),
    ),
    responses(
        (status = 200, description = "The trigger's definition.", body = TriggerDefinition),
        (status = 404, response = NotFound),
        (status = 422, response = InvalidField),
    )
)]
async fn one(
    ApiPath((provider_id, trigger_id)): ApiPath<(String, String)>,
) -> Result<Json<TriggerDefinition>, ApiError> {
    Catalogue::builtin()
        .find(&provider_id, &trigger_id)
        .cloned()
        .map(Json)
        .ok_or(ApiError::NotFound("trigger definition"))
}
