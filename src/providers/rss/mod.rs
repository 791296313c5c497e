//! RSS and Atom feeds, polled; one run per new item (the poller in `crate::poller` reads them).

mod catalogue;

use serde::Deserialize;
use serde_json::Value;

use super::config::{decode, PollingFrequency};
use super::{JudgeDelivery, PolledSource, Provider};
use crate::registration::WebhookRegistration;
use crate::catalogue::{ConfigError, TriggerSpec};

pub struct Rss;

/// An RSS trigger's `trigger_config`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RssConfig {
    pub feed_url: String,
    pub polling_frequency: Option<PollingFrequency>,
    /// A date-time as the schema allows it; read as feeds write dates (`poller::feed`).
    pub since: Option<String>,
}

impl Provider for Rss {
    fn triggers(&self) -> Vec<TriggerSpec> {
        catalogue::triggers()
    }

    fn check_config(&self, _trigger_id: &str, config: &Value) -> Result<(), ConfigError> {
        decode::<RssConfig>(Some(config)).map(drop)
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
        Some(PolledSource {
            url_field: "feed_url",
        })
    }
}
