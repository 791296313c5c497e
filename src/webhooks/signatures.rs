//! Webhook signatures exactly as each provider computes them, over the raw request bytes.
//!
//! Every scheme is HMAC-SHA256. Verification accepts any of several secrets (so a secret can be
//! rotated without dropping deliveries) and any of several signatures in one header (providers send
//! one per active secret), compares in constant time (`Mac::verify_slice`), and refuses timestamps
//! outside the provider's tolerance so a captured delivery cannot be replayed later.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Stripe and Standard Webhooks refuse deliveries signed more than five minutes away from now.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// Why a delivery's signature was refused. None of these say which secret was tried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing `{0}` header")]
    Missing(&'static str),
    #[error("malformed `{0}` header")]
    Malformed(&'static str),
    #[error("signature does not match")]
    Mismatch,
    #[error("timestamp is outside the {0} s tolerance")]
    Stale(i64),
    #[error("no signing secret is configured")]
    NoSecret,
}

/// The headers a verifier reads, by lower-case name.
pub trait Headers {
    fn get(&self, name: &str) -> Option<&str>;
}

impl Headers for axum::http::HeaderMap {
    fn get(&self, name: &str) -> Option<&str> {
        axum::http::HeaderMap::get(self, name).and_then(|value| value.to_str().ok())
    }
}

pub(crate) fn mac(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac
}

/// True when any secret's MAC over `parts` equals any of `signatures`, compared in constant time.
pub(crate) fn any_matches(keys: &[Vec<u8>], parts: &[&[u8]], signatures: &[Vec<u8>]) -> bool {
    keys.iter().any(|key| {
        signatures
            .iter()
            .any(|signature| mac(key, parts).verify_slice(signature).is_ok())
    })
}

pub(crate) fn required<'h>(
    headers: &'h dyn Headers,
    name: &'static str,
) -> Result<&'h str, SignatureError> {
    headers.get(name).ok_or(SignatureError::Missing(name))
}

pub(crate) fn within(
    timestamp: i64,
    now: DateTime<Utc>,
    tolerance: i64,
) -> Result<(), SignatureError> {
    // `abs_diff`: the timestamp is the sender's, and a subtraction of one near `i64::MIN` would
    // overflow (a panic in debug builds, and a wrapped `i64::MIN` that passes as fresh in release).
    if now.timestamp().abs_diff(timestamp) > tolerance.unsigned_abs() {
        return Err(SignatureError::Stale(tolerance));
    }
    Ok(())
}

pub(crate) fn raw_keys(secrets: &[&str]) -> Result<Vec<Vec<u8>>, SignatureError> {
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    Ok(secrets
        .iter()
        .map(|secret| secret.as_bytes().to_vec())
        .collect())
}

/// The key a Standard Webhooks secret stands for: the base64 after the `whsec_` prefix.
fn standard_key(secret: &str) -> Result<Vec<u8>, SignatureError> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD
        .decode(encoded)
        .map_err(|_| SignatureError::NoSecret)
}

/// Standard Webhooks (standardwebhooks.com): `webhook-id`, `webhook-timestamp`, and
/// `webhook-signature: v1,<base64> [v1,<base64> ...]` over `"{id}.{timestamp}.{body}"`, keyed with
/// the base64-decoded `whsec_` secret, within five minutes.
pub fn verify_standard(
    headers: &dyn Headers,
    body: &[u8],
    secrets: &[&str],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    const ID: &str = "webhook-id";
    const TIMESTAMP: &str = "webhook-timestamp";
    const SIGNATURE: &str = "webhook-signature";
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let keys = secrets
        .iter()
        .map(|secret| standard_key(secret))
        .collect::<Result<Vec<_>, _>>()?;
    let id = required(headers, ID)?;
    let timestamp = required(headers, TIMESTAMP)?;
    let seconds = timestamp
        .parse::<i64>()
        .map_err(|_| SignatureError::Malformed(TIMESTAMP))?;
    let signatures = required(headers, SIGNATURE)?
        .split(' ')
        .filter_map(|item| item.strip_prefix("v1,"))
        .map(|value| STANDARD.decode(value))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| SignatureError::Malformed(SIGNATURE))?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed(SIGNATURE));
    }
    within(seconds, now, DEFAULT_TOLERANCE_SECS)?;
    let parts: [&[u8]; 5] = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body];
    if any_matches(&keys, &parts, &signatures) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The `webhook-signature` value for a delivery we send (the executor signs its calls this way).
pub fn sign_standard(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SignatureError> {
    let key = standard_key(secret)?;
    let stamp = timestamp.to_string();
    let tag = mac(&key, &[id.as_bytes(), b".", stamp.as_bytes(), b".", body])
        .finalize()
        .into_bytes();
    Ok(format!("v1,{}", STANDARD.encode(tag)))
}

/// What the providers' signature tests share: headers from pairs, a fixed now, a MAC in hex.
#[cfg(test)]
pub(crate) mod test_support {
    use std::collections::HashMap;

    use chrono::{DateTime, Utc};

    use hmac::Mac;

    use super::{mac, Headers};

    pub struct Map(HashMap<&'static str, String>);

    impl Headers for Map {
        fn get(&self, name: &str) -> Option<&str> {
            self.0.get(name).map(String::as_str)
        }
    }

    pub fn headers(pairs: &[(&'static str, String)]) -> Map {
        Map(pairs.iter().cloned().collect())
    }

    pub fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    pub fn hex_mac(key: &[u8], parts: &[&[u8]]) -> String {
        hex::encode(mac(key, parts).finalize().into_bytes())
    }

    pub const BODY: &[u8] = br#"{"id":"evt_1","type":"customer.created"}"#;
}

#[cfg(test)]
mod tests {
    use super::test_support::{headers, now, BODY};
    use super::*;

    #[test]
    fn it_should_round_trip_a_standard_webhooks_signature() {
        let secret = format!(
            "whsec_{}",
            STANDARD.encode(b"0123456789abcdef0123456789abcdef")
        );
        let t = now().timestamp();
        let signature = sign_standard(&secret, "msg_1", t, BODY).unwrap();
        let delivery = headers(&[
            ("webhook-id", "msg_1".into()),
            ("webhook-timestamp", t.to_string()),
            ("webhook-signature", format!("v1,bm90LWl0 {signature}")),
        ]);
        assert_eq!(verify_standard(&delivery, BODY, &[&secret], now()), Ok(()));
        let other = format!("whsec_{}", STANDARD.encode(b"another key"));
        assert_eq!(
            verify_standard(&delivery, BODY, &[&other], now()),
            Err(SignatureError::Mismatch)
        );
        let later = now() + chrono::Duration::seconds(301);
        assert_eq!(
            verify_standard(&delivery, BODY, &[&secret], later),
            Err(SignatureError::Stale(300))
        );
    }

    /// The example from the Standard Webhooks specification's reference libraries.
    #[test]
    fn it_should_match_the_standard_webhooks_reference_vector() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let signature =
            sign_standard(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn it_should_refuse_a_timestamp_so_far_back_that_the_difference_overflows() {
        let now = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap();
        let timestamp = now.timestamp().wrapping_add(i64::MIN);
        assert_eq!(
            within(timestamp, now, DEFAULT_TOLERANCE_SECS),
            Err(SignatureError::Stale(DEFAULT_TOLERANCE_SECS))
        );
        assert!(within(i64::MIN, now, DEFAULT_TOLERANCE_SECS).is_err());
        assert!(within(now.timestamp() - 300, now, DEFAULT_TOLERANCE_SECS).is_ok());
    }
}
