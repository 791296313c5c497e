//! The run write path: record a firing, and move a run through its attempts.
//!
//! A firing is recorded by appending `RunRequested` as the first event of the stream its cause
//! names ([`aggregates::run_id`]). The append itself is the deduplication: a second delivery of the
//! same cause, on this process or another, after a restart or not, finds sequence 1 taken and
//! records nothing. No read precedes that append, so a webhook costs one statement.

use std::sync::Arc;

use aggregates::event::Stamp;
use aggregates::{run_id, Actor, Firing, Run, RunCommand, RunError};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use uuid::Uuid;

use crate::projector::ProjectionHandle;
use crate::store::streams::EventMetadata;
use crate::store::{Store, StoreError, StreamAppend};

/// How many times a run command is decided again after losing a race to append.
const CONFLICT_RETRIES: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum RunCommandError {
    #[error(transparent)]
    Rejected(#[from] RunError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("run is changing too fast; try again")]
    Contended,
}

/// What recording a firing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fired {
    /// A new run, recorded at this log position.
    New { run_id: Uuid, position: i64 },
    /// The cause had already fired: this is its run, and nothing was recorded.
    Duplicate { run_id: Uuid },
}

impl Fired {
    pub fn run_id(&self) -> Uuid {
        match self {
            Self::New { run_id, .. } | Self::Duplicate { run_id } => *run_id,
        }
    }
}

/// Records firings and run transitions, and wakes the projector (and through it the executors).
#[derive(Clone)]
pub struct Runs {
    store: Arc<Store>,
    projections: ProjectionHandle,
}

impl Runs {
    pub fn new(store: Arc<Store>, projections: ProjectionHandle) -> Self {
        Self { store, projections }
    }

    /// Records a firing unless its cause already fired; a `held` one (its trigger is paused)
    /// waits for the trigger to resume.
    pub async fn fire(
        &self,
        firing: Firing,
        stamp: Stamp,
        held: bool,
        request_id: &str,
    ) -> Result<Fired, RunCommandError> {
        let (run_id, append) = Self::request(firing, stamp, held, request_id)?;
        self.record(run_id, append).await
    }

    /// Records a run [`request`](Self::request) built (perhaps ahead of time), unless its cause
    /// already fired.
    pub async fn record(
        &self,
        run_id: Uuid,
        append: StreamAppend,
    ) -> Result<Fired, RunCommandError> {
        match self.store.append_together(vec![append]).await {
            Ok(positions) => {
                self.projections.wake();
                Ok(Fired::New {
                    run_id,
                    position: positions[0],
                })
            }
            Err(StoreError::Conflict) => Ok(Fired::Duplicate { run_id }),
            Err(error) => Err(error.into()),
        }
    }

    /// The run a firing starts and the append that records it, for a caller that records it
    /// together with other changes ([`Store::append_together`]); the append clashes with an
    /// earlier firing of the same cause.
    pub fn request(
        firing: Firing,
        stamp: Stamp,
        held: bool,
        request_id: &str,
    ) -> Result<(Uuid, StreamAppend), RunCommandError> {
        let run_id = run_id(firing.project_trigger_id, &firing.cause);
        let metadata = EventMetadata {
            actor: stamp.by.clone(),
            org_id: firing.org_id,
            request_id: request_id.to_owned(),
        };
        let events = Run::default().decide(RunCommand::Request {
            firing,
            stamp,
            held,
        })?;
        let append = Store::stream_append::<Run>(run_id, 0, &events, &metadata)?;
        Ok((run_id, append))
    }

    /// Like [`Self::request`], the run skipped in the same append (`RunRequested` then
    /// `RunSkipped`): a schedule slot its overlap policy refuses is on record, and never runs.
    pub fn request_skipped(
        firing: Firing,
        stamp: Stamp,
        reason: String,
        request_id: &str,
    ) -> Result<(Uuid, StreamAppend), RunCommandError> {
        let run_id = run_id(firing.project_trigger_id, &firing.cause);
        let metadata = EventMetadata {
            actor: stamp.by.clone(),
            org_id: firing.org_id,
            request_id: request_id.to_owned(),
        };
        let mut run = Run::default();
        let mut events = run.decide(RunCommand::Request {
            firing,
            stamp: stamp.clone(),
            held: false,
        })?;
        for event in &events {
            run.apply(event.clone());
        }
        events.extend(run.decide(RunCommand::Skip { reason, stamp })?);
        let append = Store::stream_append::<Run>(run_id, 0, &events, &metadata)?;
        Ok((run_id, append))
    }

    /// Decides `command` against the run's latest state and records what it decided. Returns the
    /// position of the recorded event, or `None` when the command changed nothing.
    pub async fn execute(
        &self,
        run_id: Uuid,
        command: RunCommand,
        actor: &Actor,
        request_id: &str,
    ) -> Result<Option<i64>, RunCommandError> {
        for _ in 0..=CONFLICT_RETRIES {
            let loaded = self.store.load::<Run>(run_id).await?;
            let mut run = loaded.state;
            let Some(org_id) = run.record().map(|record| record.firing.org_id) else {
                return Err(RunError::NotFound.into());
            };
            let sink = EventSink::default();
            run.handle(command.clone(), &(), &sink).await?;
            let events = sink.collect().await;
            if events.is_empty() {
                return Ok(None);
            }
            let metadata = EventMetadata {
                actor: actor.clone(),
                org_id,
                request_id: request_id.to_owned(),
            };
            match self
                .store
                .append::<Run>(run_id, loaded.sequence, &events, &metadata)
                .await
            {
                Ok(position) => {
                    self.projections.wake();
                    return Ok(Some(position));
                }
                Err(StoreError::Conflict) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(RunCommandError::Contended)
    }

    /// The projector this service wakes: callers wait on it for read-your-writes.
    pub fn projections(&self) -> &ProjectionHandle {
        &self.projections
    }
}
