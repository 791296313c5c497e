//! Typeform: form responses delivered by a webhook on the form, signed with the secret set on
//! that webhook (`Typeform-Signature`). The engine creates that webhook itself when the trigger
//! is enabled, with the trigger's connection (see `crate::registration`).

use serde_json::json;

use crate::catalogue::{TriggerKind, TriggerSpec};
use crate::providers::schema::{config_schema};

pub(super) fn triggers() -> Vec<TriggerSpec> {
    vec![TriggerSpec {
        id: "on_form_response",
        name: "On form response",
        description: "Fires when someone submits a response to the form.",
        kind: TriggerKind::Webhook,
        event_type: Some("form_response"),
        event_action: None,
        config_schema: config_schema(json!({
            "properties": {
                "signing_secret": {
                    "description": "The secret set on the form's webhook in Typeform.",
                    "type": "string",
                    "minLength": 1,
                    "writeOnly": true,
                },
                "form_id": {
                    "description": "The form whose responses fire the trigger (the id in its URL, e.g. lT4Z3j). On enable the engine creates a webhook on this form at Typeform, with the trigger's connection.",
                    "type": "string",
                    "pattern": "^[A-Za-z0-9]+$",
                    "examples": ["lT4Z3j"],
                },
            },
            // `form_id` because Typeform webhooks live on one form: there is nothing to
            // register without it.
            "required": ["signing_secret", "form_id"],
        })),
        sample_payload: json!({
            "event_id": "01JNBX6Q2P8Y3V4W5Z6A7B8C9D",
            "event_type": "form_response",
            "form_response": {
                "form_id": "lT4Z3j",
                "token": "a3a12ec67a1365927098a606107fac15",
                "landed_at": "2025-03-02T10:27:41Z",
                "submitted_at": "2025-03-02T10:30:09Z",
                "hidden": { "utm_source": "newsletter" },
                "calculated": { "score": 9 },
                "definition": {
                    "id": "lT4Z3j",
                    "title": "Product feedback",
                    "fields": [
                        { "id": "DlXFaesGBpoF", "ref": "name", "type": "short_text", "title": "What is your name?" },
                        { "id": "SMEUb7VJz92Q", "ref": "email", "type": "email", "title": "Your email?" },
                        { "id": "JwWggjAKtOkA", "ref": "rating", "type": "opinion_scale", "title": "How likely are you to recommend us?" },
                        {
                            "id": "k6TP9oLGgHjl", "ref": "plan", "type": "multiple_choice", "title": "Which plan are you on?",
                            "allow_multiple_selections": false, "allow_other_choice": false
                        }
                    ]
                },
                "answers": [
                    { "type": "text", "text": "Ada", "field": { "id": "DlXFaesGBpoF", "ref": "name", "type": "short_text" } },
                    { "type": "email", "email": "ada@example.com", "field": { "id": "SMEUb7VJz92Q", "ref": "email", "type": "email" } },
                    { "type": "number", "number": 9, "field": { "id": "JwWggjAKtOkA", "ref": "rating", "type": "opinion_scale" } },
                    { "type": "choice", "choice": { "label": "Pro" }, "field": { "id": "k6TP9oLGgHjl", "ref": "plan", "type": "multiple_choice" } }
                ]
            }
        }),
    }]
}
