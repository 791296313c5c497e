//! Any JSON HTTP API that lists records, polled: for sources with no webhooks of their own.

use serde_json::json;

use crate::catalogue::{TriggerKind, TriggerSpec};
use crate::providers::schema::{config_schema, http_url, polling_frequency};

pub(super) fn triggers() -> Vec<TriggerSpec> {
    vec![TriggerSpec {
        id: "on_new_records",
        name: "On new records",
        description: "Polls a JSON endpoint and fires once for each record it has not seen \
                      before, telling records apart by their id field.",
        kind: TriggerKind::Polling,
        event_type: None,
        event_action: None,
        config_schema: config_schema(json!({
            "properties": {
                "url": http_url(
                    "The endpoint to GET.",
                    "https://api.example.com/v1/tickets?status=open",
                ),
                "items_path": {
                    "description": "Where the array of records is in the response, as a JSON \
                                    pointer; empty for a response that is the array itself.",
                    "type": "string",
                    "format": "json-pointer",
                    "default": "",
                    "examples": ["/data", "/results/items"],
                },
                "id_field": {
                    "description": "The record field that identifies a record.",
                    "type": "string",
                    "minLength": 1,
                    "examples": ["id"],
                },
                "timestamp_field": {
                    "description": "A record field holding when it was created or changed, \
                                    so the cursor can move by time as well as by id.",
                    "type": "string",
                    "minLength": 1,
                    "examples": ["updated_at"],
                },
                "header_name": {
                    "description": "The request header that carries the connection's \
                                    credential, e.g. Authorization or X-Api-Key.",
                    "type": "string",
                    // An HTTP header name is a token (RFC 9110, section 5.1).
                    "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$",
                },
                "polling_frequency": polling_frequency(),
            },
            "required": ["url", "id_field"],
        })),
        sample_payload: json!({
            "url": "https://api.example.com/v1/tickets?status=open",
            "record": {
                "id": "tkt_01JNBX9C4R",
                "subject": "Cannot export the March report",
                "status": "open",
                "priority": "high",
                "requester": { "name": "Ada Lovelace", "email": "ada@example.com" },
                "created_at": "2025-03-02T10:29:51Z",
                "updated_at": "2025-03-02T10:29:51Z"
            }
        }),
    }]
}
