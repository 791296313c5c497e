//! A trigger's fields, as the aggregate keeps them and as read models show them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::event::Stamp;
use crate::{Actor, TriggerEvent};

/// Whether a trigger fires. New triggers start `DISABLED`, as the seed API's default says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TriggerStatus {
    Enabled,
    #[default]
    Disabled,
}

impl TriggerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "ENABLED",
            Self::Disabled => "DISABLED",
        }
    }
}

/// Everything the seed's Trigger record holds, plus the owning organisation, the deletion time and
/// when it was last enabled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerRecord {
    pub project_trigger_id: Uuid,
    pub org_id: Uuid,
    pub project_id: String,
    pub connection_id: Option<Uuid>,
    pub provider_id: String,
    pub trigger_id: String,
    pub webhook_data: Option<Value>,
    pub cursor_data: Option<Value>,
    pub trigger_config: Option<Value>,
    pub status: TriggerStatus,
    pub created_at: DateTime<Utc>,
    pub created_by: Actor,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Actor,
    pub deleted_at: Option<DateTime<Utc>>,
    /// When the trigger was last enabled (`None` while it never was): where an interval
    /// schedule starts counting. Absent from records folded before it existed, hence the default.
    #[serde(default)]
    pub enabled_at: Option<DateTime<Utc>>,
    /// Paused: it still fires, but its runs are held until it resumes. Independent of `status`.
    #[serde(default)]
    pub paused: bool,
}

impl TriggerRecord {
    /// Folds one event into the record. `None` stays `None` until a `TriggerCreated` arrives, so
    /// readers of any kind (the aggregate, projections, the history command) share one fold.
    pub fn evolve(record: Option<Self>, event: &TriggerEvent) -> Option<Self> {
        if let TriggerEvent::TriggerCreated {
            project_trigger_id,
            org_id,
            project_id,
            connection_id,
            provider_id,
            trigger_id,
            trigger_config,
            stamp,
        } = event
        {
            return Some(Self {
                project_trigger_id: *project_trigger_id,
                org_id: *org_id,
                project_id: project_id.clone(),
                connection_id: *connection_id,
                provider_id: provider_id.clone(),
                trigger_id: trigger_id.clone(),
                webhook_data: None,
                cursor_data: None,
                trigger_config: trigger_config.clone(),
                status: TriggerStatus::Disabled,
                created_at: stamp.at,
                created_by: stamp.by.clone(),
                updated_at: stamp.at,
                updated_by: stamp.by.clone(),
                deleted_at: None,
                enabled_at: None,
                paused: false,
            });
        }
        let mut record = record?;
        match event {
            TriggerEvent::TriggerCreated { .. } => unreachable!("handled above"),
            TriggerEvent::TriggerEnabled { stamp } => {
                record.status = TriggerStatus::Enabled;
                record.enabled_at = Some(stamp.at);
            }
            TriggerEvent::TriggerDisabled { .. } | TriggerEvent::TriggerAutoDisabled { .. } => {
                record.status = TriggerStatus::Disabled;
            }
            TriggerEvent::TriggerDeleted { stamp } => record.deleted_at = Some(stamp.at),
            TriggerEvent::TriggerConfigUpdated { trigger_config, .. } => {
                record.trigger_config = trigger_config.clone();
            }
            TriggerEvent::WebhookRecorded { webhook_data, .. } => {
                record.webhook_data = Some(webhook_data.clone());
            }
            TriggerEvent::WebhookCleared { .. } => record.webhook_data = None,
            TriggerEvent::CursorAdvanced { cursor_data, .. } => {
                record.cursor_data = Some(cursor_data.clone());
            }
            TriggerEvent::TriggerPaused { .. } => record.paused = true,
            TriggerEvent::TriggerResumed { .. } => record.paused = false,
        }
        let Stamp { at, by } = event.stamp();
        record.updated_at = *at;
        record.updated_by = by.clone();
        Some(record)
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}
