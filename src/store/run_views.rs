//! The run read model in the database: folding run events into it, the executors' queue of due
//! runs, and a trigger's runs newest first.

use std::collections::HashMap;

use aggregates::RunStatus;
use chrono::{DateTime, Utc};
use projections::runs::{fold_batch, RunView};
use uuid::Uuid;

use super::log::LoggedEvent;
use super::views::{in_list, on_tx, values_rows, Tx, LIVE_RUNS, UPSERT_CHUNK};
use super::{Store, StoreError};

/// Where a page of a trigger's runs starts: after this run, in newest-first order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunsAfter {
    pub requested_at: DateTime<Utc>,
    pub run_id: Uuid,
}

/// The stored name of a status, the same as its JSON name.
pub fn status_name(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Requested => "requested",
        RunStatus::Running => "running",
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "failed",
        RunStatus::DeadLettered => "dead_lettered",
        RunStatus::Held => "held",
        RunStatus::Skipped => "skipped",
    }
}

fn run_from_row((record, last_position): (serde_json::Value, i64)) -> Result<RunView, StoreError> {
    Ok(RunView {
        record: serde_json::from_value(record)?,
        last_position,
    })
}

impl Store {
    /// One run, whatever its trigger (callers check the organisation).
    pub async fn run_view(&self, run_id: Uuid) -> Result<Option<RunView>, StoreError> {
        let sql = format!(
            "SELECT record, last_position FROM {} WHERE run_id = $1",
            LIVE_RUNS.table
        );
        let row: Option<(serde_json::Value, i64)> = crate::on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(run_id.to_string())
                .fetch_optional(pool)
                .await
        })?;
        row.map(run_from_row).transpose()
    }

    /// Up to `limit` of a trigger's runs, newest first, starting after `after`.
    pub async fn trigger_runs(
        &self,
        project_trigger_id: Uuid,
        after: Option<RunsAfter>,
        limit: i64,
    ) -> Result<Vec<RunView>, StoreError> {
        let (requested_at, run_id) = match after {
            Some(after) => (
                after.requested_at.timestamp_millis(),
                after.run_id.to_string(),
            ),
            None => (i64::MAX, String::new()),
        };
        // Keyset pagination on (requested_at, run_id) descending: a page never shifts when new
        // runs arrive, and each page is one index range.
        let sql = format!(
            "SELECT record, last_position FROM {}
              WHERE project_trigger_id = $1
                AND (requested_at < $2 OR (requested_at = $2 AND run_id < $3) OR $3 = '')
              ORDER BY requested_at DESC, run_id DESC LIMIT $4",
            LIVE_RUNS.table
        );
        let rows: Vec<(serde_json::Value, i64)> = crate::on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(project_trigger_id.to_string())
                .bind(requested_at)
                .bind(&run_id)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter().map(run_from_row).collect()
    }

    /// Up to `limit` of a trigger's runs requested within `from..=to`, oldest first.
    pub async fn trigger_runs_between(
        &self,
        project_trigger_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<RunView>, StoreError> {
        let sql = format!(
            "SELECT record, last_position FROM {}
              WHERE project_trigger_id = $1 AND requested_at >= $2 AND requested_at <= $3
              ORDER BY requested_at, run_id LIMIT $4",
            LIVE_RUNS.table
        );
        let rows: Vec<(serde_json::Value, i64)> = crate::on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(project_trigger_id.to_string())
                .bind(from.timestamp_millis())
                .bind(to.timestamp_millis())
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter().map(run_from_row).collect()
    }

    /// Up to `limit` runs an executor should look at now: runs whose next attempt is due, and
    /// running runs whose attempt started more than `lease` ago (its worker is presumed lost).
    /// Organisations take turns: each one's longest-waiting run comes first, then each one's
    /// second, so a backlog in one organisation does not hold back another's new run.
    pub async fn due_runs(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: i64,
    ) -> Result<Vec<RunView>, StoreError> {
        let sql = format!(
            "SELECT record, last_position FROM (
                SELECT record, last_position, due_at,
                       ROW_NUMBER() OVER (PARTITION BY org_id ORDER BY due_at, run_id) AS turn
                  FROM {}
                 WHERE due_at IS NOT NULL AND due_at <= $1
                   AND (status <> 'running' OR due_at <= $2)
             ) due
             ORDER BY turn, due_at LIMIT $3",
            LIVE_RUNS.table
        );
        let now_ms = now.timestamp_millis();
        let rows: Vec<(serde_json::Value, i64)> = crate::on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(now_ms)
                .bind(now_ms - lease.num_milliseconds())
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter().map(run_from_row).collect()
    }
}

impl Store {
    /// Up to `limit` held runs whose trigger is neither paused nor deleted now, the oldest first:
    /// the runs a resume releases. A held run of a schedule with `overlap: buffer_one` waits
    /// behind the trigger's running one: it is left out while the trigger has a run that is
    /// requested, running or failed (due again). Each comes with whether its trigger runs one at a
    /// time (`buffer_one`), so the caller releases at most one of those per trigger.
    pub async fn resumed_held_runs(&self, limit: i64) -> Result<Vec<(RunView, bool)>, StoreError> {
        let (still_held, serial) = match self {
            Self::Sqlite(_) => (
                "coalesce(json_extract(t.record, '$.paused'), 0) = 0 AND t.deleted = 0",
                "coalesce(json_extract(t.record, '$.trigger_config.overlap') = 'buffer_one', 0)",
            ),
            Self::Postgres(_) => (
                "coalesce((t.record->>'paused')::boolean, false) = false AND NOT t.deleted",
                "coalesce(t.record->'trigger_config'->>'overlap' = 'buffer_one', false)",
            ),
        };
        let sql = format!(
            "SELECT r.record, r.last_position, {serial} AS serial FROM {runs} r
               JOIN {triggers} t ON t.project_trigger_id = r.project_trigger_id
              WHERE r.status = 'held' AND {still_held}
                AND NOT ({serial} AND EXISTS (
                    SELECT 1 FROM {runs} busy
                     WHERE busy.project_trigger_id = r.project_trigger_id
                       AND busy.status IN ('requested', 'running', 'failed')))
              ORDER BY r.requested_at, r.run_id LIMIT $1",
            runs = LIVE_RUNS.table,
            triggers = super::views::LIVE_TRIGGERS.table,
        );
        let rows: Vec<(serde_json::Value, i64, bool)> = crate::on_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(limit).fetch_all(pool).await
        })?;
        rows.into_iter()
            .map(|(record, position, serial)| Ok((run_from_row((record, position))?, serial)))
            .collect()
    }

    /// Which of `run_ids` the run read model holds (a backfill's dry run: the slots fired).
    pub async fn existing_runs(
        &self,
        run_ids: &[Uuid],
    ) -> Result<std::collections::HashSet<Uuid>, StoreError> {
        let mut found = std::collections::HashSet::new();
        for chunk in run_ids.chunks(UPSERT_CHUNK) {
            let sql = format!(
                "SELECT run_id FROM {} WHERE run_id IN ({})",
                LIVE_RUNS.table,
                in_list(chunk.len())
            );
            let rows: Vec<(String,)> = crate::on_pool!(self, |pool| {
                let mut query = sqlx::query_as(&sql);
                for id in chunk {
                    query = query.bind(id.to_string());
                }
                query.fetch_all(pool).await
            })?;
            for (id,) in rows {
                if let Ok(id) = id.parse() {
                    found.insert(id);
                }
            }
        }
        Ok(found)
    }
}

impl Tx {
    pub(super) async fn fold_runs(
        &mut self,
        table: &str,
        events: &[LoggedEvent],
    ) -> Result<(), StoreError> {
        let mut decoded = Vec::with_capacity(events.len());
        for event in events {
            if let Some(run_event) = event.run_event()? {
                decoded.push((event.stream_uuid()?, run_event, event.position));
            }
        }
        if decoded.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<Uuid> = decoded.iter().map(|(id, _, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        let current = self.load_runs(table, &ids).await?;
        let changed = fold_batch(
            current,
            decoded
                .iter()
                .map(|(id, event, position)| (*id, event, *position)),
        );
        self.upsert_runs(table, &changed).await
    }

    async fn load_runs(
        &mut self,
        table: &str,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, RunView>, StoreError> {
        let mut views = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(UPSERT_CHUNK) {
            let sql = format!(
                "SELECT record, last_position FROM {table} WHERE run_id IN ({})",
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
                let view = run_from_row(row)?;
                views.insert(view.record.run_id, view);
            }
        }
        Ok(views)
    }

    async fn upsert_runs(&mut self, table: &str, views: &[RunView]) -> Result<(), StoreError> {
        for chunk in views.chunks(UPSERT_CHUNK) {
            let sql = format!(
                "INSERT INTO {table} (run_id, project_trigger_id, org_id, status, due_at,
                                      requested_at, last_position, record)
                 VALUES {}
                 ON CONFLICT (run_id) DO UPDATE
                    SET status = excluded.status, due_at = excluded.due_at,
                        last_position = excluded.last_position, record = excluded.record",
                values_rows(chunk.len(), 8)
            );
            let records = chunk
                .iter()
                .map(|view| serde_json::to_value(&view.record))
                .collect::<Result<Vec<_>, _>>()?;
            on_tx!(self, |conn| {
                let mut query = sqlx::query(&sql);
                for (view, record) in chunk.iter().zip(&records) {
                    let run = &view.record;
                    query = query
                        .bind(run.run_id.to_string())
                        .bind(run.firing.project_trigger_id.to_string())
                        .bind(run.firing.org_id.to_string())
                        .bind(status_name(run.status))
                        .bind(view.due_at().map(|at| at.timestamp_millis()))
                        .bind(run.requested_at.timestamp_millis())
                        .bind(view.last_position)
                        .bind(record);
                }
                query.execute(conn).await.map(|_| ())
            })?;
        }
        Ok(())
    }

    /// An empty table shaped like `run_view`, with its indexes (named with a random suffix, as a
    /// swapped-in table keeps the names it was built with).
    pub(super) async fn create_run_table(&mut self, table: &str) -> Result<(), StoreError> {
        let suffix = Uuid::new_v4().simple().to_string();
        let (json, bigint, strict) = match self {
            Self::Sqlite(_) => ("text", "integer", " STRICT"),
            Self::Postgres(_) => ("jsonb", "bigint", ""),
        };
        let statements = [
            format!("DROP TABLE IF EXISTS {table}"),
            format!(
                "CREATE TABLE {table} (
                    run_id             text PRIMARY KEY,
                    project_trigger_id text     NOT NULL,
                    org_id             text     NOT NULL,
                    status             text     NOT NULL,
                    due_at             {bigint},
                    requested_at       {bigint} NOT NULL,
                    last_position      {bigint} NOT NULL,
                    record             {json}   NOT NULL){strict}"
            ),
            format!(
                "CREATE INDEX run_view_trigger_{suffix}
                    ON {table} (project_trigger_id, requested_at DESC, run_id DESC)"
            ),
            format!(
                "CREATE INDEX run_view_due_{suffix} ON {table} (due_at) WHERE due_at IS NOT NULL"
            ),
            format!(
                "CREATE INDEX run_view_held_{suffix} ON {table} (requested_at)
                    WHERE status = 'held'"
            ),
            format!(
                "CREATE INDEX run_view_org_requested_{suffix} ON {table} (org_id, requested_at)"
            ),
        ];
        for statement in statements {
            self.execute(&statement).await?;
        }
        Ok(())
    }
}
