//! One trigger's stream: load it (snapshot plus the events after it) and append to it.
//!
//! The append and the stream reads go through postgres-es / sqlite-es. Snapshots we write
//! ourselves, after the append commits: cqrs-es 0.5's snapshot store applies a command's events a
//! second time to a state its event sink already applied them to, and checks its optimistic lock
//! only after committing (see docs/architecture.md). A snapshot here is a cache: losing one only
//! means replaying a few more events.

use std::collections::HashMap;

use aggregates::{Actor, Trigger, TriggerEvent};
use cqrs_es::persist::{PersistedEventRepository, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::log::decode_event;
use super::{Store, StoreError};

/// Who caused a change and through which request: stored with every event it produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMetadata {
    pub actor: Actor,
    pub org_id: Uuid,
    pub request_id: String,
}

impl EventMetadata {
    fn to_map(&self) -> HashMap<String, String> {
        HashMap::from([
            ("actor".to_owned(), self.actor.to_string()),
            ("org_id".to_owned(), self.org_id.to_string()),
            ("request_id".to_owned(), self.request_id.clone()),
        ])
    }
}

/// A trigger as its stream describes it, with the sequence of the last event that made it so.
#[derive(Debug, Default)]
pub struct LoadedTrigger {
    pub trigger: Trigger,
    pub sequence: usize,
}

impl Store {
    /// Loads a trigger from its latest snapshot plus the events recorded after it.
    pub async fn load_trigger(&self, id: Uuid) -> Result<LoadedTrigger, StoreError> {
        let id = id.to_string();
        let snapshot = match self {
            Self::Sqlite(backend) => backend.repository.get_snapshot::<Trigger>(&id).await?,
            Self::Postgres(backend) => backend.repository.get_snapshot::<Trigger>(&id).await?,
        };
        let mut loaded = match snapshot {
            Some(snapshot) => match serde_json::from_value(snapshot.aggregate) {
                Ok(trigger) => LoadedTrigger {
                    trigger,
                    sequence: snapshot.current_sequence,
                },
                Err(error) => {
                    // A snapshot of an older shape is only a cache miss: replay from the start.
                    tracing::warn!(trigger = %id, %error, "ignoring unreadable snapshot");
                    LoadedTrigger::default()
                }
            },
            None => LoadedTrigger::default(),
        };
        // Our own query rather than the repositories' `get_last_events`, which formats the sequence
        // into its SQL text and so prepares a new statement on every load.
        let newer: Vec<(i64, String, String, serde_json::Value)> = crate::on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT sequence, event_type, event_version, payload FROM events
                  WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3
                  ORDER BY sequence",
            )
            .bind(Trigger::TYPE)
            .bind(&id)
            .bind(loaded.sequence as i64)
            .fetch_all(pool)
            .await
        })?;
        for (sequence, event_type, event_version, payload) in newer {
            loaded
                .trigger
                .apply(decode_event(&event_type, &event_version, payload)?);
            loaded.sequence = sequence as usize;
        }
        Ok(loaded)
    }
    /// Loads a trigger by replaying its whole stream, ignoring snapshots: the reference that
    /// snapshot loading is tested and benchmarked against.
    pub async fn replay_trigger(&self, id: Uuid) -> Result<LoadedTrigger, StoreError> {
        let id = id.to_string();
        let events = match self {
            Self::Sqlite(backend) => backend.repository.get_events::<Trigger>(&id).await?,
            Self::Postgres(backend) => backend.repository.get_events::<Trigger>(&id).await?,
        };
        let mut loaded = LoadedTrigger::default();
        for event in events {
            let decoded = decode_event(&event.event_type, &event.event_version, event.payload)?;
            loaded.trigger.apply(decoded);
            loaded.sequence = event.sequence;
        }
        Ok(loaded)
    }

    /// Appends `events` after `after_sequence` in one transaction and returns the global position
    /// of the last one. [`StoreError::Conflict`] when another writer got there first.
    pub async fn append_trigger_events(
        &self,
        id: Uuid,
        after_sequence: usize,
        events: &[TriggerEvent],
        metadata: &EventMetadata,
    ) -> Result<i64, StoreError> {
        let id = id.to_string();
        let metadata = serde_json::to_value(metadata.to_map())?;
        let serialized = events
            .iter()
            .zip(after_sequence + 1..)
            .map(|(event, sequence)| {
                Ok(SerializedEvent::new(
                    id.clone(),
                    sequence,
                    Trigger::TYPE.to_owned(),
                    event.event_type(),
                    event.event_version(),
                    serde_json::to_value(event)?,
                    metadata.clone(),
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        match self {
            Self::Sqlite(backend) => {
                backend
                    .repository
                    .persist::<Trigger>(&serialized, None)
                    .await?
            }
            Self::Postgres(backend) => {
                backend
                    .repository
                    .persist::<Trigger>(&serialized, None)
                    .await?
            }
        }
        let last_sequence = (after_sequence + events.len()) as i64;
        let position: i64 = crate::on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT position FROM events
                  WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $3",
            )
            .bind(Trigger::TYPE)
            .bind(&id)
            .bind(last_sequence)
            .fetch_one(pool)
            .await
        })?;
        Ok(position)
    }

    /// Records `trigger` as the state after `sequence`, unless a newer snapshot is already there.
    pub async fn save_snapshot(
        &self,
        id: Uuid,
        trigger: &Trigger,
        sequence: usize,
    ) -> Result<(), StoreError> {
        let payload = serde_json::to_value(trigger)?;
        crate::on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload)
                 VALUES ($1, $2, $3, 1, $4)
                 ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
                    SET last_sequence = excluded.last_sequence,
                        current_snapshot = snapshots.current_snapshot + 1,
                        payload = excluded.payload
                  WHERE snapshots.last_sequence < excluded.last_sequence",
            )
            .bind(Trigger::TYPE)
            .bind(id.to_string())
            .bind(sequence as i64)
            .bind(&payload)
            .execute(pool)
            .await.map(|_| ())
        })?;
        Ok(())
    }
}
