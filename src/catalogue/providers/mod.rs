//! The catalogue's data: one file per provider, each exposing `fn provider() -> Provider`.
//!
//! To add a provider, write its file and add its name to the `providers!` list below. The shared
//! schema fragments live here so that every provider spells a signing secret or a polling
//! frequency the same way.

use serde_json::{json, Map, Value};

use super::validation::IANA_TIME_ZONE;
use super::TriggerKind;

/// Declares the provider modules and lists them, so that naming a provider once does both.
macro_rules! providers {
    ($($name:ident),* $(,)?) => {
        $(mod $name;)*

        pub(in crate::catalogue) fn all() -> Vec<Provider> {
            vec![$($name::provider()),*]
        }
    };
}

providers![github, http, rss, schedule, slack, stripe, typeform, webhook];

/// A provider as its file writes it; the catalogue adds the provider id to each trigger and
/// compiles the schemas.
pub(in crate::catalogue) struct Provider {
    pub id: &'static str,
    pub triggers: Vec<Trigger>,
}

pub(in crate::catalogue) struct Trigger {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub kind: TriggerKind,
    pub event_type: Option<&'static str>,
    pub event_action: Option<&'static str>,
    pub config_schema: Value,
    pub sample_payload: Value,
}

/// Completes a config schema with what every one of them shares: the draft, an object, and no
/// fields beyond those listed, so that a misspelt field is refused instead of silently ignored.
fn config_schema(body: Value) -> Value {
    let mut schema = Map::new();
    schema.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    schema.insert("type".into(), json!("object"));
    if let Value::Object(body) = body {
        schema.extend(body);
    }
    schema.insert("additionalProperties".into(), json!(false));
    Value::Object(schema)
}

/// A Standard Webhooks signing secret (`whsec_` and base64), or several while rotating: during a
/// rotation the sender may sign with either, so every listed secret is tried.
/// `type` lists both forms instead of a `oneOf`, so that a violation is reported on the exact
/// value at fault rather than as "matches no branch".
fn whsec_secret(description: &str) -> Value {
    const PATTERN: &str = "^whsec_[A-Za-z0-9+/=]+$";
    json!({
        "description": description,
        "type": ["string", "array"],
        "pattern": PATTERN,
        "minItems": 1,
        "items": { "type": "string", "pattern": PATTERN },
        "writeOnly": true,
        "examples": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    })
}

/// A shared secret the user chose themselves (GitHub's webhook secret), or several while
/// rotating.
fn shared_secret(description: &str) -> Value {
    json!({
        "description": description,
        "type": ["string", "array"],
        "minLength": 1,
        "minItems": 1,
        "items": { "type": "string", "minLength": 1 },
        "writeOnly": true,
    })
}

/// Milliseconds between polls. Stored configs carry it as a string (`"10000"`), so both forms
/// are accepted; the pattern bounds the string form the way `minimum` bounds the integer.
/// The minimum of one second keeps a misconfigured trigger from hammering the provider.
fn polling_frequency() -> Value {
    json!({
        "description": "Milliseconds between two polls, at least 1000; an integer or a string of digits.",
        "type": ["integer", "string"],
        "minimum": 1000,
        "pattern": "^[1-9][0-9]{3,}$",
        "default": "60000",
    })
}

/// An absolute http or https URL.
fn http_url(description: &str, example: &str) -> Value {
    json!({
        "description": description,
        "type": "string",
        "format": "uri",
        "pattern": "^https?://",
        "examples": [example],
    })
}

fn time_zone(description: &str) -> Value {
    json!({
        "description": description,
        "type": "string",
        "format": IANA_TIME_ZONE,
        "default": "UTC",
    })
}
