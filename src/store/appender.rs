//! Group commit for appends: one task per process gathers the appends waiting at that moment and
//! writes them with one INSERT and one commit.
//!
//! The global log's positions come from one locked counter row, so appenders cannot commit in
//! parallel and cannot share the database's own group commit: each append would pay a full commit
//! (a WAL flush) while holding the lock. Writing every waiting append in one statement makes one
//! flush serve them all. A lone append goes out at once: nothing ever waits for a batch to fill.

use serde_json::Value;
use sqlx::{PgPool, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;

/// One stream's new events, numbered after the sequence the writer loaded.
pub struct StreamAppend {
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    pub rows: Vec<EventRow>,
    pub metadata: Value,
}

/// One event as the `events` table stores it.
pub struct EventRow {
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
}

/// Rows per statement: 7 parameters each keeps a batch well below both backends' limits.
const MAX_BATCH_ROWS: usize = 1_000;

/// Appends queued beyond this make writers wait for room: back-pressure, not unbounded memory.
const QUEUE: usize = 1_024;

type Reply = oneshot::Sender<Result<i64, StoreError>>;

#[derive(Clone)]
pub(crate) enum AppendPool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The handle writers hold; the task stops when the last handle is dropped.
pub(crate) struct Appender {
    requests: mpsc::Sender<(StreamAppend, Reply)>,
}

impl Appender {
    pub(crate) fn spawn(pool: AppendPool) -> Self {
        let (requests, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, queue));
        Self { requests }
    }

    /// Appends one stream's events; returns the position of the last of them.
    pub(crate) async fn append(&self, append: StreamAppend) -> Result<i64, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((append, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run(pool: AppendPool, mut queue: mpsc::Receiver<(StreamAppend, Reply)>) {
    while let Some(first) = queue.recv().await {
        let mut rows = first.0.rows.len();
        let mut batch = vec![first];
        while rows < MAX_BATCH_ROWS {
            match queue.try_recv() {
                Ok(next) => {
                    rows += next.0.rows.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let (appends, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        match write(&pool, &appends).await {
            Ok(positions) => {
                for (reply, position) in replies.into_iter().zip(positions) {
                    let _ = reply.send(Ok(position));
                }
            }
            // One bad append (a clash on its stream, a row the database refuses) fails the whole
            // statement: write the appends one by one, so that each writer hears only of its own.
            Err(_) if appends.len() > 1 => {
                for (append, reply) in appends.into_iter().zip(replies) {
                    let result = write(&pool, std::slice::from_ref(&append)).await;
                    let _ = reply.send(
                        result
                            .map(|positions| positions[0])
                            .map_err(into_store_error),
                    );
                }
            }
            Err(error) => {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(into_store_error(error)));
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
        StoreError::Database(error)
    }
}

/// Writes `appends` in one statement and one commit; returns each one's last position.
///
/// The batch bumps the log head once by its row count and numbers its rows itself: row n (from 1)
/// of a batch that moved the head to h gets position h - total + n.
async fn write(pool: &AppendPool, appends: &[StreamAppend]) -> Result<Vec<i64>, sqlx::Error> {
    let total = appends
        .iter()
        .map(|append| append.rows.len())
        .sum::<usize>() as i64;
    let values = (0..total)
        .map(|row| {
            let n = row * 7;
            format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${}, {})",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5,
                n + 6,
                n + 7,
                row + 1
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    macro_rules! bind_rows {
        ($query:expr) => {{
            let mut query = $query;
            for append in appends {
                for row in &append.rows {
                    query = query
                        .bind(append.aggregate_type)
                        .bind(&append.aggregate_id)
                        .bind(row.sequence)
                        .bind(&row.event_type)
                        .bind(&row.event_version)
                        .bind(&row.payload)
                        .bind(&append.metadata);
                }
            }
            query
        }};
    }
    let head: i64 = match pool {
        // One statement in autocommit: the log-head lock its first step takes is held only until
        // the statement commits. recorded_at is read per row after the lock, so it never
        // decreases along the log.
        AppendPool::Postgres(pool) => {
            let sql = format!(
                "WITH head AS (
                    UPDATE event_log_head SET position = position + {total} RETURNING position
                 )
                 INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type,
                                     event_version, payload, metadata, position, recorded_at)
                 SELECT v.aggregate_type, v.aggregate_id, v.sequence, v.event_type,
                        v.event_version, v.payload, v.metadata,
                        head.position - {total} + v.n, clock_timestamp()
                   FROM head,
                        (VALUES {values}) AS v(aggregate_type, aggregate_id, sequence, event_type,
                                               event_version, payload, metadata, n)
                 RETURNING position"
            );
            let positions: Vec<i64> = bind_rows!(sqlx::query_scalar(&sql)).fetch_all(pool).await?;
            positions.into_iter().max().unwrap_or_default()
        }
        // One writer at a time: bump the head, then insert the rows it numbered.
        AppendPool::Sqlite(pool) => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            let head: i64 = sqlx::query_scalar(&format!(
                "UPDATE event_log_head SET position = position + {total} RETURNING position"
            ))
            .fetch_one(&mut *tx)
            .await?;
            let sql = format!(
                "WITH v(aggregate_type, aggregate_id, sequence, event_type, event_version, payload,
                        metadata, n) AS (VALUES {values})
                 INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type,
                                     event_version, payload, metadata, position)
                 SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload,
                        metadata, {head} - {total} + n
                   FROM v"
            );
            bind_rows!(sqlx::query(&sql)).execute(&mut *tx).await?;
            tx.commit().await?;
            head
        }
    };
    let mut last_of_each = Vec::with_capacity(appends.len());
    let mut consumed = 0;
    for append in appends {
        consumed += append.rows.len() as i64;
        last_of_each.push(head - total + consumed);
    }
    Ok(last_of_each)
}
