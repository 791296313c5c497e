use serde_json::{json, Value};

use super::{redaction, Catalogue, ConfigError, TriggerDefinition, TriggerKind};

fn trigger(provider_id: &str, trigger_id: &str) -> &'static TriggerDefinition {
    Catalogue::builtin()
        .find(provider_id, trigger_id)
        .unwrap_or_else(|| panic!("{provider_id}/{trigger_id} is in the catalogue"))
}

fn accepts(provider_id: &str, trigger_id: &str, config: Value) {
    let result = trigger(provider_id, trigger_id).validate_config(Some(&config));
    assert_eq!(
        result,
        Ok(()),
        "{provider_id}/{trigger_id} refused {config}"
    );
}

/// Asserts the refusal names `field`, and returns it for a look at the reason.
fn refuses(provider_id: &str, trigger_id: &str, config: Value, field: &str) -> ConfigError {
    let error = trigger(provider_id, trigger_id)
        .validate_config(Some(&config))
        .expect_err("the config should be refused");
    assert_eq!(
        error.field, field,
        "{provider_id}/{trigger_id} with {config}: {error}"
    );
    error
}

fn all_triggers() -> impl Iterator<Item = &'static TriggerDefinition> {
    let catalogue = Catalogue::builtin();
    catalogue
        .providers()
        .flat_map(|p| catalogue.triggers_of(p).expect("listed providers exist"))
}

// --- the catalogue as a whole ---

#[test]
fn it_should_hold_only_config_schemas_that_are_valid_draft_2020_12_objects_closed_to_unknown_fields(
) {
    for t in all_triggers() {
        let schema = &t.config_schema;
        let id = format!("{}/{}", t.provider_id, t.trigger_id);
        if let Err(e) = jsonschema::draft202012::meta::validate(schema) {
            panic!("{id}: config schema is not a valid 2020-12 schema: {e}");
        }
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{id}"
        );
        assert_eq!(schema["type"], "object", "{id}");
        assert_eq!(schema["additionalProperties"], false, "{id}");
    }
}

#[test]
fn it_should_give_every_trigger_an_object_as_sample_payload() {
    for t in all_triggers() {
        let sample = &t.sample_payload;
        assert!(
            sample.as_object().is_some_and(|o| !o.is_empty()),
            "{}/{}",
            t.provider_id,
            t.trigger_id
        );
    }
}

#[test]
fn it_should_offer_every_required_provider_with_its_triggers() {
    let expected: &[(&str, &[&str])] = &[
        (
            "github",
            &[
                "on_push",
                "on_pull_request",
                "on_issue_opened",
                "on_release_published",
            ],
        ),
        ("http", &["on_new_records"]),
        ("rss", &["on_new_item"]),
        ("schedule", &["on_schedule"]),
        (
            "slack",
            &["on_message", "on_app_mention", "on_reaction_added"],
        ),
        (
            "stripe",
            &[
                "on_customer_created",
                "on_payment_intent_succeeded",
                "on_invoice_paid",
                "on_checkout_session_completed",
            ],
        ),
        ("typeform", &["on_form_response"]),
        ("webhook", &["on_request"]),
    ];
    let catalogue = Catalogue::builtin();
    let providers: Vec<&str> = catalogue.providers().collect();
    assert_eq!(
        providers,
        expected.iter().map(|(p, _)| *p).collect::<Vec<_>>()
    );
    for (provider, triggers) in expected {
        let found: Vec<&str> = catalogue
            .triggers_of(provider)
            .expect("provider exists")
            .iter()
            .map(|t| t.trigger_id.as_str())
            .collect();
        assert_eq!(&found, triggers, "{provider}");
        for t in catalogue.triggers_of(provider).expect("provider exists") {
            assert_eq!(t.provider_id, *provider);
        }
    }
}

#[test]
fn it_should_give_each_trigger_its_kind_and_provider_event() {
    let expected = [
        ("webhook", "on_request", TriggerKind::Webhook, None, None),
        (
            "schedule",
            "on_schedule",
            TriggerKind::Scheduled,
            None,
            None,
        ),
        (
            "stripe",
            "on_customer_created",
            TriggerKind::Webhook,
            Some("customer.created"),
            None,
        ),
        (
            "stripe",
            "on_payment_intent_succeeded",
            TriggerKind::Webhook,
            Some("payment_intent.succeeded"),
            None,
        ),
        (
            "stripe",
            "on_invoice_paid",
            TriggerKind::Webhook,
            Some("invoice.paid"),
            None,
        ),
        (
            "stripe",
            "on_checkout_session_completed",
            TriggerKind::Webhook,
            Some("checkout.session.completed"),
            None,
        ),
        (
            "github",
            "on_push",
            TriggerKind::Webhook,
            Some("push"),
            None,
        ),
        (
            "github",
            "on_pull_request",
            TriggerKind::Webhook,
            Some("pull_request"),
            None,
        ),
        (
            "github",
            "on_issue_opened",
            TriggerKind::Webhook,
            Some("issues"),
            Some("opened"),
        ),
        (
            "github",
            "on_release_published",
            TriggerKind::Webhook,
            Some("release"),
            Some("published"),
        ),
        (
            "slack",
            "on_message",
            TriggerKind::Webhook,
            Some("message"),
            None,
        ),
        (
            "slack",
            "on_app_mention",
            TriggerKind::Webhook,
            Some("app_mention"),
            None,
        ),
        (
            "slack",
            "on_reaction_added",
            TriggerKind::Webhook,
            Some("reaction_added"),
            None,
        ),
        (
            "typeform",
            "on_form_response",
            TriggerKind::Webhook,
            Some("form_response"),
            None,
        ),
        ("rss", "on_new_item", TriggerKind::Polling, None, None),
        ("http", "on_new_records", TriggerKind::Polling, None, None),
    ];
    for (provider, id, kind, event_type, event_action) in expected {
        let t = trigger(provider, id);
        assert_eq!(t.kind, kind, "{provider}/{id}");
        assert_eq!(t.event_type.as_deref(), event_type, "{provider}/{id}");
        assert_eq!(t.event_action.as_deref(), event_action, "{provider}/{id}");
    }
}

#[test]
fn it_should_show_in_each_sample_the_event_the_trigger_matches() {
    for t in all_triggers() {
        let sample = &t.sample_payload;
        let announced = match t.provider_id.as_str() {
            "stripe" => &sample["type"],
            "slack" => &sample["event"]["type"],
            "typeform" => &sample["event_type"],
            // GitHub names the event in a header; the payload carries only the action.
            "github" => {
                if let Some(action) = &t.event_action {
                    assert_eq!(&sample["action"], action.as_str(), "{}", t.trigger_id);
                }
                continue;
            }
            _ => continue,
        };
        let event_type = t.event_type.as_deref().expect("provider has event names");
        assert_eq!(announced, event_type, "{}/{}", t.provider_id, t.trigger_id);
    }
}

#[test]
fn it_should_answer_none_for_an_unknown_provider_or_trigger() {
    let catalogue = Catalogue::builtin();
    assert!(catalogue.triggers_of("hubspot").is_none());
    assert!(catalogue.find("hubspot", "on_push").is_none());
    assert!(catalogue.find("github", "on_fork").is_none());
    assert!(catalogue.find("github", "on_push").is_some());
}

#[test]
fn it_should_serialize_a_definition_as_the_api_shows_it() {
    let shown = serde_json::to_value(trigger("github", "on_issue_opened")).expect("serializes");
    let mut keys: Vec<&str> = shown
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "config_schema",
            "description",
            "event_action",
            "event_type",
            "kind",
            "name",
            "provider_id",
            "sample_payload",
            "trigger_id"
        ]
    );
    assert_eq!(shown["kind"], "webhook");
    assert_eq!(shown["event_type"], "issues");
    assert_eq!(shown["event_action"], "opened");
    assert_eq!(
        serde_json::to_value(trigger("schedule", "on_schedule")).expect("serializes")["kind"],
        "scheduled"
    );
    assert_eq!(
        serde_json::to_value(trigger("rss", "on_new_item")).expect("serializes")["kind"],
        "polling"
    );
}

#[test]
fn it_should_mark_every_signing_secret_write_only() {
    for t in all_triggers() {
        if let Some(secret) = t.config_schema["properties"].get("signing_secret") {
            assert_eq!(
                secret["writeOnly"], true,
                "{}/{}",
                t.provider_id, t.trigger_id
            );
        }
    }
}

// --- the generic webhook ---

#[test]
fn it_should_accept_a_webhook_with_no_config_at_all() {
    let t = trigger("webhook", "on_request");
    assert_eq!(t.validate_config(None), Ok(()));
    assert_eq!(t.validate_config(Some(&Value::Null)), Ok(()));
    assert_eq!(t.validate_config(Some(&json!({}))), Ok(()));
}

#[test]
fn it_should_accept_a_webhook_signing_secret_alone_or_as_a_rotation_list() {
    accepts(
        "webhook",
        "on_request",
        json!({ "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }),
    );
    accepts(
        "webhook",
        "on_request",
        json!({ "signing_secret": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_c2VjcmV0Cg=="] }),
    );
}

#[test]
fn it_should_refuse_a_webhook_signing_secret_without_the_whsec_prefix_and_not_echo_it() {
    let error = refuses(
        "webhook",
        "on_request",
        json!({ "signing_secret": "sk_live_do_not_echo" }),
        "trigger_config.signing_secret",
    );
    assert!(!error.reason.contains("sk_live_do_not_echo"), "{error}");
    assert!(
        !error.to_string().contains("sk_live_do_not_echo"),
        "{error}"
    );
}

#[test]
fn it_should_name_the_bad_entry_in_a_list_of_signing_secrets() {
    refuses(
        "webhook",
        "on_request",
        json!({ "signing_secret": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "oops"] }),
        "trigger_config.signing_secret[1]",
    );
}

#[test]
fn it_should_refuse_an_empty_list_of_signing_secrets() {
    let error = refuses(
        "webhook",
        "on_request",
        json!({ "signing_secret": [] }),
        "trigger_config.signing_secret",
    );
    assert_eq!(error.reason, "must not be empty");
}

#[test]
fn it_should_refuse_a_signing_secret_of_the_wrong_type() {
    let error = refuses(
        "webhook",
        "on_request",
        json!({ "signing_secret": 42 }),
        "trigger_config.signing_secret",
    );
    assert_eq!(error.reason, "must be a string or an array");
}

#[test]
fn it_should_refuse_an_unknown_field_by_its_name() {
    let error = refuses(
        "webhook",
        "on_request",
        json!({ "signing_secrte": "whsec_abc" }),
        "trigger_config.signing_secrte",
    );
    assert_eq!(error.reason, "is not a known field");
}

#[test]
fn it_should_refuse_a_config_that_is_not_an_object() {
    let error = refuses(
        "webhook",
        "on_request",
        json!(["whsec_abc"]),
        "trigger_config",
    );
    assert_eq!(error.reason, "must be an object");
    assert_eq!(error.to_string(), "trigger_config must be an object");
}

// --- schedules ---

#[test]
fn it_should_accept_each_of_the_three_ways_to_schedule() {
    accepts(
        "schedule",
        "on_schedule",
        json!({ "cron": "0 9 * * MON-FRI" }),
    );
    accepts(
        "schedule",
        "on_schedule",
        json!({ "cron": "*/15 0-6 1,15 * ?", "timezone": "Europe/Paris" }),
    );
    accepts("schedule", "on_schedule", json!({ "interval_seconds": 1 }));
    accepts(
        "schedule",
        "on_schedule",
        json!({ "at": "2025-03-02T10:30:00+01:00" }),
    );
}

#[test]
fn it_should_refuse_a_schedule_with_both_cron_and_interval() {
    let error = refuses(
        "schedule",
        "on_schedule",
        json!({ "cron": "0 9 * * *", "interval_seconds": 60 }),
        "trigger_config",
    );
    assert_eq!(
        error.reason,
        "must set exactly one of cron, interval_seconds, at"
    );
}

#[test]
fn it_should_refuse_a_schedule_that_says_nothing_about_when() {
    let t = trigger("schedule", "on_schedule");
    for config in [None, Some(&Value::Null), Some(&json!({}))] {
        let error = t.validate_config(config).expect_err("refused");
        assert_eq!(error.field, "trigger_config");
        assert_eq!(
            error.reason,
            "must set exactly one of cron, interval_seconds, at"
        );
    }
}

#[test]
fn it_should_refuse_a_cron_expression_without_five_fields() {
    refuses(
        "schedule",
        "on_schedule",
        json!({ "cron": "0 9 * *" }),
        "trigger_config.cron",
    );
    refuses(
        "schedule",
        "on_schedule",
        json!({ "cron": "0 0 9 * * *" }),
        "trigger_config.cron",
    );
    refuses(
        "schedule",
        "on_schedule",
        json!({ "cron": "0 9 * * MON;" }),
        "trigger_config.cron",
    );
}

#[test]
fn it_should_refuse_a_cron_expression_the_scheduler_cannot_read() {
    let error = refuses(
        "schedule",
        "on_schedule",
        json!({ "cron": "60 9 * * *" }),
        "trigger_config.cron",
    );
    assert_eq!(error.reason, "minute 60 is out of range 0-59");
    let error = refuses(
        "schedule",
        "on_schedule",
        json!({ "cron": "0 9 L * *", "timezone": "Europe/Paris" }),
        "trigger_config.cron",
    );
    assert_eq!(error.reason, "`L` in day-of-month is not supported");
    let error = refuses(
        "schedule",
        "on_schedule",
        json!({ "cron": "0 9 * * MON#2" }),
        "trigger_config.cron",
    );
    assert_eq!(error.reason, "`#` in day-of-week is not supported");
}

#[test]
fn it_should_refuse_a_time_zone_that_does_not_exist() {
    let error = refuses(
        "schedule",
        "on_schedule",
        json!({ "cron": "0 9 * * *", "timezone": "Europe/Atlantis" }),
        "trigger_config.timezone",
    );
    assert_eq!(
        error.reason,
        "must be an IANA time zone name such as Europe/Paris"
    );
}

#[test]
fn it_should_refuse_a_time_zone_without_a_cron_expression() {
    let error = refuses(
        "schedule",
        "on_schedule",
        json!({ "interval_seconds": 60, "timezone": "UTC" }),
        "trigger_config.timezone",
    );
    assert_eq!(error.reason, "is only allowed together with cron");
}

#[test]
fn it_should_refuse_an_interval_below_one_second_or_not_an_integer() {
    let error = refuses(
        "schedule",
        "on_schedule",
        json!({ "interval_seconds": 0 }),
        "trigger_config.interval_seconds",
    );
    assert_eq!(error.reason, "must be at least 1");
    let error = refuses(
        "schedule",
        "on_schedule",
        json!({ "interval_seconds": "60" }),
        "trigger_config.interval_seconds",
    );
    assert_eq!(error.reason, "must be an integer");
    refuses(
        "schedule",
        "on_schedule",
        json!({ "interval_seconds": 1.5 }),
        "trigger_config.interval_seconds",
    );
}

#[test]
fn it_should_refuse_a_one_off_time_that_is_not_rfc_3339() {
    refuses(
        "schedule",
        "on_schedule",
        json!({ "at": "next tuesday" }),
        "trigger_config.at",
    );
    refuses(
        "schedule",
        "on_schedule",
        json!({ "at": "2025-03-02 10:30" }),
        "trigger_config.at",
    );
}

// --- Stripe ---

/// Without a secret the engine registers the endpoint (and the API asks for a connection):
/// the config itself is then complete.
#[test]
fn it_should_accept_a_stripe_trigger_without_a_signing_secret() {
    for t in Catalogue::builtin()
        .triggers_of("stripe")
        .expect("stripe exists")
    {
        for config in [None, Some(json!({}))] {
            assert_eq!(
                t.validate_config(config.as_ref()),
                Ok(()),
                "{}",
                t.trigger_id
            );
        }
    }
}

#[test]
fn it_should_accept_a_stripe_endpoint_secret_alone_or_while_rolling_it() {
    accepts(
        "stripe",
        "on_customer_created",
        json!({ "signing_secret": "whsec_3kQ9xYzAbCdEfGhIjKlMnOpQrStUvWx" }),
    );
    accepts(
        "stripe",
        "on_invoice_paid",
        json!({ "signing_secret": ["whsec_new0000000000000000000000000", "whsec_old1111111111111111111111111"] }),
    );
}

#[test]
fn it_should_refuse_a_stripe_secret_that_is_an_api_key() {
    refuses(
        "stripe",
        "on_payment_intent_succeeded",
        json!({ "signing_secret": "sk_test_4eC39HqLyjWDarjtT1zdp7dc" }),
        "trigger_config.signing_secret",
    );
}

// --- GitHub ---

#[test]
fn it_should_accept_a_github_secret_of_the_users_choosing_and_a_repository() {
    accepts(
        "github",
        "on_push",
        json!({ "signing_secret": "correct horse battery staple" }),
    );
    accepts(
        "github",
        "on_pull_request",
        json!({ "signing_secret": ["new-secret", "old-secret"], "repository": "octo-org/hello-world.js" }),
    );
}

#[test]
fn it_should_accept_a_github_trigger_without_a_signing_secret() {
    accepts(
        "github",
        "on_release_published",
        json!({ "repository": "octo-org/hello-world" }),
    );
}

#[test]
fn it_should_refuse_a_repository_that_is_not_owner_slash_name() {
    for repository in [
        "hello-world",
        "octo-org/hello/world",
        "-octo/hello",
        "octo org/hello",
        "/hello",
    ] {
        let error = refuses(
            "github",
            "on_issue_opened",
            json!({ "signing_secret": "s3cret", "repository": repository }),
            "trigger_config.repository",
        );
        assert!(
            error.reason.starts_with("must match the pattern"),
            "{error}"
        );
    }
}

// --- Slack ---

#[test]
fn it_should_accept_a_slack_trigger_with_or_without_filters() {
    let t = trigger("slack", "on_message");
    assert_eq!(t.validate_config(None), Ok(()));
    accepts(
        "slack",
        "on_app_mention",
        json!({ "team_id": "T05KQ2X3Y4Z", "channel_id": "C07H2UF4K9A" }),
    );
}

#[test]
fn it_should_refuse_a_slack_channel_id_that_is_not_a_string() {
    let error = refuses(
        "slack",
        "on_reaction_added",
        json!({ "channel_id": 42 }),
        "trigger_config.channel_id",
    );
    assert_eq!(error.reason, "must be a string");
}

// --- Typeform ---

#[test]
fn it_should_refuse_a_typeform_trigger_without_a_signing_secret() {
    refuses(
        "typeform",
        "on_form_response",
        json!({ "form_id": "lT4Z3j" }),
        "trigger_config.signing_secret",
    );
    accepts(
        "typeform",
        "on_form_response",
        json!({ "form_id": "lT4Z3j", "signing_secret": "my-typeform-secret" }),
    );
}

#[test]
fn it_should_refuse_a_typeform_trigger_without_a_well_formed_form_id() {
    refuses(
        "typeform",
        "on_form_response",
        json!({ "signing_secret": "my-typeform-secret" }),
        "trigger_config.form_id",
    );
    // The id becomes a segment of Typeform's API path: nothing that could step out of it.
    for form_id in ["", "..", "a/b", "lT4Z3j?x=1"] {
        refuses(
            "typeform",
            "on_form_response",
            json!({ "form_id": form_id, "signing_secret": "my-typeform-secret" }),
            "trigger_config.form_id",
        );
    }
}

// --- polling: RSS and HTTP ---

#[test]
fn it_should_accept_a_polling_frequency_as_digits_or_an_integer() {
    for frequency in [json!("10000"), json!(10000), json!(1000)] {
        accepts(
            "rss",
            "on_new_item",
            json!({ "feed_url": "https://blog.example.com/feed.xml", "polling_frequency": frequency }),
        );
    }
}

#[test]
fn it_should_refuse_a_polling_frequency_below_one_second() {
    let error = refuses(
        "rss",
        "on_new_item",
        json!({ "feed_url": "https://blog.example.com/feed.xml", "polling_frequency": 999 }),
        "trigger_config.polling_frequency",
    );
    assert_eq!(error.reason, "must be at least 1000");
    for frequency in ["999", "0999", "10s", ""] {
        refuses(
            "http",
            "on_new_records",
            json!({ "url": "https://api.example.com/tickets", "id_field": "id", "polling_frequency": frequency }),
            "trigger_config.polling_frequency",
        );
    }
}

#[test]
fn it_should_refuse_a_feed_that_is_not_an_http_url() {
    refuses("rss", "on_new_item", json!({}), "trigger_config.feed_url");
    refuses(
        "rss",
        "on_new_item",
        json!({ "feed_url": "ftp://example.com/feed.xml" }),
        "trigger_config.feed_url",
    );
    refuses(
        "rss",
        "on_new_item",
        json!({ "feed_url": "feed.xml" }),
        "trigger_config.feed_url",
    );
    refuses(
        "rss",
        "on_new_item",
        json!({ "feed_url": "https://blog.example.com/feed.xml", "since": "yesterday" }),
        "trigger_config.since",
    );
}

#[test]
fn it_should_accept_a_full_http_polling_config() {
    accepts(
        "http",
        "on_new_records",
        json!({
            "url": "https://api.example.com/v1/tickets?status=open",
            "items_path": "/data",
            "id_field": "id",
            "timestamp_field": "updated_at",
            "header_name": "X-Api-Key",
            "polling_frequency": "10000"
        }),
    );
    accepts(
        "http",
        "on_new_records",
        json!({ "url": "http://localhost:8080/items", "id_field": "id", "items_path": "" }),
    );
}

#[test]
fn it_should_refuse_an_http_polling_config_missing_its_id_field() {
    let error = refuses(
        "http",
        "on_new_records",
        json!({ "url": "https://api.example.com/tickets" }),
        "trigger_config.id_field",
    );
    assert_eq!(error.reason, "is required");
}

#[test]
fn it_should_refuse_an_items_path_that_is_not_a_json_pointer_and_a_header_that_is_not_a_name() {
    let base = json!({ "url": "https://api.example.com/tickets", "id_field": "id" });
    let with = |field: &str, value: &str| {
        let mut config = base.clone();
        config[field] = json!(value);
        config
    };
    refuses(
        "http",
        "on_new_records",
        with("items_path", "data"),
        "trigger_config.items_path",
    );
    refuses(
        "http",
        "on_new_records",
        with("header_name", "X Api Key"),
        "trigger_config.header_name",
    );
    refuses(
        "http",
        "on_new_records",
        with("header_name", "X-Api-Key:"),
        "trigger_config.header_name",
    );
}

// --- redaction ---

#[test]
fn it_should_redact_a_signing_secret_given_as_a_string() {
    let t = trigger("github", "on_push");
    let config = json!({ "signing_secret": "s3cret", "repository": "octo-org/hello-world" });
    assert_eq!(
        t.redact(&config),
        json!({ "repository": "octo-org/hello-world" })
    );
}

#[test]
fn it_should_redact_a_signing_secret_given_as_a_list() {
    let t = trigger("stripe", "on_invoice_paid");
    let config = json!({ "signing_secret": ["whsec_new", "whsec_old"] });
    assert_eq!(t.redact(&config), json!({}));
    let t = trigger("webhook", "on_request");
    assert_eq!(t.redact(&config), json!({}));
}

#[test]
fn it_should_keep_every_field_that_is_not_write_only() {
    let config = json!({
        "url": "https://api.example.com/tickets",
        "items_path": "/data",
        "id_field": "id",
        "timestamp_field": "updated_at",
        "header_name": "Authorization",
        "polling_frequency": "10000"
    });
    assert_eq!(trigger("http", "on_new_records").redact(&config), config);
    let config = json!({ "cron": "0 9 * * *", "timezone": "Europe/Paris" });
    assert_eq!(trigger("schedule", "on_schedule").redact(&config), config);
    let typeform = json!({ "form_id": "lT4Z3j", "signing_secret": "my-typeform-secret" });
    assert_eq!(
        trigger("typeform", "on_form_response").redact(&typeform),
        json!({ "form_id": "lT4Z3j" })
    );
}

#[test]
fn it_should_keep_fields_the_schema_does_not_know_and_configs_that_are_not_objects() {
    let t = trigger("webhook", "on_request");
    let legacy = json!({ "signing_secret": "whsec_abc", "inbox_id": "ENTERPRISE_INBOX" });
    assert_eq!(t.redact(&legacy), json!({ "inbox_id": "ENTERPRISE_INBOX" }));
    assert_eq!(t.redact(&Value::Null), Value::Null);
}

#[test]
fn it_should_redact_write_only_fields_nested_in_objects_arrays_and_combinators() {
    let schema = json!({
        "type": "object",
        "properties": {
            "auth": {
                "type": "object",
                "properties": {
                    "user": { "type": "string" },
                    "password": { "type": "string", "writeOnly": true }
                }
            },
            "endpoints": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": { "url": { "type": "string" } },
                    "additionalProperties": { "type": "string", "writeOnly": true }
                }
            }
        },
        "oneOf": [
            { "properties": { "token": { "writeOnly": true } }, "required": ["token"] },
            { "required": ["auth"] }
        ]
    });
    let config = json!({
        "auth": { "user": "ada", "password": "hunter2" },
        "endpoints": [{ "url": "https://a.example.com", "key": "k1" }, { "url": "https://b.example.com" }],
        "token": "t0ken"
    });
    assert_eq!(
        redaction::redact(&schema, &config),
        json!({
            "auth": { "user": "ada" },
            "endpoints": [{ "url": "https://a.example.com" }, { "url": "https://b.example.com" }]
        })
    );
}

// --- filters (added to every trigger fired from outside) ---

#[test]
fn it_should_offer_a_filter_on_every_webhook_and_polling_trigger_and_on_no_schedule() {
    for t in all_triggers() {
        let offered = t.config_schema["properties"].get("filter").is_some();
        assert_eq!(
            offered,
            matches!(t.kind, TriggerKind::Webhook | TriggerKind::Polling),
            "{}/{}",
            t.provider_id,
            t.trigger_id
        );
    }
}

#[test]
fn it_should_accept_a_filter_string_and_refuse_one_too_long_or_of_another_type() {
    let stripe = |filter: Value| json!({"signing_secret": "whsec_abc", "filter": filter});
    accepts(
        "stripe",
        "on_customer_created",
        stripe(json!("payload.livemode")),
    );
    accepts(
        "rss",
        "on_new_item",
        json!({"feed_url": "https://example.com/feed.xml", "filter": "true"}),
    );
    let long = refuses(
        "stripe",
        "on_customer_created",
        stripe(json!("x".repeat(crate::filter::MAX_LENGTH + 1))),
        "trigger_config.filter",
    );
    assert_eq!(long.reason, "must be at most 4096 characters long");
    let empty = refuses(
        "webhook",
        "on_request",
        json!({"filter": ""}),
        "trigger_config.filter",
    );
    assert_eq!(empty.reason, "must not be empty");
    refuses(
        "webhook",
        "on_request",
        json!({"filter": 1}),
        "trigger_config.filter",
    );
    let schedule = refuses(
        "schedule",
        "on_schedule",
        json!({"cron": "* * * * *", "filter": "true"}),
        "trigger_config.filter",
    );
    assert_eq!(schedule.reason, "is not a known field");
}
