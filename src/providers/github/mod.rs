//! GitHub: repository webhooks, signed with the secret set on the hook; or a GitHub App's
//! deliveries to the engine's app URL, routed by repository and installation.
//!
//! # Layout
//! - `catalogue`: its triggers, one per event (and action).
//! - [`inbound`]: `X-Hub-Signature-256`, and which deliveries fire.
//! - [`api`]: the client of GitHub's repository hooks API.

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

pub struct GitHub;

/// A GitHub trigger's `trigger_config`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitHubConfig {
    pub signing_secret: Option<SigningSecrets>,
    /// `owner/name`.
    pub repository: Option<String>,
    pub installation_id: Option<u64>,
}

impl Provider for GitHub {
    fn triggers(&self) -> Vec<TriggerSpec> {
        catalogue::triggers()
    }

    fn check_config(&self, _trigger_id: &str, config: &Value) -> Result<(), ConfigError> {
        decode::<GitHubConfig>(Some(config)).map(drop)
    }

    /// The token the repository hook calls are made with.
    fn connection_credentials(&self) -> &'static [&'static str] {
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
