//! Engine processes sharing the store: heartbeats, and who is alive.

use chrono::{DateTime, Utc};

use super::{Store, StoreError};

impl Store {
    /// Records that `node_id` is alive now (registering it on its first beat).
    pub async fn heartbeat(
        &self,
        node_id: &str,
        started_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        crate::on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO engine_nodes (node_id, started_at, heartbeat_at) VALUES ($1, $2, $3)
                 ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
            )
            .bind(node_id)
            .bind(started_at.timestamp_millis())
            .bind(now.timestamp_millis())
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// The nodes that beat since `since`, in id order. Forgets nodes silent for long (ten times
    /// `now - since`), so the table stays as small as the fleet.
    pub async fn live_nodes(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let since = since.timestamp_millis();
        let forget_before = now.timestamp_millis() - 10 * (now.timestamp_millis() - since);
        let nodes = crate::on_pool!(self, |pool| {
            sqlx::query("DELETE FROM engine_nodes WHERE heartbeat_at < $1")
                .bind(forget_before)
                .execute(pool)
                .await?;
            sqlx::query_scalar(
                "SELECT node_id FROM engine_nodes WHERE heartbeat_at >= $1 ORDER BY node_id",
            )
            .bind(since)
            .fetch_all(pool)
            .await
        })?;
        Ok(nodes)
    }

    /// When the longest-running of the processes alive since `since` started: the engine has been
    /// up without a gap at least since then.
    pub async fn engine_up_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let started: Option<i64> = crate::on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT MIN(started_at) FROM engine_nodes WHERE heartbeat_at >= $1")
                .bind(since.timestamp_millis())
                .fetch_one(pool)
                .await
        })?;
        Ok(started.and_then(DateTime::from_timestamp_millis))
    }

    /// Removes `node_id` at shutdown, so the others take over its share at once.
    pub async fn leave(&self, node_id: &str) -> Result<(), StoreError> {
        crate::on_pool!(self, |pool| {
            sqlx::query("DELETE FROM engine_nodes WHERE node_id = $1")
                .bind(node_id)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }
}
