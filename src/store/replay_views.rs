//! The replay read model in the database (folding replay events into it, an organisation's
//! replays newest first, the running ones the replayers work on), and the run selection a replay
//! is requested with.

use std::collections::HashMap;

use aggregates::RunStatus;
use chrono::{DateTime, Utc};
use projections::replays::{fold_batch, ReplayView};
use projections::runs::RunView;
use uuid::Uuid;

use super::log::LoggedEvent;
use super::run_views::status_name;
use super::views::{in_list, on_tx, values_rows, Tx, LIVE_REPLAYS, LIVE_RUNS, UPSERT_CHUNK};
use super::{Store, StoreError};

/// Where a page of an organisation's replays starts: after this one, in newest-first order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplaysAfter {
    pub requested_at: DateTime<Utc>,
    pub replay_id: Uuid,
}

/// The runs a replay selects, once the selection's trigger parts are resolved to trigger ids.
#[derive(Debug, Clone)]
pub struct RunSelection<'a> {
    pub trigger_ids: &'a [Uuid],
    pub statuses: &'a [RunStatus],
    pub requested_from: Option<DateTime<Utc>>,
    pub requested_to: Option<DateTime<Utc>>,
}

fn replay_from_row(
    (record, last_position): (serde_json::Value, i64),
) -> Result<ReplayView, StoreError> {
    let mut view: ReplayView = serde_json::from_value(record)?;
    view.last_position = last_position;
    Ok(view)
}

fn state_name(state: aggregates::ReplayState) -> &'static str {
    match state {
        aggregates::ReplayState::Running => "running",
        aggregates::ReplayState::Finished => "finished",
        aggregates::ReplayState::Cancelled => "cancelled",
    }
}

impl Store {
    /// One replay, whatever its organisation (callers check it).
    pub async fn replay_view(&self, replay_id: Uuid) -> Result<Option<ReplayView>, StoreError> {
        let sql = format!(
            "SELECT record, last_position FROM {} WHERE replay_id = $1",
            LIVE_REPLAYS.table
        );
        let row: Option<(serde_json::Value, i64)> = crate::on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(replay_id.to_string())
                .fetch_optional(pool)
                .await
        })?;
        row.map(replay_from_row).transpose()
    }

    /// Up to `limit` of an organisation's replays, newest first, starting after `after`.
    pub async fn org_replays(
        &self,
        org_id: Uuid,
        after: Option<ReplaysAfter>,
        limit: i64,
    ) -> Result<Vec<ReplayView>, StoreError> {
        let (requested_at, replay_id) = match after {
            Some(after) => (
                after.requested_at.timestamp_millis(),
                after.replay_id.to_string(),
            ),
            None => (i64::MAX, String::new()),
        };
        let sql = format!(
            "SELECT record, last_position FROM {}
              WHERE org_id = $1
                AND (requested_at < $2 OR (requested_at = $2 AND replay_id < $3) OR $3 = '')
              ORDER BY requested_at DESC, replay_id DESC LIMIT $4",
            LIVE_REPLAYS.table
        );
        let rows: Vec<(serde_json::Value, i64)> = crate::on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(org_id.to_string())
                .bind(requested_at)
                .bind(&replay_id)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter().map(replay_from_row).collect()
    }

    /// The replays still running, in every organisation, oldest first: the replayers' work.
    pub async fn running_replays(&self, limit: i64) -> Result<Vec<ReplayView>, StoreError> {
        let sql = format!(
            "SELECT record, last_position FROM {} WHERE state = 'running'
              ORDER BY requested_at LIMIT $1",
            LIVE_REPLAYS.table
        );
        let rows: Vec<(serde_json::Value, i64)> = crate::on_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(limit).fetch_all(pool).await
        })?;
        rows.into_iter().map(replay_from_row).collect()
    }

    /// Up to `limit` runs of the given triggers in the given statuses, requested within the
    /// range, oldest first.
    pub async fn selected_runs(
        &self,
        selection: &RunSelection<'_>,
        limit: usize,
    ) -> Result<Vec<RunView>, StoreError> {
        if selection.trigger_ids.is_empty() || selection.statuses.is_empty() {
            return Ok(Vec::new());
        }
        let from = selection
            .requested_from
            .map_or(i64::MIN, |at| at.timestamp_millis());
        let to = selection
            .requested_to
            .map_or(i64::MAX, |at| at.timestamp_millis());
        let statuses: Vec<&str> = selection.statuses.iter().map(|s| status_name(*s)).collect();
        let mut selected = Vec::new();
        // Parameters: from, to, the statuses, then a chunk of trigger ids.
        for chunk in selection.trigger_ids.chunks(UPSERT_CHUNK) {
            let status_params = (3..3 + statuses.len())
                .map(|n| format!("${n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let first_trigger = 3 + statuses.len();
            let trigger_params = (first_trigger..first_trigger + chunk.len())
                .map(|n| format!("${n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT record, last_position FROM {}
                  WHERE requested_at >= $1 AND requested_at <= $2
                    AND status IN ({status_params}) AND project_trigger_id IN ({trigger_params})
                  ORDER BY requested_at, run_id LIMIT {limit}",
                LIVE_RUNS.table
            );
            let rows: Vec<(serde_json::Value, i64)> = crate::on_pool!(self, |pool| {
                let mut query = sqlx::query_as(&sql).bind(from).bind(to);
                for status in &statuses {
                    query = query.bind(*status);
                }
                for id in chunk {
                    query = query.bind(id.to_string());
                }
                query.fetch_all(pool).await
            })?;
            for (record, last_position) in rows {
                selected.push(RunView {
                    record: serde_json::from_value(record)?,
                    last_position,
                });
            }
        }
        selected.sort_by_key(|view| (view.record.requested_at, view.record.run_id));
        selected.truncate(limit);
        Ok(selected)
    }

    /// The runs among `ids` that the run read model holds, by id.
    pub async fn run_views(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, RunView>, StoreError> {
        let mut views = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(UPSERT_CHUNK) {
            let sql = format!(
                "SELECT record, last_position FROM {} WHERE run_id IN ({})",
                LIVE_RUNS.table,
                in_list(chunk.len())
            );
            let rows: Vec<(serde_json::Value, i64)> = crate::on_pool!(self, |pool| {
                let mut query = sqlx::query_as(&sql);
                for id in chunk {
                    query = query.bind(id.to_string());
                }
                query.fetch_all(pool).await
            })?;
            for (record, last_position) in rows {
                let view = RunView {
                    record: serde_json::from_value(record)?,
                    last_position,
                };
                views.insert(view.record.run_id, view);
            }
        }
        Ok(views)
    }
}

impl Tx {
    pub(super) async fn fold_replays(
        &mut self,
        table: &str,
        events: &[LoggedEvent],
    ) -> Result<(), StoreError> {
        let mut decoded = Vec::new();
        for event in events {
            if let Some(replay_event) = event.replay_event()? {
                decoded.push((event.stream_uuid()?, replay_event, event.position));
            }
        }
        if decoded.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<Uuid> = decoded.iter().map(|(id, _, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        let current = self.load_replays(table, &ids).await?;
        let changed = fold_batch(
            current,
            decoded
                .iter()
                .map(|(id, event, position)| (*id, event, *position)),
        );
        self.upsert_replays(table, &changed).await
    }

    async fn load_replays(
        &mut self,
        table: &str,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, ReplayView>, StoreError> {
        let mut views = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(UPSERT_CHUNK) {
            let sql = format!(
                "SELECT record, last_position FROM {table} WHERE replay_id IN ({})",
                in_list(chunk.len())
            );
            let rows: Vec<(serde_json::Value, i64)> = on_tx!(self, |conn| {
                let mut query = sqlx::query_as(&sql);
                for id in chunk {
                    query = query.bind(id.to_string());
                }
                query.fetch_all(conn).await
            })?;
            for row in rows {
                let view = replay_from_row(row)?;
                views.insert(view.replay_id, view);
            }
        }
        Ok(views)
    }

    async fn upsert_replays(
        &mut self,
        table: &str,
        views: &[ReplayView],
    ) -> Result<(), StoreError> {
        for chunk in views.chunks(UPSERT_CHUNK) {
            let sql = format!(
                "INSERT INTO {table} (replay_id, org_id, state, requested_at, last_position, record)
                 VALUES {}
                 ON CONFLICT (replay_id) DO UPDATE
                    SET state = excluded.state, last_position = excluded.last_position,
                        record = excluded.record",
                values_rows(chunk.len(), 6)
            );
            let records = chunk
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<Vec<_>, _>>()?;
            on_tx!(self, |conn| {
                let mut query = sqlx::query(&sql);
                for (view, record) in chunk.iter().zip(&records) {
                    query = query
                        .bind(view.replay_id.to_string())
                        .bind(view.org_id.to_string())
                        .bind(state_name(view.state))
                        .bind(view.requested_at.timestamp_millis())
                        .bind(view.last_position)
                        .bind(record);
                }
                query.execute(conn).await.map(|_| ())
            })?;
        }
        Ok(())
    }

    /// An empty table shaped like `replay_view`, with its indexes.
    pub(super) async fn create_replay_table(&mut self, table: &str) -> Result<(), StoreError> {
        let suffix = Uuid::new_v4().simple().to_string();
        let (json, bigint, strict) = match self {
            Self::Sqlite(_) => ("text", "integer", " STRICT"),
            Self::Postgres(_) => ("jsonb", "bigint", ""),
        };
        let statements = [
            format!("DROP TABLE IF EXISTS {table}"),
            format!(
                "CREATE TABLE {table} (
                    replay_id     text PRIMARY KEY,
                    org_id        text     NOT NULL,
                    state         text     NOT NULL,
                    requested_at  {bigint} NOT NULL,
                    last_position {bigint} NOT NULL,
                    record        {json}   NOT NULL){strict}"
            ),
            format!(
                "CREATE INDEX replay_view_org_{suffix}
                    ON {table} (org_id, requested_at DESC, replay_id DESC)"
            ),
            format!(
                "CREATE INDEX replay_view_running_{suffix} ON {table} (requested_at)
                    WHERE state = 'running'"
            ),
        ];
        for statement in statements {
            self.execute(&statement).await?;
        }
        Ok(())
    }
}
