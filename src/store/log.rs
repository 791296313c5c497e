//! The global log: every event of every stream, by gap-free position in commit order.

use aggregates::event::EVENT_VERSION;
use aggregates::{Replay, ReplayEvent, Run, RunEvent, Trigger, TriggerEvent};
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::streams::Streamed;
use super::{Store, StoreError};

/// One stored event with everything an auditor or a projector needs to read it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct LoggedEvent {
    pub position: i64,
    pub event_id: String,
    pub recorded_at: DateTime<Utc>,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
}

impl LoggedEvent {
    /// The event as the trigger domain reads it, if it belongs to a trigger stream.
    pub fn trigger_event(&self) -> Result<Option<TriggerEvent>, StoreError> {
        if self.aggregate_type != Trigger::TYPE {
            return Ok(None);
        }
        decode::<Trigger>(&self.event_type, &self.event_version, self.payload.clone()).map(Some)
    }

    /// The event as the run domain reads it, if it belongs to a run stream.
    pub fn run_event(&self) -> Result<Option<RunEvent>, StoreError> {
        if self.aggregate_type != Run::TYPE {
            return Ok(None);
        }
        decode::<Run>(&self.event_type, &self.event_version, self.payload.clone()).map(Some)
    }

    /// The event as the replay domain reads it, if it belongs to a replay stream.
    pub fn replay_event(&self) -> Result<Option<ReplayEvent>, StoreError> {
        if self.aggregate_type != Replay::TYPE {
            return Ok(None);
        }
        decode::<Replay>(&self.event_type, &self.event_version, self.payload.clone()).map(Some)
    }

    /// The stream's id: every stream we write is named by a UUID.
    pub fn stream_uuid(&self) -> Result<uuid::Uuid, StoreError> {
        uuid::Uuid::parse_str(&self.aggregate_id)
            .map_err(|error| StoreError::Corrupt(format!("stream id: {error}")))
    }

    /// A metadata field such as `actor` or `request_id`.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str)
    }
}

/// Reads a stored event of aggregate `A`. Only version 1 exists; a later shape change adds an
/// upcaster here.
pub(crate) fn decode<A: Streamed>(
    event_type: &str,
    event_version: &str,
    payload: Value,
) -> Result<A::Event, StoreError> {
    if event_version != EVENT_VERSION || !A::EVENT_TYPES.contains(&event_type) {
        return Err(StoreError::Corrupt(format!(
            "no reader for event {event_type} version {event_version}"
        )));
    }
    Ok(serde_json::from_value(payload)?)
}

pub(crate) const COLUMNS: &str =
    "position, CAST(event_id AS TEXT) AS event_id, recorded_at, aggregate_type,
    aggregate_id, sequence, event_type, event_version, payload, metadata";

/// Up to `$2` events after position `$1`, in position order.
pub(crate) fn read_log_sql() -> String {
    format!("SELECT {COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2")
}

impl Store {
    /// Up to `limit` events after `position`, in position order.
    pub async fn read_log(&self, after: i64, limit: i64) -> Result<Vec<LoggedEvent>, StoreError> {
        let events = crate::on_pool!(self, |pool| {
            sqlx::query_as(&read_log_sql())
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        Ok(events)
    }

    /// One stream's events in order: the history an auditor replays.
    pub async fn stream_history(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM events
              WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence"
        );
        let events = crate::on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(aggregate_type)
                .bind(aggregate_id)
                .fetch_all(pool)
                .await
        })?;
        Ok(events)
    }

    /// Up to `limit` of one stream's events after `after_sequence`, in order: a page of its
    /// history, read by the stream key's index however long the stream is.
    pub async fn stream_page(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        after_sequence: i64,
        limit: i64,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM events
              WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3
              ORDER BY sequence LIMIT $4"
        );
        let events = crate::on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(aggregate_type)
                .bind(aggregate_id)
                .bind(after_sequence)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        Ok(events)
    }

    /// Up to `limit` of `org_id`'s events after position `after` and at most `until`, in
    /// position order. `until` bounds the scan, so an organisation with few events in a long log
    /// costs a bounded read per page rather than the whole log.
    pub async fn org_log(
        &self,
        org_id: Uuid,
        after: i64,
        until: i64,
        limit: i64,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        // `->>` reads a JSON member as text on both PostgreSQL (jsonb) and SQLite (3.38+).
        let sql = format!(
            "SELECT {COLUMNS} FROM events
              WHERE position > $1 AND position <= $2 AND metadata ->> 'org_id' = $3
              ORDER BY position LIMIT $4"
        );
        let events = crate::on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(after)
                .bind(until)
                .bind(org_id.to_string())
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        Ok(events)
    }

    /// The last position handed out: everything up to it is committed and visible.
    pub async fn head(&self) -> Result<i64, StoreError> {
        let head = crate::on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
                .fetch_one(pool)
                .await
        })?;
        Ok(head)
    }
}
