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
//! - [`circuit`]: a circuit breaker per target, so a target that is down is not called at full
//!   rate and its runs keep their attempts.
//!
//! # Fair dispatch
//! The queue is read ranked per organisation (each organisation's oldest due run first, then each
//! one's second, ...), and a worker takes its slot before it picks a run, re-reading the queue when
//! the runs it read are older than [`FRESH_FOR`]: so one organisation's backlog of thousands does
//! not delay another organisation's new run by more than about a slot's turn.

pub mod circuit;
pub mod target;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aggregates::event::Stamp;
use aggregates::{Actor, RunCommand, RunError, RunStatus};
use chrono::Utc;
use projections::runs::RunView;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::delivery::{DeliveryRequest, Outcome, RetryPolicy};
use crate::projector::ProjectionHandle;
use crate::runs::{RunCommandError, Runs};
use crate::store::Store;
pub use circuit::Circuits;
use circuit::{Admission, Change};
pub use target::Target;

/// Due runs read per look at the queue.
const BATCH: i64 = 256;

/// How long a read of the queue is used before it is read again: the most a run that became due
/// meanwhile (another organisation's, say) waits behind the ones read before it.
const FRESH_FOR: Duration = Duration::from_millis(200);

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
    circuits: Arc<Circuits>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let dispatcher = Arc::new(Dispatcher {
        store,
        runs,
        circuits,
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
    circuits: Arc<Circuits>,
    settings: ExecutorSettings,
    lease: Duration,
    permits: Arc<Semaphore>,
    /// Runs this process is working on or has just moved on, with the log position the read
    /// model must reach before its row reflects that: until then the row is stale and is skipped
    /// (claiming from it would only be refused by the run stream).
    claimed: Mutex<HashMap<Uuid, i64>>,
}

/// The runs read from the queue and not yet looked at, and when they were read.
#[derive(Default)]
struct Batch {
    views: VecDeque<RunView>,
    read_at: Option<Instant>,
}

/// A run this process will attempt now, with its slot and what its target's circuit said.
struct Pick {
    view: RunView,
    origin: Option<String>,
    probe: bool,
}

impl Dispatcher {
    /// Starts attempts while there are due runs and free slots; returns when nothing due can be
    /// started.
    async fn dispatch_due(self: Arc<Self>) -> Result<(), crate::store::StoreError> {
        let mut batch = Batch::default();
        loop {
            // The slot first, then the run: a run picked while waiting for a slot would be one
            // read before the wait, ahead of whatever became due meanwhile.
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                return Ok(());
            };
            let Some(pick) = self.next_pick(&mut batch).await? else {
                return Ok(());
            };
            self.clone().start(pick, permit);
        }
    }

    async fn next_pick(&self, batch: &mut Batch) -> Result<Option<Pick>, crate::store::StoreError> {
        loop {
            let stale = batch
                .read_at
                .is_none_or(|read_at| read_at.elapsed() > FRESH_FOR);
            if stale {
                let lease = chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::MAX);
                batch.views = self.store.due_runs(Utc::now(), lease, BATCH).await?.into();
                batch.read_at = Some(Instant::now());
            }
            while let Some(view) = batch.views.pop_front() {
                if let Some(pick) = self.pick(view) {
                    return Ok(Some(pick));
                }
            }
            if stale {
                // A fresh read had nothing this process may start now.
                return Ok(None);
            }
            batch.read_at = None;
        }
    }

    /// `view` as a run to start now, unless another worker has it or its target's circuit is open.
    fn pick(&self, view: RunView) -> Option<Pick> {
        if !self.claim_locally(&view) {
            return None;
        }
        let origin = self.settings.target.origin(&view.record.firing.project_id);
        let admission = origin.as_deref().map_or(Admission::Go, |origin| {
            self.circuits.admit(origin, Instant::now())
        });
        if admission == Admission::Wait {
            // It stays due, with its attempts untouched, until the circuit lets calls through.
            self.release(view.record.run_id, None);
            return None;
        }
        Some(Pick {
            view,
            origin,
            probe: admission == Admission::Probe,
        })
    }

    fn start(self: Arc<Self>, pick: Pick, permit: OwnedSemaphorePermit) {
        tokio::spawn(async move {
            let run_id = pick.view.record.run_id;
            let reached = self.attempt(pick).await;
            self.release(run_id, reached);
            drop(permit);
        });
    }

    /// Feeds a call's outcome to its target's circuit, logging a change once.
    fn observe(&self, origin: &str, outcome: &Outcome) {
        let reached = !matches!(outcome, Outcome::Retryable { .. });
        match self
            .circuits
            .record(origin, reached, Instant::now(), Utc::now())
        {
            Change::None => {}
            Change::Opened { cool_down } => tracing::warn!(
                %origin,
                cool_down_ms = cool_down.as_millis() as u64,
                "executor target unreachable: circuit open, its runs wait"
            ),
            Change::Closed => tracing::info!(%origin, "executor target back: circuit closed"),
        }
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
    async fn attempt(&self, pick: Pick) -> Option<i64> {
        let Pick {
            view,
            origin,
            probe,
        } = pick;
        let not_sent = || {
            if let (true, Some(origin)) = (probe, &origin) {
                self.circuits.abandon(origin);
            }
        };
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
            if self.record(run_id, abandoned, &actor).await != Some(true) {
                not_sent();
                return None;
            }
            tracing::warn!(%run_id, attempt = record.attempts, "took over an abandoned attempt");
        }
        let attempt = record.attempts + 1;
        let start = RunCommand::StartAttempt {
            attempt,
            stamp: stamp(&actor),
        };
        if self.record(run_id, start, &actor).await != Some(true) {
            not_sent();
            return None;
        }
        let request = DeliveryRequest {
            run_id,
            attempt,
            firing: record.firing,
        };
        let outcome = self.settings.target.deliver(&request).await;
        if let Some(origin) = &origin {
            self.observe(origin, &outcome);
        }
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
