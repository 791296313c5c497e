//! The run aggregate: one firing of a trigger, from request to success or dead letter.
//!
//! A run's id derives from its cause ([`run_id`]): the same delivery, schedule slot or polled item
//! always names the same run, so a duplicate cause finds the run already requested and records
//! nothing, on any engine process. Each firing is its own stream, so concurrent firings of one hot
//! trigger never contend on one stream.
//!
//! Attempts are numbered. A worker starts attempt n only if n is the next one: two workers that
//! race for the same attempt both decide against the same history, and the stream's sequence lets
//! only one of them append; the other, deciding again, finds the attempt taken.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::event::{Stamp, EVENT_VERSION};
use crate::record::TriggerRecord;

/// What fired a trigger. The key is what makes two firings the same firing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunCause {
    /// A webhook delivery, keyed by the provider's delivery or event id (or an Idempotency-Key).
    Delivery { key: String },
    /// A schedule slot, keyed by its scheduled time.
    ScheduleSlot { at: DateTime<Utc> },
    /// An item a poller found, keyed by the item's id.
    PolledItem { id: String },
    /// A bulk replay ran a succeeded run `of` again, as a new run: one per replay and run.
    Replay { replay_id: Uuid, of: Uuid },
}

impl RunCause {
    fn key(&self) -> String {
        match self {
            Self::Delivery { key } => format!("delivery:{key}"),
            Self::ScheduleSlot { at } => format!("slot:{}", at.to_rfc3339()),
            Self::PolledItem { id } => format!("item:{id}"),
            Self::Replay { replay_id, of } => format!("replay:{replay_id}:{of}"),
        }
    }
}

/// The run id a cause names: a UUID v5 in the trigger's own namespace, the same on every process.
pub fn run_id(project_trigger_id: Uuid, cause: &RunCause) -> Uuid {
    Uuid::new_v5(&project_trigger_id, cause.key().as_bytes())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for its next attempt (the first, a retry, or a manual re-run).
    Requested,
    /// An attempt is under way.
    Running,
    Succeeded,
    /// The last attempt failed; the next is due at `next_attempt_at`.
    Failed,
    /// Attempts are exhausted or the target refused for good; only a manual retry revives it.
    DeadLettered,
    /// Fired while its trigger was paused: kept, not executed, until the trigger resumes.
    Held,
    /// Recorded but never to be executed: a schedule slot whose overlap policy said no.
    Skipped,
}

impl RunStatus {
    /// True once nothing more will happen to the run unless someone asks (retry, replay).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::DeadLettered | Self::Skipped)
    }
}

/// A run as its events describe it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: Uuid,
    /// What fired, as it was requested.
    pub firing: Firing,
    pub status: RunStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub requested_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The bulk replays that retried this run in place, so a replay retries it at most once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replays: Vec<Uuid>,
    /// Why it was skipped, for a skipped run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_because: Option<String>,
}

impl RunRecord {
    /// The run after `event`; `None` for events before the run was requested (a well-formed
    /// stream has none). The aggregate and the runs read model both fold with this.
    pub fn evolve(record: Option<RunRecord>, event: &RunEvent) -> Option<RunRecord> {
        if let RunEvent::RunRequested {
            run_id,
            firing,
            stamp,
            held,
        } = event
        {
            let (status, next_attempt_at) = match held {
                true => (RunStatus::Held, None),
                false => (RunStatus::Requested, Some(stamp.at)),
            };
            return Some(RunRecord {
                run_id: *run_id,
                firing: firing.clone(),
                status,
                attempts: 0,
                last_error: None,
                next_attempt_at,
                requested_at: stamp.at,
                updated_at: stamp.at,
                replays: Vec::new(),
                skipped_because: None,
            });
        }
        let mut record = record?;
        match event {
            RunEvent::RunRequested { .. } => unreachable!("handled above"),
            RunEvent::AttemptStarted { attempt, .. } => {
                record.status = RunStatus::Running;
                record.attempts = *attempt;
                record.next_attempt_at = None;
            }
            RunEvent::RunSucceeded { .. } => {
                record.status = RunStatus::Succeeded;
                record.last_error = None;
            }
            RunEvent::AttemptFailed {
                error, retry_at, ..
            } => {
                record.status = RunStatus::Failed;
                record.last_error = Some(error.clone());
                record.next_attempt_at = Some(*retry_at);
            }
            RunEvent::RunDeadLettered { error, .. } => {
                record.status = RunStatus::DeadLettered;
                record.last_error = Some(error.clone());
            }
            RunEvent::RetryRequested { stamp, replay_id } => {
                record.status = RunStatus::Requested;
                record.next_attempt_at = Some(stamp.at);
                record.replays.extend(replay_id);
            }
            RunEvent::RunReleased { .. } => {
                // Due as of when it was requested: released runs go out oldest first.
                record.status = RunStatus::Requested;
                record.next_attempt_at = Some(record.requested_at);
            }
            RunEvent::RunSkipped { reason, .. } => {
                record.status = RunStatus::Skipped;
                record.next_attempt_at = None;
                record.skipped_because = Some(reason.clone());
            }
        }
        record.updated_at = event.stamp().at;
        Some(record)
    }
}

/// What the trigger fired with: everything the executor hands to the project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Firing {
    pub project_trigger_id: Uuid,
    pub org_id: Uuid,
    pub project_id: String,
    pub provider_id: String,
    pub trigger_id: String,
    pub cause: RunCause,
    pub payload: Value,
    pub received_at: DateTime<Utc>,
}

impl Firing {
    /// A firing of `trigger`: the trigger's identity, with what fired it and the payload.
    pub fn of(
        trigger: &TriggerRecord,
        cause: RunCause,
        payload: Value,
        received_at: DateTime<Utc>,
    ) -> Self {
        Self {
            project_trigger_id: trigger.project_trigger_id,
            org_id: trigger.org_id,
            project_id: trigger.project_id.clone(),
            provider_id: trigger.provider_id.clone(),
            trigger_id: trigger.trigger_id.clone(),
            cause,
            payload,
            received_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RunCommand {
    /// Fire: records the run unless its cause already did. A `held` run (its trigger is paused)
    /// waits for [`RunCommand::Release`] instead of being due.
    Request {
        firing: Firing,
        stamp: Stamp,
        held: bool,
    },
    /// A worker claims attempt `attempt`, which must be the next one.
    StartAttempt { attempt: u32, stamp: Stamp },
    /// The running attempt reached the target and was accepted.
    Succeed { attempt: u32, stamp: Stamp },
    /// The running attempt failed: retry at `retry_at`, or dead-letter when `None`.
    Fail {
        attempt: u32,
        error: String,
        retry_at: Option<DateTime<Utc>>,
        stamp: Stamp,
    },
    /// A person asks to run a failed or dead-lettered run again, directly or through a bulk
    /// replay (`replay_id`), which retries each run at most once.
    Retry {
        stamp: Stamp,
        replay_id: Option<Uuid>,
    },
    /// The trigger resumed: a held run becomes due.
    Release { stamp: Stamp },
    /// A run not yet attempted is not to be executed, for `reason`.
    Skip { reason: String, stamp: Stamp },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RunEvent {
    RunRequested {
        run_id: Uuid,
        firing: Firing,
        stamp: Stamp,
        /// Fired while the trigger was paused. Absent (false) in the stored shape otherwise.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        held: bool,
    },
    AttemptStarted {
        attempt: u32,
        stamp: Stamp,
    },
    RunSucceeded {
        attempt: u32,
        stamp: Stamp,
    },
    AttemptFailed {
        attempt: u32,
        error: String,
        retry_at: DateTime<Utc>,
        stamp: Stamp,
    },
    RunDeadLettered {
        attempt: u32,
        error: String,
        stamp: Stamp,
    },
    RetryRequested {
        stamp: Stamp,
        /// The bulk replay that asked, if one did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replay_id: Option<Uuid>,
    },
    RunReleased {
        stamp: Stamp,
    },
    RunSkipped {
        reason: String,
        stamp: Stamp,
    },
}

impl RunEvent {
    pub const TYPES: [&'static str; 8] = [
        "RunRequested",
        "AttemptStarted",
        "RunSucceeded",
        "AttemptFailed",
        "RunDeadLettered",
        "RetryRequested",
        "RunReleased",
        "RunSkipped",
    ];

    pub fn stamp(&self) -> &Stamp {
        match self {
            Self::RunRequested { stamp, .. }
            | Self::AttemptStarted { stamp, .. }
            | Self::RunSucceeded { stamp, .. }
            | Self::AttemptFailed { stamp, .. }
            | Self::RunDeadLettered { stamp, .. }
            | Self::RetryRequested { stamp, .. }
            | Self::RunReleased { stamp }
            | Self::RunSkipped { stamp, .. } => stamp,
        }
    }
}

impl DomainEvent for RunEvent {
    fn event_type(&self) -> String {
        let index = match self {
            Self::RunRequested { .. } => 0,
            Self::AttemptStarted { .. } => 1,
            Self::RunSucceeded { .. } => 2,
            Self::AttemptFailed { .. } => 3,
            Self::RunDeadLettered { .. } => 4,
            Self::RetryRequested { .. } => 5,
            Self::RunReleased { .. } => 6,
            Self::RunSkipped { .. } => 7,
        };
        Self::TYPES[index].to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    #[error("run does not exist")]
    NotFound,
    /// Another worker took this attempt, or it is not the attempt under way.
    #[error("attempt {attempt} is not the one to {action} (run is {status:?} after {attempts} attempts)")]
    WrongAttempt {
        attempt: u32,
        action: &'static str,
        status: RunStatus,
        attempts: u32,
    },
    /// Only failed or dead-lettered runs can be retried by hand.
    #[error("a {0:?} run cannot be retried")]
    NotRetryable(RunStatus),
    /// Only a run not yet attempted can be skipped.
    #[error("a {0:?} run cannot be skipped")]
    NotSkippable(RunStatus),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Run {
    record: Option<RunRecord>,
}

impl Run {
    pub fn record(&self) -> Option<&RunRecord> {
        self.record.as_ref()
    }

    /// The events `command` causes, possibly none.
    pub fn decide(&self, command: RunCommand) -> Result<Vec<RunEvent>, RunError> {
        let record = match (&self.record, command) {
            (
                None,
                RunCommand::Request {
                    firing,
                    stamp,
                    held,
                },
            ) => {
                let run_id = run_id(firing.project_trigger_id, &firing.cause);
                return Ok(vec![RunEvent::RunRequested {
                    run_id,
                    firing,
                    stamp,
                    held,
                }]);
            }
            // The same cause again: the run exists, nothing new happened.
            (Some(_), RunCommand::Request { .. }) => return Ok(vec![]),
            (None, _) => return Err(RunError::NotFound),
            (Some(record), command) => (record, command),
        };
        let (record, command) = record;
        let wrong = |attempt, action| RunError::WrongAttempt {
            attempt,
            action,
            status: record.status,
            attempts: record.attempts,
        };
        let event = match command {
            RunCommand::Request { .. } => unreachable!("decided above"),
            RunCommand::StartAttempt { attempt, stamp } => {
                let startable = matches!(record.status, RunStatus::Requested | RunStatus::Failed);
                if !startable || attempt != record.attempts + 1 {
                    return Err(wrong(attempt, "start"));
                }
                RunEvent::AttemptStarted { attempt, stamp }
            }
            RunCommand::Succeed { attempt, stamp } => {
                if record.status != RunStatus::Running || attempt != record.attempts {
                    return Err(wrong(attempt, "finish"));
                }
                RunEvent::RunSucceeded { attempt, stamp }
            }
            RunCommand::Fail {
                attempt,
                error,
                retry_at,
                stamp,
            } => {
                if record.status != RunStatus::Running || attempt != record.attempts {
                    return Err(wrong(attempt, "finish"));
                }
                match retry_at {
                    Some(retry_at) => RunEvent::AttemptFailed {
                        attempt,
                        error,
                        retry_at,
                        stamp,
                    },
                    None => RunEvent::RunDeadLettered {
                        attempt,
                        error,
                        stamp,
                    },
                }
            }
            RunCommand::Retry { stamp, replay_id } => {
                if replay_id.is_some_and(|replay| record.replays.contains(&replay)) {
                    return Ok(vec![]);
                }
                if !matches!(record.status, RunStatus::Failed | RunStatus::DeadLettered) {
                    return Err(RunError::NotRetryable(record.status));
                }
                RunEvent::RetryRequested { stamp, replay_id }
            }
            RunCommand::Release { stamp } => {
                if record.status != RunStatus::Held {
                    return Ok(vec![]);
                }
                RunEvent::RunReleased { stamp }
            }
            RunCommand::Skip { reason, stamp } => {
                let untouched = matches!(record.status, RunStatus::Requested | RunStatus::Held);
                if !untouched || record.attempts != 0 {
                    return Err(RunError::NotSkippable(record.status));
                }
                RunEvent::RunSkipped { reason, stamp }
            }
        };
        Ok(vec![event])
    }
}

impl Aggregate for Run {
    /// The stream type stored with every run event: a persistence contract, never renamed.
    const TYPE: &'static str = "run";
    type Command = RunCommand;
    type Event = RunEvent;
    type Error = RunError;
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
        self.record = RunRecord::evolve(self.record.take(), &event);
    }
}
