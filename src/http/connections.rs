//! The connection endpoints: create, list and delete the organisation's connections. Beyond the
//! seed API, which names `connection_id` on triggers but not the resource itself.
//!
//! Credentials go in and never come out: no answer, log line or `Debug` output shows them (see
//! [`crate::connections`]). Another organisation's connection answers 404, like a missing one.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::Caller;
use super::error::responses::{
    Conflict, InternalError, InvalidField, NotConfiguredOrUnavailable, NotFound, PayloadTooLarge,
    TooManyRequests, Unauthorized, Unavailable, UnsupportedMediaType,
};
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath};
use super::AppState;
use crate::connections::{Credentials, NewConnection};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(delete))
}

/// A request to create a connection.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConnection {
    /// The provider the credentials are for: one of the catalogue's, e.g. `typeform`.
    pub provider_id: String,
    /// A name for people, e.g. `Marketing's Typeform`.
    pub name: String,
    #[schema(schema_with = credentials_schema)]
    pub credentials: Credentials,
}

/// The schema of `credentials`, built by hand: utoipa's `value_type = Object` drops `writeOnly`,
/// the one thing this field's schema must say.
fn credentials_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Object)
        .description(Some(
            "The credentials, as a JSON object; write-only: stored encrypted, never answered. A \
             `typeform` connection needs `access_token` (a personal or OAuth token with the \
             `webhooks:write` scope).",
        ))
        .write_only(Some(true))
        .examples([serde_json::json!({"access_token": "tfp_..."})])
        .build()
}

/// A connection, without its credentials.
#[derive(Debug, Serialize, ToSchema)]
pub struct Connection {
    /// The id triggers name as `connection_id`.
    pub connection_id: Uuid,
    /// The organisation it belongs to.
    pub org_id: Uuid,
    /// The provider the credentials are for.
    pub provider_id: String,
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The user who created it.
    pub created_by: Uuid,
}

impl From<crate::connections::Connection> for Connection {
    fn from(connection: crate::connections::Connection) -> Self {
        Self {
            connection_id: connection.connection_id,
            org_id: connection.org_id,
            provider_id: connection.provider_id,
            name: connection.name,
            created_at: connection.created_at,
            created_by: connection.created_by,
        }
    }
}

/// Create Connection
///
/// Stores credentials for a provider, encrypted, in the caller's organisation. The answer never
/// includes them. Needs the engine to have an encryption key (`TRIGGER_ENGINE_ENCRYPTION_KEY`);
/// without one the answer is 503 and nothing is stored.
#[utoipa::path(
    post,
    path = "/connections",
    operation_id = "create_connection",
    tag = super::openapi::CONNECTIONS,
    security(("OAuth2PasswordBearer" = [])),
    request_body = CreateConnection,
    responses(
        (status = 201, description = "The connection, created; without its credentials.", body = Connection,
            headers(("Location" = String, description = "`/connections/{connection_id}` of the new connection"))),
        (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = NotConfiguredOrUnavailable),
    )
)]
#[tracing::instrument(skip_all, fields(provider_id = %body.provider_id))]
async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<CreateConnection>,
) -> Result<impl IntoResponse, ApiError> {
    let new = NewConnection {
        provider_id: body.provider_id,
        name: body.name,
        credentials: body.credentials,
    };
    let created = state
        .connections
        .create(caller.org_id, caller.user_id, new)
        .await?;
    Ok((
        StatusCode::CREATED,
        [(
            header::LOCATION,
            format!("/connections/{}", created.connection_id),
        )],
        Json(Connection::from(created)),
    ))
}

/// Get Connections
///
/// The caller's organisation's connections, oldest first, without their credentials.
#[utoipa::path(
    get,
    path = "/connections",
    operation_id = "get_connections",
    tag = super::openapi::CONNECTIONS,
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 200, description = "The organisation's connections.", body = Vec<Connection>),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<Vec<Connection>>, ApiError> {
    let connections = state.connections.list(caller.org_id).await?;
    Ok(Json(
        connections.into_iter().map(Connection::from).collect(),
    ))
}

/// Delete Connection
///
/// Deletes the connection and its credentials for good. Refused (409) while a trigger names it:
/// delete those triggers first.
#[utoipa::path(
    delete,
    path = "/connections/{connection_id}",
    operation_id = "delete_connection",
    tag = super::openapi::CONNECTIONS,
    security(("OAuth2PasswordBearer" = [])),
    params(("connection_id" = Uuid, Path, description = "The connection's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
#[tracing::instrument(skip_all, fields(connection_id = %id))]
async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.connections.delete(caller.org_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
