//! GitHub's deliveries: `X-Hub-Signature-256` over the body, the event in `X-GitHub-Event`.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::GitHubConfig;
use crate::providers::config::{decode, narrows, secrets_of};
use crate::webhooks::inbound::{ignored, json, Refusal, Target, Verdict};
use crate::webhooks::signatures::{any_matches, raw_keys, required, Headers, SignatureError};

/// A delivery to the trigger's own URL, signed with its `signing_secret`.
pub(super) fn judge(
    target: &Target<'_>,
    headers: &dyn Headers,
    body: &[u8],
    _now: DateTime<Utc>,
) -> Result<Verdict, Refusal> {
    let config: GitHubConfig = decode(Some(target.config)).map_err(Refusal::unreadable)?;
    let secrets = target.secrets(secrets_of(&config.signing_secret));
    verify_github(headers, body, &secrets)?;
    judge_event(target, headers, json(body)?)
}

/// A GitHub delivery: the event is in `X-GitHub-Event`, the action in the payload, the delivery
/// id (the same on a redelivery) in `X-GitHub-Delivery`.
pub fn judge_event(
    target: &Target<'_>,
    headers: &dyn Headers,
    payload: Value,
) -> Result<Verdict, Refusal> {
    let event = headers.get("x-github-event");
    if event == Some("ping") {
        return Ok(Verdict::Ignore("ping".into()));
    }
    if event != target.event_type {
        return Ok(ignored("another event type", event));
    }
    let action = payload.get("action").and_then(Value::as_str);
    if target.event_action.is_some() && action != target.event_action {
        return Ok(ignored("another action", action));
    }
    let config: GitHubConfig = decode(Some(target.config)).map_err(Refusal::unreadable)?;
    if !narrows(
        config.repository.as_deref(),
        payload
            .pointer("/repository/full_name")
            .and_then(Value::as_str),
    ) {
        return Ok(Verdict::Ignore("another repository".into()));
    }
    let installation = config.installation_id;
    if installation.is_some()
        && payload.pointer("/installation/id").and_then(Value::as_u64) != installation
    {
        return Ok(Verdict::Ignore("another installation".into()));
    }
    Ok(Verdict::Fire {
        key: headers.get("x-github-delivery").map(str::to_owned),
        payload,
    })
}

/// GitHub: `X-Hub-Signature-256: sha256=<hex>`, HMAC of the body. GitHub sends no timestamp;
/// replays are caught by the delivery id instead.
pub fn verify_github(
    headers: &dyn Headers,
    body: &[u8],
    secrets: &[&str],
) -> Result<(), SignatureError> {
    const HEADER: &str = "x-hub-signature-256";
    let keys = raw_keys(secrets)?;
    let value = required(headers, HEADER)?
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed(HEADER))?;
    let signature = hex::decode(value).map_err(|_| SignatureError::Malformed(HEADER))?;
    if any_matches(&keys, &[body], &[signature]) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;
    use crate::providers::ProviderId;
    use crate::webhooks::signatures::test_support::{headers, hex_mac, BODY};

    struct Map(HashMap<&'static str, String>);

    impl Headers for Map {
        fn get(&self, name: &str) -> Option<&str> {
            self.0.get(name).map(String::as_str)
        }
    }

    fn github_target(config: &Value) -> Target<'_> {
        Target {
            provider: ProviderId::Github,
            event_type: Some("issues"),
            event_action: Some("opened"),
            config,
            registered_secret: None,
        }
    }

    fn github_headers(event: &str) -> Map {
        Map(HashMap::from([
            ("x-github-event", event.to_owned()),
            ("x-github-delivery", "d-1".to_owned()),
        ]))
    }

    #[test]
    fn it_should_fire_a_github_event_of_its_type_action_and_repository() {
        let config = json!({"repository": "Octo-Org/Hello"});
        let payload = json!({"action": "opened", "repository": {"full_name": "octo-org/hello"}});
        assert_eq!(
            judge_event(
                &github_target(&config),
                &github_headers("issues"),
                payload.clone()
            ),
            Ok(Verdict::Fire {
                key: Some("d-1".into()),
                payload
            })
        );
    }

    #[test]
    fn it_should_ignore_pings_other_events_actions_and_repositories() {
        let config = json!({"repository": "octo-org/hello"});
        let target = github_target(&config);
        let opened = json!({"action": "opened", "repository": {"full_name": "octo-org/hello"}});
        let closed = json!({"action": "closed", "repository": {"full_name": "octo-org/hello"}});
        let elsewhere = json!({"action": "opened", "repository": {"full_name": "octo-org/other"}});
        let ignored = |headers: &Map, payload: &Value| {
            matches!(
                judge_event(&target, headers, payload.clone()),
                Ok(Verdict::Ignore(_))
            )
        };
        assert!(ignored(&github_headers("ping"), &opened));
        assert!(ignored(&github_headers("push"), &opened));
        assert!(ignored(&github_headers("issues"), &closed));
        assert!(ignored(&github_headers("issues"), &elsewhere));
        let installed = json!({"installation_id": 7});
        let target = github_target(&installed);
        let other_installation = json!({"action": "opened", "installation": {"id": 8}});
        let this_installation = json!({"action": "opened", "installation": {"id": 7}});
        assert!(matches!(
            judge_event(&target, &github_headers("issues"), other_installation),
            Ok(Verdict::Ignore(_))
        ));
        assert!(matches!(
            judge_event(&target, &github_headers("issues"), this_installation),
            Ok(Verdict::Fire { .. })
        ));
    }

    #[test]
    fn it_should_verify_a_signature_over_the_body() {
        let github = headers(&[(
            "x-hub-signature-256",
            format!("sha256={}", hex_mac(b"gh", &[BODY])),
        )]);
        assert_eq!(verify_github(&github, BODY, &["rotated", "gh"]), Ok(()));
        assert_eq!(
            verify_github(&github, b"{}", &["gh"]),
            Err(SignatureError::Mismatch)
        );
    }

    /// The example from GitHub's "Validating webhook deliveries" documentation.
    #[test]
    fn it_should_match_githubs_documented_example() {
        let header = headers(&[(
            "x-hub-signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".into(),
        )]);
        assert_eq!(
            verify_github(&header, b"Hello, World!", &["It's a Secret to Everybody"]),
            Ok(())
        );
    }
}
