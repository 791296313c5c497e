//! Releasing held runs: a run fired while its trigger was paused waits (`held`) until the trigger
//! resumes; then it is released, oldest first, and the executors take it as any other.
//!
//! The releaser follows the run read model, not the resume request: every engine process looks
//! for held runs whose trigger is no longer paused, so a resume whose process stopped before
//! releasing, or a run recorded as held by a process that had not yet seen the resume, is still
//! released. Releasing is idempotent (a released run is no longer held), so processes racing on
//! one run append one release.
//!
//! The same loop releases a schedule's `buffer_one` run, held while the run ahead of it is
//! unfinished: the read model offers it only once its trigger has no requested, running or failed
//! run, and one such run per trigger per pass, so two never start together.

use std::sync::Arc;
use std::time::Duration;

use aggregates::event::Stamp;
use aggregates::{Actor, RunCommand};
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::runs::Runs;
use crate::store::{Store, StoreError};

/// How often the releaser looks for held runs of resumed triggers: at most this long after a
/// resume, its held runs start going out.
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// Held runs read per look.
const BATCH: i64 = 256;

/// Starts the releaser; it stops when `shutdown` is cancelled.
pub fn spawn(
    store: Arc<Store>,
    runs: Runs,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match release_resumed(&store, &runs).await {
                // A full batch may have more behind it: look again at once.
                Ok(released) if released as i64 >= BATCH => continue,
                Ok(_) => {}
                Err(error) => tracing::error!(%error, "releasing held runs failed; retrying"),
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(LOOK_EVERY) => {}
            }
        }
    })
}

/// Releases the oldest held runs whose trigger is not paused; returns how many it released.
pub async fn release_resumed(store: &Store, runs: &Runs) -> Result<usize, StoreError> {
    let mut released = 0;
    // A trigger that runs one at a time gets one run released per look: the next look sees it
    // requested or running and waits for it to finish.
    let mut one_at_a_time = std::collections::HashSet::new();
    for (view, serial) in store.resumed_held_runs(BATCH).await? {
        if serial && !one_at_a_time.insert(view.record.firing.project_trigger_id) {
            continue;
        }
        let actor = Actor::system("releaser");
        let release = RunCommand::Release {
            stamp: Stamp {
                at: Utc::now(),
                by: actor.clone(),
            },
        };
        let run_id = view.record.run_id;
        match runs.execute(run_id, release, &actor, "release").await {
            Ok(_) => released += 1,
            Err(error) => tracing::error!(%run_id, %error, "releasing a held run failed"),
        }
    }
    if released > 0 {
        tracing::info!(released, "held runs released");
    }
    Ok(released)
}
