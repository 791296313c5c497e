//! Stripe: events delivered to a webhook endpoint, signed with the endpoint's `whsec_` secret.
//!
//! # Layout
//! - `catalogue`: its triggers, one per event type.
//! - [`inbound`]: its signature, and which deliveries fire.
//! - [`api`]: the client of Stripe's webhook endpoints API.

pub mod api;
mod catalogue;
pub mod inbound;
mod registration;

use serde::Deserialize;
use serde_json::Value;

use super::config::{decode, SigningSecrets};
use super::{JudgeDelivery, PolledSource, Provider};
use crate::registration::WebhookRegistration;
use crate::catalogue::{ConfigError, TriggerSpec};

pub struct Stripe;

/// A Stripe trigger's `trigger_config`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeConfig {
    pub signing_secret: Option<SigningSecrets>,
}

impl Provider for Stripe {
    fn triggers(&self) -> Vec<TriggerSpec> {
        catalogue::triggers()
    }

    fn check_config(&self, _trigger_id: &str, config: &Value) -> Result<(), ConfigError> {
        decode::<StripeConfig>(Some(config)).map(drop)
    }

    /// The secret key the webhook endpoint calls are made with.
    fn connection_credentials(&self) -> &'static [&'static str] {
        &["api_key"]
    }

    fn inbound(&self) -> Option<JudgeDelivery> {
        Some(inbound::judge)
    }

    fn registration(&self) -> Option<&'static dyn WebhookRegistration> {
        Some(&registration::Registrar)
    }

    fn polled_source(&self) -> Option<PolledSource> {
        None
    }
}
