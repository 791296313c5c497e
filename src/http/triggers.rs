//! The trigger endpoints of the Triggers API. Writes go through the aggregate as commands; reads
//! come from the trigger read model. A trigger of another organisation is answered exactly like
//! one that does not exist.

use aggregates::{Actor, NewTrigger, TriggerAction, TriggerCommand, TriggerStatus};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use projections::triggers::TriggerView;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath};
use super::request_id::RequestId;
use super::AppState;
use crate::catalogue::Catalogue;
use crate::identity::Principal;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/projects/{project_id}/triggers",
            get(list_project).post(create),
        )
        .route("/triggers", get(list_org))
        .route("/triggers/{project_trigger_id}", get(one).delete(delete))
        .route("/triggers/{project_trigger_id}/enable", post(enable))
        .route("/triggers/{project_trigger_id}/disable", post(disable))
}

/// The request to create a trigger, as the seed API defines it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTrigger {
    pub provider_id: String,
    pub trigger_id: String,
    #[serde(default)]
    pub connection_id: Option<Uuid>,
    #[serde(default)]
    pub trigger_config: Option<Value>,
}

/// A trigger as the seed API returns it: exactly the seed's fields. Secrets in `trigger_config`
/// (the catalogue's write-only fields) are never included.
#[derive(Debug, Serialize)]
pub struct Trigger {
    pub project_trigger_id: Uuid,
    pub project_id: String,
    pub connection_id: Option<Uuid>,
    pub provider_id: String,
    pub trigger_id: String,
    pub webhook_data: Option<Value>,
    pub cursor_data: Option<Value>,
    pub trigger_config: Option<Value>,
    pub status: TriggerStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<Uuid>,
    pub updated_by: Option<Uuid>,
}

impl From<TriggerView> for Trigger {
    fn from(view: TriggerView) -> Self {
        let record = view.record;
        let definition = Catalogue::builtin().find(&record.provider_id, &record.trigger_id);
        let trigger_config = match (record.trigger_config, definition) {
            (Some(config), Some(definition)) => Some(definition.redact(&config)),
            // A definition the catalogue no longer has: show no config rather than risk a secret.
            (Some(_), None) => None,
            (None, _) => None,
        };
        Self {
            project_trigger_id: record.project_trigger_id,
            project_id: record.project_id,
            connection_id: record.connection_id,
            provider_id: record.provider_id,
            trigger_id: record.trigger_id,
            webhook_data: record.webhook_data,
            cursor_data: record.cursor_data,
            trigger_config,
            status: record.status,
            created_at: record.created_at,
            updated_at: record.updated_at,
            created_by: record.created_by.id(),
            updated_by: record.updated_by.id(),
        }
    }
}

#[tracing::instrument(skip_all, fields(project_id = %project_id))]
async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    RequestId(request_id): RequestId,
    ApiPath(project_id): ApiPath<String>,
    ApiJson(body): ApiJson<CreateTrigger>,
) -> Result<impl IntoResponse, ApiError> {
    let catalogue = Catalogue::builtin();
    if catalogue.triggers_of(&body.provider_id).is_none() {
        return Err(ApiError::invalid(
            "provider_id",
            format!("unknown provider `{}`", body.provider_id),
        ));
    }
    let definition = catalogue
        .find(&body.provider_id, &body.trigger_id)
        .ok_or_else(|| {
            ApiError::invalid(
                "trigger_id",
                format!(
                    "provider `{}` has no trigger `{}`",
                    body.provider_id, body.trigger_id
                ),
            )
        })?;
    definition
        .validate_config(body.trigger_config.as_ref())
        .map_err(|error| ApiError::invalid(error.field, error.reason))?;
    let id = Uuid::new_v4();
    let action = TriggerAction::CreateTrigger(NewTrigger {
        project_trigger_id: id,
        org_id: caller.org_id,
        project_id,
        connection_id: body.connection_id,
        provider_id: body.provider_id,
        trigger_id: body.trigger_id,
        trigger_config: body.trigger_config.filter(|config| !config.is_null()),
    });
    run(&state, &caller, id, action, &request_id).await?;
    let view = state.store.trigger_view(id).await?.ok_or_else(|| {
        ApiError::Internal(format!("created trigger {id} is not in the read model"))
    })?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/triggers/{id}"))],
        Json(Trigger::from(view)),
    ))
}

async fn list_project(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(project_id): ApiPath<String>,
) -> Result<Json<Vec<Trigger>>, ApiError> {
    let views = state
        .store
        .org_trigger_views(caller.org_id, Some(&project_id))
        .await?;
    Ok(Json(views.into_iter().map(Trigger::from).collect()))
}

async fn list_org(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<Vec<Trigger>>, ApiError> {
    let views = state.store.org_trigger_views(caller.org_id, None).await?;
    Ok(Json(views.into_iter().map(Trigger::from).collect()))
}

async fn one(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Trigger>, ApiError> {
    let view = state
        .store
        .trigger_view(id)
        .await?
        .filter(|view| view.record.org_id == caller.org_id && !view.record.is_deleted())
        .ok_or(ApiError::NotFound("trigger"))?;
    Ok(Json(Trigger::from(view)))
}

async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    run(
        &state,
        &caller,
        id,
        TriggerAction::DeleteTrigger,
        &request_id,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn enable(
    State(state): State<AppState>,
    Caller(caller): Caller,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    run(
        &state,
        &caller,
        id,
        TriggerAction::EnableTrigger,
        &request_id,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn disable(
    State(state): State<AppState>,
    Caller(caller): Caller,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    run(
        &state,
        &caller,
        id,
        TriggerAction::DisableTrigger,
        &request_id,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Runs a command as the caller, within the caller's organisation, and answers only once reads
/// show its effect.
async fn run(
    state: &AppState,
    caller: &Principal,
    id: Uuid,
    action: TriggerAction,
    request_id: &str,
) -> Result<(), ApiError> {
    let command = TriggerCommand::new(Utc::now(), Actor::User(caller.user_id), action);
    let executed = state
        .commands
        .execute_in_org(caller.org_id, id, command, request_id)
        .await?;
    state.commands.wait_until_visible(executed).await;
    Ok(())
}
