//! What an inbound delivery means for one trigger: verify it as its provider signs, then decide
//! whether it fires the trigger, with which delivery key (the deduplication key) and payload.
//!
//! Pure: the caller passes the headers, the raw body, the trigger's definition and config, and
//! the time. Nothing here touches the store, so the handler decides before it writes anything and
//! a forged or foreign delivery costs no write.

use serde_json::Value;

use super::signatures::{Headers, SignatureError};
use crate::catalogue::ConfigError;
use crate::providers::ProviderId;

/// What a delivery asks of a trigger.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Fire once per `key`: a repeated delivery of the same key fires nothing more.
    Fire { key: Option<String>, payload: Value },
    /// Authentic, but not for this trigger (another event type, repository, channel...) or a
    /// provider's probe (GitHub's `ping`): acknowledge without firing. The reason names what the
    /// delivery was instead (`another event type: customer.updated`), for `explain`.
    Ignore(String),
    /// Slack's `url_verification`: answer with the challenge.
    Challenge(String),
}

/// Why a delivery is ignored: `what` it differs in, and the value it had instead (cut to 100
/// characters: it is the provider's field, not the engine's).
pub fn ignored(what: &str, seen: Option<&str>) -> Verdict {
    let seen: String = seen.unwrap_or("none").chars().take(100).collect();
    Verdict::Ignore(format!("{what}: {seen}"))
}

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// Not signed by whoever holds the secret, or signed too long ago: 401, nothing recorded.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// Authentic, but not a body the provider sends (e.g. not JSON): 422.
    #[error("{0}")]
    Malformed(String),
    /// The trigger's stored config does not read as its provider's: the engine's fault, not the
    /// sender's, so the delivery is refused as a server error (the sender retries it later)
    /// rather than acknowledged and lost.
    #[error("the trigger's config cannot be read: {0}")]
    Unreadable(String),
}

impl Refusal {
    pub fn unreadable(error: ConfigError) -> Refusal {
        Refusal::Unreadable(error.to_string())
    }
}

/// The trigger a delivery is judged against.
pub struct Target<'a> {
    pub provider: ProviderId,
    pub event_type: Option<&'a str>,
    pub event_action: Option<&'a str>,
    /// The trigger's `trigger_config` (JSON `null` when it has none).
    pub config: &'a Value,
    /// The secret of the webhook the engine registered for the trigger, when it did (Stripe's
    /// endpoint secret, GitHub's hook secret): the config holds none then.
    pub registered_secret: Option<&'a str>,
}

impl Target<'_> {
    /// The secrets a delivery may be signed with: the config's, else the registered one's.
    pub fn secrets<'s>(&'s self, configured: Vec<&'s str>) -> Vec<&'s str> {
        match (configured.is_empty(), self.registered_secret) {
            (true, Some(registered)) => vec![registered],
            _ => configured,
        }
    }
}

/// Verifies and interprets a delivery to a trigger's own URL, as its provider does
/// ([`Provider::inbound`]); a provider that delivers nothing has no URL to deliver to.
///
/// [`Provider::inbound`]: crate::providers::Provider::inbound
pub fn judge(
    target: &Target<'_>,
    headers: &dyn Headers,
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Verdict>, Refusal> {
    match target.provider.provider().inbound() {
        Some(judge) => judge(target, headers, body, now).map(Some),
        None => Ok(None),
    }
}

/// The `Idempotency-Key` a sender without delivery ids may set.
pub fn idempotency_key(headers: &dyn Headers) -> Option<String> {
    headers
        .get("idempotency-key")
        .map(str::trim)
        .filter(|key| !key.is_empty() && key.len() <= 255)
        .map(str::to_owned)
}

pub fn text(value: &Value, pointer: &str) -> Option<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The body as JSON, each U+0000 in it replaced (see [`crate::nul`]): the provider sent it, and
/// the event is kept rather than refused for a character the store cannot hold.
pub fn json(body: &[u8]) -> Result<Value, Refusal> {
    serde_json::from_slice(body)
        .map(storable)
        .map_err(|error| Refusal::Malformed(format!("the body is not JSON: {error}")))
}

/// A generic request's payload: its JSON, or its text as a JSON string when it is not JSON; each
/// U+0000 in it replaced, as in [`json`].
pub fn any_body(body: &[u8]) -> Result<Value, Refusal> {
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(storable(value));
    }
    std::str::from_utf8(body)
        .map(|text| storable(Value::String(text.to_owned())))
        .map_err(|_| Refusal::Malformed("the body is neither JSON nor UTF-8 text".into()))
}

fn storable(mut value: Value) -> Value {
    crate::nul::replace(&mut value);
    value
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn it_should_take_a_generic_body_as_json_or_text() {
        assert_eq!(any_body(br#"{"a":1}"#), Ok(json!({"a": 1})));
        assert_eq!(any_body(b"plain"), Ok(json!("plain")));
        assert!(any_body(&[0xff, 0xfe]).is_err());
    }
}
