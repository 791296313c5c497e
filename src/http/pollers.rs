//! Polling triggers over HTTP: the seed's deprecated URL that polls one now.

use aggregates::TriggerStatus;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::responses::{
    Gone, InternalError, InvalidApiKey, InvalidField, NotFound, TooManyRequests, Unavailable,
};
use super::error::ApiError;
use super::extract::ApiPath;
use super::webhooks::{mark_deprecated, verify_org_key};
use super::AppState;
use crate::poller::{is_polled, PollError};

// The key URL is served on purpose: its handler is `#[deprecated]` so that utoipa marks the
// operation deprecated in the document.
#[allow(deprecated)]
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(poll_with_api_key))
}

/// Polling Trigger
///
/// Deprecated: polling triggers poll by themselves, every `polling_frequency` milliseconds. Polls
/// the trigger now, authorised by an API key of the organisation in the path, and answers once
/// the poll is done: its new items have fired and its cursor moved. A source that failed shows in
/// the trigger's `cursor_data.poll_status`. Answers carry `Deprecation: true`.
#[utoipa::path(
    post,
    path = "/organizations/{org_id}/triggers/{project_trigger_id}/polling/key/{api_key}",
    operation_id = "polling_trigger",
    tag = super::openapi::TRIGGERS,
    params(
        ("org_id" = Uuid, Path, description = "The trigger's organisation."),
        ("project_trigger_id" = Uuid, Path, description = "The polling trigger to poll."),
        ("api_key" = String, Path, description = "An API key of the organisation."),
    ),
    responses(
        (status = 204, description = "Polled.",
            headers(("Deprecation" = String, description = "`true`: this URL is deprecated"),
                ("Link" = String, description = "The successor: `</triggers/{project_trigger_id}>; rel=\"successor-version\"`, where `cursor_data.poll_status` shows how polls fare"))),
        (status = 401, response = InvalidApiKey),
        (status = 404, response = NotFound),
        (status = 410, response = Gone),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
#[deprecated = "polling triggers poll by themselves"]
#[tracing::instrument(skip(state, api_key), fields(trigger_id = %id))]
async fn poll_with_api_key(
    State(state): State<AppState>,
    ApiPath((org_id, id, api_key)): ApiPath<(Uuid, Uuid, String)>,
) -> Result<Response, ApiError> {
    verify_org_key(&state, org_id, &api_key).await?;
    let record = state
        .store
        .trigger_view(id)
        .await?
        .map(|view| view.record)
        .filter(|record| record.org_id == org_id && is_polled(&record.provider_id))
        .ok_or(ApiError::NotFound("polling trigger"))?;
    if record.is_deleted() {
        return Err(ApiError::Gone("trigger"));
    }
    if record.status != TriggerStatus::Enabled {
        return Err(ApiError::NotFound("enabled trigger"));
    }
    state.rate_limits.check_webhook(id)?;
    match state.pollers.poll(id).await {
        Ok(_) => {}
        // Disabled or deleted between the read above and the poll.
        Err(PollError::NotPollable) => return Err(ApiError::NotFound("enabled trigger")),
        Err(PollError::Store(store)) => return Err(store.into()),
        Err(error) => return Err(ApiError::Internal(error.to_string())),
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    mark_deprecated(&mut response, &format!("/triggers/{id}"));
    Ok(response)
}
