//! Stripe's deliveries: `Stripe-Signature`, and an Event whose `type` names what happened.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::StripeConfig;
use crate::providers::config::{decode, secrets_of};
use crate::webhooks::inbound::{ignored, json, text, Refusal, Target, Verdict};
use crate::webhooks::signatures::{
    any_matches, raw_keys, required, within, Headers, SignatureError, DEFAULT_TOLERANCE_SECS,
};

/// Verifies the delivery, then fires when the event's `type` is the trigger's; keyed by the event
/// id, which Stripe keeps across its retries.
pub(super) fn judge(
    target: &Target<'_>,
    headers: &dyn Headers,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Verdict, Refusal> {
    let config: StripeConfig = decode(Some(target.config)).map_err(Refusal::unreadable)?;
    let secrets = target.secrets(secrets_of(&config.signing_secret));
    verify_stripe(headers, body, &secrets, now)?;
    let event = json(body)?;
    let seen = event.get("type").and_then(Value::as_str);
    if seen != target.event_type {
        return Ok(ignored("another event type", seen));
    }
    Ok(Verdict::Fire {
        key: text(&event, "/id"),
        payload: event,
    })
}

/// Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`, HMAC of `"{t}.{body}"` keyed with
/// the endpoint secret as written (`whsec_...`).
pub fn verify_stripe(
    headers: &dyn Headers,
    body: &[u8],
    secrets: &[&str],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    const HEADER: &str = "stripe-signature";
    let keys = raw_keys(secrets)?;
    let header = required(headers, HEADER)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        match item.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => {
                signatures.push(hex::decode(value).map_err(|_| SignatureError::Malformed(HEADER))?)
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed(HEADER))?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed(HEADER));
    }
    within(timestamp, now, DEFAULT_TOLERANCE_SECS)?;
    let stamp = timestamp.to_string();
    if any_matches(&keys, &[stamp.as_bytes(), b".", body], &signatures) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::signatures::test_support::{headers, hex_mac, now, BODY};

    #[test]
    fn it_should_accept_a_stripe_delivery_signed_with_any_current_secret() {
        let t = now().timestamp().to_string();
        let old = hex_mac(b"whsec_old", &[t.as_bytes(), b".", BODY]);
        let new = hex_mac(b"whsec_new", &[t.as_bytes(), b".", BODY]);
        let header = headers(&[(
            "stripe-signature",
            format!("t={t},v1={old},v1={new},v0=ignored"),
        )]);
        assert_eq!(verify_stripe(&header, BODY, &["whsec_new"], now()), Ok(()));
        assert_eq!(
            verify_stripe(&header, BODY, &["whsec_other", "whsec_old"], now()),
            Ok(())
        );
        assert_eq!(
            verify_stripe(&header, BODY, &["whsec_other"], now()),
            Err(SignatureError::Mismatch)
        );
        let tampered = br#"{"id":"evt_1","type":"customer.deleted"}"#;
        assert_eq!(
            verify_stripe(&header, tampered, &["whsec_new"], now()),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn it_should_refuse_a_stripe_delivery_outside_the_tolerance() {
        let t = (now().timestamp() - 301).to_string();
        let signature = hex_mac(b"whsec_s", &[t.as_bytes(), b".", BODY]);
        let header = headers(&[("stripe-signature", format!("t={t},v1={signature}"))]);
        assert_eq!(
            verify_stripe(&header, BODY, &["whsec_s"], now()),
            Err(SignatureError::Stale(300))
        );
        assert_eq!(
            verify_stripe(&headers(&[]), BODY, &["whsec_s"], now()),
            Err(SignatureError::Missing("stripe-signature"))
        );
        let garbled = headers(&[("stripe-signature", "t=1,v1=zz".into())]);
        assert_eq!(
            verify_stripe(&garbled, BODY, &["whsec_s"], now()),
            Err(SignatureError::Malformed("stripe-signature"))
        );
    }
}
