//! The live projector: tails the global log into the read models (triggers, runs, replays), and lets
//! writers wait until their write is visible there (read-your-writes).
//!
//! Each batch and the checkpoints commit together (every read model in one transaction, from one
//! read of the log), so a crash neither loses nor repeats an event; on
//! start the projector simply continues from its checkpoint. Several engine processes on one
//! database may each run one: the checkpoint row lock makes their batches take turns.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::store::views::{ViewTarget, LIVE_REPLAYS, LIVE_RUNS, LIVE_TRIGGERS};
use crate::store::Store;

/// Events folded per transaction: large enough to amortise the commit, small enough that a batch
/// holds SQLite's single write lock for only milliseconds.
pub const BATCH_SIZE: i64 = 1_000;

/// How often an idle projector looks for events appended by other processes.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// How long to wait before retrying after a database error.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// What the rest of the engine holds of the projector: a way to wake it, and its progress.
#[derive(Clone)]
pub struct ProjectionHandle {
    wake: Arc<Notify>,
    checkpoint: watch::Receiver<i64>,
}

impl ProjectionHandle {
    /// Tells the projector there is something new to read now, rather than at its next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The position every read model has reached.
    pub fn checkpoint(&self) -> i64 {
        *self.checkpoint.borrow()
    }

    /// A receiver that sees every move of [`checkpoint`](Self::checkpoint): the executors wake on
    /// it when new runs may have become visible.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.checkpoint.clone()
    }

    /// Waits, at most `limit`, until every read model has folded `position`. False on timeout.
    pub async fn wait_for(&self, position: i64, limit: Duration) -> bool {
        let mut checkpoint = self.checkpoint.clone();
        let reached =
            tokio::time::timeout(limit, checkpoint.wait_for(|reached| *reached >= position))
                .await
                .is_ok_and(|seen| seen.is_ok());
        reached
    }
}

/// Starts the projector on `store`; it stops when `shutdown` is cancelled.
pub fn spawn(
    store: Arc<Store>,
    shutdown: CancellationToken,
) -> (ProjectionHandle, tokio::task::JoinHandle<()>) {
    let wake = Arc::new(Notify::new());
    let (progress, checkpoint) = watch::channel(0);
    let handle = ProjectionHandle {
        wake: wake.clone(),
        checkpoint,
    };
    let task = tokio::spawn(async move {
        let mut last = -1;
        loop {
            let pause = match project_all(&store).await {
                Ok(reached) => {
                    progress.send_replace(reached);
                    let moved = reached != last;
                    last = reached;
                    if moved {
                        continue;
                    }
                    IDLE_POLL
                }
                Err(error) => {
                    tracing::error!(%error, "projecting the read models failed; retrying");
                    ERROR_BACKOFF
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
        tracing::debug!("projector stopped");
    });
    (handle, task)
}

/// The live read models, folded in turn.
const LIVE: [ViewTarget; 3] = [LIVE_TRIGGERS, LIVE_RUNS, LIVE_REPLAYS];

/// Folds one batch into every live read model, in one transaction that reads the log once, and
/// returns the position all of them have reached.
async fn project_all(store: &Store) -> Result<i64, crate::store::StoreError> {
    store.project_next_batches(&LIVE, BATCH_SIZE).await
}
