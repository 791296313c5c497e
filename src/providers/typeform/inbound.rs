//! Typeform's deliveries: `Typeform-Signature` over the body, one form response each.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::TypeformConfig;
use crate::providers::config::{decode, narrows, secrets_of};
use crate::webhooks::inbound::{ignored, json, text, Refusal, Target, Verdict};
use crate::webhooks::signatures::{any_matches, raw_keys, required, Headers, SignatureError};

pub(super) fn judge(
    target: &Target<'_>,
    headers: &dyn Headers,
    body: &[u8],
    _now: DateTime<Utc>,
) -> Result<Verdict, Refusal> {
    let config: TypeformConfig = decode(Some(target.config)).map_err(Refusal::unreadable)?;
    verify_typeform(headers, body, &secrets_of(&config.signing_secret))?;
    judge_response(target, &config, json(body)?)
}

/// A Typeform response: keyed by the response token, which a resent delivery keeps.
fn judge_response(
    target: &Target<'_>,
    config: &TypeformConfig,
    payload: Value,
) -> Result<Verdict, Refusal> {
    let seen = payload.get("event_type").and_then(Value::as_str);
    if seen != target.event_type {
        return Ok(ignored("another event type", seen));
    }
    if !narrows(
        config.form_id.as_deref(),
        payload
            .pointer("/form_response/form_id")
            .and_then(Value::as_str),
    ) {
        return Ok(Verdict::Ignore("another form".into()));
    }
    Ok(Verdict::Fire {
        key: text(&payload, "/form_response/token").or_else(|| text(&payload, "/event_id")),
        payload,
    })
}

/// Typeform: `Typeform-Signature: sha256=<base64>`, HMAC of the body.
pub fn verify_typeform(
    headers: &dyn Headers,
    body: &[u8],
    secrets: &[&str],
) -> Result<(), SignatureError> {
    const HEADER: &str = "typeform-signature";
    let keys = raw_keys(secrets)?;
    let value = required(headers, HEADER)?
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed(HEADER))?;
    let signature = STANDARD
        .decode(value)
        .map_err(|_| SignatureError::Malformed(HEADER))?;
    if any_matches(&keys, &[body], &[signature]) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::Mac;

    use crate::webhooks::signatures::mac;
    use crate::webhooks::signatures::test_support::{headers, BODY};

    #[test]
    fn it_should_verify_a_signature_over_the_body() {
        let tag = STANDARD.encode(mac(b"tf", &[BODY]).finalize().into_bytes());
        let typeform = headers(&[("typeform-signature", format!("sha256={tag}"))]);
        assert_eq!(verify_typeform(&typeform, BODY, &["tf"]), Ok(()));
        assert_eq!(
            verify_typeform(&typeform, BODY, &["nope"]),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_typeform(&typeform, BODY, &[]),
            Err(SignatureError::NoSecret)
        );
    }
}
