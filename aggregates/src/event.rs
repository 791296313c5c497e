//! What happened to a trigger. Events are facts in the past tense.
//!
//! The variant names are stored as each event's type and, with [`EVENT_VERSION`], form a
//! persistence contract: a stored event is never renamed or reshaped. A change of shape gets a new
//! version and an upcaster that reads the old one.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::Actor;

/// The version every event type is written with today.
pub const EVENT_VERSION: &str = "1";

/// When a change happened and who made it: carried by every event so views can show
/// `updated_at`/`updated_by` without looking anywhere else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamp {
    pub at: DateTime<Utc>,
    pub by: Actor,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TriggerEvent {
    TriggerCreated {
        project_trigger_id: Uuid,
        org_id: Uuid,
        project_id: String,
        connection_id: Option<Uuid>,
        provider_id: String,
        trigger_id: String,
        trigger_config: Option<Value>,
        stamp: Stamp,
    },
    TriggerEnabled {
        stamp: Stamp,
    },
    TriggerDisabled {
        stamp: Stamp,
    },
    TriggerDeleted {
        stamp: Stamp,
    },
    TriggerConfigUpdated {
        trigger_config: Option<Value>,
        stamp: Stamp,
    },
    WebhookRecorded {
        webhook_data: Value,
        stamp: Stamp,
    },
    WebhookCleared {
        stamp: Stamp,
    },
    CursorAdvanced {
        cursor_data: Value,
        stamp: Stamp,
    },
    /// The engine disabled the trigger itself (a poller that failed too many times in a row),
    /// for `reason`.
    TriggerAutoDisabled {
        reason: String,
        stamp: Stamp,
    },
    /// Its runs are held from now on: deliveries, polls and slots still fire, nothing executes.
    TriggerPaused {
        stamp: Stamp,
    },
    /// Its held runs are released, oldest first, and new runs execute again.
    TriggerResumed {
        stamp: Stamp,
    },
}

impl TriggerEvent {
    /// The stored type names, for readers that check a log before reading it.
    pub const TYPES: [&'static str; 11] = [
        "TriggerCreated",
        "TriggerEnabled",
        "TriggerDisabled",
        "TriggerDeleted",
        "TriggerConfigUpdated",
        "WebhookRecorded",
        "WebhookCleared",
        "CursorAdvanced",
        "TriggerAutoDisabled",
        "TriggerPaused",
        "TriggerResumed",
    ];

    pub fn stamp(&self) -> &Stamp {
        match self {
            Self::TriggerCreated { stamp, .. }
            | Self::TriggerEnabled { stamp }
            | Self::TriggerDisabled { stamp }
            | Self::TriggerDeleted { stamp }
            | Self::TriggerConfigUpdated { stamp, .. }
            | Self::WebhookRecorded { stamp, .. }
            | Self::WebhookCleared { stamp }
            | Self::CursorAdvanced { stamp, .. }
            | Self::TriggerAutoDisabled { stamp, .. }
            | Self::TriggerPaused { stamp }
            | Self::TriggerResumed { stamp } => stamp,
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Self::TriggerCreated { .. } => Self::TYPES[0],
            Self::TriggerEnabled { .. } => Self::TYPES[1],
            Self::TriggerDisabled { .. } => Self::TYPES[2],
            Self::TriggerDeleted { .. } => Self::TYPES[3],
            Self::TriggerConfigUpdated { .. } => Self::TYPES[4],
            Self::WebhookRecorded { .. } => Self::TYPES[5],
            Self::WebhookCleared { .. } => Self::TYPES[6],
            Self::CursorAdvanced { .. } => Self::TYPES[7],
            Self::TriggerAutoDisabled { .. } => Self::TYPES[8],
            Self::TriggerPaused { .. } => Self::TYPES[9],
            Self::TriggerResumed { .. } => Self::TYPES[10],
        }
    }
}

impl DomainEvent for TriggerEvent {
    fn event_type(&self) -> String {
        self.type_name().to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The serialized shape is what the store keeps forever: a change here breaks old logs.
    #[test]
    fn it_should_keep_the_stored_shape_of_an_event() {
        let event = TriggerEvent::CursorAdvanced {
            cursor_data: serde_json::json!({"last_processed_event_id": "42"}),
            stamp: Stamp {
                at: "2026-01-02T03:04:05Z".parse().unwrap(),
                by: Actor::system("poller"),
            },
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({"CursorAdvanced": {
                "cursor_data": {"last_processed_event_id": "42"},
                "stamp": {"at": "2026-01-02T03:04:05Z", "by": "system:poller"}
            }})
        );
        assert_eq!(event.event_type(), "CursorAdvanced");
        assert_eq!(event.event_version(), "1");
    }
}
