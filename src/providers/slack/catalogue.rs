//! Slack: Events API callbacks to the engine's Slack app. The app's signing secret is the
//! engine's, not the trigger's, so a trigger only narrows which workspace and channel it hears.

use serde_json::{json, Value};

use crate::catalogue::{TriggerKind, TriggerSpec};
use crate::providers::schema::{config_schema};

pub(super) fn triggers() -> Vec<TriggerSpec> {
    vec![
        on_event(
            "on_message",
            "On message",
            "Fires when a message is posted in a channel the app is in.",
            "message",
            json!({
                "type": "message",
                "channel": "C07H2UF4K9A",
                "user": "U061F7AUR",
                "text": "Can someone review the Q1 numbers?",
                "ts": "1740911409.000200",
                "event_ts": "1740911409.000200",
                "channel_type": "channel",
                "team": "T05KQ2X3Y4Z"
            }),
        ),
        on_event(
            "on_app_mention",
            "On app mention",
            "Fires when someone mentions the app in a message.",
            "app_mention",
            json!({
                "type": "app_mention",
                "channel": "C07H2UF4K9A",
                "user": "U061F7AUR",
                "text": "<@U0LAN0Z89> summarise this thread please",
                "ts": "1740911409.000200",
                "event_ts": "1740911409.000200",
                "thread_ts": "1740911100.000100",
                "team": "T05KQ2X3Y4Z"
            }),
        ),
        on_event(
            "on_reaction_added",
            "On reaction added",
            "Fires when someone adds an emoji reaction to a message.",
            "reaction_added",
            json!({
                "type": "reaction_added",
                "user": "U061F7AUR",
                "reaction": "white_check_mark",
                "item_user": "U0G9QF9C6",
                "item": { "type": "message", "channel": "C07H2UF4K9A", "ts": "1740911100.000100" },
                "event_ts": "1740911409.000300"
            }),
        ),
    ]
}

fn on_event(
    id: &'static str,
    name: &'static str,
    description: &'static str,
    event_type: &'static str,
    event: Value,
) -> TriggerSpec {
    TriggerSpec {
        id,
        name,
        description,
        kind: TriggerKind::Webhook,
        event_type: Some(event_type),
        event_action: None,
        config_schema: config_schema(json!({
            "properties": {
                "team_id": {
                    "description": "Only events from this workspace (its team id, e.g. T05KQ2X3Y4Z).",
                    "type": "string",
                    "minLength": 1,
                },
                "channel_id": {
                    "description": "Only events in this channel (its id, e.g. C07H2UF4K9A).",
                    "type": "string",
                    "minLength": 1,
                },
            },
        })),
        sample_payload: event_callback(event),
    }
}

/// The envelope Slack posts for every Events API event.
fn event_callback(event: Value) -> Value {
    json!({
        "type": "event_callback",
        "team_id": "T05KQ2X3Y4Z",
        "api_app_id": "A06B7C8D9EF",
        "event": event,
        "event_id": "Ev08F1A2B3C4",
        "event_time": 1740911409,
        "event_context": "4-eyJldCI6Im1lc3NhZ2UiLCJ0aWQiOiJUMDVLUTJYM1k0WiJ9",
        "authorizations": [{
            "enterprise_id": null,
            "team_id": "T05KQ2X3Y4Z",
            "user_id": "U0LAN0Z89",
            "is_bot": true,
            "is_enterprise_install": false
        }],
        "is_ext_shared_channel": false
    })
}
