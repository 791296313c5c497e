//! Recording what came of the occurrences the log does not hold (a rejected, ignored, filtered,
//! rate-limited or refused delivery, a duplicate), off the request's path.
//!
//! A request hands its outcome to a bounded queue and moves on ([`Outcomes::record`] never waits
//! and never fails the request). One writer task per process drains the queue in batches: it
//! inserts them, trims a trigger to its newest `per_trigger` outcomes when its count passes that
//! (the writer keeps each trigger's count), and counts what it trims; outcomes that find the
//! queue full are counted per trigger in memory and added to the same counts by the next batch.
//! With `queue` 0 nothing is recorded. So a flood of forged requests costs each request a queue
//! push, the disk holds at most `per_trigger` rows a trigger (and nothing for a trigger that does
//! not exist: outcomes are only recorded for real triggers), and rows older than the retention
//! window are forgotten.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::store::outcomes::StoredOutcome;
use crate::store::Store;

/// Outcomes a batch writes at most.
const BATCH: usize = 1_000;

/// How often the writer forgets outcomes past the retention window.
const EXPIRE_EVERY: Duration = Duration::from_secs(60);

/// How the store of recent outcomes is bounded.
#[derive(Debug, Clone, Copy)]
pub struct OutcomeSettings {
    /// Outcomes kept per trigger; older ones are counted, not kept.
    pub per_trigger: i64,
    /// How long an outcome is kept.
    pub retention: Duration,
    /// Outcomes waiting to be written at most; past it they are counted, not kept.
    pub queue: usize,
}

impl Default for OutcomeSettings {
    fn default() -> Self {
        Self {
            per_trigger: 1_000,
            retention: Duration::from_secs(7 * 24 * 3600),
            queue: 10_000,
        }
    }
}

/// What came of one occurrence, as a request saw it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub project_trigger_id: Uuid,
    pub at: DateTime<Utc>,
    pub source: &'static str,
    pub outcome: &'static str,
    pub reason: Option<String>,
    pub run_id: Option<Uuid>,
}

/// Outcomes never written, per trigger: how many, and when the first of them was.
type Dropped = HashMap<Uuid, (i64, DateTime<Utc>)>;

/// The handle requests record through: cheap to clone, never blocking.
#[derive(Clone)]
pub struct Outcomes {
    queue: mpsc::Sender<Outcome>,
    /// Outcomes the full queue refused.
    dropped: Arc<Mutex<Dropped>>,
    settings: OutcomeSettings,
}

impl Outcomes {
    /// Queues `outcome` for the writer, or counts it when the writer is behind.
    pub fn record(&self, outcome: Outcome) {
        if self.settings.queue == 0 {
            return;
        }
        if let Err(refused) = self.queue.try_send(outcome) {
            let outcome = match refused {
                mpsc::error::TrySendError::Full(outcome)
                | mpsc::error::TrySendError::Closed(outcome) => outcome,
            };
            let mut dropped = self
                .dropped
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            let entry = dropped
                .entry(outcome.project_trigger_id)
                .or_insert((0, outcome.at));
            entry.0 += 1;
        }
    }

    pub fn settings(&self) -> OutcomeSettings {
        self.settings
    }
}

/// Starts the writer; it writes what is queued and stops when `shutdown` is cancelled.
pub fn spawn(
    store: Arc<Store>,
    settings: OutcomeSettings,
    shutdown: CancellationToken,
) -> (Outcomes, tokio::task::JoinHandle<()>) {
    let (queue, mut queued) = mpsc::channel(settings.queue.max(1));
    let outcomes = Outcomes {
        queue,
        dropped: Arc::default(),
        settings,
    };
    let dropped = outcomes.dropped.clone();
    let task = tokio::spawn(async move {
        let mut expire = tokio::time::interval(EXPIRE_EVERY);
        let mut batch = Vec::with_capacity(BATCH);
        let mut counts = Counts::default();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = expire.tick() => {
                    let before = Utc::now()
                        - chrono::Duration::from_std(settings.retention).unwrap_or(chrono::Duration::MAX);
                    if let Err(error) = store.expire_outcomes(before).await {
                        tracing::warn!(%error, "forgetting old outcomes failed; trying later");
                    }
                    continue;
                }
                received = queued.recv_many(&mut batch, BATCH) => if received == 0 { break },
            }
            write(
                &store,
                &mut batch,
                &dropped,
                &mut counts,
                settings.per_trigger,
            )
            .await;
        }
        // What was queued before the stop is written, not lost.
        queued.close();
        while let Ok(outcome) = queued.try_recv() {
            batch.push(outcome);
            if batch.len() == BATCH {
                write(
                    &store,
                    &mut batch,
                    &dropped,
                    &mut counts,
                    settings.per_trigger,
                )
                .await;
            }
        }
        if !batch.is_empty() {
            write(
                &store,
                &mut batch,
                &dropped,
                &mut counts,
                settings.per_trigger,
            )
            .await;
        }
    });
    (outcomes, task)
}

/// What the writer knows of each trigger's rows: how many it holds, as of this writer's last trim
/// plus what it has written since. A trigger not seen yet is trimmed at its first outcome, which
/// also counts it; after that only when the count passes the cap, so a batch spread over many
/// triggers costs one insert, not a trim per trigger.
#[derive(Default)]
struct Counts {
    rows: HashMap<Uuid, i64>,
}

/// Triggers remembered at most; past it the counts are forgotten and learnt again.
const COUNTED_TRIGGERS: usize = 100_000;

impl Counts {
    fn needing_trim(&mut self, rows: &[StoredOutcome], cap: i64) -> Vec<Uuid> {
        if self.rows.len() > COUNTED_TRIGGERS {
            self.rows.clear();
        }
        let mut trim = std::collections::HashSet::new();
        for row in rows {
            let count = self
                .rows
                .entry(row.project_trigger_id)
                .or_insert(i64::MAX / 2);
            *count += 1;
            if *count > cap {
                trim.insert(row.project_trigger_id);
            }
        }
        trim.into_iter().collect()
    }
}

async fn write(
    store: &Store,
    batch: &mut Vec<Outcome>,
    dropped: &Mutex<Dropped>,
    counts: &mut Counts,
    per_trigger: i64,
) {
    let rows: Vec<StoredOutcome> = batch
        .drain(..)
        .map(|outcome| StoredOutcome {
            project_trigger_id: outcome.project_trigger_id,
            at: outcome.at,
            source: outcome.source.to_owned(),
            outcome: outcome.outcome.to_owned(),
            reason: outcome.reason,
            run_id: outcome.run_id,
        })
        .collect();
    let trim = counts.needing_trim(&rows, per_trigger);
    let counted = std::mem::take(&mut *dropped.lock().unwrap_or_else(|poison| poison.into_inner()));
    match store
        .record_outcomes(&rows, &counted, &trim, per_trigger)
        .await
    {
        Ok(kept) => counts.rows.extend(kept),
        Err(error) => {
            // Outcomes are an aid to explaining, not a record: on a store error they are counted
            // as not kept, and the request they came from was answered long ago.
            tracing::warn!(%error, outcomes = rows.len(), "recording outcomes failed; counting them instead");
            for trigger in &trim {
                counts.rows.remove(trigger);
            }
            let mut dropped = dropped.lock().unwrap_or_else(|poison| poison.into_inner());
            for (trigger, (count, since)) in counted {
                let entry = dropped.entry(trigger).or_insert((0, since));
                entry.0 += count;
            }
            for row in rows {
                dropped
                    .entry(row.project_trigger_id)
                    .or_insert((0, row.at))
                    .0 += 1;
            }
        }
    }
}
