//! The connections table: one row per connection, its credentials sealed. Plain rows, not event
//! streams, like identity: a connection is what a trigger may act with, not something that
//! happened to a trigger. The rules (validation, sealing, who may see what) live in
//! [`crate::connections`], the only caller.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{parse_id, Store, StoreError};

/// A connection as every reader may see it: no credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub connection_id: Uuid,
    pub org_id: Uuid,
    pub provider_id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// The user who created it.
    pub created_by: Uuid,
}

/// The columns every read selects, in [`Row`]'s order.
const COLUMNS: &str = "id, org_id, provider_id, name, created_at, created_by";

type Row = (String, String, String, String, DateTime<Utc>, String);

/// [`Row`] and the sealed credentials.
type SealedRow = (
    String,
    String,
    String,
    String,
    DateTime<Utc>,
    String,
    Vec<u8>,
);

impl Store {
    /// Stores a connection with its sealed credentials.
    pub async fn insert_connection(
        &self,
        connection: &Connection,
        sealed_credentials: &[u8],
    ) -> Result<(), StoreError> {
        crate::on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO connections
                   (id, org_id, provider_id, name, credentials, created_at, created_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(connection.connection_id.to_string())
            .bind(connection.org_id.to_string())
            .bind(&connection.provider_id)
            .bind(&connection.name)
            .bind(sealed_credentials)
            .bind(connection.created_at)
            .bind(connection.created_by.to_string())
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// The organisation's connections, oldest first.
    pub async fn org_connections(&self, org_id: Uuid) -> Result<Vec<Connection>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM connections WHERE org_id = $1 ORDER BY created_at, id");
        let rows: Vec<Row> = crate::on_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(org_id.to_string())
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(connection_from_row).collect()
    }

    /// One connection of the organisation, with its sealed credentials; `None` when it has no
    /// such connection (another organisation's included).
    pub async fn connection(
        &self,
        org_id: Uuid,
        id: Uuid,
    ) -> Result<Option<(Connection, Vec<u8>)>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS}, credentials FROM connections WHERE org_id = $1 AND id = $2");
        let row: Option<SealedRow> = crate::on_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(org_id.to_string())
            .bind(id.to_string())
            .fetch_optional(pool)
            .await)?;
        row.map(
            |(id, org_id, provider_id, name, created_at, created_by, sealed)| {
                let row = (id, org_id, provider_id, name, created_at, created_by);
                Ok((connection_from_row(row)?, sealed))
            },
        )
        .transpose()
    }

    /// Deletes the organisation's connection, credentials and all; `false` when it had none.
    pub async fn delete_connection(&self, org_id: Uuid, id: Uuid) -> Result<bool, StoreError> {
        let deleted = crate::on_pool!(self, |pool| sqlx::query(
            "DELETE FROM connections WHERE org_id = $1 AND id = $2"
        )
        .bind(org_id.to_string())
        .bind(id.to_string())
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))?;
        Ok(deleted == 1)
    }
}

fn connection_from_row(
    (id, org_id, provider_id, name, created_at, created_by): Row,
) -> Result<Connection, StoreError> {
    Ok(Connection {
        connection_id: parse_id(&id)?,
        org_id: parse_id(&org_id)?,
        provider_id,
        name,
        created_at,
        created_by: parse_id(&created_by)?,
    })
}
