//! Group commit for appends: one task per process gathers the appends waiting at that moment and
//! writes them with one INSERT and one commit.
//!
//! The global log's positions come from one locked counter row, so appenders cannot commit in
//! parallel and cannot share the database's own group commit: each append would pay a full commit
//! (a WAL flush) while holding the lock. Writing every waiting append in one statement makes one
//! flush serve them all. A lone append goes out at once: nothing ever waits for a batch to fill.
//!
//! A writer may hand over several streams' appends as one [`AppendGroup`]: they commit together
//! or not at all (a poll's new runs and its cursor move, for instance). A group is never split
//! across statements that commit apart.

use std::sync::Arc;

use serde_json::Value;
use sqlx::{PgPool, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::{StoreError, Writes};

/// One stream's new events, numbered after the sequence the writer loaded.
#[derive(Clone)]
pub struct StreamAppend {
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    pub rows: Vec<EventRow>,
    pub metadata: Value,
}

/// One event as the `events` table stores it.
#[derive(Clone)]
pub struct EventRow {
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
}

/// Appends to several streams that are recorded all together or not at all.
pub type AppendGroup = Vec<StreamAppend>;

/// Rows gathered into one batch before it is written. PostgreSQL takes a batch as seven arrays
/// in one statement of fixed text (prepared once); SQLite as multi-row VALUES statements of
/// [`SQLITE_ROWS_PER_STATEMENT`] rows in one transaction.
const MAX_BATCH_ROWS: usize = 5_000;

/// 7 parameters a row keeps one SQLite statement well below its 32,766-variable limit.
const SQLITE_ROWS_PER_STATEMENT: usize = 1_000;

/// Groups queued beyond this make writers wait for room: back-pressure, not unbounded memory.
/// Room for a minute boundary of 10,000 schedules: the appends queued while a batch is written
/// make the next batch, so a smaller queue would cap batches at its size.
const QUEUE: usize = 16_384;

type Reply = oneshot::Sender<Result<Vec<i64>, StoreError>>;

#[derive(Clone)]
pub(crate) enum AppendPool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The handle writers hold; the task stops when the last handle is dropped.
pub(crate) struct Appender {
    requests: mpsc::Sender<(AppendGroup, Reply)>,
}

impl Appender {
    pub(crate) fn spawn(pool: AppendPool, writes: Arc<Writes>) -> Self {
        let (requests, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, queue, writes));
        Self { requests }
    }

    /// Appends one stream's events; returns the position of the last of them.
    pub(crate) async fn append(&self, append: StreamAppend) -> Result<i64, StoreError> {
        let positions = self.append_group(vec![append]).await?;
        Ok(positions[0])
    }

    /// Appends every stream's events of `group` in one commit, or none of them; returns the
    /// position of each stream's last event, in order.
    pub(crate) async fn append_group(&self, group: AppendGroup) -> Result<Vec<i64>, StoreError> {
        // Refused here, before it joins a batch that it would fail for every writer in it.
        refuse_nul(&group)?;
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((group, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

fn refuse_nul(group: &AppendGroup) -> Result<(), StoreError> {
    for append in group {
        if append.aggregate_id.contains('\0') {
            return Err(StoreError::HoldsNul {
                what: "stream id",
                path: String::new(),
            });
        }
        let found = std::iter::once(("metadata", &append.metadata))
            .chain(append.rows.iter().map(|row| ("event", &row.payload)))
            .find_map(|(what, value)| crate::nul::find(value).map(|path| (what, path)));
        if let Some((what, path)) = found {
            return Err(StoreError::HoldsNul { what, path });
        }
    }
    Ok(())
}

fn rows_of(group: &AppendGroup) -> usize {
    group.iter().map(|append| append.rows.len()).sum()
}

async fn run(
    pool: AppendPool,
    mut queue: mpsc::Receiver<(AppendGroup, Reply)>,
    writes: Arc<Writes>,
) {
    while let Some(first) = queue.recv().await {
        let mut rows = rows_of(&first.0);
        let mut batch = vec![first];
        while rows < MAX_BATCH_ROWS {
            match queue.try_recv() {
                Ok(next) => {
                    rows += rows_of(&next.0);
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let (groups, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let appends: Vec<&StreamAppend> = groups.iter().flatten().collect();
        let written = write(&pool, &appends).await.map_err(into_store_error);
        writes.observe(&written);
        match written {
            Ok(positions) => {
                let mut positions = positions.into_iter();
                for (group, reply) in groups.iter().zip(replies) {
                    let _ = reply.send(Ok(positions.by_ref().take(group.len()).collect()));
                }
            }
            // The store is out of reach: no group is at fault, and writing them one by one would
            // make each wait out the outage in turn. Every writer hears the same cause; the
            // task goes on with the next batch.
            Err(StoreError::Unavailable(cause)) => {
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Unavailable(cause.clone())));
                }
            }
            // One bad group (a clash on one of its streams, a row the database refuses) fails
            // the whole statement: write the groups one by one, so that each writer hears only
            // of its own.
            Err(_) if groups.len() > 1 => {
                let mut outage = None;
                for (group, reply) in groups.iter().zip(replies) {
                    let result = match &outage {
                        Some(cause) => Err(StoreError::Unavailable(Arc::clone(cause))),
                        None => {
                            let appends: Vec<&StreamAppend> = group.iter().collect();
                            write(&pool, &appends).await.map_err(into_store_error)
                        }
                    };
                    if let Err(StoreError::Unavailable(cause)) = &result {
                        outage = Some(Arc::clone(cause));
                    }
                    let _ = reply.send(result);
                }
            }
            Err(error) => {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(error));
                }
            }
        }
    }
}

fn is_conflict(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database) if database.is_unique_violation())
}

fn into_store_error(error: sqlx::Error) -> StoreError {
    if is_conflict(&error) {
        StoreError::Conflict
    } else {
        StoreError::from(error)
    }
}

/// Writes `appends` in one commit; returns each one's last position.
///
/// The batch bumps the log head once by its row count and numbers its rows itself: row n (from 1)
/// of a batch that moved the head to h gets position h - total + n.
async fn write(pool: &AppendPool, appends: &[&StreamAppend]) -> Result<Vec<i64>, sqlx::Error> {
    let total = appends
        .iter()
        .map(|append| append.rows.len())
        .sum::<usize>() as i64;
    let head = match pool {
        AppendPool::Postgres(pool) => write_postgres(pool, appends, total).await?,
        AppendPool::Sqlite(pool) => write_sqlite(pool, appends, total).await?,
    };
    let mut last_of_each = Vec::with_capacity(appends.len());
    let mut consumed = 0;
    for append in appends {
        consumed += append.rows.len() as i64;
        last_of_each.push(head - total + consumed);
    }
    Ok(last_of_each)
}

/// One statement in autocommit: the log-head lock its first step takes is held only until the
/// statement commits. The rows travel as one array per column, so the statement's text is the
/// same for every batch and is prepared once per connection. recorded_at is read per row after
/// the lock, so it never decreases along the log.
async fn write_postgres(
    pool: &PgPool,
    appends: &[&StreamAppend],
    total: i64,
) -> Result<i64, sqlx::Error> {
    let capacity = total as usize;
    let mut aggregate_types = Vec::with_capacity(capacity);
    let mut aggregate_ids = Vec::with_capacity(capacity);
    let mut sequences = Vec::with_capacity(capacity);
    let mut event_types = Vec::with_capacity(capacity);
    let mut event_versions = Vec::with_capacity(capacity);
    let mut payloads = Vec::with_capacity(capacity);
    let mut metadata = Vec::with_capacity(capacity);
    for append in appends {
        for row in &append.rows {
            aggregate_types.push(append.aggregate_type);
            aggregate_ids.push(append.aggregate_id.as_str());
            sequences.push(row.sequence);
            event_types.push(row.event_type.as_str());
            event_versions.push(row.event_version.as_str());
            payloads.push(&row.payload);
            metadata.push(&append.metadata);
        }
    }
    let positions: Vec<i64> = sqlx::query_scalar(
        "WITH head AS (
            UPDATE event_log_head SET position = position + $1 RETURNING position
         )
         INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                             payload, metadata, position, recorded_at)
         SELECT v.aggregate_type, v.aggregate_id, v.sequence, v.event_type, v.event_version,
                v.payload, v.metadata, head.position - $1 + v.n, clock_timestamp()
           FROM head,
                UNNEST($2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[],
                       $7::jsonb[], $8::jsonb[])
                    WITH ORDINALITY AS v(aggregate_type, aggregate_id, sequence, event_type,
                                         event_version, payload, metadata, n)
         RETURNING position",
    )
    .bind(total)
    .bind(aggregate_types)
    .bind(aggregate_ids)
    .bind(sequences)
    .bind(event_types)
    .bind(event_versions)
    .bind(payloads)
    .bind(metadata)
    .fetch_all(pool)
    .await?;
    Ok(positions.into_iter().max().unwrap_or_default())
}

/// One writer at a time: bump the head, then insert the rows it numbered, in statements of at
/// most [`SQLITE_ROWS_PER_STATEMENT`] rows, all in one transaction.
async fn write_sqlite(
    pool: &SqlitePool,
    appends: &[&StreamAppend],
    total: i64,
) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let head: i64 =
        sqlx::query_scalar("UPDATE event_log_head SET position = position + $1 RETURNING position")
            .bind(total)
            .fetch_one(&mut *tx)
            .await?;
    let rows: Vec<(&StreamAppend, &EventRow)> = appends
        .iter()
        .flat_map(|append| append.rows.iter().map(move |row| (*append, row)))
        .collect();
    let mut position = head - total;
    for chunk in rows.chunks(SQLITE_ROWS_PER_STATEMENT) {
        let values = (0..chunk.len())
            .map(|row| {
                let n = row * 8;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4,
                    n + 5,
                    n + 6,
                    n + 7,
                    n + 8
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type,
                                 event_version, payload, metadata, position)
             VALUES {values}"
        );
        let mut query = sqlx::query(&sql);
        for (append, row) in chunk {
            position += 1;
            query = query
                .bind(append.aggregate_type)
                .bind(&append.aggregate_id)
                .bind(row.sequence)
                .bind(&row.event_type)
                .bind(&row.event_version)
                .bind(&row.payload)
                .bind(&append.metadata)
                .bind(position);
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(head)
}
