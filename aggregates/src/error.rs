//! Why the domain refused a command. Each variant is a distinct answer a caller can act on.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TriggerError {
    /// A command other than create reached a trigger that was never created.
    #[error("trigger does not exist")]
    NotFound,
    /// Create reached a trigger id that is already taken.
    #[error("trigger already exists")]
    AlreadyExists,
    /// Any command reached a deleted trigger: after delete there is only history.
    #[error("trigger has been deleted")]
    Deleted,
    /// The poller's view of the cursor is stale: another poll advanced it first.
    #[error("cursor has moved: expected {expected}, found {actual}")]
    CursorConflict { expected: Value, actual: Value },
    /// A field of the command breaks a rule of the domain.
    #[error("invalid `{field}`: {reason}")]
    InvalidField {
        field: &'static str,
        reason: &'static str,
    },
    /// The command's name is not one the trigger knows.
    #[error("unknown command `{0}`")]
    UnknownCommand(String),
    /// The command's name is known but its fields do not parse.
    #[error("malformed `{command}` command: {reason}")]
    MalformedCommand { command: String, reason: String },
}
