//! The trigger endpoints of the Triggers API. Writes go through the aggregate as commands; reads
//! come from the trigger read model. A trigger of another organisation is answered exactly like
//! one that does not exist. Enable, disable and delete go through [`crate::registration`], which
//! first changes the webhook the engine keeps at the provider for triggers that have one.
//!
//! Each handler's `#[utoipa::path]` is its entry in the OpenAPI document, and `routes!` registers
//! the handler under that same path and method, so the document and the router cannot disagree.

use aggregates::{Actor, NewTrigger, TriggerAction, TriggerCommand};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use projections::triggers::TriggerView;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::Caller;
use super::error::responses::{
    Conflict, InternalError, InvalidField, NotConfiguredOrUnavailable, NotFound, PayloadTooLarge,
    ProviderFailed, TooManyRequests, Unauthorized, Unavailable, UnsupportedMediaType,
};
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath};
use super::request_id::RequestId;
use super::AppState;
use crate::catalogue::Catalogue;
use crate::identity::Principal;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_project, create))
        .routes(routes!(list_org))
        .routes(routes!(one, delete))
        .routes(routes!(enable))
        .routes(routes!(disable))
        .routes(routes!(pause))
        .routes(routes!(resume))
}

/// A domain model representing a request to create a new Trigger.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTrigger {
    /// The provider the trigger belongs to, e.g. `stripe`: one of the catalogue's.
    pub provider_id: String,
    /// The provider's trigger to instantiate, e.g. `on_customer_created`.
    pub trigger_id: String,
    /// The connection (credentials) the trigger uses, if any.
    #[serde(default)]
    pub connection_id: Option<Uuid>,
    /// The trigger's configuration; it must satisfy the definition's `config_schema`
    /// (`GET /providers/{provider_id}/triggers/{trigger_id}`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub trigger_config: Option<Value>,
}

/// A domain model representing the stored metadata of a Trigger: exactly the seed's fields.
/// Secrets in `trigger_config` (the catalogue's write-only fields) are never included.
#[derive(Debug, Serialize, ToSchema)]
pub struct Trigger {
    /// The ID of the instance of this trigger.
    pub project_trigger_id: Uuid,
    /// The project this trigger runs.
    pub project_id: String,
    /// The connection the trigger uses, if any.
    #[schema(required = true)]
    pub connection_id: Option<Uuid>,
    /// The provider the trigger belongs to, e.g. `stripe`.
    pub provider_id: String,
    /// The provider's trigger this is an instance of, e.g. `on_customer_created`.
    pub trigger_id: String,
    /// The webhook's data at the provider (webhook triggers), or the job of a scheduled one.
    #[schema(value_type = Option<Object>, required = true)]
    pub webhook_data: Option<Value>,
    /// Where polling got to at the provider (polling triggers), e.g.
    /// `{"last_processed_event_id": "1234567890"}`.
    #[schema(value_type = Option<Object>, required = true)]
    pub cursor_data: Option<Value>,
    /// The trigger's configuration, without its write-only (secret) fields.
    #[schema(value_type = Option<Object>, required = true)]
    pub trigger_config: Option<Value>,
    pub status: Status,
    /// Paused: deliveries, polls and schedule slots still fire (and the provider is answered
    /// 2xx), but the runs are held, not executed, until the trigger resumes.
    pub paused: bool,
    /// When the trigger was created.
    pub created_at: DateTime<Utc>,
    /// When the trigger last changed.
    pub updated_at: DateTime<Utc>,
    /// The user (or API key) who created the trigger; `null` when the engine itself did.
    #[schema(required = true)]
    pub created_by: Option<Uuid>,
    /// The user (or API key) who last changed the trigger; `null` when the engine itself did.
    #[schema(required = true)]
    pub updated_by: Option<Uuid>,
}

// The API's spelling of `aggregates::TriggerStatus`, serialised alike. It is a type of its own so
// that the pure domain crate carries no HTTP documentation (nor a dependency on utoipa); the
// exhaustive `From` below makes a new domain status fail to compile until it is spelt here too.
/// The status of the trigger: enabled/disabled. New triggers start `DISABLED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = TriggerStatus, default = "DISABLED")]
pub enum Status {
    Enabled,
    Disabled,
}

impl From<aggregates::TriggerStatus> for Status {
    fn from(status: aggregates::TriggerStatus) -> Self {
        match status {
            aggregates::TriggerStatus::Enabled => Self::Enabled,
            aggregates::TriggerStatus::Disabled => Self::Disabled,
        }
    }
}

impl From<TriggerView> for Trigger {
    fn from(view: TriggerView) -> Self {
        Self::from(view.record)
    }
}

impl From<aggregates::TriggerRecord> for Trigger {
    fn from(record: aggregates::TriggerRecord) -> Self {
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
            status: record.status.into(),
            paused: record.paused,
            created_at: record.created_at,
            updated_at: record.updated_at,
            created_by: record.created_by.id(),
            updated_by: record.updated_by.id(),
        }
    }
}

/// Create Trigger
///
/// Creates a disabled trigger in the project; `POST /triggers/{project_trigger_id}/enable` starts
/// it. The answer comes once reads show the new trigger. `connection_id`, when given, must be one
/// of the organisation's connections for the same provider; Typeform triggers need one.
#[utoipa::path(
    post,
    path = "/projects/{project_id}/triggers",
    operation_id = "create_trigger",
    tag = super::openapi::TRIGGERS,
    security(("OAuth2PasswordBearer" = [])),
    params(("project_id" = String, Path, description = "The project the trigger will run.")),
    request_body = CreateTrigger,
    responses(
        (status = 201, description = "The trigger, created.", body = Trigger,
            headers(("Location" = String, description = "`/triggers/{project_trigger_id}` of the new trigger"))),
        (status = 401, response = Unauthorized),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
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
    check_source(&state, &body.provider_id, body.trigger_config.as_ref())?;
    check_filter(body.trigger_config.as_ref()).await?;
    state
        .registration
        .validate_new_trigger(
            caller.org_id,
            definition.provider,
            body.trigger_config.as_ref(),
            body.connection_id,
        )
        .await?;
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

/// Get Triggers
///
/// The project's triggers, within the caller's organisation.
#[utoipa::path(
    get,
    path = "/projects/{project_id}/triggers",
    operation_id = "get_triggers",
    tag = super::openapi::TRIGGERS,
    security(("OAuth2PasswordBearer" = [])),
    params(("project_id" = String, Path, description = "The project whose triggers to list.")),
    responses(
        (status = 200, description = "The project's triggers.", body = Vec<Trigger>),
        (status = 401, response = Unauthorized),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
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

/// Get Triggers By User Org
///
/// Every trigger of the caller's organisation, in every project.
#[utoipa::path(
    get,
    path = "/triggers",
    operation_id = "get_triggers_by_user_org",
    tag = super::openapi::TRIGGERS,
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 200, description = "The organisation's triggers.", body = Vec<Trigger>),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
async fn list_org(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<Vec<Trigger>>, ApiError> {
    let views = state.store.org_trigger_views(caller.org_id, None).await?;
    Ok(Json(views.into_iter().map(Trigger::from).collect()))
}

/// Get Trigger
#[utoipa::path(
    get,
    path = "/triggers/{project_trigger_id}",
    operation_id = "get_trigger",
    tag = super::openapi::TRIGGERS,
    security(("OAuth2PasswordBearer" = [])),
    params(("project_trigger_id" = Uuid, Path, description = "The trigger's id.")),
    responses(
        (status = 200, description = "The trigger.", body = Trigger),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
async fn one(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Trigger>, ApiError> {
    let view = state
        .triggers
        .get(id)
        .await?
        .filter(|view| view.record.org_id == caller.org_id && !view.record.is_deleted())
        .ok_or(ApiError::NotFound("trigger"))?;
    Ok(Json(Trigger::from(view.record.clone())))
}

/// Delete Trigger
///
/// Deletes the trigger for good: it stops firing and reads no longer show it. The answer comes once reads show the change.
/// A trigger whose webhook the engine registered at its provider (Typeform) has it removed there
/// first; if the provider refuses, the answer is 502 and the trigger is not deleted.
#[utoipa::path(
    delete,
    path = "/triggers/{project_trigger_id}",
    operation_id = "delete_trigger",
    tag = super::openapi::TRIGGERS,
    security(("OAuth2PasswordBearer" = [])),
    params(("project_trigger_id" = Uuid, Path, description = "The trigger's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
        (status = 502, response = ProviderFailed),
        (status = 503, response = NotConfiguredOrUnavailable),
    )
)]
async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    let executed = state.registration.delete(&caller, id, &request_id).await?;
    state.commands.wait_until_visible(executed).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Enable Trigger
///
/// Starts the trigger firing. Enabling an enabled trigger changes nothing. The answer comes once reads show the change.
/// A Typeform trigger first has its webhook created on the form at Typeform, with its
/// connection's token, and `webhook_data` then shows `{"form_id", "webhook_tag"}`; if Typeform
/// refuses or cannot be reached, the answer is 502 and the trigger stays disabled.
#[utoipa::path(
    post,
    path = "/triggers/{project_trigger_id}/enable",
    operation_id = "enable_trigger",
    tag = super::openapi::TRIGGERS,
    security(("OAuth2PasswordBearer" = [])),
    params(("project_trigger_id" = Uuid, Path, description = "The trigger's id.")),
    responses(
        (status = 204, description = "Enabled."),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
        (status = 502, response = ProviderFailed),
        (status = 503, response = NotConfiguredOrUnavailable),
    )
)]
async fn enable(
    State(state): State<AppState>,
    Caller(caller): Caller,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    let executed = state.registration.enable(&caller, id, &request_id).await?;
    state.commands.wait_until_visible(executed).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Disable Trigger
///
/// Stops the trigger firing. Disabling a disabled trigger changes nothing. The answer comes once reads show the change.
/// A trigger whose webhook the engine registered at its provider (Typeform) has it removed there
/// first; if the provider refuses, the answer is 502 and the trigger stays enabled.
#[utoipa::path(
    post,
    path = "/triggers/{project_trigger_id}/disable",
    operation_id = "disable_trigger",
    tag = super::openapi::TRIGGERS,
    security(("OAuth2PasswordBearer" = [])),
    params(("project_trigger_id" = Uuid, Path, description = "The trigger's id.")),
    responses(
        (status = 204, description = "Disabled."),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
        (status = 502, response = ProviderFailed),
        (status = 503, response = NotConfiguredOrUnavailable),
    )
)]
async fn disable(
    State(state): State<AppState>,
    Caller(caller): Caller,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    let executed = state.registration.disable(&caller, id, &request_id).await?;
    state.commands.wait_until_visible(executed).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Pause Trigger
///
/// Holds the trigger's runs: it still accepts deliveries, polls and fires its slots (nothing is
/// lost, the provider sees 2xx), but each run is recorded `held` and not executed until the
/// trigger resumes. Pausing a paused trigger changes nothing. The answer comes once reads show
/// the change. Disable, by contrast, refuses deliveries.
#[utoipa::path(
    post,
    path = "/triggers/{project_trigger_id}/pause",
    operation_id = "pause_trigger",
    tag = super::openapi::TRIGGERS,
    security(("OAuth2PasswordBearer" = [])),
    params(("project_trigger_id" = Uuid, Path, description = "The trigger's id.")),
    responses(
        (status = 204, description = "Paused."),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
async fn pause(
    State(state): State<AppState>,
    Caller(caller): Caller,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    run(
        &state,
        &caller,
        id,
        TriggerAction::PauseTrigger,
        &request_id,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Resume Trigger
///
/// Ends a pause: the runs held meanwhile are released, oldest first (within a second, by
/// whichever engine process looks first), and new runs execute again. Resuming a trigger that is
/// not paused changes nothing. The answer comes once reads show the change.
#[utoipa::path(
    post,
    path = "/triggers/{project_trigger_id}/resume",
    operation_id = "resume_trigger",
    tag = super::openapi::TRIGGERS,
    security(("OAuth2PasswordBearer" = [])),
    params(("project_trigger_id" = Uuid, Path, description = "The trigger's id.")),
    responses(
        (status = 204, description = "Resumed."),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
async fn resume(
    State(state): State<AppState>,
    Caller(caller): Caller,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    run(
        &state,
        &caller,
        id,
        TriggerAction::ResumeTrigger,
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

/// Compiles `trigger_config.filter` as a delivery would (the schema has checked it is a string
/// of bounded length): one that could never run is refused now, with the parser's message, not
/// found out at every delivery.
async fn check_filter(config: Option<&Value>) -> Result<(), ApiError> {
    let Some(source) = crate::filter::source_in(config) else {
        return Ok(());
    };
    crate::filter::Filter::compile(source)
        .await
        .map(drop)
        .map_err(|error| {
            ApiError::invalid(
                format!("trigger_config.{}", crate::filter::FIELD),
                error.to_string(),
            )
        })
}

/// Refuses a polled source the outbound guard would refuse at every poll, when its URL alone
/// says so (an address literal, `localhost`): the tenant learns it now, not from a failed poll.
/// A name that resolves to a denied address is only found at the poll, by the guard's resolver.
fn check_source(
    state: &AppState,
    provider_id: &str,
    config: Option<&Value>,
) -> Result<(), ApiError> {
    let Some(field) = crate::poller::source_field(provider_id) else {
        return Ok(());
    };
    let Some(text) = config
        .and_then(|config| config.get(field))
        .and_then(Value::as_str)
    else {
        return Ok(());
    };
    let field = format!("trigger_config.{field}");
    let url = reqwest::Url::parse(text)
        .map_err(|error| ApiError::invalid(&field, format!("is not a URL: {error}")))?;
    state
        .pollers
        .guard()
        .check_url(&url)
        .map_err(|denied| ApiError::invalid(field, denied.to_string()))
}
