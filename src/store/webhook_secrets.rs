//! The webhook_secrets table: the sealed secret of each webhook the engine registered at a
//! provider for a trigger. Sealing and opening are [`crate::connections`]' job, the only caller.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError};

impl Store {
    /// Stores (or replaces: a registration made again has a new secret) a trigger's secret.
    pub async fn put_webhook_secret(
        &self,
        trigger_id: Uuid,
        org_id: Uuid,
        provider_id: &str,
        sealed: &[u8],
        created_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        crate::on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO webhook_secrets (trigger_id, org_id, provider_id, secret, created_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (trigger_id) DO UPDATE SET
                   org_id = excluded.org_id, provider_id = excluded.provider_id,
                   secret = excluded.secret, created_at = excluded.created_at",
            )
            .bind(trigger_id.to_string())
            .bind(org_id.to_string())
            .bind(provider_id)
            .bind(sealed)
            .bind(created_at)
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// The trigger's sealed secret and the provider it was registered at, if it has one.
    pub async fn webhook_secret(
        &self,
        trigger_id: Uuid,
        org_id: Uuid,
    ) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        Ok(crate::on_pool!(self, |pool| sqlx::query_as(
            "SELECT provider_id, secret FROM webhook_secrets WHERE trigger_id = $1 AND org_id = $2"
        )
        .bind(trigger_id.to_string())
        .bind(org_id.to_string())
        .fetch_optional(pool)
        .await)?)
    }

    /// Forgets the trigger's secret; nothing happens when it had none.
    pub async fn delete_webhook_secret(&self, trigger_id: Uuid) -> Result<(), StoreError> {
        crate::on_pool!(self, |pool| sqlx::query(
            "DELETE FROM webhook_secrets WHERE trigger_id = $1"
        )
        .bind(trigger_id.to_string())
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }
}
