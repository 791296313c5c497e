//! A generic webhook's requests: Standard Webhooks signatures when the trigger has a secret.

use chrono::{DateTime, Utc};

use super::WebhookConfig;
use crate::providers::config::{decode, secrets_of};
use crate::webhooks::inbound::{any_body, idempotency_key, Refusal, Target, Verdict};
use crate::webhooks::signatures::{self, Headers};

/// Unsigned, keyed by the `Idempotency-Key` a sender may set; signed, by its `webhook-id`.
pub(super) fn judge(
    target: &Target<'_>,
    headers: &dyn Headers,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Verdict, Refusal> {
    let config: WebhookConfig = decode(Some(target.config)).map_err(Refusal::unreadable)?;
    let secrets = secrets_of(&config.signing_secret);
    if secrets.is_empty() {
        return Ok(Verdict::Fire {
            key: idempotency_key(headers),
            payload: any_body(body)?,
        });
    }
    signatures::verify_standard(headers, body, &secrets, now)?;
    Ok(Verdict::Fire {
        key: headers.get("webhook-id").map(str::to_owned),
        payload: any_body(body)?,
    })
}
