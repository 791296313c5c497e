//! RSS and Atom feeds, polled: a feed cannot call anyone, so the engine asks it.

use serde_json::json;

use crate::catalogue::{TriggerKind, TriggerSpec};
use crate::providers::schema::{config_schema, http_url, polling_frequency};

pub(super) fn triggers() -> Vec<TriggerSpec> {
    vec![TriggerSpec {
        id: "on_new_item",
        name: "On new feed item",
        description: "Fires once for each item that appears in an RSS or Atom feed.",
        kind: TriggerKind::Polling,
        event_type: None,
        event_action: None,
        config_schema: config_schema(json!({
            "properties": {
                "feed_url": http_url("The feed's URL.", "https://blog.example.com/feed.xml"),
                "polling_frequency": polling_frequency(),
                "since": {
                    "description": "Ignore items published before this instant; without it, \
                                    only items that appear after the trigger is enabled fire.",
                    "type": "string",
                    "format": "date-time",
                },
            },
            "required": ["feed_url"],
        })),
        sample_payload: json!({
            "feed": {
                "url": "https://blog.example.com/feed.xml",
                "title": "Example Engineering Blog",
                "link": "https://blog.example.com/"
            },
            "item": {
                "guid": "https://blog.example.com/posts/event-sourcing-in-practice",
                "title": "Event sourcing in practice",
                "link": "https://blog.example.com/posts/event-sourcing-in-practice",
                "summary": "What two years of storing every change as an event taught us.",
                "content": "<p>Two years ago we stopped updating rows in place…</p>",
                "author": "Ada Lovelace",
                "categories": ["architecture", "databases"],
                "published": "2025-03-02T09:00:00Z",
                "updated": "2025-03-02T09:00:00Z"
            }
        }),
    }]
}
