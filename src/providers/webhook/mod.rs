//! Generic webhooks: any sender, any body; signed the Standard Webhooks way when the trigger has a
//! secret, accepted unsigned when it has none.
//!
//! # Layout
//! - `catalogue`: `on_request`.
//! - `inbound`: which requests fire, with which key.

mod catalogue;
mod inbound;

use serde::Deserialize;
use serde_json::Value;

use super::config::{decode, SigningSecrets};
use super::{JudgeDelivery, PolledSource, Provider};
use crate::registration::WebhookRegistration;
use crate::catalogue::{ConfigError, TriggerSpec};

pub struct Webhook;

/// A generic webhook trigger's `trigger_config`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub signing_secret: Option<SigningSecrets>,
}

impl Provider for Webhook {
    fn triggers(&self) -> Vec<TriggerSpec> {
        catalogue::triggers()
    }

    fn check_config(&self, _trigger_id: &str, config: &Value) -> Result<(), ConfigError> {
        decode::<WebhookConfig>(Some(config)).map(drop)
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
