//! Engine processes sharing the store: heartbeats, and who is alive.

use chrono::{DateTime, Utc};

use super::{Store, StoreError};

/// How long the engine's uptime is remembered: explanations of slots older than this cannot
/// tell an outage from a miss.
const UPTIME_KEPT: chrono::Duration = chrono::Duration::days(366);

/// One engine process's time up: from its start to its last heartbeat (or its leaving), or to
/// now while it is `live`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uptime {
    pub started_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub live: bool,
}

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
            .await?;
            sqlx::query(
                "INSERT INTO engine_uptime (node_id, started_at, last_seen_at) VALUES ($1, $2, $3)
                 ON CONFLICT (node_id) DO UPDATE SET last_seen_at = excluded.last_seen_at",
            )
            .bind(node_id)
            .bind(started_at.timestamp_millis())
            .bind(now.timestamp_millis())
            .execute(pool)
            .await?;
            sqlx::query("DELETE FROM engine_uptime WHERE last_seen_at < $1")
                .bind((now - UPTIME_KEPT).timestamp_millis())
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// The spans the engine's processes were up that reach `since` or later, by start; a
    /// process that beat at `live_since` or later, and has not left, is [`Uptime::live`].
    pub async fn engine_uptime(
        &self,
        since: DateTime<Utc>,
        live_since: DateTime<Utc>,
    ) -> Result<Vec<Uptime>, StoreError> {
        let rows: Vec<(i64, i64, bool)> = crate::on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT uptime.started_at, uptime.last_seen_at,
                        COALESCE(nodes.heartbeat_at >= $2, FALSE)
                   FROM engine_uptime uptime
                   LEFT JOIN engine_nodes nodes ON nodes.node_id = uptime.node_id
                  WHERE uptime.last_seen_at >= $1 ORDER BY uptime.started_at",
            )
            .bind(since.timestamp_millis())
            .bind(live_since.timestamp_millis())
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|(started, last_seen, live)| {
                Some(Uptime {
                    started_at: DateTime::from_timestamp_millis(started)?,
                    last_seen_at: DateTime::from_timestamp_millis(last_seen)?,
                    live,
                })
            })
            .collect())
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

    /// Removes `node_id` at shutdown, so the others take over its share at once; its uptime
    /// ends now.
    pub async fn leave(&self, node_id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        crate::on_pool!(self, |pool| {
            sqlx::query("UPDATE engine_uptime SET last_seen_at = $2 WHERE node_id = $1")
                .bind(node_id)
                .bind(now.timestamp_millis())
                .execute(pool)
                .await?;
            sqlx::query("DELETE FROM engine_nodes WHERE node_id = $1")
                .bind(node_id)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }
}
