//! One aggregate's stream (a trigger's, a run's or a replay's): load it (snapshot plus the events after it)
//! and append to it.
//!
//! Both are our own SQL, one statement each on the hot path: loading reads the snapshot and the
//! newer events in one query, and appends go through the group-commit appender, whose one INSERT
//! (in autocommit on PostgreSQL) holds the log-head lock only until that statement commits. postgres-es and
//! sqlite-es, whose table layout we keep, replay whole streams ([`Store::replay`]).
//! Measured in docs/benchmarks.md: their append (BEGIN, INSERT, COMMIT) held the lock across the
//! client's COMMIT round trip, and their `get_last_events` prepares a new statement on every call.
//!
//! Snapshots are written after the append commits, not through cqrs-es 0.5's snapshot store, which
//! applies a command's events a second time to a state its event sink already applied them to, and
//! checks its optimistic lock only after committing (see docs/architecture.md). A snapshot here is
//! a cache: losing one only means replaying a few more events.

use std::collections::{HashMap, HashSet};

use aggregates::{Actor, Replay, ReplayEvent, Run, RunEvent, Trigger, TriggerEvent};
use cqrs_es::persist::PersistedEventRepository;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::appender::{AppendGroup, EventRow, StreamAppend};
use super::log::decode;
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

/// An aggregate kept in the log: its stream type, and the event type names a reader accepts.
pub trait Streamed: Aggregate {
    /// Every event type name this aggregate has ever stored (a persistence contract).
    const EVENT_TYPES: &'static [&'static str];
}

impl Streamed for Trigger {
    const EVENT_TYPES: &'static [&'static str] = &TriggerEvent::TYPES;
}

impl Streamed for Run {
    const EVENT_TYPES: &'static [&'static str] = &RunEvent::TYPES;
}

impl Streamed for Replay {
    const EVENT_TYPES: &'static [&'static str] = &ReplayEvent::TYPES;
}

/// An aggregate as its stream describes it, with the sequence of the last event that made it so.
#[derive(Debug, Default)]
pub struct Loaded<A> {
    pub state: A,
    pub sequence: usize,
}

impl Store {
    /// Loads an aggregate from its latest snapshot plus the events recorded after it, in one query.
    pub async fn load<A: Streamed>(&self, id: Uuid) -> Result<Loaded<A>, StoreError> {
        let key = id.to_string();
        let rows: Vec<(i32, i64, String, String, Value)> = crate::on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT 0 AS part, last_sequence AS sequence, '' AS event_type, '' AS event_version,
                        payload
                   FROM snapshots WHERE aggregate_type = $1 AND aggregate_id = $2
                 UNION ALL
                 SELECT 1, sequence, event_type, event_version, payload
                   FROM events
                  WHERE aggregate_type = $1 AND aggregate_id = $2
                    AND sequence > COALESCE((SELECT last_sequence FROM snapshots
                                              WHERE aggregate_type = $1 AND aggregate_id = $2), 0)
                 ORDER BY 1, 2",
            )
            .bind(A::TYPE)
            .bind(&key)
            .fetch_all(pool)
            .await
        })?;
        let mut loaded = Loaded::<A>::default();
        for (part, sequence, event_type, event_version, payload) in rows {
            if part == 0 {
                match serde_json::from_value(payload) {
                    Ok(state) => loaded.state = state,
                    Err(error) => {
                        // A snapshot of an older shape is only a cache miss: replay from the start.
                        tracing::warn!(stream = %id, %error, "ignoring unreadable snapshot");
                        return self.replay(id).await;
                    }
                }
            } else {
                loaded
                    .state
                    .apply(decode::<A>(&event_type, &event_version, payload)?);
            }
            loaded.sequence = sequence as usize;
        }
        Ok(loaded)
    }

    /// Loads an aggregate by replaying its whole stream, ignoring snapshots: the reference that
    /// snapshot loading is tested and benchmarked against.
    pub async fn replay<A: Streamed>(&self, id: Uuid) -> Result<Loaded<A>, StoreError> {
        let id = id.to_string();
        let events = match self {
            Self::Sqlite(backend) => backend.repository.get_events::<A>(&id).await?,
            Self::Postgres(backend) => backend.repository.get_events::<A>(&id).await?,
        };
        let mut loaded = Loaded::<A>::default();
        for event in events {
            let decoded = decode::<A>(&event.event_type, &event.event_version, event.payload)?;
            loaded.state.apply(decoded);
            loaded.sequence = event.sequence;
        }
        Ok(loaded)
    }

    /// Appends `events` after `after_sequence` atomically and returns the global position of the
    /// last one. [`StoreError::Conflict`] when another writer appended to the stream first.
    pub async fn append<A: Streamed>(
        &self,
        id: Uuid,
        after_sequence: usize,
        events: &[A::Event],
        metadata: &EventMetadata,
    ) -> Result<i64, StoreError> {
        let append = Self::stream_append::<A>(id, after_sequence, events, metadata)?;
        self.appender().append(append).await
    }

    /// Appends to several streams at once: every one of them is recorded, in one commit, or none
    /// is ([`StoreError::Conflict`] when another writer appended to any of them first). Returns
    /// the position of each stream's last event, in order.
    pub async fn append_together(&self, group: AppendGroup) -> Result<Vec<i64>, StoreError> {
        if group.is_empty() {
            return Ok(Vec::new());
        }
        self.appender().append_group(group).await
    }

    /// One stream's part of [`append_together`](Self::append_together): `events` after
    /// `after_sequence` of aggregate `id`.
    pub fn stream_append<A: Streamed>(
        id: Uuid,
        after_sequence: usize,
        events: &[A::Event],
        metadata: &EventMetadata,
    ) -> Result<StreamAppend, StoreError> {
        if events.is_empty() {
            return Err(StoreError::Corrupt(
                "an append needs at least one event".into(),
            ));
        }
        let rows = events
            .iter()
            .zip(after_sequence as i64 + 1..)
            .map(|(event, sequence)| {
                Ok(EventRow {
                    sequence,
                    event_type: event.event_type(),
                    event_version: event.event_version(),
                    payload: serde_json::to_value(event)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(StreamAppend {
            aggregate_type: A::TYPE,
            aggregate_id: id.to_string(),
            rows,
            metadata: serde_json::to_value(metadata.to_map())?,
        })
    }

    /// Which of `ids` name a stream of aggregate `A` that has begun (holds its first event).
    pub async fn existing<A: Streamed>(&self, ids: &[Uuid]) -> Result<HashSet<Uuid>, StoreError> {
        let mut existing = HashSet::new();
        // 500 ids a statement keeps the parameter list short on both backends.
        for chunk in ids.chunks(500) {
            let placeholders = (2..chunk.len() + 2)
                .map(|n| format!("${n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT aggregate_id FROM events
                  WHERE aggregate_type = $1 AND sequence = 1 AND aggregate_id IN ({placeholders})"
            );
            let found: Vec<String> = crate::on_pool!(self, |pool| {
                let mut query = sqlx::query_scalar(&sql).bind(A::TYPE);
                for id in chunk {
                    query = query.bind(id.to_string());
                }
                query.fetch_all(pool).await
            })?;
            for id in found {
                existing.insert(super::parse_id(&id)?);
            }
        }
        Ok(existing)
    }

    /// Records `state` as the aggregate after `sequence`, unless a newer snapshot is already there.
    pub async fn save_snapshot<A: Streamed>(
        &self,
        id: Uuid,
        state: &A,
        sequence: usize,
    ) -> Result<(), StoreError> {
        let payload = serde_json::to_value(state)?;
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
            .bind(A::TYPE)
            .bind(id.to_string())
            .bind(sequence as i64)
            .bind(&payload)
            .execute(pool)
            .await.map(|_| ())
        })?;
        Ok(())
    }
}
