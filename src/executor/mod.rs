//! Executors: take due runs from the run read model, claim one attempt at a time through the run
//! aggregate, deliver it, and record the outcome.
//!
//! Durable and shared: the queue is the run read model, so a restarted engine resumes where the log
//! says it was, and several engine processes may poll the same queue. What keeps them from running
//! one attempt twice is the run stream, not the queue: `StartAttempt` names the next attempt, and
//! only one process can append it. A running attempt whose process died is taken over once its
//! lease (the call timeout plus a margin) has passed: it is recorded as failed and retried, so the
//! target may see a run twice (at least once), always with the same idempotency key (the run id).
//!
//! # Layout
//! - this module: the dispatch loop and one attempt's life.
//! - [`target`]: where runs go: the HTTP executor, or the built-in one that records them as done.

pub mod target;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aggregates::event::Stamp;
use aggregates::{Actor, RunCommand, RunError, RunStatus};
use chrono::Utc;
use projections::runs::RunView;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::delivery::{DeliveryRequest, Outcome, RetryPolicy};
use crate::projector::ProjectionHandle;
use crate::runs::{RunCommandError, Runs};
use crate::store::Store;
pub use target::Target;

/// Due runs read per look at the queue.
const BATCH: i64 = 256;

/// How often an idle executor looks for runs that became due (retries whose time came, runs
/// recorded by other processes). Runs recorded by this process wake it at once.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// How long past the call timeout a running attempt is left alone before another worker presumes
/// its worker dead and takes the run over.
const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// How the executors behave.
#[derive(Clone)]
pub struct ExecutorSettings {
    pub target: Arc<Target>,
    pub retry: RetryPolicy,
    /// The longest a call may take; a running attempt older than this plus a margin is abandoned.
    pub timeout: Duration,
    pub concurrency: usize,
}

/// Starts the executor loop; it stops taking work when `shutdown` is cancelled and lets the
/// attempts in flight finish.
pub fn spawn(
    store: Arc<Store>,
    runs: Runs,
    projections: ProjectionHandle,
    settings: ExecutorSettings,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let dispatcher = Arc::new(Dispatcher {
        store,
        runs,
        lease: settings.timeout + LEASE_MARGIN,
        permits: Arc::new(Semaphore::new(settings.concurrency.max(1))),
        settings,
        claimed: Mutex::default(),
    });
    tokio::spawn(async move {
        let mut progress = projections.subscribe();
        loop {
            if let Err(error) = dispatcher.clone().dispatch_due().await {
                tracing::error!(%error, "reading due runs failed; retrying");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = progress.changed() => {}
                () = tokio::time::sleep(IDLE_POLL) => {}
            }
        }
        // Let attempts in flight record their outcome before the store closes.
        let _ = dispatcher
            .permits
            .acquire_many(dispatcher.settings.concurrency.max(1) as u32)
            .await;
        tracing::debug!("executor stopped");
    })
}

struct Dispatcher {
    store: Arc<Store>,
    runs: Runs,
    settings: ExecutorSettings,
    lease: Duration,
    permits: Arc<Semaphore>,
    /// Runs this process is working on or has just moved on, with the log position the read
    /// model must reach before its row reflects that: until then the row is stale and is skipped
    /// (claiming from it would only be refused by the run stream).
    claimed: Mutex<HashMap<Uuid, i64>>,
}

impl Dispatcher {
    async fn dispatch_due(self: Arc<Self>) -> Result<(), crate::store::StoreError> {
        let lease = chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::MAX);
        let due = self.store.due_runs(Utc::now(), lease, BATCH).await?;
        for view in due {
            if !self.claim_locally(&view) {
                continue;
            }
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                return Ok(());
            };
            let dispatcher = self.clone();
            tokio::spawn(async move {
                let run_id = view.record.run_id;
                let reached = dispatcher.attempt(view).await;
                dispatcher.release(run_id, reached);
                drop(permit);
            });
        }
        Ok(())
    }

    /// True when this process may start on `view` now; marks it taken.
    fn claim_locally(&self, view: &RunView) -> bool {
        let mut claimed = self.claimed.lock().expect("claimed-runs lock");
        match claimed.get(&view.record.run_id) {
            Some(&until) if view.last_position < until => false,
            _ => {
                claimed.insert(view.record.run_id, i64::MAX);
                true
            }
        }
    }

    fn release(&self, run_id: Uuid, reached: Option<i64>) {
        let mut claimed = self.claimed.lock().expect("claimed-runs lock");
        match reached {
            Some(position) => claimed.insert(run_id, position),
            None => claimed.remove(&run_id),
        };
        // Entries the read model has passed are no longer needed; the map stays as small as the
        // work in flight plus the projection lag.
        if claimed.len() > 4 * BATCH as usize {
            let passed = self.runs.projections().checkpoint();
            claimed.retain(|_, until| *until > passed);
        }
    }

    /// Runs one attempt of `view`'s run: claim it, deliver it, record the outcome. Returns the
    /// position of the last event recorded, if any.
    async fn attempt(&self, view: RunView) -> Option<i64> {
        let record = view.record;
        let run_id = record.run_id;
        let actor = Actor::system("executor");
        if record.status == RunStatus::Running {
            // The attempt's lease ran out: its worker is gone. Record it as failed, due now.
            let abandoned = RunCommand::Fail {
                attempt: record.attempts,
                error: "attempt abandoned: its worker stopped before recording an outcome".into(),
                retry_at: Some(Utc::now()),
                stamp: stamp(&actor),
            };
            if !self.record(run_id, abandoned, &actor).await? {
                return None;
            }
            tracing::warn!(%run_id, attempt = record.attempts, "took over an abandoned attempt");
        }
        let attempt = record.attempts + 1;
        let start = RunCommand::StartAttempt {
            attempt,
            stamp: stamp(&actor),
        };
        if !self.record(run_id, start, &actor).await? {
            return None;
        }
        let request = DeliveryRequest {
            run_id,
            attempt,
            firing: record.firing,
        };
        let outcome = self.settings.target.deliver(&request).await;
        let command = match outcome {
            Outcome::Delivered => RunCommand::Succeed {
                attempt,
                stamp: stamp(&actor),
            },
            Outcome::Retryable { error, retry_after } => {
                let delay =
                    self.settings
                        .retry
                        .next_delay(attempt, retry_after, &mut rand::thread_rng());
                RunCommand::Fail {
                    attempt,
                    error,
                    retry_at: delay.map(|delay| {
                        Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default()
                    }),
                    stamp: stamp(&actor),
                }
            }
            Outcome::Rejected { error } => RunCommand::Fail {
                attempt,
                error,
                retry_at: None,
                stamp: stamp(&actor),
            },
        };
        tracing::info!(%run_id, attempt, outcome = command_name(&command), "run attempt finished");
        self.record_position(run_id, command, &actor).await
    }

    /// Records `command`; `Some(true)` when recorded, `Some(false)` when another worker got there
    /// first, `None` on a store error (logged; the run stays due and is tried again).
    async fn record(&self, run_id: Uuid, command: RunCommand, actor: &Actor) -> Option<bool> {
        match self.runs.execute(run_id, command, actor, "executor").await {
            Ok(_) => Some(true),
            Err(RunCommandError::Rejected(RunError::WrongAttempt { .. })) => Some(false),
            Err(error) => {
                tracing::error!(%run_id, %error, "recording a run transition failed");
                None
            }
        }
    }

    async fn record_position(
        &self,
        run_id: Uuid,
        command: RunCommand,
        actor: &Actor,
    ) -> Option<i64> {
        match self.runs.execute(run_id, command, actor, "executor").await {
            Ok(position) => position,
            Err(error) => {
                // The attempt stays "running" until its lease passes; then it is retried.
                tracing::error!(%run_id, %error, "recording an attempt's outcome failed");
                None
            }
        }
    }
}

fn stamp(actor: &Actor) -> Stamp {
    Stamp {
        at: Utc::now(),
        by: actor.clone(),
    }
}

fn command_name(command: &RunCommand) -> &'static str {
    match command {
        RunCommand::Succeed { .. } => "succeeded",
        RunCommand::Fail {
            retry_at: Some(_), ..
        } => "failed",
        RunCommand::Fail { retry_at: None, .. } => "dead_lettered",
        _ => "other",
    }
}
