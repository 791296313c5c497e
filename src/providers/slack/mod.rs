//! Slack: Events API events, delivered to the engine's app URL (`/v1/webhooks/slack`) signed
//! with the app's signing secret, and routed by workspace and channel.
//!
//! # Layout
//! - `catalogue`: its triggers, one per event type.
//! - [`inbound`]: `X-Slack-Signature`, the URL check, and which events fire.

mod catalogue;
pub mod inbound;

use serde::Deserialize;
use serde_json::Value;

use super::config::{decode};
use super::{JudgeDelivery, PolledSource, Provider};
use crate::registration::WebhookRegistration;
use crate::catalogue::{ConfigError, TriggerSpec};

pub struct Slack;

/// A Slack trigger's `trigger_config`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    pub team_id: Option<String>,
    pub channel_id: Option<String>,
}

impl Provider for Slack {
    fn triggers(&self) -> Vec<TriggerSpec> {
        catalogue::triggers()
    }

    fn check_config(&self, _trigger_id: &str, config: &Value) -> Result<(), ConfigError> {
        decode::<SlackConfig>(Some(config)).map(drop)
    }

    fn connection_credentials(&self) -> &'static [&'static str] {
        &[]
    }

    fn inbound(&self) -> Option<JudgeDelivery> {
        Some(inbound::judge)
    }

    fn registration(&self) -> Option<&'static dyn WebhookRegistration> {
        None
    }

    fn polled_source(&self) -> Option<PolledSource> {
        None
    }
}
