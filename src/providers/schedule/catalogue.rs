//! Schedules: the engine's own clock starts the flow, on a cron expression, at a fixed interval,
//! or once at a given instant.

use serde_json::json;

use crate::catalogue::{TriggerKind, TriggerSpec};
use crate::providers::schema::{config_schema, time_zone};

pub(super) fn triggers() -> Vec<TriggerSpec> {
    vec![TriggerSpec {
        id: "on_schedule",
        name: "On schedule",
        description: "Fires on a cron schedule (in a time zone), every N seconds, or once at \
                      a given instant. Set exactly one of cron, interval_seconds and at.",
        kind: TriggerKind::Scheduled,
        event_type: None,
        event_action: None,
        config_schema: config_schema(json!({
            "properties": {
                "cron": {
                    "description": "Five space-separated cron fields: minute, hour, day of month, month, day of week.",
                    "type": "string",
                    // Syntax only: digits, names (MON, JAN), and the usual * , - / ? L W #.
                    // The scheduler parses the fields themselves.
                    "pattern": "^[0-9A-Za-z*,/?#-]+( +[0-9A-Za-z*,/?#-]+){4}$",
                    "examples": ["0 9 * * MON-FRI", "*/15 * * * *"],
                },
                "timezone": time_zone("IANA time zone the cron fields are read in; only with cron."),
                "interval_seconds": {
                    "description": "Seconds between two runs, counted from when the trigger is enabled.",
                    "type": "integer",
                    "minimum": 1,
                },
                "at": {
                    "description": "The one instant to fire at, as an RFC 3339 date-time with its offset.",
                    "type": "string",
                    "format": "date-time",
                },
                "catch_up": {
                    "description": "Slots that passed while no engine could fire them (within \
                        catch_up_window_seconds, and since the trigger last changed): `latest` \
                        fires the latest of them once, `all` fires each, `none` skips them.",
                    "enum": ["latest", "all", "none"],
                    "default": "latest",
                },
                "overlap": {
                    "description": "What a slot does while the trigger's previous run has not \
                        finished: `allow` fires it anyway, `skip` records it as skipped, \
                        `buffer_one` lets one run wait (held) behind the unfinished one and skips \
                        further slots until it has run.",
                    "enum": ["allow", "skip", "buffer_one"],
                    "default": "allow",
                },
                "catch_up_window_seconds": {
                    "description": "How far back catch-up looks, in seconds (default one day).",
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 2_592_000,
                    "default": 86_400,
                },
            },
            "oneOf": [
                { "required": ["cron"] },
                { "required": ["interval_seconds"] },
                { "required": ["at"] },
            ],
            // An interval or an instant with an offset does not depend on a time zone; one
            // given there would be silently ignored, so it is refused.
            "dependentRequired": { "timezone": ["cron"] },
        })),
        sample_payload: json!({
            "scheduled_at": "2025-03-03T09:00:00+01:00",
            "fired_at": "2025-03-03T08:00:00Z",
            "schedule": { "cron": "0 9 * * MON-FRI", "timezone": "Europe/Paris" }
        }),
    }]
}
