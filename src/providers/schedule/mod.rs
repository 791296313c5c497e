//! Schedules: cron expressions, fixed intervals and one-off times, fired by the engine's own clock
//! (the scheduler in `crate::scheduler`); no provider involved.

mod catalogue;

use serde_json::Value;

use super::{JudgeDelivery, PolledSource, Provider};
use crate::registration::WebhookRegistration;
use crate::catalogue::{ConfigError, TriggerSpec};

pub struct Schedule;

impl Provider for Schedule {
    fn triggers(&self) -> Vec<TriggerSpec> {
        catalogue::triggers()
    }

    /// The schema checks a cron expression's characters only; a value it cannot check (minute
    /// 60, Quartz's `L`) must be refused when the trigger is created, not found out when it
    /// should fire, so the config is read as the scheduler will read it.
    fn check_config(&self, _trigger_id: &str, config: &Value) -> Result<(), ConfigError> {
        aggregates::Schedule::from_config(config)
            .map(drop)
            .map_err(|e| ConfigError {
                field: e.field,
                reason: e.reason,
            })
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
        None
    }
}
