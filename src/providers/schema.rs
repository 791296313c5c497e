//! Config schema fragments every provider shares, so that each spells a signing secret or a
//! polling frequency the same way.

use serde_json::{json, Map, Value};

use crate::catalogue::IANA_TIME_ZONE;

/// Completes a config schema with what every one of them shares: the draft, an object, and no
/// fields beyond those listed, so that a misspelt field is refused instead of silently ignored.
pub(super) fn config_schema(body: Value) -> Value {
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
pub(super) fn whsec_secret(description: &str) -> Value {
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
pub(super) fn shared_secret(description: &str) -> Value {
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
pub(super) fn polling_frequency() -> Value {
    json!({
        "description": "Milliseconds between two polls, at least 1000; an integer or a string of digits.",
        "type": ["integer", "string"],
        "minimum": 1000,
        "pattern": "^[1-9][0-9]{3,}$",
        "default": "60000",
    })
}

/// An absolute http or https URL.
pub(super) fn http_url(description: &str, example: &str) -> Value {
    json!({
        "description": description,
        "type": "string",
        "format": "uri",
        "pattern": "^https?://",
        "examples": [example],
    })
}

pub(super) fn time_zone(description: &str) -> Value {
    json!({
        "description": description,
        "type": "string",
        "format": IANA_TIME_ZONE,
        "default": "UTC",
    })
}
