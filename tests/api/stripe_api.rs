//! The Stripe webhook endpoints client against the fake Stripe, over real HTTP: what it
//! registers, how it finds a trigger's endpoints across pages, and how it reports refusals.

use std::collections::BTreeMap;

use reqwest::Url;
use trigger_engine::identity::Secret;
use trigger_engine::providers::stripe::api::{Client, StripeError};
use uuid::Uuid;

use crate::fake_stripe::{FakeStripe, STRIPE_KEY, TRIGGER_ID_METADATA};

const EVENT: &str = "customer.created";

fn client(stripe: &FakeStripe) -> Client {
    Client::new(stripe.url.parse().unwrap())
}

fn key() -> Secret {
    Secret::new(STRIPE_KEY)
}

fn delivery_url(trigger_id: Uuid) -> Url {
    format!("https://engine.example.com/v1/webhooks/{trigger_id}")
        .parse()
        .unwrap()
}

/// An address nobody listens on: bound, then released.
fn closed_port() -> Url {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url.parse().unwrap()
}

#[tokio::test]
async fn it_should_create_find_and_delete_a_triggers_endpoint() {
    let stripe = FakeStripe::start().await;
    let client = client(&stripe);
    let trigger_id = Uuid::new_v4();

    let created = client
        .create_endpoint(&key(), &delivery_url(trigger_id), EVENT, trigger_id)
        .await
        .unwrap();
    let endpoints = stripe.endpoints();
    assert_eq!(endpoints.len(), 1);
    let endpoint = &endpoints[0];
    assert_eq!(endpoint.id, created.id);
    assert!(created.id.starts_with("we_"), "{}", created.id);
    assert_eq!(endpoint.url, delivery_url(trigger_id).as_str());
    assert_eq!(endpoint.enabled_events, [EVENT]);
    assert_eq!(
        endpoint.metadata,
        BTreeMap::from([(TRIGGER_ID_METADATA.to_owned(), trigger_id.to_string())])
    );
    assert_eq!(
        endpoint.description.as_deref(),
        Some(format!("trigger-engine trigger {trigger_id}").as_str())
    );
    assert_eq!(created.secret.expose(), endpoint.secret);
    assert!(endpoint.secret.starts_with("whsec_"));

    assert_eq!(
        client.endpoints_of(&key(), trigger_id).await.unwrap(),
        std::slice::from_ref(&created.id)
    );
    assert_eq!(
        client.endpoints_of(&key(), Uuid::new_v4()).await.unwrap(),
        Vec::<String>::new()
    );

    client.delete_endpoint(&key(), &created.id).await.unwrap();
    assert!(stripe.endpoints().is_empty());
    assert!(client
        .endpoints_of(&key(), trigger_id)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn it_should_find_a_triggers_endpoints_on_every_page() {
    let stripe = FakeStripe::start().await;
    let client = client(&stripe);
    let (ours, theirs) = (Uuid::new_v4(), Uuid::new_v4());
    for trigger_id in [ours, theirs, ours, theirs, ours] {
        client
            .create_endpoint(&key(), &delivery_url(trigger_id), EVENT, trigger_id)
            .await
            .unwrap();
    }
    stripe.page_size(2);

    let mut found = client.endpoints_of(&key(), ours).await.unwrap();
    found.sort();
    let mut expected: Vec<String> = stripe
        .endpoints_of(ours)
        .into_iter()
        .map(|e| e.id)
        .collect();
    expected.sort();
    assert_eq!(found, expected);
    assert_eq!(found.len(), 3);

    // Five endpoints, two a page: three pages, each after the last id of the one before.
    let lists: Vec<String> = stripe
        .calls()
        .into_iter()
        .filter(|call| call.method == "GET")
        .map(|call| call.path)
        .collect();
    assert_eq!(lists.len(), 3, "{lists:?}");
    assert_eq!(lists[0], "/v1/webhook_endpoints?limit=100");
    assert!(lists[1].starts_with("/v1/webhook_endpoints?limit=100&starting_after=we_"));
}

#[tokio::test]
async fn it_should_stop_at_a_bounded_number_of_pages() {
    let stripe = FakeStripe::start().await;
    stripe.endless_pages();
    let error = client(&stripe)
        .endpoints_of(&key(), Uuid::new_v4())
        .await
        .unwrap_err();
    assert!(matches!(error, StripeError::Malformed(_)), "{error:?}");
    assert_eq!(stripe.calls().len(), 50, "the client's page bound");
}

#[tokio::test]
async fn it_should_take_an_endpoint_already_gone_as_deleted() {
    let stripe = FakeStripe::start().await;
    let client = client(&stripe);
    let trigger_id = Uuid::new_v4();
    let created = client
        .create_endpoint(&key(), &delivery_url(trigger_id), EVENT, trigger_id)
        .await
        .unwrap();
    stripe.forget(&created.id);

    client.delete_endpoint(&key(), &created.id).await.unwrap();
    let last = stripe.calls().pop().unwrap();
    assert_eq!(
        (last.method, last.path),
        ("DELETE", format!("/v1/webhook_endpoints/{}", created.id))
    );
}

#[tokio::test]
async fn it_should_say_what_stripe_answered_to_a_wrong_key_without_the_key() {
    let stripe = FakeStripe::start().await;
    let client = client(&stripe);
    let wrong = Secret::new("sk_test_51WrongKeyThatMustNotShow");
    let trigger_id = Uuid::new_v4();
    let url = delivery_url(trigger_id);

    let errors = [
        client
            .create_endpoint(&wrong, &url, EVENT, trigger_id)
            .await
            .unwrap_err(),
        client.endpoints_of(&wrong, trigger_id).await.unwrap_err(),
        client.delete_endpoint(&wrong, "we_123").await.unwrap_err(),
    ];
    for error in errors {
        assert_eq!(
            error,
            StripeError::Refused {
                status: 401,
                code: Some("api_key_invalid".into()),
                message: Some("Invalid API Key provided: sk_test_****".into()),
            }
        );
        let shown = error.to_string();
        assert_eq!(
            shown,
            "Stripe answered 401 (api_key_invalid: Invalid API Key provided: sk_test_****)"
        );
        assert!(!shown.contains(wrong.expose()));
        assert!(!format!("{error:?}").contains(wrong.expose()));
    }
    assert!(stripe.endpoints().is_empty());
}

#[tokio::test]
async fn it_should_report_a_failing_stripe_and_not_take_it_as_gone() {
    let stripe = FakeStripe::start().await;
    let client = client(&stripe);
    let trigger_id = Uuid::new_v4();
    let created = client
        .create_endpoint(&key(), &delivery_url(trigger_id), EVENT, trigger_id)
        .await
        .unwrap();
    stripe.refuse(Some(500));

    let refused = StripeError::Refused {
        status: 500,
        code: None,
        message: Some("refused for the test".into()),
    };
    assert_eq!(
        client.delete_endpoint(&key(), &created.id).await,
        Err(refused.clone())
    );
    assert_eq!(
        client.endpoints_of(&key(), trigger_id).await,
        Err(refused.clone())
    );
    assert_eq!(
        client
            .create_endpoint(&key(), &delivery_url(trigger_id), EVENT, trigger_id)
            .await,
        Err(refused)
    );
    assert_eq!(stripe.endpoints().len(), 1);
}

#[tokio::test]
async fn it_should_report_a_closed_port_as_unreachable() {
    let client = Client::new(closed_port());
    let trigger_id = Uuid::new_v4();
    let error = client
        .create_endpoint(&key(), &delivery_url(trigger_id), EVENT, trigger_id)
        .await
        .unwrap_err();
    let StripeError::Unreachable(why) = &error else {
        panic!("{error:?}");
    };
    assert!(!why.contains("127.0.0.1"), "{why}");
    assert!(!error.to_string().contains(STRIPE_KEY));
    assert!(matches!(
        client.delete_endpoint(&key(), "we_1").await,
        Err(StripeError::Unreachable(_))
    ));
    assert!(matches!(
        client.endpoints_of(&key(), trigger_id).await,
        Err(StripeError::Unreachable(_))
    ));
}

/// The fake is only as good a witness as it is strict: it refuses what Stripe refuses.
#[tokio::test]
async fn it_should_have_a_fake_that_reads_forms_as_stripe_does() {
    let stripe = FakeStripe::start().await;
    let http = reqwest::Client::new();
    let create = |form: &'static [(&'static str, &'static str)]| {
        http.post(format!("{}/v1/webhook_endpoints", stripe.url))
            .bearer_auth(STRIPE_KEY)
            .form(form)
            .send()
    };
    let unindexed = create(&[("url", "https://e.example.com"), ("enabled_events", EVENT)])
        .await
        .unwrap();
    assert_eq!(unindexed.status(), 400);
    let body: serde_json::Value = unindexed.json().await.unwrap();
    assert_eq!(body["error"]["code"], "parameter_unknown");
    let no_url = create(&[("enabled_events[]", EVENT)]).await.unwrap();
    assert_eq!(no_url.status(), 400);
    assert!(stripe.endpoints().is_empty());

    let created = create(&[
        ("url", "https://e.example.com"),
        ("enabled_events[0]", EVENT),
    ])
    .await
    .unwrap();
    assert_eq!(created.status(), 200);
    let listed: serde_json::Value = http
        .get(format!("{}/v1/webhook_endpoints", stripe.url))
        .bearer_auth(STRIPE_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"][0]["enabled_events"][0], EVENT);
    assert!(listed["data"][0].get("secret").is_none(), "{listed}");
}
