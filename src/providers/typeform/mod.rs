//! Typeform: a form's responses, delivered to a webhook the engine creates on the form (with the
//! connection's access token) and signed with the trigger's secret.
//!
//! # Layout
//! - `catalogue`: `on_form_response`.
//! - [`inbound`]: `Typeform-Signature`, and which responses fire.
//! - [`api`]: the client of Typeform's webhook API.

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

pub struct Typeform;

/// A Typeform trigger's `trigger_config`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
///
/// The schema requires both fields; they are optional here so that a trigger recorded without
/// them (by an operator's hand, or before the schema required them) still reads, and is refused
/// where a field is needed rather than everywhere.
pub struct TypeformConfig {
    pub signing_secret: Option<SigningSecrets>,
    pub form_id: Option<String>,
}

impl Provider for Typeform {
    fn triggers(&self) -> Vec<TriggerSpec> {
        catalogue::triggers()
    }

    fn check_config(&self, _trigger_id: &str, config: &Value) -> Result<(), ConfigError> {
        decode::<TypeformConfig>(Some(config)).map(drop)
    }

    fn connection_credentials(&self) -> &'static [&'static str] {
        // The personal or OAuth access token the Create/Delete webhook calls send as a bearer.
        &["access_token"]
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
