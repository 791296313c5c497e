//! The trigger aggregate: decides commands against the history of one trigger.

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::Stamp;
use crate::{
    TriggerAction, TriggerCommand, TriggerError, TriggerEvent, TriggerRecord, TriggerStatus,
};

/// One trigger's state, rebuilt from its events (or a snapshot of them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    record: Option<TriggerRecord>,
}

impl Trigger {
    /// The trigger as its events so far describe it; `None` before it was created.
    pub fn record(&self) -> Option<&TriggerRecord> {
        self.record.as_ref()
    }

    /// The decision for one command: the events it causes, possibly none.
    pub fn decide(&self, command: TriggerCommand) -> Result<Vec<TriggerEvent>, TriggerError> {
        let TriggerCommand { at, actor, action } = command;
        let stamp = Stamp { at, by: actor };
        let current = match (&self.record, action) {
            (None, TriggerAction::CreateTrigger(new)) => {
                require_text("project_id", &new.project_id)?;
                require_text("provider_id", &new.provider_id)?;
                require_text("trigger_id", &new.trigger_id)?;
                require_object_or_null("trigger_config", new.trigger_config.as_ref())?;
                return Ok(vec![TriggerEvent::TriggerCreated {
                    project_trigger_id: new.project_trigger_id,
                    org_id: new.org_id,
                    project_id: new.project_id,
                    connection_id: new.connection_id,
                    provider_id: new.provider_id,
                    trigger_id: new.trigger_id,
                    trigger_config: new.trigger_config,
                    stamp,
                }]);
            }
            (None, _) => return Err(TriggerError::NotFound),
            (Some(record), _) if record.is_deleted() => return Err(TriggerError::Deleted),
            (Some(_), TriggerAction::CreateTrigger(_)) => return Err(TriggerError::AlreadyExists),
            (Some(record), action) => (record, action),
        };
        let (record, action) = current;
        let event = match action {
            TriggerAction::CreateTrigger(_) => unreachable!("decided above"),
            TriggerAction::EnableTrigger => (record.status != TriggerStatus::Enabled)
                .then_some(TriggerEvent::TriggerEnabled { stamp }),
            TriggerAction::DisableTrigger => (record.status != TriggerStatus::Disabled)
                .then_some(TriggerEvent::TriggerDisabled { stamp }),
            TriggerAction::AutoDisableTrigger { reason } => {
                require_text("reason", &reason)?;
                (record.status != TriggerStatus::Disabled)
                    .then_some(TriggerEvent::TriggerAutoDisabled { reason, stamp })
            }
            TriggerAction::DeleteTrigger => Some(TriggerEvent::TriggerDeleted { stamp }),
            TriggerAction::PauseTrigger => {
                (!record.paused).then_some(TriggerEvent::TriggerPaused { stamp })
            }
            TriggerAction::ResumeTrigger => record
                .paused
                .then_some(TriggerEvent::TriggerResumed { stamp }),
            TriggerAction::UpdateConfig { trigger_config } => {
                require_object_or_null("trigger_config", trigger_config.as_ref())?;
                (record.trigger_config != trigger_config).then_some(
                    TriggerEvent::TriggerConfigUpdated {
                        trigger_config,
                        stamp,
                    },
                )
            }
            TriggerAction::RecordWebhook { webhook_data } => {
                require_object("webhook_data", &webhook_data)?;
                (record.webhook_data.as_ref() != Some(&webhook_data)).then_some(
                    TriggerEvent::WebhookRecorded {
                        webhook_data,
                        stamp,
                    },
                )
            }
            TriggerAction::ClearWebhook => record
                .webhook_data
                .is_some()
                .then_some(TriggerEvent::WebhookCleared { stamp }),
            TriggerAction::AdvanceCursor { seen, next } => {
                require_object("next", &next)?;
                if record.cursor_data != seen {
                    return Err(TriggerError::CursorConflict {
                        expected: seen.unwrap_or(Value::Null),
                        actual: record.cursor_data.clone().unwrap_or(Value::Null),
                    });
                }
                (record.cursor_data.as_ref() != Some(&next)).then_some(
                    TriggerEvent::CursorAdvanced {
                        cursor_data: next,
                        stamp,
                    },
                )
            }
        };
        Ok(event.into_iter().collect())
    }
}

fn require_text(field: &'static str, value: &str) -> Result<(), TriggerError> {
    if value.trim().is_empty() {
        return Err(TriggerError::InvalidField {
            field,
            reason: "must not be empty",
        });
    }
    Ok(())
}

fn require_object(field: &'static str, value: &Value) -> Result<(), TriggerError> {
    if !value.is_object() {
        return Err(TriggerError::InvalidField {
            field,
            reason: "must be a JSON object",
        });
    }
    Ok(())
}

fn require_object_or_null(field: &'static str, value: Option<&Value>) -> Result<(), TriggerError> {
    match value {
        None | Some(Value::Null) => Ok(()),
        Some(value) => require_object(field, value),
    }
}

impl Aggregate for Trigger {
    /// The stream type stored with every event: a persistence contract, never renamed.
    const TYPE: &'static str = "trigger";
    type Command = TriggerCommand;
    type Event = TriggerEvent;
    type Error = TriggerError;
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
        self.record = TriggerRecord::evolve(self.record.take(), &event);
    }
}
