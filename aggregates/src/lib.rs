//! The trigger domain, pure: commands come in, events go out, state is a fold of events.
//!
//! Nothing here reads a clock, a network or a database. The time and the acting identity arrive
//! inside every command, so the same history always yields the same state and the same decisions.
//!
//! # Layout
//! - [`actor`]: who issued a command (a user, an API key, or an engine component).
//! - [`command`]: what a caller may ask of a trigger ([`TriggerCommand`]).
//! - [`event`]: what happened to a trigger ([`TriggerEvent`]); each type name is a stored contract.
//! - [`record`]: the trigger's fields as every reader sees them ([`TriggerRecord`]).
//! - [`trigger`]: the aggregate ([`Trigger`]) that decides commands and applies events.
//! - [`run`]: the run aggregate ([`Run`]): one firing, its attempts, success or dead letter.
//! - [`replay`]: the replay aggregate ([`Replay`]): a bulk replay of selected runs, step by step.
//! - [`schedule`]: when a schedule fires ([`Schedule`]): cron in a time zone, interval, one-off,
//!   and what daylight-saving changes do to a slot.
//! - [`error`]: why a command was refused ([`TriggerError`]).

pub mod actor;
pub mod command;
pub mod error;
pub mod event;
pub mod record;
pub mod replay;
pub mod run;
pub mod schedule;
pub mod trigger;

pub use actor::Actor;
pub use command::{NewTrigger, TriggerAction, TriggerCommand};
pub use error::TriggerError;
pub use event::TriggerEvent;
pub use record::{TriggerRecord, TriggerStatus};
pub use replay::{
    Replay, ReplayCommand, ReplayError, ReplayEvent, ReplayItem, ReplayRecord, ReplaySelection,
    ReplayState,
};
pub use run::{
    run_id, Firing, Run, RunCause, RunCommand, RunError, RunEvent, RunRecord, RunStatus,
};
pub use schedule::{DstNote, Schedule, ScheduleError, Slot};
pub use trigger::Trigger;
