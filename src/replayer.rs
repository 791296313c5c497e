//! Working bulk replays: every engine process takes part, step by step, and a replay's progress
//! lives in its stream, so any process carries on where another stopped or crashed.
//!
//! A step settles the replay's released runs that have finished, then releases the next items, as
//! many as keep the replay's unfinished runs within a few times the executor's concurrency (a
//! replay of 10,000 runs goes at the executor's pace, never far ahead of it). Releasing comes before recording
//! the step: a process that crashes in between releases the same items again next time, which
//! changes nothing (a run retries at most once per replay; a rerun's id derives from the replay
//! and the run). Two processes stepping one replay race on the stream's sequence; each step first
//! reads the steps recorded since its cached copy, so the loser catches up with a short read.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aggregates::event::Stamp;
use aggregates::{
    Actor, Firing, Replay, ReplayCommand, ReplayError, ReplayItem, ReplayState, RunCommand,
    RunError, RunStatus, TriggerRecord,
};
use chrono::Utc;
use futures::StreamExt;
use projections::replays::ReplayView;
use projections::runs::RunView;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::projector::ProjectionHandle;
use crate::runs::{RunCommandError, Runs};
use crate::store::streams::EventMetadata;
use crate::store::{Store, StoreError};

/// How often an idle replayer looks for replays when the log does not move.
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// The shortest time between two passes: at four times the executor's slots released per pass,
/// enough for a replay to keep up with an executor far faster than this machine's.
const MIN_PASS: Duration = Duration::from_millis(50);

/// Running replays worked per pass, oldest first.
const REPLAYS_PER_PASS: i64 = 16;

/// A replay keeps this many times the executor's concurrency of its runs unfinished: enough
/// queued that the executor's slots never wait for the next step, few enough that the replay is
/// never far ahead of what the executor can take (its calls are bounded by the concurrency
/// anyway, and dispatch takes organisations in turn).
const QUEUED_PER_SLOT: usize = 4;

/// Steps of other processes read at most per step; a replayer further behind reads the rest at its
/// next step.
const STEPS_READ: i64 = 1_000;

/// The most items one step releases, so a step's appends stay small whatever the pace.
const MAX_RELEASE: usize = 100;

/// Items of a step released at once: enough for their appends to share the appender's commits,
/// few enough to leave the pool's connections to the executor.
const RELEASES_AT_ONCE: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ReplayerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Run(#[from] RunCommandError),
    #[error("the replay refused the step: {0}")]
    Replay(#[from] ReplayError),
}

/// A replay as this process last loaded or stepped it.
struct Cached {
    replay: Replay,
    sequence: usize,
}

/// Starts the replayer; it stops when `shutdown` is cancelled. `pace` is the executor's
/// concurrency: a replay keeps [`QUEUED_PER_SLOT`] times that of its runs unfinished at once.
pub fn spawn(
    store: Arc<Store>,
    runs: Runs,
    projections: ProjectionHandle,
    pace: usize,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let pace = pace.max(1) * QUEUED_PER_SLOT;
    tokio::spawn(async move {
        let mut cache: HashMap<Uuid, Cached> = HashMap::new();
        let mut moved = projections.subscribe();
        loop {
            let began = tokio::time::Instant::now();
            if let Err(error) = work(&store, &runs, &mut cache, pace).await {
                tracing::error!(%error, "working the replays failed; retrying");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                changed = moved.changed() => if changed.is_err() { break },
                () = tokio::time::sleep(LOOK_EVERY) => {}
            }
            // The log moves many times a second while runs finish; a pass that followed each
            // move would cost its reads for a handful of runs each time.
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep_until(began + MIN_PASS) => {}
            }
        }
    })
}

/// One pass: a step of each running replay.
async fn work(
    store: &Store,
    runs: &Runs,
    cache: &mut HashMap<Uuid, Cached>,
    pace: usize,
) -> Result<(), StoreError> {
    let running = store.running_replays(REPLAYS_PER_PASS).await?;
    cache.retain(|id, _| running.iter().any(|view| view.replay_id == *id));
    for view in running {
        let replay_id = view.replay_id;
        match step(store, runs, cache, &view, pace).await {
            Ok(()) => {}
            // Another process stepped it first (or it ended meanwhile): the next step reads
            // what it recorded.
            Err(ReplayerError::Store(StoreError::Conflict) | ReplayerError::Replay(_)) => {}
            Err(error) => {
                cache.remove(&replay_id);
                tracing::error!(%replay_id, %error, "a replay step failed; retrying");
            }
        }
    }
    Ok(())
}

/// How a released item's run ended, if it has.
fn settled(outcome: Option<&RunView>, view: &ReplayView) -> Option<bool> {
    let run = outcome?;
    // A retried run's row shows its old ending until the projector has folded the retry: only a
    // row changed since the replay was requested tells how the retry went.
    if run.last_position <= view.requested_position || !run.record.status.is_final() {
        return None;
    }
    Some(run.record.status == RunStatus::Succeeded)
}

async fn step(
    store: &Store,
    runs: &Runs,
    cache: &mut HashMap<Uuid, Cached>,
    view: &ReplayView,
    pace: usize,
) -> Result<(), ReplayerError> {
    let replay_id = view.replay_id;
    let cached = match cache.entry(replay_id) {
        Entry::Occupied(cached) => cached.into_mut(),
        Entry::Vacant(vacant) => {
            let loaded = store.load::<Replay>(replay_id).await?;
            vacant.insert(Cached {
                replay: loaded.state,
                sequence: loaded.sequence,
            })
        }
    };
    // Steps other processes recorded since: read only those (the stream's first event holds
    // every matched run, so reloading it all at each step would cost a replay quadratic time).
    let newer = store
        .stream_page(
            <Replay as cqrs_es::Aggregate>::TYPE,
            &replay_id.to_string(),
            cached.sequence as i64,
            STEPS_READ,
        )
        .await?;
    for logged in newer {
        if let Some(event) = logged.replay_event()? {
            cqrs_es::Aggregate::apply(&mut cached.replay, event);
        }
        cached.sequence = logged.sequence as usize;
    }
    let Some(record) = cached.replay.record() else {
        return Ok(());
    };
    if record.state != ReplayState::Running {
        return Ok(());
    }

    let outcomes = store.run_views(&record.pending).await?;
    let mut succeeded = Vec::new();
    let mut failed = Vec::new();
    for run in &record.pending {
        match settled(outcomes.get(run), view) {
            Some(true) => succeeded.push(*run),
            Some(false) => failed.push(*run),
            None => {}
        }
    }
    let unfinished = record.pending.len() - succeeded.len() - failed.len();
    let room = pace.saturating_sub(unfinished).min(MAX_RELEASE);
    let from = record.released;
    let items: Vec<ReplayItem> = record.next_items(room).to_vec();
    let requested_by = record.requested_by.clone();
    for outcome_run in release(store, runs, replay_id, &items, &requested_by).await? {
        failed.push(outcome_run);
    }

    let stamp = Stamp {
        at: Utc::now(),
        by: Actor::system("replayer"),
    };
    let events = cached.replay.decide(ReplayCommand::Step {
        from,
        released: items.len(),
        succeeded,
        failed,
        stamp,
    })?;
    if events.is_empty() {
        return Ok(());
    }
    let metadata = EventMetadata {
        actor: Actor::system("replayer"),
        org_id: view.org_id,
        request_id: format!("replay:{replay_id}"),
    };
    store
        .append::<Replay>(replay_id, cached.sequence, &events, &metadata)
        .await?;
    cached.sequence += events.len();
    for event in events {
        cqrs_es::Aggregate::apply(&mut cached.replay, event);
    }
    runs.projections().wake();
    Ok(())
}

/// Releases `items` in the name of the person who asked for the replay. Returns the outcome runs
/// of items that cannot run any more (their trigger was deleted since): they settle as failed.
///
/// Items are released [`RELEASES_AT_ONCE`] at a time: one by one, each retry's append would be
/// alone when it reached the appender and pay a whole commit, so a step's releases would take as
/// many commits (a WAL flush each on PostgreSQL) as it has items.
async fn release(
    store: &Store,
    runs: &Runs,
    replay_id: Uuid,
    items: &[ReplayItem],
    requested_by: &Actor,
) -> Result<Vec<Uuid>, ReplayerError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let request_id = format!("replay:{replay_id}");
    let ids: Vec<Uuid> = items.iter().map(|item| item.run_id).collect();
    let originals = store.run_views(&ids).await?;
    let mut triggers = HashMap::new();
    for item in items {
        if let Entry::Vacant(vacant) = triggers.entry(item.project_trigger_id) {
            let view = store.trigger_view(item.project_trigger_id).await?;
            vacant.insert(
                view.map(|view| view.record)
                    .filter(|trigger| !trigger.is_deleted()),
            );
        }
    }
    let mut releases = Vec::with_capacity(items.len());
    for item in items {
        releases.push(release_one(
            runs,
            replay_id,
            item,
            triggers[&item.project_trigger_id].as_ref(),
            originals.get(&item.run_id),
            requested_by,
            &request_id,
        ));
    }
    let released = futures::stream::iter(releases)
        .buffer_unordered(RELEASES_AT_ONCE)
        .collect::<Vec<_>>()
        .await;
    let mut gone = Vec::new();
    for outcome in released {
        if let Some(run) = outcome? {
            gone.push(run);
        }
    }
    Ok(gone)
}

/// Releases one item: `Some(outcome run)` when it cannot run any more.
async fn release_one(
    runs: &Runs,
    replay_id: Uuid,
    item: &ReplayItem,
    trigger: Option<&TriggerRecord>,
    original: Option<&RunView>,
    requested_by: &Actor,
    request_id: &str,
) -> Result<Option<Uuid>, ReplayerError> {
    let Some(trigger) = trigger else {
        return Ok(Some(item.outcome_run(replay_id)));
    };
    let stamp = Stamp {
        at: Utc::now(),
        by: requested_by.clone(),
    };
    if item.rerun {
        let Some(original) = original else {
            return Ok(Some(item.outcome_run(replay_id)));
        };
        // The original payload, as the run had it; the cause names the replay and the run.
        let firing = Firing {
            cause: item.rerun_cause(replay_id),
            received_at: stamp.at,
            ..original.record.firing.clone()
        };
        runs.fire(firing, stamp, trigger.paused, request_id).await?;
        return Ok(None);
    }
    let retry = RunCommand::Retry {
        stamp,
        replay_id: Some(replay_id),
    };
    match runs
        .execute(item.run_id, retry, requested_by, request_id)
        .await
    {
        Ok(_) => Ok(None),
        // Running or finished meanwhile (its own retry, or a person's): it settles when it
        // ends, as if this replay had retried it.
        Err(RunCommandError::Rejected(RunError::NotRetryable(_))) => Ok(None),
        Err(error) => Err(error.into()),
    }
}
