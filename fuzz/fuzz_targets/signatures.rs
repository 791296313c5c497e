//! The signature headers of inbound webhooks (src/webhooks/signatures.rs and each provider's
//! src/providers/<name>/inbound.rs): Stripe, Slack,
//! Standard Webhooks, GitHub and Typeform, as a provider (or anyone) may send them.
//!
//! Input: UTF-8 lines. Line 0 is `Stripe-Signature`, 1 `X-Slack-Request-Timestamp`, 2
//! `X-Slack-Signature`, 3 `webhook-id`, 4 `webhook-timestamp`, 5 `webhook-signature`, 6
//! `X-Hub-Signature-256`, 7 `Typeform-Signature`; the rest is the body. An empty line is a header
//! that is absent. Every verifier must answer (never panic); and a delivery signed the Standard
//! Webhooks way with the fuzzed id and body must verify.
#![no_main]

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use trigger_engine::providers::github::inbound::verify_github;
use trigger_engine::providers::slack::inbound::verify_slack;
use trigger_engine::providers::stripe::inbound::verify_stripe;
use trigger_engine::providers::typeform::inbound::verify_typeform;
use trigger_engine::webhooks::signatures::{sign_standard, verify_standard, Headers};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

struct Fuzzed<'a>(Vec<(&'static str, &'a str)>);

impl Headers for Fuzzed<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, value)| *value)
    }
}

const NAMES: [&str; 8] = [
    "stripe-signature",
    "x-slack-request-timestamp",
    "x-slack-signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-hub-signature-256",
    "typeform-signature",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.splitn(NAMES.len() + 1, '\n');
    let headers = Fuzzed(
        NAMES
            .iter()
            .filter_map(|name| Some((*name, lines.next()?)))
            .filter(|(_, value)| !value.is_empty())
            .collect(),
    );
    let body = lines.next().unwrap_or("").as_bytes();
    let now = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap();
    let secrets = [SECRET, "a second secret"];

    let _ = verify_stripe(&headers, body, &secrets, now);
    let _ = verify_slack(&headers, body, &secrets, now);
    let _ = verify_standard(&headers, body, &secrets[..1], now);
    let _ = verify_github(&headers, body, &secrets);
    let _ = verify_typeform(&headers, body, &secrets);

    // What we sign, we verify: whatever the id and body.
    let id = headers.get("webhook-id").unwrap_or("msg_1");
    let stamp = now.timestamp().to_string();
    let signature = sign_standard(SECRET, id, now.timestamp(), body).expect("the secret is valid");
    let signed = Fuzzed(vec![
        ("webhook-id", id),
        ("webhook-timestamp", &stamp),
        ("webhook-signature", &signature),
    ]);
    assert_eq!(verify_standard(&signed, body, &[SECRET], now), Ok(()));
});
