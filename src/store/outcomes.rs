//! Recent outcomes per trigger that the log does not hold (migration 0012): written in batches
//! by [`crate::outcomes`], trimmed to a cap per trigger and a retention window, read by
//! `GET /triggers/{id}/explain`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::views::{on_tx, values_rows, Tx, UPSERT_CHUNK};
use super::{Store, StoreError};

/// One kept outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOutcome {
    pub project_trigger_id: Uuid,
    pub at: DateTime<Utc>,
    /// What the occurrence was: `delivery`, `poll`.
    pub source: String,
    /// What came of it, e.g. `rejected`, `filtered`, `duplicate`.
    pub outcome: String,
    pub reason: Option<String>,
    pub run_id: Option<Uuid>,
}

/// How many outcomes of a trigger were not kept, since when and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotKept {
    pub count: i64,
    pub since: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
}

fn millis(at: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at).unwrap_or_default()
}

type OutcomeRow = (String, i64, String, String, Option<String>, Option<String>);

impl Store {
    /// Records `outcomes`, then trims each trigger of `trim` to its newest `cap` outcomes,
    /// counting what it trims, and adds `dropped` (outcomes never written, per trigger) to the
    /// same counts. One transaction. Returns how many outcomes each trimmed trigger keeps.
    pub async fn record_outcomes(
        &self,
        outcomes: &[StoredOutcome],
        dropped: &HashMap<Uuid, (i64, DateTime<Utc>)>,
        trim: &[Uuid],
        cap: i64,
    ) -> Result<HashMap<Uuid, i64>, StoreError> {
        let mut tx = self.begin().await?;
        for chunk in outcomes.chunks(UPSERT_CHUNK) {
            let sql = format!(
                "INSERT INTO trigger_outcomes
                    (project_trigger_id, at, source, outcome, reason, run_id) VALUES {}",
                values_rows(chunk.len(), 6)
            );
            on_tx!(&mut tx, |conn| {
                let mut query = sqlx::query(&sql);
                for outcome in chunk {
                    query = query
                        .bind(outcome.project_trigger_id.to_string())
                        .bind(outcome.at.timestamp_millis())
                        .bind(&outcome.source)
                        .bind(&outcome.outcome)
                        .bind(&outcome.reason)
                        .bind(outcome.run_id.map(|id| id.to_string()));
                }
                query.execute(conn).await.map(|_| ())
            })?;
        }
        let mut not_kept: HashMap<Uuid, (i64, DateTime<Utc>)> = dropped.clone();
        let mut kept = HashMap::with_capacity(trim.len());
        for trigger in trim {
            let id = trigger.to_string();
            // Everything older than the trigger's `cap`-th newest outcome goes.
            let trimmed = on_tx!(&mut tx, |conn| {
                sqlx::query(
                    "DELETE FROM trigger_outcomes
                      WHERE project_trigger_id = $1
                        AND id < (SELECT MIN(id) FROM (SELECT id FROM trigger_outcomes
                                                        WHERE project_trigger_id = $1
                                                        ORDER BY id DESC LIMIT $2) AS newest)",
                )
                .bind(&id)
                .bind(cap)
                .execute(conn)
                .await
                .map(|done| done.rows_affected() as i64)
            })?;
            if trimmed > 0 {
                let entry = not_kept.entry(*trigger).or_insert((0, Utc::now()));
                entry.0 += trimmed;
            }
            let count: i64 = on_tx!(&mut tx, |conn| {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM trigger_outcomes WHERE project_trigger_id = $1",
                )
                .bind(&id)
                .fetch_one(conn)
                .await
            })?;
            kept.insert(*trigger, count);
        }
        for (trigger, (count, at)) in not_kept {
            let at = at.timestamp_millis();
            on_tx!(&mut tx, |conn| {
                sqlx::query(
                    "INSERT INTO trigger_outcome_overflow (project_trigger_id, not_kept, since, last_at)
                     VALUES ($1, $2, $3, $3)
                     ON CONFLICT (project_trigger_id) DO UPDATE
                        SET not_kept = trigger_outcome_overflow.not_kept + excluded.not_kept,
                            last_at = excluded.last_at",
                )
                .bind(trigger.to_string())
                .bind(count)
                .bind(at)
                .execute(conn)
                .await
                .map(|_| ())
            })?;
        }
        tx.commit().await?;
        Ok(kept)
    }

    /// Forgets outcomes recorded before `before`, and counts of what was not kept whose last
    /// occurrence is older too. Returns how many outcomes it forgot.
    pub async fn expire_outcomes(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let before = before.timestamp_millis();
        let forgotten = crate::on_pool!(self, |pool| {
            sqlx::query("DELETE FROM trigger_outcomes WHERE at < $1")
                .bind(before)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        crate::on_pool!(self, |pool| {
            sqlx::query("DELETE FROM trigger_outcome_overflow WHERE last_at < $1")
                .bind(before)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(forgotten)
    }

    /// Up to `limit` kept outcomes of a trigger within `from..=to`, oldest first.
    pub async fn trigger_outcomes(
        &self,
        trigger: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<StoredOutcome>, StoreError> {
        let rows: Vec<OutcomeRow> = crate::on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT project_trigger_id, at, source, outcome, reason, run_id
                   FROM trigger_outcomes
                  WHERE project_trigger_id = $1 AND at >= $2 AND at <= $3
                  ORDER BY at, id LIMIT $4",
            )
            .bind(trigger.to_string())
            .bind(from.timestamp_millis())
            .bind(to.timestamp_millis())
            .bind(limit)
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter()
            .map(|(id, at, source, outcome, reason, run_id)| {
                Ok(StoredOutcome {
                    project_trigger_id: Uuid::parse_str(&id).map_err(|error| {
                        StoreError::Corrupt(format!("outcome trigger: {error}"))
                    })?,
                    at: millis(at),
                    source,
                    outcome,
                    reason,
                    run_id: run_id.and_then(|id| Uuid::parse_str(&id).ok()),
                })
            })
            .collect()
    }

    /// How many of a trigger's outcomes were not kept, if any were.
    pub async fn outcomes_not_kept(&self, trigger: Uuid) -> Result<Option<NotKept>, StoreError> {
        let row: Option<(i64, i64, i64)> = crate::on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT not_kept, since, last_at FROM trigger_outcome_overflow
                  WHERE project_trigger_id = $1",
            )
            .bind(trigger.to_string())
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|(count, since, last_at)| NotKept {
            count,
            since: millis(since),
            last_at: millis(last_at),
        }))
    }

    /// How many outcomes the store keeps for a trigger (the flood test's measure).
    pub async fn kept_outcomes(&self, trigger: Uuid) -> Result<i64, StoreError> {
        let count = crate::on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM trigger_outcomes WHERE project_trigger_id = $1",
            )
            .bind(trigger.to_string())
            .fetch_one(pool)
            .await
        })?;
        Ok(count)
    }
}
