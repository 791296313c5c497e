//! What a caller may ask of a trigger.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::{Actor, TriggerError};

/// One request to change a trigger: the change itself, plus the outside facts the pure domain
/// may not fetch for itself (the time, and who is asking).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerCommand {
    /// When the command was issued, as the caller's clock says.
    pub at: DateTime<Utc>,
    /// Who issued it.
    pub actor: Actor,
    /// What is asked.
    #[serde(flatten)]
    pub action: TriggerAction,
}

impl TriggerCommand {
    pub fn new(at: DateTime<Utc>, actor: Actor, action: TriggerAction) -> Self {
        Self { at, actor, action }
    }

    /// Reads a command from JSON, telling an unknown command apart from a malformed one.
    pub fn from_json(json: Value) -> Result<Self, TriggerError> {
        let name = json
            .get("command")
            .and_then(Value::as_str)
            .ok_or(TriggerError::UnknownCommand(String::new()))?
            .to_owned();
        if !TriggerAction::NAMES.contains(&name.as_str()) {
            return Err(TriggerError::UnknownCommand(name));
        }
        serde_json::from_value(json).map_err(|error| TriggerError::MalformedCommand {
            command: name,
            reason: error.to_string(),
        })
    }
}

/// The changes a trigger accepts, one variant per command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum TriggerAction {
    CreateTrigger(NewTrigger),
    EnableTrigger,
    DisableTrigger,
    DeleteTrigger,
    UpdateConfig {
        trigger_config: Option<Value>,
    },
    RecordWebhook {
        webhook_data: Value,
    },
    ClearWebhook,
    /// Moves a polling trigger's cursor from the one the poller read (`seen`) to `next`. Carrying
    /// `seen` makes two pollers racing on one trigger conflict instead of overwriting each other.
    AdvanceCursor {
        seen: Option<Value>,
        next: Value,
    },
    /// Disables a trigger on the engine's own decision (a poller that kept failing), recording
    /// why, so the history tells an operator's disable apart from the engine's.
    AutoDisableTrigger {
        reason: String,
    },
    /// Holds the trigger's runs (it still fires) until [`TriggerAction::ResumeTrigger`].
    PauseTrigger,
    ResumeTrigger,
}

impl TriggerAction {
    /// The `command` names [`TriggerCommand::from_json`] accepts.
    pub const NAMES: [&'static str; 11] = [
        "create_trigger",
        "enable_trigger",
        "disable_trigger",
        "delete_trigger",
        "update_config",
        "record_webhook",
        "clear_webhook",
        "advance_cursor",
        "auto_disable_trigger",
        "pause_trigger",
        "resume_trigger",
    ];
}

/// The fields a new trigger starts with; the rest (status, timestamps, authors) the domain sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTrigger {
    pub project_trigger_id: Uuid,
    pub org_id: Uuid,
    pub project_id: String,
    pub connection_id: Option<Uuid>,
    pub provider_id: String,
    pub trigger_id: String,
    pub trigger_config: Option<Value>,
}
