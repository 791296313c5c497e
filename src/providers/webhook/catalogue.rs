//! The generic inbound webhook: anything that can POST JSON can start a flow.

use serde_json::json;

use crate::catalogue::{TriggerKind, TriggerSpec};
use crate::providers::schema::{config_schema, whsec_secret};

pub(super) fn triggers() -> Vec<TriggerSpec> {
    vec![TriggerSpec {
        id: "on_request",
        name: "On webhook request",
        description: "Fires on every request posted to the trigger's webhook URL. With a \
                      signing secret, only requests signed per Standard Webhooks \
                      (webhook-id, webhook-timestamp, webhook-signature) are accepted.",
        kind: TriggerKind::Webhook,
        // Any sender, any body: there is no event name to match.
        event_type: None,
        event_action: None,
        config_schema: config_schema(json!({
            "properties": {
                "signing_secret": whsec_secret(
                    "Standard Webhooks secret the sender signs with; a list while rotating. \
                     Without one, requests are accepted unsigned."
                ),
            },
        })),
        // A Standard Webhooks event, the shape signed senders use.
        sample_payload: json!({
            "type": "order.created",
            "timestamp": "2025-03-02T10:30:09.152Z",
            "data": {
                "order_id": "ord_8f3a21c9",
                "customer_email": "ada@example.com",
                "currency": "EUR",
                "total": 129.5,
                "items": [
                    { "sku": "KB-101", "name": "Mechanical keyboard", "quantity": 1, "unit_price": 109.5 },
                    { "sku": "CBL-3", "name": "USB-C cable", "quantity": 2, "unit_price": 10.0 }
                ]
            }
        }),
    }]
}
