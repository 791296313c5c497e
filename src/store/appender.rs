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
            // A clash on one stream fails the whole statement: write the appends one by one so
            // that only the writer who lost its race hears about it.
            Err(error) if is_conflict(&error) && appends.len() > 1 => {
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
                let message = error.to_string();
                let mut replies = replies.into_iter();
                if let Some(first) = replies.next() {
                    let _ = first.send(Err(into_store_error(error)));
                }
                for reply in replies {
                    let _ = reply.send(Err(StoreError::BatchFailed(message.clone())));
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
async fn write(pool: &AppendPool, appends: &[StreamAppend]) -> Result<Vec<i64>, sqlx::Error> {
    let total: usize = appends.iter().map(|append| append.rows.len()).sum();
    let values = (0..total)
        .map(|row| {
            let n = row * 7;
            format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5,
                n + 6,
                n + 7
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let insert = format!(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                             payload, metadata)
         VALUES {values}"
    );
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
    // Positions come out in row order on both backends: each row takes the next one as it is
    // inserted, and the rows are inserted in the order of the VALUES list.
    let positions: Vec<i64> = match pool {
        // One statement in autocommit: the log-head lock is held only until it commits.
        AppendPool::Postgres(pool) => {
            let returning = format!("{insert} RETURNING position");
            let mut positions: Vec<i64> = bind_rows!(sqlx::query_scalar(&returning))
                .fetch_all(pool)
                .await?;
            positions.sort_unstable();
            positions
        }
        // SQLite numbers rows in a trigger after the insert; with one writer at a time, the
        // batch's rows hold the `total` positions that end at the log head.
        AppendPool::Sqlite(pool) => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            bind_rows!(sqlx::query(&insert)).execute(&mut *tx).await?;
            let head: i64 = sqlx::query_scalar("SELECT position FROM event_log_head")
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            let first = head - total as i64 + 1;
            (first..=head).collect()
        }
    };
    let mut last_of_each = Vec::with_capacity(appends.len());
    let mut consumed = 0;
    for append in appends {
        consumed += append.rows.len();
        last_of_each.push(positions[consumed - 1]);
    }
    Ok(last_of_each)
}
