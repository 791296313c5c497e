//! The replay aggregate: one bulk replay of runs an operator selected, and how far it has got.
//!
//! The runs a replay covers are fixed when it is requested (the selection is matched once, and the
//! matched runs are the first event), so a replay means the same thing whenever and wherever it is
//! worked on. Work proceeds in steps: each step releases the next few runs (a failed run is retried
//! in place, a succeeded one is run again as a new run) and settles the released runs that have
//! finished. A step names where it starts (`from`), so two processes working on one replay, or a
//! process that crashed after releasing runs but before recording the step, never skip or double
//! count: releasing a run is itself idempotent per replay, and the stream's sequence lets one step
//! through at a time.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::{Stamp, EVENT_VERSION};
use crate::run::{run_id, RunCause, RunStatus};
use crate::Actor;

/// Which runs a replay covers, as the operator asked: every given part must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplaySelection {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trigger_ids: Vec<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    /// Among `failed`, `dead_lettered` and `succeeded`.
    pub statuses: Vec<RunStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_from: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_to: Option<DateTime<Utc>>,
}

/// The statuses a replay may select.
pub const REPLAYABLE: [RunStatus; 3] = [
    RunStatus::Failed,
    RunStatus::DeadLettered,
    RunStatus::Succeeded,
];

/// One matched run and what replaying it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayItem {
    pub run_id: Uuid,
    pub project_trigger_id: Uuid,
    /// Run it again as a new run (it had succeeded) rather than retry it in place.
    pub rerun: bool,
}

impl ReplayItem {
    /// The run whose end tells this item's outcome: the new run for a rerun, else the run itself.
    pub fn outcome_run(&self, replay_id: Uuid) -> Uuid {
        match self.rerun {
            true => run_id(self.project_trigger_id, &self.rerun_cause(replay_id)),
            false => self.run_id,
        }
    }

    /// The cause of this item's new run, for a rerun.
    pub fn rerun_cause(&self, replay_id: Uuid) -> RunCause {
        RunCause::Replay {
            replay_id,
            of: self.run_id,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayState {
    /// Runs are still being released or have not all finished.
    Running,
    /// Every matched run was released and has finished.
    Finished,
    /// Stopped by a person: runs not yet released never will be.
    Cancelled,
}

/// A replay as its events describe it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayRecord {
    pub replay_id: Uuid,
    pub org_id: Uuid,
    pub selection: ReplaySelection,
    pub items: Vec<ReplayItem>,
    pub requested_at: DateTime<Utc>,
    pub requested_by: Actor,
    /// How many items (from the start of `items`) have been released.
    pub released: usize,
    /// Released items whose outcome run has not finished: their outcome runs' ids.
    pub pending: Vec<Uuid>,
    pub succeeded: usize,
    pub failed: usize,
    pub state: ReplayState,
    pub updated_at: DateTime<Utc>,
}

impl ReplayRecord {
    pub fn evolve(record: Option<Self>, event: &ReplayEvent) -> Option<Self> {
        if let ReplayEvent::ReplayRequested {
            replay_id,
            org_id,
            selection,
            items,
            stamp,
        } = event
        {
            return Some(Self {
                replay_id: *replay_id,
                org_id: *org_id,
                selection: selection.clone(),
                items: items.clone(),
                requested_at: stamp.at,
                requested_by: stamp.by.clone(),
                released: 0,
                pending: Vec::new(),
                succeeded: 0,
                failed: 0,
                state: ReplayState::Running,
                updated_at: stamp.at,
            });
        }
        let mut record = record?;
        match event {
            ReplayEvent::ReplayRequested { .. } => unreachable!("handled above"),
            ReplayEvent::ReplayStepped {
                released,
                succeeded,
                failed,
                ..
            } => {
                let newly = &record.items[record.released..record.released + released];
                let outcome_runs: Vec<Uuid> = newly
                    .iter()
                    .map(|item| item.outcome_run(record.replay_id))
                    .collect();
                record.pending.extend(outcome_runs);
                record.released += released;
                record
                    .pending
                    .retain(|run| !succeeded.contains(run) && !failed.contains(run));
                record.succeeded += succeeded.len();
                record.failed += failed.len();
            }
            ReplayEvent::ReplayFinished { .. } => record.state = ReplayState::Finished,
            ReplayEvent::ReplayCancelled { .. } => record.state = ReplayState::Cancelled,
        }
        record.updated_at = event.stamp().at;
        Some(record)
    }

    /// The items the next step may release, at most `room` of them.
    pub fn next_items(&self, room: usize) -> &[ReplayItem] {
        let end = (self.released + room).min(self.items.len());
        &self.items[self.released..end]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ReplayCommand {
    Request {
        replay_id: Uuid,
        org_id: Uuid,
        selection: ReplaySelection,
        items: Vec<ReplayItem>,
        stamp: Stamp,
    },
    /// Records one step: `released` more items starting at item `from` were released, and these
    /// pending outcome runs finished.
    Step {
        from: usize,
        released: usize,
        succeeded: Vec<Uuid>,
        failed: Vec<Uuid>,
        stamp: Stamp,
    },
    Cancel {
        stamp: Stamp,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ReplayEvent {
    ReplayRequested {
        replay_id: Uuid,
        org_id: Uuid,
        selection: ReplaySelection,
        items: Vec<ReplayItem>,
        stamp: Stamp,
    },
    ReplayStepped {
        released: usize,
        succeeded: Vec<Uuid>,
        failed: Vec<Uuid>,
        stamp: Stamp,
    },
    ReplayFinished {
        stamp: Stamp,
    },
    ReplayCancelled {
        stamp: Stamp,
    },
}

impl ReplayEvent {
    pub const TYPES: [&'static str; 4] = [
        "ReplayRequested",
        "ReplayStepped",
        "ReplayFinished",
        "ReplayCancelled",
    ];

    pub fn stamp(&self) -> &Stamp {
        match self {
            Self::ReplayRequested { stamp, .. }
            | Self::ReplayStepped { stamp, .. }
            | Self::ReplayFinished { stamp }
            | Self::ReplayCancelled { stamp } => stamp,
        }
    }
}

impl DomainEvent for ReplayEvent {
    fn event_type(&self) -> String {
        let index = match self {
            Self::ReplayRequested { .. } => 0,
            Self::ReplayStepped { .. } => 1,
            Self::ReplayFinished { .. } => 2,
            Self::ReplayCancelled { .. } => 3,
        };
        Self::TYPES[index].to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplayError {
    #[error("replay does not exist")]
    NotFound,
    #[error("replay already exists")]
    AlreadyExists,
    #[error("a replay selects at least one run")]
    NothingSelected,
    /// Another worker recorded this step first, or the step is out of range.
    #[error("step from item {from} is not the next one (released so far: {released})")]
    StaleStep { from: usize, released: usize },
    #[error("the replay is {0:?}: nothing more happens to it")]
    Over(ReplayState),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Replay {
    record: Option<ReplayRecord>,
}

impl Replay {
    pub fn record(&self) -> Option<&ReplayRecord> {
        self.record.as_ref()
    }

    pub fn decide(&self, command: ReplayCommand) -> Result<Vec<ReplayEvent>, ReplayError> {
        let record = match (&self.record, command) {
            (
                None,
                ReplayCommand::Request {
                    replay_id,
                    org_id,
                    selection,
                    items,
                    stamp,
                },
            ) => {
                if items.is_empty() {
                    return Err(ReplayError::NothingSelected);
                }
                return Ok(vec![ReplayEvent::ReplayRequested {
                    replay_id,
                    org_id,
                    selection,
                    items,
                    stamp,
                }]);
            }
            (Some(_), ReplayCommand::Request { .. }) => return Err(ReplayError::AlreadyExists),
            (None, _) => return Err(ReplayError::NotFound),
            (Some(record), command) => (record, command),
        };
        let (record, command) = record;
        if record.state != ReplayState::Running {
            return Err(ReplayError::Over(record.state));
        }
        match command {
            ReplayCommand::Request { .. } => unreachable!("decided above"),
            ReplayCommand::Cancel { stamp } => Ok(vec![ReplayEvent::ReplayCancelled { stamp }]),
            ReplayCommand::Step {
                from,
                released,
                succeeded,
                failed,
                stamp,
            } => {
                if from != record.released || from + released > record.items.len() {
                    return Err(ReplayError::StaleStep {
                        from,
                        released: record.released,
                    });
                }
                // Only runs this replay is waiting for can settle, each once.
                let newly = &record.items[from..from + released];
                let waiting = |run: &Uuid| {
                    record.pending.contains(run)
                        || newly
                            .iter()
                            .any(|item| item.outcome_run(record.replay_id) == *run)
                };
                let mut succeeded = succeeded;
                let mut failed = failed;
                succeeded.retain(waiting);
                failed.retain(|run| waiting(run) && !succeeded.contains(run));
                succeeded.sort_unstable();
                succeeded.dedup();
                failed.sort_unstable();
                failed.dedup();
                let settles = succeeded.len() + failed.len();
                let done = from + released == record.items.len()
                    && record.pending.len() + released == settles;
                let mut events = Vec::new();
                if released > 0 || settles > 0 {
                    events.push(ReplayEvent::ReplayStepped {
                        released,
                        succeeded,
                        failed,
                        stamp: stamp.clone(),
                    });
                }
                if done {
                    events.push(ReplayEvent::ReplayFinished { stamp });
                }
                Ok(events)
            }
        }
    }
}

impl Aggregate for Replay {
    /// The stream type stored with every replay event: a persistence contract, never renamed.
    const TYPE: &'static str = "replay";
    type Command = ReplayCommand;
    type Event = ReplayEvent;
    type Error = ReplayError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.record = ReplayRecord::evolve(self.record.take(), &event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp() -> Stamp {
        Stamp {
            at: "2026-12-02T10:00:00Z".parse().unwrap(),
            by: Actor::system("test"),
        }
    }

    fn item(n: u128, rerun: bool) -> ReplayItem {
        ReplayItem {
            run_id: Uuid::from_u128(n),
            project_trigger_id: Uuid::from_u128(100),
            rerun,
        }
    }

    fn requested(items: Vec<ReplayItem>) -> Replay {
        let mut replay = Replay::default();
        for event in replay
            .decide(ReplayCommand::Request {
                replay_id: Uuid::from_u128(1),
                org_id: Uuid::from_u128(2),
                selection: ReplaySelection::default(),
                items,
                stamp: stamp(),
            })
            .unwrap()
        {
            replay.apply(event);
        }
        replay
    }

    fn step(replay: &mut Replay, from: usize, released: usize, ok: Vec<Uuid>) -> Vec<ReplayEvent> {
        let events = replay
            .decide(ReplayCommand::Step {
                from,
                released,
                succeeded: ok,
                failed: vec![],
                stamp: stamp(),
            })
            .unwrap();
        for event in events.clone() {
            replay.apply(event);
        }
        events
    }

    #[test]
    fn it_should_finish_once_every_released_run_has_settled() {
        let mut replay = requested(vec![item(10, false), item(11, true)]);
        step(&mut replay, 0, 2, vec![]);
        let rerun = item(11, true).outcome_run(Uuid::from_u128(1));
        assert_ne!(rerun, Uuid::from_u128(11), "a rerun is a new run");
        assert_eq!(
            replay.record().unwrap().pending,
            vec![Uuid::from_u128(10), rerun]
        );
        let events = step(&mut replay, 2, 0, vec![Uuid::from_u128(10), rerun]);
        assert!(matches!(
            events.last(),
            Some(ReplayEvent::ReplayFinished { .. })
        ));
        let record = replay.record().unwrap();
        assert_eq!((record.succeeded, record.state), (2, ReplayState::Finished));
    }

    #[test]
    fn it_should_refuse_a_step_that_another_worker_recorded_first() {
        let mut replay = requested(vec![item(10, false), item(11, false)]);
        step(&mut replay, 0, 1, vec![]);
        let stale = replay.decide(ReplayCommand::Step {
            from: 0,
            released: 1,
            succeeded: vec![],
            failed: vec![],
            stamp: stamp(),
        });
        assert_eq!(
            stale,
            Err(ReplayError::StaleStep {
                from: 0,
                released: 1
            })
        );
    }

    #[test]
    fn it_should_count_a_settled_run_once_and_ignore_runs_it_never_released() {
        let mut replay = requested(vec![item(10, false), item(11, false)]);
        step(&mut replay, 0, 1, vec![]);
        step(
            &mut replay,
            1,
            0,
            vec![Uuid::from_u128(10), Uuid::from_u128(99)],
        );
        step(&mut replay, 1, 0, vec![Uuid::from_u128(10)]);
        let record = replay.record().unwrap();
        assert_eq!((record.succeeded, record.state), (1, ReplayState::Running));
    }

    #[test]
    fn it_should_release_nothing_more_once_cancelled() {
        let mut replay = requested(vec![item(10, false)]);
        for event in replay
            .decide(ReplayCommand::Cancel { stamp: stamp() })
            .unwrap()
        {
            replay.apply(event);
        }
        let refused = replay.decide(ReplayCommand::Step {
            from: 0,
            released: 1,
            succeeded: vec![],
            failed: vec![],
            stamp: stamp(),
        });
        assert_eq!(refused, Err(ReplayError::Over(ReplayState::Cancelled)));
    }
}
