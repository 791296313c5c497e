//! Any JSON HTTP API that lists records, polled; one run per new record (the poller in
//! `crate::poller` reads them).

mod catalogue;

use serde::Deserialize;
use serde_json::Value;

use super::config::{decode, PollingFrequency};
use super::{JudgeDelivery, PolledSource, Provider};
use crate::registration::WebhookRegistration;
use crate::catalogue::{ConfigError, TriggerSpec};

pub struct Http;

/// An HTTP polling trigger's `trigger_config`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub url: String,
    pub items_path: Option<String>,
    pub id_field: String,
    pub timestamp_field: Option<String>,
    pub header_name: Option<String>,
    pub polling_frequency: Option<PollingFrequency>,
}

impl Provider for Http {
    fn triggers(&self) -> Vec<TriggerSpec> {
        catalogue::triggers()
    }

    fn check_config(&self, _trigger_id: &str, config: &Value) -> Result<(), ConfigError> {
        decode::<HttpConfig>(Some(config)).map(drop)
    }

    fn connection_credentials(&self) -> &'static [&'static str] {
        &[]
    }

    fn inbound(&self) -> Option<JudgeDelivery> {
        None
    }

    fn registration(&self) -> Option<&'static dyn WebhookRegistration> {
        None
    }

    fn polled_source(&self) -> Option<PolledSource> {
        Some(PolledSource { url_field: "url" })
    }
}
