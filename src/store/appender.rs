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
//!
//! The task also keeps the log's chain of hashes (see [`super::chain`]): it numbers the batch,
//! stamps it and hashes it from the head it last wrote, before the statement, so that the hashing
//! adds no round trip and never runs under the head's lock.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgPool, SqlitePool};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::chain::{self, Canonical, EventFields, Hash, GENESIS};
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

/// Rows gathered into one batch before it is written. PostgreSQL takes a batch as eight arrays
/// in one statement of fixed text (prepared once); SQLite as multi-row VALUES statements of
/// [`SQLITE_ROWS_PER_STATEMENT`] rows in one transaction.
const MAX_BATCH_ROWS: usize = 5_000;

/// Columns bound for each row of an SQLite insert.
const SQLITE_PARAMETERS_PER_ROW: usize = 11;

/// 11 parameters a row keeps one SQLite statement well below its 32,766-variable limit.
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
    // Where the next batch chains on; unknown until the first append reads it.
    let mut head = None;
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
        let written = write(&pool, &mut head, &appends).await;
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
                            write(&pool, &mut head, &appends).await
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

/// The log head as this process last saw it: where its next batch chains on. On PostgreSQL
/// another process may have moved it since; the append statement checks and says so.
#[derive(Clone)]
pub(crate) struct Head {
    position: i64,
    hash: Hash,
    /// The last event's; `None` for an empty log.
    recorded_at: Option<DateTime<Utc>>,
}

impl Head {
    fn read(
        position: i64,
        hash: Option<Vec<u8>>,
        recorded_at: Option<DateTime<Utc>>,
    ) -> Result<Self, StoreError> {
        let hash = hash
            .and_then(|hash| Hash::try_from(hash).ok())
            .ok_or_else(|| {
                // Migration 0008 leaves it NULL until `Store::migrate` has chained the old events.
                StoreError::Corrupt(
                    "the log head holds no hash: run `trigger-engine migrate`".into(),
                )
            })?;
        Ok(Self {
            position,
            hash,
            recorded_at,
        })
    }
}

/// One row of a batch with what its link needs besides the head: its own id and canonical bytes.
struct Prepared<'a> {
    append: &'a StreamAppend,
    row: &'a EventRow,
    event_id: Uuid,
    canonical: Canonical,
}

fn prepare<'a>(appends: &[&'a StreamAppend]) -> Vec<Prepared<'a>> {
    let mut prepared = Vec::with_capacity(appends.iter().map(|a| a.rows.len()).sum());
    for append in appends {
        let mut metadata = Vec::new();
        chain::write_canonical(&mut metadata, &append.metadata);
        for row in &append.rows {
            let event_id = Uuid::new_v4();
            let canonical = Canonical::new(&EventFields {
                event_id: &event_id.to_string(),
                metadata: &metadata,
                payload: &row.payload,
                sequence: row.sequence,
                stream_id: &append.aggregate_id,
                stream_type: append.aggregate_type,
                event_type: &row.event_type,
                version: &row.event_version,
            });
            prepared.push(Prepared {
                append,
                row,
                event_id,
                canonical,
            });
        }
    }
    prepared
}

/// A batch's links when it goes right after `head`: one recorded_at for all its rows, never
/// before the head's, so that it does not decrease along the log even when the clocks of the
/// processes sharing it disagree.
struct Links {
    recorded_at: DateTime<Utc>,
    hashes: Vec<Hash>,
}

fn link(head: &Head, rows: &[Prepared<'_>]) -> Links {
    let now = chain::stored_time(Utc::now());
    let recorded_at = head.recorded_at.map_or(now, |last| last.max(now));
    let time = chain::canonical_time(&recorded_at);
    let mut previous = head.hash;
    let hashes = rows
        .iter()
        .zip(head.position + 1..)
        .map(|(row, position)| {
            previous = row.canonical.link(&previous, position, &time);
            previous
        })
        .collect();
    Links {
        recorded_at,
        hashes,
    }
}

/// Writes `appends` in one commit; returns each one's last position.
///
/// The batch bumps the log head once by its row count and numbers its rows itself: row n (from 1)
/// of a batch that moved the head to h gets position h - total + n. Each row's hash chains onto
/// the previous one from the head's; the head keeps the last.
async fn write(
    pool: &AppendPool,
    head: &mut Option<Head>,
    appends: &[&StreamAppend],
) -> Result<Vec<i64>, StoreError> {
    let total = appends
        .iter()
        .map(|append| append.rows.len())
        .sum::<usize>() as i64;
    if total == 0 {
        return Ok(vec![0; appends.len()]);
    }
    let rows = prepare(appends);
    let written = match pool {
        AppendPool::Postgres(pool) => write_postgres(pool, head, &rows).await,
        AppendPool::Sqlite(pool) => write_sqlite(pool, &rows).await,
    };
    let last = match written {
        Ok(last) => last,
        // Nothing was written and the head is as it was.
        Err(StoreError::Conflict) => return Err(StoreError::Conflict),
        // Whether it committed is unknown (the connection broke as it did): read the head anew.
        Err(error) => {
            *head = None;
            return Err(error);
        }
    };
    let mut last_of_each = Vec::with_capacity(appends.len());
    let mut consumed = 0;
    for append in appends {
        consumed += append.rows.len() as i64;
        last_of_each.push(last.position - total + consumed);
    }
    *head = Some(last);
    Ok(last_of_each)
}

/// Attempts at chaining onto a head other processes keep moving before taking its lock across
/// round trips ([`write_postgres_locked`]). Each failed attempt costs one round trip and returns the
/// head as it is then, so a second attempt nearly always passes.
const POSTGRES_ATTEMPTS: usize = 3;

/// One statement in autocommit: the log-head lock its first step takes is held only until the
/// statement commits. The rows travel as one array per column, so the statement's text is the
/// same for every batch and is prepared once per connection.
///
/// The hashes are computed here, before the statement, from the head this process last saw; the
/// statement bumps the head only if it is still that one (another process may have appended, or
/// an insert that named no position been numbered by the row trigger). If it moved, nothing is
/// written and the statement answers the head as it now is, to chain onto in the next attempt:
/// no round trip is added while this process is the only writer.
async fn write_postgres(
    pool: &PgPool,
    head: &mut Option<Head>,
    rows: &[Prepared<'_>],
) -> Result<Head, StoreError> {
    let columns = Columns::of(rows);
    for _ in 0..POSTGRES_ATTEMPTS {
        // An unknown head is asked for by a check that cannot pass.
        let expected = head.clone().unwrap_or(Head {
            position: -1,
            hash: GENESIS,
            recorded_at: None,
        });
        let links = link(&expected, rows);
        let answer = append_postgres(pool, &columns, &expected, &links).await?;
        match answer {
            Appended::Written(written) => return Ok(written),
            Appended::Moved(now) => *head = Some(now),
        }
    }
    write_postgres_locked(pool, &columns, rows).await
}

/// The same statement with the head locked first, in a transaction: sure to pass, at the cost of
/// holding the lock over two round trips.
async fn write_postgres_locked(
    pool: &PgPool,
    columns: &Columns<'_>,
    rows: &[Prepared<'_>],
) -> Result<Head, StoreError> {
    let mut tx = pool.begin().await.map_err(into_store_error)?;
    let (position, hash, recorded_at): (i64, Option<Vec<u8>>, Option<DateTime<Utc>>) =
        sqlx::query_as("SELECT position, hash, recorded_at FROM event_log_head FOR UPDATE")
            .fetch_one(&mut *tx)
            .await
            .map_err(into_store_error)?;
    let expected = Head::read(position, hash, recorded_at)?;
    let links = link(&expected, rows);
    let answer = append_postgres(&mut *tx, columns, &expected, &links).await?;
    tx.commit().await.map_err(into_store_error)?;
    match answer {
        Appended::Written(head) => Ok(head),
        Appended::Moved(_) => Err(StoreError::Corrupt(
            "the log head moved while locked".into(),
        )),
    }
}

/// A PostgreSQL batch as one array per column.
struct Columns<'a> {
    aggregate_types: Vec<&'a str>,
    aggregate_ids: Vec<&'a str>,
    sequences: Vec<i64>,
    event_types: Vec<&'a str>,
    event_versions: Vec<&'a str>,
    payloads: Vec<&'a Value>,
    metadata: Vec<&'a Value>,
    event_ids: Vec<Uuid>,
}

impl<'a> Columns<'a> {
    fn of(rows: &[Prepared<'a>]) -> Self {
        Self {
            aggregate_types: rows.iter().map(|r| r.append.aggregate_type).collect(),
            aggregate_ids: rows
                .iter()
                .map(|r| r.append.aggregate_id.as_str())
                .collect(),
            sequences: rows.iter().map(|r| r.row.sequence).collect(),
            event_types: rows.iter().map(|r| r.row.event_type.as_str()).collect(),
            event_versions: rows.iter().map(|r| r.row.event_version.as_str()).collect(),
            payloads: rows.iter().map(|r| &r.row.payload).collect(),
            metadata: rows.iter().map(|r| &r.append.metadata).collect(),
            event_ids: rows.iter().map(|r| r.event_id).collect(),
        }
    }
}

enum Appended {
    /// The head after the batch.
    Written(Head),
    /// Nothing was written: the head was not the expected one, and is this.
    Moved(Head),
}

async fn append_postgres<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    columns: &Columns<'_>,
    expected: &Head,
    links: &Links,
) -> Result<Appended, StoreError> {
    let total = columns.sequences.len() as i64;
    let last = *links.hashes.last().expect("a batch has rows");
    let hashes: Vec<&[u8]> = links.hashes.iter().map(|hash| hash.as_slice()).collect();
    // SET sees the row as it was, so the three CASEs test the same thing: is the head the one the
    // hashes were chained onto? A head that moved is rewritten as it is, and returned.
    let (position, hash, recorded_at, written): (i64, Option<Vec<u8>>, Option<DateTime<Utc>>, i64) =
        sqlx::query_as(
            "WITH head AS (
            UPDATE event_log_head
               SET position = CASE WHEN position = $9 AND hash = $10
                                   THEN position + $1 ELSE position END,
                   hash = CASE WHEN position = $9 AND hash = $10 THEN $11 ELSE hash END,
                   recorded_at = CASE WHEN position = $9 AND hash = $10
                                      THEN $12 ELSE recorded_at END
            RETURNING position, hash, recorded_at
         ), written AS (
            INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type,
                                event_version, payload, metadata, position, event_id,
                                recorded_at, hash)
            SELECT v.aggregate_type, v.aggregate_id, v.sequence, v.event_type, v.event_version,
                   v.payload, v.metadata, $9 + v.n, v.event_id, $12, v.hash
              FROM head,
                   UNNEST($2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[],
                          $7::jsonb[], $8::jsonb[], $13::uuid[], $14::bytea[])
                       WITH ORDINALITY AS v(aggregate_type, aggregate_id, sequence, event_type,
                                            event_version, payload, metadata, event_id, hash, n)
             WHERE head.hash = $11
            RETURNING 1
         )
         SELECT position, hash, recorded_at, (SELECT count(*) FROM written) FROM head",
        )
        .bind(total)
        .bind(&columns.aggregate_types)
        .bind(&columns.aggregate_ids)
        .bind(&columns.sequences)
        .bind(&columns.event_types)
        .bind(&columns.event_versions)
        .bind(&columns.payloads)
        .bind(&columns.metadata)
        .bind(expected.position)
        .bind(expected.hash.as_slice())
        .bind(last.as_slice())
        .bind(links.recorded_at)
        .bind(&columns.event_ids)
        .bind(hashes)
        .fetch_one(executor)
        .await
        .map_err(into_store_error)?;
    if written == total {
        return Ok(Appended::Written(Head {
            position,
            hash: last,
            recorded_at: Some(links.recorded_at),
        }));
    }
    Ok(Appended::Moved(Head::read(position, hash, recorded_at)?))
}

/// One writer at a time: read the head, chain the rows onto it, move it, and insert the rows in
/// statements of at most [`SQLITE_ROWS_PER_STATEMENT`] rows, all in one transaction. The head is
/// read each time (in process, no round trip), as another process may share the file.
async fn write_sqlite(pool: &SqlitePool, rows: &[Prepared<'_>]) -> Result<Head, StoreError> {
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(into_store_error)?;
    let (position, hash, recorded_at): (i64, Option<Vec<u8>>, Option<DateTime<Utc>>) =
        sqlx::query_as("SELECT position, hash, recorded_at FROM event_log_head")
            .fetch_one(&mut *tx)
            .await
            .map_err(into_store_error)?;
    let head = Head::read(position, hash, recorded_at)?;
    let links = link(&head, rows);
    let time = chain::canonical_time(&links.recorded_at);
    let last = Head {
        position: head.position + rows.len() as i64,
        hash: *links.hashes.last().expect("a batch has rows"),
        recorded_at: Some(links.recorded_at),
    };
    sqlx::query("UPDATE event_log_head SET position = $1, hash = $2, recorded_at = $3")
        .bind(last.position)
        .bind(last.hash.as_slice())
        .bind(&time)
        .execute(&mut *tx)
        .await
        .map_err(into_store_error)?;
    let mut position = head.position;
    for (chunk, hashes) in rows
        .chunks(SQLITE_ROWS_PER_STATEMENT)
        .zip(links.hashes.chunks(SQLITE_ROWS_PER_STATEMENT))
    {
        // Anonymous `?` parameters, bound in order: for a numbered `$n` sqlx asks SQLite each
        // parameter's name, which SQLite finds by a scan of all of them, so binding a statement
        // of n parameters cost n² string compares (a thousand rows, 11,000 parameters).
        let row = format!("({})", ["?"; SQLITE_PARAMETERS_PER_ROW].join(", "));
        let values = vec![row.as_str(); chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type,
                                 event_version, payload, metadata, position, event_id,
                                 recorded_at, hash)
             VALUES {values}"
        );
        let mut query = sqlx::query(&sql);
        for (row, hash) in chunk.iter().zip(hashes) {
            position += 1;
            query = query
                .bind(row.append.aggregate_type)
                .bind(&row.append.aggregate_id)
                .bind(row.row.sequence)
                .bind(&row.row.event_type)
                .bind(&row.row.event_version)
                .bind(&row.row.payload)
                .bind(&row.append.metadata)
                .bind(position)
                .bind(row.event_id.to_string())
                .bind(&time)
                .bind(hash.as_slice());
        }
        query.execute(&mut *tx).await.map_err(into_store_error)?;
    }
    tx.commit().await.map_err(into_store_error)?;
    Ok(last)
}
