//! What an inbound delivery means for one trigger: verify it as its provider signs, then decide
//! whether it fires the trigger, with which delivery key (the deduplication key) and payload.
//!
//! Pure: the caller passes the headers, the raw body, the trigger's definition and config, and
//! the time. Nothing here touches the store, so the handler decides before it writes anything and
//! a forged or foreign delivery costs no write.

use serde_json::Value;

use super::signatures::{self, Headers, SignatureError};

/// What a delivery asks of a trigger.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Fire once per `key`: a repeated delivery of the same key fires nothing more.
    Fire { key: Option<String>, payload: Value },
    /// Authentic, but not for this trigger (another event type, repository, channel...) or a
    /// provider's probe (GitHub's `ping`): acknowledge without firing.
    Ignore(&'static str),
    /// Slack's `url_verification`: answer with the challenge.
    Challenge(String),
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
}

/// The trigger a delivery is judged against.
pub struct Target<'a> {
    pub provider_id: &'a str,
    pub event_type: Option<&'a str>,
    pub event_action: Option<&'a str>,
    /// The trigger's `trigger_config` (JSON `null` when it has none).
    pub config: &'a Value,
}

impl Target<'_> {
    /// `signing_secret`: a string, or a list of strings while a secret is being rotated.
    pub fn secrets(&self) -> Vec<&str> {
        match self.config.get("signing_secret") {
            Some(Value::String(secret)) => vec![secret.as_str()],
            Some(Value::Array(secrets)) => secrets.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    fn narrows(&self, field: &str, actual: Option<&str>) -> bool {
        match self.config.get(field).and_then(Value::as_str) {
            None => true,
            Some(wanted) => actual.is_some_and(|actual| actual.eq_ignore_ascii_case(wanted)),
        }
    }
}

/// Verifies and interprets a delivery to a trigger's own URL.
pub fn judge(
    target: &Target<'_>,
    headers: &impl Headers,
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Verdict, Refusal> {
    let secrets = target.secrets();
    match target.provider_id {
        "stripe" => {
            signatures::verify_stripe(headers, body, &secrets, now)?;
            stripe(target, &json(body)?)
        }
        "github" => {
            signatures::verify_github(headers, body, &secrets)?;
            github(target, headers, json(body)?)
        }
        "typeform" => {
            signatures::verify_typeform(headers, body, &secrets)?;
            typeform(target, json(body)?)
        }
        "slack" => {
            signatures::verify_slack(headers, body, &secrets, now)?;
            slack(target, json(body)?)
        }
        _ if secrets.is_empty() => Ok(Verdict::Fire {
            key: idempotency_key(headers),
            payload: any_body(body)?,
        }),
        _ => {
            signatures::verify_standard(headers, body, &secrets, now)?;
            Ok(Verdict::Fire {
                key: headers.get("webhook-id").map(str::to_owned),
                payload: any_body(body)?,
            })
        }
    }
}

/// A Stripe event: fires when its `type` is the trigger's; keyed by the event id, which Stripe
/// keeps across its retries.
fn stripe(target: &Target<'_>, event: &Value) -> Result<Verdict, Refusal> {
    if event.get("type").and_then(Value::as_str) != target.event_type {
        return Ok(Verdict::Ignore("another event type"));
    }
    Ok(Verdict::Fire {
        key: text(event, "/id"),
        payload: event.clone(),
    })
}

/// A GitHub delivery: the event is in `X-GitHub-Event`, the action in the payload, the delivery
/// id (the same on a redelivery) in `X-GitHub-Delivery`.
pub fn github(
    target: &Target<'_>,
    headers: &impl Headers,
    payload: Value,
) -> Result<Verdict, Refusal> {
    let event = headers.get("x-github-event");
    if event == Some("ping") {
        return Ok(Verdict::Ignore("ping"));
    }
    if event != target.event_type {
        return Ok(Verdict::Ignore("another event type"));
    }
    if target.event_action.is_some()
        && payload.get("action").and_then(Value::as_str) != target.event_action
    {
        return Ok(Verdict::Ignore("another action"));
    }
    if !target.narrows(
        "repository",
        payload
            .pointer("/repository/full_name")
            .and_then(Value::as_str),
    ) {
        return Ok(Verdict::Ignore("another repository"));
    }
    let installation = target.config.get("installation_id").and_then(Value::as_u64);
    if installation.is_some()
        && payload.pointer("/installation/id").and_then(Value::as_u64) != installation
    {
        return Ok(Verdict::Ignore("another installation"));
    }
    Ok(Verdict::Fire {
        key: headers.get("x-github-delivery").map(str::to_owned),
        payload,
    })
}

/// A Typeform response: keyed by the response token, which a resent delivery keeps.
fn typeform(target: &Target<'_>, payload: Value) -> Result<Verdict, Refusal> {
    if payload.get("event_type").and_then(Value::as_str) != target.event_type {
        return Ok(Verdict::Ignore("another event type"));
    }
    if !target.narrows(
        "form_id",
        payload
            .pointer("/form_response/form_id")
            .and_then(Value::as_str),
    ) {
        return Ok(Verdict::Ignore("another form"));
    }
    Ok(Verdict::Fire {
        key: text(&payload, "/form_response/token").or_else(|| text(&payload, "/event_id")),
        payload,
    })
}

/// A Slack Events API request: the URL check, or an `event_callback` keyed by its `event_id`
/// (the same on Slack's retries).
pub fn slack(target: &Target<'_>, payload: Value) -> Result<Verdict, Refusal> {
    match payload.get("type").and_then(Value::as_str) {
        Some("url_verification") => {
            let challenge = text(&payload, "/challenge")
                .ok_or_else(|| Refusal::Malformed("url_verification without a challenge".into()))?;
            return Ok(Verdict::Challenge(challenge));
        }
        Some("event_callback") => {}
        _ => return Ok(Verdict::Ignore("not an event callback")),
    }
    if payload.pointer("/event/type").and_then(Value::as_str) != target.event_type {
        return Ok(Verdict::Ignore("another event type"));
    }
    if !target.narrows("team_id", payload.get("team_id").and_then(Value::as_str)) {
        return Ok(Verdict::Ignore("another workspace"));
    }
    if !target.narrows(
        "channel_id",
        payload.pointer("/event/channel").and_then(Value::as_str),
    ) {
        return Ok(Verdict::Ignore("another channel"));
    }
    Ok(Verdict::Fire {
        key: text(&payload, "/event_id"),
        payload,
    })
}

/// The `Idempotency-Key` a sender without delivery ids may set.
pub fn idempotency_key(headers: &impl Headers) -> Option<String> {
    headers
        .get("idempotency-key")
        .map(str::trim)
        .filter(|key| !key.is_empty() && key.len() <= 255)
        .map(str::to_owned)
}

fn text(value: &Value, pointer: &str) -> Option<String> {
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
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    struct Map(HashMap<&'static str, String>);

    impl Headers for Map {
        fn get(&self, name: &str) -> Option<&str> {
            self.0.get(name).map(String::as_str)
        }
    }

    fn github_target(config: &Value) -> Target<'_> {
        Target {
            provider_id: "github",
            event_type: Some("issues"),
            event_action: Some("opened"),
            config,
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
            github(
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
                github(&target, headers, payload.clone()),
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
            github(&target, &github_headers("issues"), other_installation),
            Ok(Verdict::Ignore(_))
        ));
        assert!(matches!(
            github(&target, &github_headers("issues"), this_installation),
            Ok(Verdict::Fire { .. })
        ));
    }

    #[test]
    fn it_should_answer_slacks_challenge_and_narrow_by_team_and_channel() {
        let config = json!({"team_id": "T1", "channel_id": "C1"});
        let target = Target {
            provider_id: "slack",
            event_type: Some("app_mention"),
            event_action: None,
            config: &config,
        };
        assert_eq!(
            slack(
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
            slack(&target, event("T1", "C1")),
            Ok(Verdict::Fire { key: Some(key), .. }) if key == "Ev1"
        ));
        assert!(matches!(
            slack(&target, event("T2", "C1")),
            Ok(Verdict::Ignore(_))
        ));
        assert!(matches!(
            slack(&target, event("T1", "C2")),
            Ok(Verdict::Ignore(_))
        ));
    }

    #[test]
    fn it_should_take_a_generic_body_as_json_or_text() {
        assert_eq!(any_body(br#"{"a":1}"#), Ok(json!({"a": 1})));
        assert_eq!(any_body(b"plain"), Ok(json!("plain")));
        assert!(any_body(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn it_should_read_one_secret_or_several() {
        let one = json!({"signing_secret": "a"});
        let many = json!({"signing_secret": ["a", "b"]});
        let none = Value::Null;
        let target = |config| Target {
            provider_id: "stripe",
            event_type: None,
            event_action: None,
            config,
        };
        assert_eq!(target(&one).secrets(), vec!["a"]);
        assert_eq!(target(&many).secrets(), vec!["a", "b"]);
        assert!(target(&none).secrets().is_empty());
    }
}
