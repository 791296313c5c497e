//! Slack's Events API requests: `X-Slack-Signature` over the timestamp and body, within five
//! minutes; a URL check, or an `event_callback`.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::SlackConfig;
use crate::providers::config::{decode, narrows};
use crate::webhooks::inbound::{ignored, json, text, Refusal, Target, Verdict};
use crate::webhooks::signatures::{
    any_matches, raw_keys, required, within, Headers, SignatureError, DEFAULT_TOLERANCE_SECS,
};

/// A delivery to a Slack trigger's own URL. Slack signs with the app's secret, which a trigger's
/// config does not hold: such a delivery is refused (no secret); Slack delivers to the app URL.
pub(super) fn judge(
    target: &Target<'_>,
    headers: &dyn Headers,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Verdict, Refusal> {
    verify_slack(headers, body, &[], now)?;
    judge_event(target, json(body)?)
}

/// A Slack Events API request: the URL check, or an `event_callback` keyed by its `event_id`
/// (the same on Slack's retries).
pub fn judge_event(target: &Target<'_>, payload: Value) -> Result<Verdict, Refusal> {
    match payload.get("type").and_then(Value::as_str) {
        Some("url_verification") => {
            let challenge = text(&payload, "/challenge")
                .ok_or_else(|| Refusal::Malformed("url_verification without a challenge".into()))?;
            return Ok(Verdict::Challenge(challenge));
        }
        Some("event_callback") => {}
        other => return Ok(ignored("not an event callback", other)),
    }
    let seen = payload.pointer("/event/type").and_then(Value::as_str);
    if seen != target.event_type {
        return Ok(ignored("another event type", seen));
    }
    let config: SlackConfig = decode(Some(target.config)).map_err(Refusal::unreadable)?;
    if !narrows(
        config.team_id.as_deref(),
        payload.get("team_id").and_then(Value::as_str),
    ) {
        return Ok(Verdict::Ignore("another workspace".into()));
    }
    if !narrows(
        config.channel_id.as_deref(),
        payload.pointer("/event/channel").and_then(Value::as_str),
    ) {
        return Ok(Verdict::Ignore("another channel".into()));
    }
    Ok(Verdict::Fire {
        key: text(&payload, "/event_id"),
        payload,
    })
}

/// Slack: `X-Slack-Signature: v0=<hex>` over `"v0:{X-Slack-Request-Timestamp}:{body}"`, within
/// five minutes.
pub fn verify_slack(
    headers: &dyn Headers,
    body: &[u8],
    secrets: &[&str],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    const SIGNATURE: &str = "x-slack-signature";
    const TIMESTAMP: &str = "x-slack-request-timestamp";
    let keys = raw_keys(secrets)?;
    let timestamp = required(headers, TIMESTAMP)?;
    let seconds = timestamp
        .parse::<i64>()
        .map_err(|_| SignatureError::Malformed(TIMESTAMP))?;
    let value = required(headers, SIGNATURE)?
        .strip_prefix("v0=")
        .ok_or(SignatureError::Malformed(SIGNATURE))?;
    let signature = hex::decode(value).map_err(|_| SignatureError::Malformed(SIGNATURE))?;
    within(seconds, now, DEFAULT_TOLERANCE_SECS)?;
    if any_matches(
        &keys,
        &[b"v0:", timestamp.as_bytes(), b":", body],
        &[signature],
    ) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::providers::ProviderId;
    use crate::webhooks::signatures::test_support::{headers, hex_mac, now, BODY};

    #[test]
    fn it_should_answer_slacks_challenge_and_narrow_by_team_and_channel() {
        let config = json!({"team_id": "T1", "channel_id": "C1"});
        let target = Target {
            provider: ProviderId::Slack,
            event_type: Some("app_mention"),
            event_action: None,
            config: &config,
            registered_secret: None,
        };
        assert_eq!(
            judge_event(
                &target,
                json!({"type": "url_verification", "challenge": "abc"})
            ),
            Ok(Verdict::Challenge("abc".into()))
        );
        let event = |team: &str, channel: &str| {
            json!({"type": "event_callback", "team_id": team, "event_id": "Ev1",
                   "event": {"type": "app_mention", "channel": channel}})
        };
        assert!(matches!(
            judge_event(&target, event("T1", "C1")),
            Ok(Verdict::Fire { key: Some(key), .. }) if key == "Ev1"
        ));
        assert!(matches!(
            judge_event(&target, event("T2", "C1")),
            Ok(Verdict::Ignore(_))
        ));
        assert!(matches!(
            judge_event(&target, event("T1", "C2")),
            Ok(Verdict::Ignore(_))
        ));
    }

    #[test]
    fn it_should_verify_slack_within_five_minutes() {
        let t = now().timestamp().to_string();
        let signature = format!(
            "v0={}",
            hex_mac(b"slack", &[b"v0:", t.as_bytes(), b":", BODY])
        );
        let fresh = headers(&[
            ("x-slack-request-timestamp", t),
            ("x-slack-signature", signature.clone()),
        ]);
        assert_eq!(verify_slack(&fresh, BODY, &["slack"], now()), Ok(()));
        let old = (now().timestamp() - 600).to_string();
        let stale = headers(&[
            ("x-slack-request-timestamp", old),
            ("x-slack-signature", signature),
        ]);
        assert_eq!(
            verify_slack(&stale, BODY, &["slack"], now()),
            Err(SignatureError::Stale(300))
        );
    }
}
