//! Connections over HTTP: create, list, delete; credentials that never come back; isolation
//! between organisations; bad input; an engine without an encryption key; and, under the API, the
//! sealed credentials in the table.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use trigger_engine::connections::{ConnectionError, Connections, EncryptionKey};
use uuid::Uuid;

use crate::helpers::{expect_problem, spawn_app, spawn_app_with, Session, TestApp, TestDb};

crate::on_every_store!(
    it_should_create_list_and_delete_connections_without_answering_credentials,
    it_should_hide_one_organisations_connections_from_another,
    it_should_answer_bad_connections_with_problems_and_store_nothing,
    it_should_refuse_to_create_connections_without_an_encryption_key,
    it_should_store_credentials_encrypted_and_bound_to_their_row,
    it_should_accept_only_a_connection_of_the_callers_organisation_on_a_trigger,
    it_should_refuse_to_delete_a_connection_that_a_trigger_uses,
);

/// A Typeform token as a test writes it: distinctive, so finding it anywhere is a leak.
pub const TOKEN: &str = "tfp_S3cr3tT0ken_never_shown";

pub fn typeform_connection() -> Value {
    json!({
        "provider_id": "typeform",
        "name": "Marketing's Typeform",
        "credentials": {"access_token": TOKEN}
    })
}

pub async fn create_connection(app: &TestApp, session: &Session, body: Value) -> reqwest::Response {
    app.request(Method::POST, "/connections", session)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Creates a Typeform connection holding [`TOKEN`]; returns its id.
pub async fn typeform_connection_of(app: &TestApp, session: &Session) -> Uuid {
    let response = create_connection(app, session, typeform_connection()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    created["connection_id"].as_str().unwrap().parse().unwrap()
}

async fn list(app: &TestApp, session: &Session) -> Value {
    let response = app
        .request(Method::GET, "/connections", session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(!text.contains(TOKEN), "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn rows(app: &TestApp) -> i64 {
    trigger_engine::on_pool!(&*app.store, |pool| sqlx::query_scalar(
        "SELECT count(*) FROM connections"
    )
    .fetch_one(pool)
    .await)
    .unwrap()
}

async fn it_should_create_list_and_delete_connections_without_answering_credentials(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let response = create_connection(&app, &session, typeform_connection()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let text = response.text().await.unwrap();
    assert!(!text.contains(TOKEN), "{text}");
    let created: Value = serde_json::from_str(&text).unwrap();
    let mut fields: Vec<_> = created.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "connection_id",
            "created_at",
            "created_by",
            "name",
            "org_id",
            "provider_id"
        ]
    );
    assert_eq!(created["org_id"], session.org_id.to_string());
    assert_eq!(created["created_by"], session.user_id.to_string());
    assert_eq!(created["provider_id"], "typeform");
    assert_eq!(created["name"], "Marketing's Typeform");
    let id = created["connection_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/connections/{id}"));

    // A second one, of another provider: listed after the first, each exactly as created.
    let second = create_connection(
        &app,
        &session,
        json!({"provider_id": "stripe", "name": "Billing", "credentials": {"api_key": "sk_test_1"}}),
    )
    .await;
    assert_eq!(second.status(), StatusCode::CREATED);
    let second: Value = second.json().await.unwrap();
    assert_eq!(list(&app, &session).await, json!([created, second]));

    let deleted = app
        .request(Method::DELETE, &location, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(list(&app, &session).await, json!([second]));
    let again = app
        .request(Method::DELETE, &location, &session)
        .send()
        .await
        .unwrap();
    expect_problem(again, StatusCode::NOT_FOUND, None).await;
    app.shutdown().await;
}

async fn it_should_hide_one_organisations_connections_from_another(db: TestDb) {
    let app = spawn_app(&db).await;
    let (owner, stranger) = (app.sign_up().await, app.sign_up().await);
    let id = typeform_connection_of(&app, &owner).await;
    assert_eq!(list(&app, &stranger).await, json!([]));
    let theirs = app
        .request(Method::DELETE, &format!("/connections/{id}"), &stranger)
        .send()
        .await
        .unwrap();
    let problem = expect_problem(theirs, StatusCode::NOT_FOUND, None).await;
    // Exactly what a connection that does not exist answers.
    let missing = app
        .request(
            Method::DELETE,
            &format!("/connections/{}", Uuid::new_v4()),
            &stranger,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_problem(missing, StatusCode::NOT_FOUND, None).await,
        problem
    );
    assert_eq!(list(&app, &owner).await.as_array().unwrap().len(), 1);
    app.shutdown().await;
}

async fn it_should_answer_bad_connections_with_problems_and_store_nothing(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let cases = [
        (
            json!({"provider_id": "myspace", "name": "x", "credentials": {"k": "v"}}),
            "provider_id",
        ),
        (
            json!({"provider_id": "typeform", "name": "  ", "credentials": {"access_token": TOKEN}}),
            "name",
        ),
        (
            json!({"provider_id": "typeform", "name": "x", "credentials": TOKEN}),
            "credentials",
        ),
        (
            json!({"provider_id": "stripe", "name": "x", "credentials": {}}),
            "credentials",
        ),
        (
            json!({"provider_id": "typeform", "name": "x", "credentials": {"token": TOKEN}}),
            "credentials.access_token",
        ),
        (
            json!({"provider_id": "typeform", "name": "x", "credentials": {"access_token": 42}}),
            "credentials.access_token",
        ),
        (
            json!({"provider_id": 7, "name": "x", "credentials": {"access_token": TOKEN}}),
            "provider_id",
        ),
    ];
    for (body, field) in cases {
        let response = create_connection(&app, &session, body.clone()).await;
        let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, Some(field)).await;
        // Not even a refused secret comes back.
        assert!(!problem.to_string().contains(TOKEN), "{body}: {problem}");
    }
    let bad_id = app
        .request(Method::DELETE, "/connections/not-a-uuid", &session)
        .send()
        .await
        .unwrap();
    expect_problem(
        bad_id,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("connection_id"),
    )
    .await;
    let not_json = app
        .request(Method::POST, "/connections", &session)
        .body(typeform_connection().to_string())
        .send()
        .await
        .unwrap();
    expect_problem(not_json, StatusCode::UNSUPPORTED_MEDIA_TYPE, None).await;
    let anonymous = app
        .http
        .post(format!("{}/connections", app.address))
        .json(&typeform_connection())
        .send()
        .await
        .unwrap();
    expect_problem(anonymous, StatusCode::UNAUTHORIZED, None).await;
    assert_eq!(rows(&app).await, 0, "no error stored anything");
    app.shutdown().await;
}

async fn it_should_refuse_to_create_connections_without_an_encryption_key(db: TestDb) {
    let app = spawn_app_with(&db, |config| config.encryption_key = None).await;
    let session = app.sign_up().await;
    let response = create_connection(&app, &session, typeform_connection()).await;
    let problem = expect_problem(response, StatusCode::SERVICE_UNAVAILABLE, None).await;
    assert_eq!(problem["type"], "/problems/not-configured");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("TRIGGER_ENGINE_ENCRYPTION_KEY"),
        "{problem}"
    );
    assert_eq!(rows(&app).await, 0, "nothing was stored");
    // Reading and deleting need no key.
    assert_eq!(list(&app, &session).await, json!([]));
    app.shutdown().await;
}

async fn it_should_store_credentials_encrypted_and_bound_to_their_row(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let id = typeform_connection_of(&app, &session).await;
    let other = typeform_connection_of(&app, &session).await;
    let sealed = |id: Uuid| {
        let store = app.store.clone();
        async move {
            let sealed: Vec<u8> = trigger_engine::on_pool!(&*store, |pool| sqlx::query_scalar(
                "SELECT credentials FROM connections WHERE id = $1"
            )
            .bind(id.to_string())
            .fetch_one(pool)
            .await)
            .unwrap();
            sealed
        }
    };
    let stored = sealed(id).await;
    let token = TOKEN.as_bytes();
    assert!(!stored.windows(token.len()).any(|w| w == token));
    assert!(!String::from_utf8_lossy(&stored).contains("access_token"));
    // Two connections with the same credentials: two different ciphertexts (a nonce each).
    assert_ne!(stored, sealed(other).await);

    let (connection, credentials) = app
        .connections
        .with_credentials(session.org_id, id)
        .await
        .unwrap();
    assert_eq!(connection.connection_id, id);
    assert_eq!(credentials.get_str("access_token"), Some(TOKEN));
    assert!(!format!("{credentials:?}").contains(TOKEN));

    // Another key does not open them, and no key cannot.
    let other_key = Connections::new(app.store.clone(), Some(&EncryptionKey::from_bytes([1; 32])));
    assert!(matches!(
        other_key.with_credentials(session.org_id, id).await,
        Err(ConnectionError::Undecryptable(_))
    ));
    let no_key = Connections::new(app.store.clone(), None);
    assert!(matches!(
        no_key.with_credentials(session.org_id, id).await,
        Err(ConnectionError::NotConfigured)
    ));

    // Copied into another connection's row, they do not open there.
    trigger_engine::on_pool!(&*app.store, |pool| sqlx::query(
        "UPDATE connections SET credentials = $1 WHERE id = $2"
    )
    .bind(&stored)
    .bind(other.to_string())
    .execute(pool)
    .await
    .map(|_| ()))
    .unwrap();
    assert!(matches!(
        app.connections
            .with_credentials(session.org_id, other)
            .await,
        Err(ConnectionError::Undecryptable(_))
    ));
    // Nor does the row moved to another organisation.
    let elsewhere = app.sign_up().await;
    trigger_engine::on_pool!(&*app.store, |pool| sqlx::query(
        "UPDATE connections SET org_id = $1 WHERE id = $2"
    )
    .bind(elsewhere.org_id.to_string())
    .bind(id.to_string())
    .execute(pool)
    .await
    .map(|_| ()))
    .unwrap();
    assert!(matches!(
        app.connections.with_credentials(elsewhere.org_id, id).await,
        Err(ConnectionError::Undecryptable(_))
    ));
    app.shutdown().await;
}

fn typeform_trigger(connection_id: Option<Uuid>) -> Value {
    json!({
        "provider_id": "typeform",
        "trigger_id": "on_form_response",
        "connection_id": connection_id,
        "trigger_config": {"form_id": "lT4Z3j", "signing_secret": "whisper"}
    })
}

async fn create_trigger(app: &TestApp, session: &Session, body: Value) -> reqwest::Response {
    app.request(Method::POST, "/projects/p1/triggers", session)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn it_should_accept_only_a_connection_of_the_callers_organisation_on_a_trigger(db: TestDb) {
    let app = spawn_app(&db).await;
    let (owner, stranger) = (app.sign_up().await, app.sign_up().await);
    let mine = typeform_connection_of(&app, &owner).await;
    let stripe = create_connection(
        &app,
        &owner,
        json!({"provider_id": "stripe", "name": "Billing", "credentials": {"api_key": "sk_test_1"}}),
    )
    .await;
    let stripe: Uuid = stripe.json::<Value>().await.unwrap()["connection_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let head = app.store.head().await.unwrap();
    for (session, connection_id) in [
        // Unknown, another organisation's, another provider's, none at all for Typeform.
        (&owner, Some(Uuid::new_v4())),
        (&stranger, Some(mine)),
        (&owner, Some(stripe)),
        (&owner, None),
    ] {
        let response = create_trigger(&app, session, typeform_trigger(connection_id)).await;
        expect_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("connection_id"),
        )
        .await;
    }
    assert_eq!(app.store.head().await.unwrap(), head, "nothing was created");

    let created = create_trigger(&app, &owner, typeform_trigger(Some(mine))).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["connection_id"], mine.to_string());
    // A trigger that registers nothing may still name a connection of its provider.
    let stripe_trigger = create_trigger(
        &app,
        &owner,
        json!({
            "provider_id": "stripe", "trigger_id": "on_customer_created",
            "connection_id": stripe,
            "trigger_config": {"signing_secret": "whsec_c2VjcmV0"}
        }),
    )
    .await;
    assert_eq!(stripe_trigger.status(), StatusCode::CREATED);
    app.shutdown().await;
}

async fn it_should_refuse_to_delete_a_connection_that_a_trigger_uses(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let connection = typeform_connection_of(&app, &session).await;
    let created = create_trigger(&app, &session, typeform_trigger(Some(connection))).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let trigger = created.json::<Value>().await.unwrap()["project_trigger_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/connections/{connection}");
    let refused = app
        .request(Method::DELETE, &path, &session)
        .send()
        .await
        .unwrap();
    expect_problem(refused, StatusCode::CONFLICT, None).await;
    assert_eq!(rows(&app).await, 1);

    let deleted = app
        .request(Method::DELETE, &format!("/triggers/{trigger}"), &session)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let deleted = app
        .request(Method::DELETE, &path, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(rows(&app).await, 0);
    app.shutdown().await;
}
