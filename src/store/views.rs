//! Read models in the database: projecting batches of the log into them (each with its checkpoint,
//! in one transaction), reading the trigger model, and swapping in a rebuilt copy. The run model's
//! tables are in [`super::run_views`], the replay model's in [`super::replay_views`].

use std::collections::HashMap;

use aggregates::TriggerRecord;
use projections::triggers::{fold_batch, TriggerView};
use sqlx::{Postgres, Sqlite, Transaction};
use uuid::Uuid;

use super::log::LoggedEvent;
use super::{Store, StoreError};

/// Which read model a table holds: it decides which events are folded and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    Triggers,
    Runs,
    Replays,
}

/// Where a projection writes: its model, its table and its checkpoint row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewTarget {
    pub model: Model,
    pub table: &'static str,
    pub checkpoint: &'static str,
}

/// The trigger table the API reads, kept current by the running projector.
pub const LIVE_TRIGGERS: ViewTarget = ViewTarget {
    model: Model::Triggers,
    table: "trigger_view",
    checkpoint: projections::triggers::NAME,
};

/// The fresh trigger table a rebuild fills before it is swapped in.
pub const NEXT_TRIGGERS: ViewTarget = ViewTarget {
    model: Model::Triggers,
    table: "trigger_view_next",
    checkpoint: "triggers@rebuild",
};

/// The run table the API and the executors read.
pub const LIVE_RUNS: ViewTarget = ViewTarget {
    model: Model::Runs,
    table: "run_view",
    checkpoint: projections::runs::NAME,
};

/// The fresh run table a rebuild fills.
pub const NEXT_RUNS: ViewTarget = ViewTarget {
    model: Model::Runs,
    table: "run_view_next",
    checkpoint: "runs@rebuild",
};

/// The replay table the API and the replayers read.
pub const LIVE_REPLAYS: ViewTarget = ViewTarget {
    model: Model::Replays,
    table: "replay_view",
    checkpoint: projections::replays::NAME,
};

/// The fresh replay table a rebuild fills.
pub const NEXT_REPLAYS: ViewTarget = ViewTarget {
    model: Model::Replays,
    table: "replay_view_next",
    checkpoint: "replays@rebuild",
};

impl ViewTarget {
    /// The live table and the rebuild table of the read model an operator names.
    pub fn by_name(name: &str) -> Option<(ViewTarget, ViewTarget)> {
        match name {
            projections::triggers::NAME => Some((LIVE_TRIGGERS, NEXT_TRIGGERS)),
            projections::runs::NAME => Some((LIVE_RUNS, NEXT_RUNS)),
            projections::replays::NAME => Some((LIVE_REPLAYS, NEXT_REPLAYS)),
            _ => None,
        }
    }
}

/// A projection's progress through the log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Checkpoint {
    pub name: String,
    pub position: i64,
}

/// An open transaction on whichever backend the store has.
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// Like [`on_pool!`](crate::on_pool), for a connection inside a [`Tx`].
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            Tx::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
            Tx::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}
pub(super) use on_tx;

/// `($1, $2), ($3, $4)`: the VALUES rows of a multi-row insert, `width` parameters a row.
pub(super) fn values_rows(rows: usize, width: usize) -> String {
    (0..rows)
        .map(|row| {
            let params = (1..=width)
                .map(|column| format!("${}", row * width + column))
                .collect::<Vec<_>>()
                .join(", ");
            format!("({params})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$1, $2, ...`: the list of an `IN (...)` with `count` parameters.
pub(super) fn in_list(count: usize) -> String {
    values_rows(count, 1).replace(['(', ')'], "")
}

/// Rows per multi-row upsert: 8 parameters each or fewer stays far below both backends'
/// parameter limits.
pub(super) const UPSERT_CHUNK: usize = 500;

impl Store {
    /// Opens a transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads first and writes later fails at once
    /// with "database is locked" if another writer committed in between.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        let began = match self {
            Self::Sqlite(backend) => backend
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map(Tx::Sqlite),
            Self::Postgres(backend) => backend.pool.begin().await.map(Tx::Postgres),
        }
        .map_err(StoreError::from);
        self.writes().observe(&began);
        began
    }

    /// Folds up to `limit` events after `target`'s checkpoint into its table and moves the
    /// checkpoint, all in one transaction. Returns the checkpoint it leaves behind.
    pub async fn project_next_batch(
        &self,
        target: ViewTarget,
        limit: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let checkpoint = tx.project_batch(target, limit).await?;
        tx.commit().await?;
        Ok(checkpoint)
    }

    /// Like [`Self::project_next_batch`] for several read models in one transaction: the log is
    /// read once, from the earliest of their checkpoints, and each model folds the events past
    /// its own. Returns the position all of them have reached.
    pub async fn project_next_batches(
        &self,
        targets: &[ViewTarget],
        limit: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let reached = tx.project_batches(targets, limit).await?;
        tx.commit().await?;
        Ok(reached)
    }

    /// Every projection checkpoint, by name.
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let rows: Vec<(String, i64)> = crate::on_pool!(self, |pool| {
            sqlx::query_as("SELECT name, position FROM projection_checkpoints ORDER BY name")
                .fetch_all(pool)
                .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(name, position)| Checkpoint { name, position })
            .collect())
    }

    /// One trigger from the read model, deleted ones included (callers decide what to show).
    pub async fn trigger_view(&self, id: Uuid) -> Result<Option<TriggerView>, StoreError> {
        let sql = format!(
            "SELECT record, last_position FROM {} WHERE project_trigger_id = $1",
            LIVE_TRIGGERS.table
        );
        let row: Option<(serde_json::Value, i64)> = crate::on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(id.to_string())
                .fetch_optional(pool)
                .await
        })?;
        row.map(view_from_row).transpose()
    }

    /// The live triggers of an organisation, of one project when `project_id` is given.
    pub async fn org_trigger_views(
        &self,
        org_id: Uuid,
        project_id: Option<&str>,
    ) -> Result<Vec<TriggerView>, StoreError> {
        let sql = format!(
            "SELECT record, last_position FROM {} WHERE org_id = $1 AND NOT deleted
               AND ($2 IS NULL OR project_id = $2) ORDER BY project_trigger_id",
            LIVE_TRIGGERS.table
        );
        let rows: Vec<(serde_json::Value, i64)> = crate::on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(org_id.to_string())
                .bind(project_id)
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter().map(view_from_row).collect()
    }

    /// The enabled triggers of a provider, in every organisation: where an app's webhook (one URL
    /// for all of Slack or GitHub) is routed.
    pub async fn enabled_trigger_views_of(
        &self,
        provider_id: &str,
    ) -> Result<Vec<TriggerView>, StoreError> {
        let sql = format!(
            "SELECT record, last_position FROM {} WHERE provider_id = $1 AND NOT deleted
              ORDER BY project_trigger_id",
            LIVE_TRIGGERS.table
        );
        let rows: Vec<(serde_json::Value, i64)> = crate::on_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(provider_id).fetch_all(pool).await
        })?;
        let views = rows
            .into_iter()
            .map(view_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(views
            .into_iter()
            .filter(|view| view.record.status == aggregates::TriggerStatus::Enabled)
            .collect())
    }

    /// A provider's triggers (deleted ones included) whose row changed after log position
    /// `after`, oldest change first: how the scheduler follows its triggers without rereading all.
    pub async fn trigger_views_of_since(
        &self,
        provider_id: &str,
        after: i64,
    ) -> Result<Vec<TriggerView>, StoreError> {
        let sql = format!(
            "SELECT record, last_position FROM {} WHERE provider_id = $1 AND last_position > $2
              ORDER BY last_position",
            LIVE_TRIGGERS.table
        );
        let rows: Vec<(serde_json::Value, i64)> = crate::on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(provider_id)
                .bind(after)
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter().map(view_from_row).collect()
    }

    /// Every trigger (deleted ones included) whose row changed after log position `after`,
    /// oldest change first: how the trigger cache catches up.
    pub async fn trigger_views_changed_since(
        &self,
        after: i64,
    ) -> Result<Vec<TriggerView>, StoreError> {
        let sql = format!(
            "SELECT record, last_position FROM {} WHERE last_position > $1 ORDER BY last_position",
            LIVE_TRIGGERS.table
        );
        let rows: Vec<(serde_json::Value, i64)> = crate::on_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(after).fetch_all(pool).await
        })?;
        rows.into_iter().map(view_from_row).collect()
    }

    /// Every row of a view table, for comparing a rebuilt model with the incremental one.
    pub async fn all_trigger_views(&self) -> Result<Vec<TriggerView>, StoreError> {
        let sql = format!(
            "SELECT record, last_position FROM {} ORDER BY project_trigger_id",
            LIVE_TRIGGERS.table
        );
        let rows: Vec<(serde_json::Value, i64)> =
            crate::on_pool!(self, |pool| sqlx::query_as(&sql).fetch_all(pool).await)?;
        rows.into_iter().map(view_from_row).collect()
    }
}

fn view_from_row(
    (record, last_position): (serde_json::Value, i64),
) -> Result<TriggerView, StoreError> {
    Ok(TriggerView {
        record: serde_json::from_value::<TriggerRecord>(record)?,
        last_position,
    })
}

impl Tx {
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(tx) => tx.commit().await?,
            Self::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    /// Locks a checkpoint row for this transaction and reads it: concurrent projectors of the same
    /// model take turns here.
    pub async fn lock_checkpoint(&mut self, name: &str) -> Result<Option<i64>, StoreError> {
        let position = on_tx!(self, |conn| {
            sqlx::query_scalar(
                "UPDATE projection_checkpoints SET position = position WHERE name = $1
                 RETURNING position",
            )
            .bind(name)
            .fetch_optional(conn)
            .await
        })?;
        Ok(position)
    }

    pub async fn set_checkpoint(&mut self, name: &str, position: i64) -> Result<(), StoreError> {
        on_tx!(self, |conn| {
            sqlx::query(
                "INSERT INTO projection_checkpoints (name, position) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE
                    SET position = excluded.position, updated_at = CURRENT_TIMESTAMP",
            )
            .bind(name)
            .bind(position)
            .execute(conn)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// The batch step shared by the live projector and the rebuild: lock the checkpoint, fold the
    /// events after it into the table, move the checkpoint. The caller commits.
    pub async fn project_batch(
        &mut self,
        target: ViewTarget,
        limit: i64,
    ) -> Result<i64, StoreError> {
        let checkpoint = self
            .lock_checkpoint(target.checkpoint)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("no checkpoint `{}`", target.checkpoint)))?;
        let events = self.read_log(checkpoint, limit).await?;
        let Some(last) = events.last().map(|event| event.position) else {
            return Ok(checkpoint);
        };
        match target.model {
            Model::Triggers => self.fold_triggers(target.table, &events).await?,
            Model::Runs => self.fold_runs(target.table, &events).await?,
            Model::Replays => self.fold_replays(target.table, &events).await?,
        }
        self.set_checkpoint(target.checkpoint, last).await?;
        Ok(last)
    }

    /// The step of [`Store::project_next_batches`]: every target's checkpoint locked (in the
    /// order given, so concurrent projectors cannot deadlock), one read of the log. The caller
    /// commits.
    pub async fn project_batches(
        &mut self,
        targets: &[ViewTarget],
        limit: i64,
    ) -> Result<i64, StoreError> {
        let mut checkpoints = Vec::with_capacity(targets.len());
        for target in targets {
            let checkpoint = self
                .lock_checkpoint(target.checkpoint)
                .await?
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("no checkpoint `{}`", target.checkpoint))
                })?;
            checkpoints.push(checkpoint);
        }
        let Some(&earliest) = checkpoints.iter().min() else {
            return Ok(0);
        };
        let events = self.read_log(earliest, limit).await?;
        let Some(last) = events.last().map(|event| event.position) else {
            return Ok(earliest);
        };
        let mut reached = i64::MAX;
        for (target, checkpoint) in targets.iter().zip(checkpoints) {
            let start = events.partition_point(|event| event.position <= checkpoint);
            let mine = &events[start..];
            if !mine.is_empty() {
                match target.model {
                    Model::Triggers => self.fold_triggers(target.table, mine).await?,
                    Model::Runs => self.fold_runs(target.table, mine).await?,
                    Model::Replays => self.fold_replays(target.table, mine).await?,
                }
                self.set_checkpoint(target.checkpoint, last).await?;
            }
            reached = reached.min(checkpoint.max(last));
        }
        Ok(reached)
    }

    async fn fold_triggers(
        &mut self,
        table: &str,
        events: &[LoggedEvent],
    ) -> Result<(), StoreError> {
        let mut decoded = Vec::with_capacity(events.len());
        for event in events {
            if let Some(trigger_event) = event.trigger_event()? {
                decoded.push((event.stream_uuid()?, trigger_event, event.position));
            }
        }
        let mut ids: Vec<Uuid> = decoded.iter().map(|(id, _, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        let current = self.load_views(table, &ids).await?;
        let changed = fold_batch(
            current,
            decoded
                .iter()
                .map(|(id, event, position)| (*id, event, *position)),
        );
        self.upsert_views(table, &changed).await
    }

    pub(super) async fn read_log(
        &mut self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        let events = on_tx!(self, |conn| {
            sqlx::query_as(&super::log::read_log_sql())
                .bind(after)
                .bind(limit)
                .fetch_all(conn)
                .await
        })?;
        Ok(events)
    }

    async fn load_views(
        &mut self,
        table: &str,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, TriggerView>, StoreError> {
        let mut views = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(UPSERT_CHUNK) {
            let sql = format!(
                "SELECT record, last_position FROM {table} WHERE project_trigger_id IN ({})",
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
                let view = view_from_row(row)?;
                views.insert(view.record.project_trigger_id, view);
            }
        }
        Ok(views)
    }

    async fn upsert_views(&mut self, table: &str, views: &[TriggerView]) -> Result<(), StoreError> {
        for chunk in views.chunks(UPSERT_CHUNK) {
            let rows = values_rows(chunk.len(), 7);
            let sql = format!(
                "INSERT INTO {table} (project_trigger_id, org_id, project_id, provider_id, deleted,
                                      last_position, record)
                 VALUES {rows}
                 ON CONFLICT (project_trigger_id) DO UPDATE
                    SET org_id = excluded.org_id, project_id = excluded.project_id,
                        provider_id = excluded.provider_id,
                        deleted = excluded.deleted, last_position = excluded.last_position,
                        record = excluded.record"
            );
            let records = chunk
                .iter()
                .map(|view| serde_json::to_value(&view.record))
                .collect::<Result<Vec<_>, _>>()?;
            on_tx!(self, |conn| {
                let mut query = sqlx::query(&sql);
                for (view, record) in chunk.iter().zip(&records) {
                    query = query
                        .bind(view.record.project_trigger_id.to_string())
                        .bind(view.record.org_id.to_string())
                        .bind(&view.record.project_id)
                        .bind(&view.record.provider_id)
                        .bind(view.record.is_deleted())
                        .bind(view.last_position)
                        .bind(record);
                }
                query.execute(conn).await.map(|_| ())
            })?;
        }
        Ok(())
    }

    /// Creates an empty table shaped like `target`'s live table, for a rebuild to fill.
    pub async fn create_view_table(&mut self, target: ViewTarget) -> Result<(), StoreError> {
        match target.model {
            Model::Triggers => self.create_trigger_table(target.table).await,
            Model::Runs => self.create_run_table(target.table).await,
            Model::Replays => self.create_replay_table(target.table).await,
        }
    }

    /// Index names carry a random suffix because a swapped-in table keeps the names it was built
    /// with.
    async fn create_trigger_table(&mut self, table: &str) -> Result<(), StoreError> {
        let suffix = Uuid::new_v4().simple().to_string();
        // STRICT SQLite tables accept only its own five type names.
        let (json, boolean, bigint, strict) = match self {
            Self::Sqlite(_) => ("text", "integer", "integer", " STRICT"),
            Self::Postgres(_) => ("jsonb", "boolean", "bigint", ""),
        };
        let statements = [
            format!("DROP TABLE IF EXISTS {table}"),
            format!(
                "CREATE TABLE {table} (
                    project_trigger_id text PRIMARY KEY,
                    org_id             text     NOT NULL,
                    project_id         text     NOT NULL,
                    deleted            {boolean} NOT NULL,
                    provider_id        text     NOT NULL DEFAULT '',
                    last_position      {bigint} NOT NULL,
                    record             {json}   NOT NULL){strict}"
            ),
            format!(
                "CREATE INDEX trigger_view_org_project_{suffix} ON {table} (org_id, project_id)"
            ),
            format!("CREATE INDEX trigger_view_provider_{suffix} ON {table} (provider_id)"),
            format!("CREATE INDEX trigger_view_last_position_{suffix} ON {table} (last_position)"),
        ];
        for statement in statements {
            on_tx!(self, |conn| sqlx::query(&statement)
                .execute(conn)
                .await
                .map(|_| ()))?;
        }
        Ok(())
    }

    /// Runs one DDL or maintenance statement inside the transaction.
    pub async fn execute(&mut self, statement: &str) -> Result<(), StoreError> {
        on_tx!(self, |conn| sqlx::query(statement)
            .execute(conn)
            .await
            .map(|_| ()))?;
        Ok(())
    }
}
