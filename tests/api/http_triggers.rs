//! The Triggers API over HTTP: lifecycle, isolation between organisations, and every error class.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use trigger_engine::identity::Role;
use uuid::Uuid;

use crate::helpers::{
    expect_problem, spawn_app, Session, TestApp, TestDb, ADMIN_EMAIL, ADMIN_PASSWORD,
};

crate::on_every_store!(
    it_should_run_a_trigger_through_its_whole_lifecycle,
    it_should_hide_one_organisations_triggers_from_another,
    it_should_answer_bad_requests_with_problems_and_write_nothing,
    it_should_refuse_missing_bad_and_expired_tokens,
    it_should_never_return_a_signing_secret,
    it_should_record_the_request_id_with_the_events_it_caused,
    it_should_answer_the_token_endpoint_as_rfc_6749_says,
    it_should_serve_the_provider_catalogue,
    it_should_let_the_first_admin_sign_in_and_keep_data_across_a_restart,
);

async fn create(app: &TestApp, session: &Session, project: &str, body: Value) -> reqwest::Response {
    app.request(
        Method::POST,
        &format!("/projects/{project}/triggers"),
        session,
    )
    .json(&body)
    .send()
    .await
    .unwrap()
}

fn rss() -> Value {
    json!({
        "provider_id": "rss",
        "trigger_id": "on_new_item",
        "connection_id": null,
        "trigger_config": {"feed_url": "https://example.com/feed.xml", "polling_frequency": "10000"}
    })
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

async fn it_should_run_a_trigger_through_its_whole_lifecycle(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let response = create(&app, &session, "project-1", rss()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created = json_of(response).await;
    let mut fields: Vec<_> = created.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "connection_id",
            "created_at",
            "created_by",
            "cursor_data",
            "paused",
            "project_id",
            "project_trigger_id",
            "provider_id",
            "status",
            "trigger_config",
            "trigger_id",
            "updated_at",
            "updated_by",
            "webhook_data"
        ]
    );
    assert_eq!(created["status"], "DISABLED");
    assert_eq!(created["created_by"], session.user_id.to_string());
    assert_eq!(created["project_id"], "project-1");
    let id = created["project_trigger_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/triggers/{id}"));

    let fetched = app
        .request(Method::GET, &location, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status(), StatusCode::OK);
    assert_eq!(json_of(fetched).await, created);
    let listed = json_of(
        app.request(Method::GET, "/projects/project-1/triggers", &session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let other_project = json_of(
        app.request(Method::GET, "/projects/project-2/triggers", &session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(other_project, json!([]));
    let everything = json_of(
        app.request(Method::GET, "/triggers", &session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(everything.as_array().unwrap().len(), 1);

    for (action, status) in [
        ("enable", "ENABLED"),
        ("enable", "ENABLED"),
        ("disable", "DISABLED"),
    ] {
        let changed = app
            .request(Method::POST, &format!("{location}/{action}"), &session)
            .send()
            .await
            .unwrap();
        assert_eq!(changed.status(), StatusCode::NO_CONTENT);
        let now = json_of(
            app.request(Method::GET, &location, &session)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(now["status"], status);
    }

    let deleted = app
        .request(Method::DELETE, &location, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = app
        .request(Method::GET, &location, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let again = app
        .request(Method::DELETE, &location, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let everything = json_of(
        app.request(Method::GET, "/triggers", &session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(everything, json!([]));
    app.shutdown().await;
}

async fn it_should_hide_one_organisations_triggers_from_another(db: TestDb) {
    let app = spawn_app(&db).await;
    let (owner, stranger) = (app.sign_up().await, app.sign_up().await);
    let created = json_of(create(&app, &owner, "shared-name", rss()).await).await;
    let location = format!(
        "/triggers/{}",
        created["project_trigger_id"].as_str().unwrap()
    );
    let head = app.store.head().await.unwrap();
    for (method, path) in [
        (Method::GET, location.clone()),
        (Method::DELETE, location.clone()),
        (Method::POST, format!("{location}/enable")),
        (Method::POST, format!("{location}/disable")),
    ] {
        let response = app
            .request(method.clone(), &path, &stranger)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path}");
    }
    let theirs = json_of(
        app.request(Method::GET, "/projects/shared-name/triggers", &stranger)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(theirs, json!([]));
    let all = json_of(
        app.request(Method::GET, "/triggers", &stranger)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(all, json!([]));
    assert_eq!(
        app.store.head().await.unwrap(),
        head,
        "the stranger changed nothing"
    );
    app.shutdown().await;
}

async fn it_should_answer_bad_requests_with_problems_and_write_nothing(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let head = app.store.head().await.unwrap();

    let bad_uuid = app
        .request(Method::GET, "/triggers/not-a-uuid", &session)
        .send()
        .await
        .unwrap();
    expect_problem(
        bad_uuid,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("project_trigger_id"),
    )
    .await;
    let unknown = app
        .request(
            Method::GET,
            &format!("/triggers/{}", Uuid::new_v4()),
            &session,
        )
        .send()
        .await
        .unwrap();
    expect_problem(unknown, StatusCode::NOT_FOUND, None).await;
    let no_route = app
        .request(Method::GET, "/nowhere", &session)
        .send()
        .await
        .unwrap();
    expect_problem(no_route, StatusCode::NOT_FOUND, None).await;

    let malformed = app
        .request(Method::POST, "/projects/p/triggers", &session)
        .header("content-type", "application/json")
        .body("{\"provider_id\": ")
        .send()
        .await
        .unwrap();
    expect_problem(malformed, StatusCode::UNPROCESSABLE_ENTITY, Some("body")).await;
    let wrong_type = create(
        &app,
        &session,
        "p",
        json!({"provider_id": 7, "trigger_id": "on_new_item"}),
    )
    .await;
    expect_problem(
        wrong_type,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("provider_id"),
    )
    .await;
    let bad_connection = create(
        &app,
        &session,
        "p",
        json!({"provider_id": "rss", "trigger_id": "on_new_item", "connection_id": "nope"}),
    )
    .await;
    expect_problem(
        bad_connection,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("connection_id"),
    )
    .await;
    let unknown_provider = create(
        &app,
        &session,
        "p",
        json!({"provider_id": "myspace", "trigger_id": "on_poke"}),
    )
    .await;
    expect_problem(
        unknown_provider,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("provider_id"),
    )
    .await;
    let unknown_trigger = create(
        &app,
        &session,
        "p",
        json!({"provider_id": "stripe", "trigger_id": "on_refund"}),
    )
    .await;
    expect_problem(
        unknown_trigger,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("trigger_id"),
    )
    .await;
    let bad_config = create(
        &app,
        &session,
        "p",
        json!({
            "provider_id": "rss", "trigger_id": "on_new_item", "trigger_config": {"feed_url": 42}
        }),
    )
    .await;
    expect_problem(
        bad_config,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("trigger_config.feed_url"),
    )
    .await;
    let missing_secret = create(
        &app,
        &session,
        "p",
        json!({"provider_id": "stripe", "trigger_id": "on_customer_created"}),
    )
    .await;
    assert_eq!(missing_secret.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let not_json = app
        .request(Method::POST, "/projects/p/triggers", &session)
        .header("content-type", "text/plain")
        .body(rss().to_string())
        .send()
        .await
        .unwrap();
    expect_problem(not_json, StatusCode::UNSUPPORTED_MEDIA_TYPE, None).await;
    let huge = json!({
        "provider_id": "rss", "trigger_id": "on_new_item",
        "trigger_config": {"feed_url": format!("https://example.com/{}", "x".repeat(1_100_000))}
    });
    let too_large = create(&app, &session, "p", huge).await;
    expect_problem(too_large, StatusCode::PAYLOAD_TOO_LARGE, None).await;

    assert_eq!(
        app.store.head().await.unwrap(),
        head,
        "no error wrote anything"
    );
    app.shutdown().await;
}

async fn it_should_refuse_missing_bad_and_expired_tokens(db: TestDb) {
    let app = spawn_app(&db).await;
    let url = format!("{}/triggers", app.address);
    let anonymous = app.http.get(&url).send().await.unwrap();
    assert!(anonymous.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    expect_problem(anonymous, StatusCode::UNAUTHORIZED, None).await;
    let forged = app
        .http
        .get(&url)
        .bearer_auth("not.a.token")
        .send()
        .await
        .unwrap();
    expect_problem(forged, StatusCode::UNAUTHORIZED, None).await;

    let session = app.sign_up().await;
    let org = app.identity.create_org("another").await.unwrap();
    app.identity
        .create_user(org, "late@example.com", "pw", Role::Member)
        .await
        .unwrap();
    let two_hours_ago = chrono::Utc::now() - chrono::Duration::hours(2);
    let stale = app
        .identity
        .password_grant("late@example.com", "pw", two_hours_ago)
        .await
        .unwrap();
    let expired = app
        .http
        .get(&url)
        .bearer_auth(&stale.access_token)
        .send()
        .await
        .unwrap();
    let problem = expect_problem(expired, StatusCode::UNAUTHORIZED, None).await;
    assert!(problem["detail"].as_str().unwrap().contains("expired"));
    let fine = app
        .request(Method::GET, "/triggers", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(fine.status(), StatusCode::OK);
    app.shutdown().await;
}

async fn it_should_never_return_a_signing_secret(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let secret = "whsec_c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1sZWFr";
    let created = create(
        &app,
        &session,
        "p",
        json!({
            "provider_id": "stripe", "trigger_id": "on_customer_created",
            "trigger_config": {"signing_secret": [secret, "whsec_b2xkZXItc2VjcmV0"]}
        }),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created = created.text().await.unwrap();
    assert!(!created.contains(secret), "{created}");
    let id = serde_json::from_str::<Value>(&created).unwrap()["project_trigger_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in [
        format!("/triggers/{id}"),
        "/triggers".into(),
        "/projects/p/triggers".into(),
    ] {
        let body = app
            .request(Method::GET, &path, &session)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!body.contains("whsec_"), "{path}: {body}");
    }
    app.shutdown().await;
}

async fn it_should_record_the_request_id_with_the_events_it_caused(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up().await;
    let response = app
        .request(Method::POST, "/projects/p/triggers", &session)
        .header("x-request-id", "trace-1234")
        .json(&rss())
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-1234");
    let id = json_of(response).await["project_trigger_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let history = app.store.stream_history("trigger", &id).await.unwrap();
    assert_eq!(history[0].meta("request_id"), Some("trace-1234"));
    assert_eq!(
        history[0].meta("actor"),
        Some(format!("user:{}", session.user_id).as_str())
    );
    assert_eq!(
        history[0].meta("org_id"),
        Some(session.org_id.to_string().as_str())
    );
    let generated = app
        .request(Method::GET, "/triggers", &session)
        .send()
        .await
        .unwrap();
    assert!(Uuid::parse_str(generated.headers()["x-request-id"].to_str().unwrap()).is_ok());
    app.shutdown().await;
}

async fn it_should_answer_the_token_endpoint_as_rfc_6749_says(db: TestDb) {
    let app = spawn_app(&db).await;
    let url = format!("{}/token", app.address);
    let post = |form: Vec<(&'static str, &'static str)>| app.http.post(&url).form(&form).send();
    let wrong = post(vec![
        ("grant_type", "password"),
        ("username", ADMIN_EMAIL),
        ("password", "wrong"),
    ])
    .await
    .unwrap();
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(wrong).await["error"], "invalid_grant");
    let unknown = post(vec![
        ("grant_type", "password"),
        ("username", "nobody@example.com"),
        ("password", "x"),
    ])
    .await
    .unwrap();
    assert_eq!(json_of(unknown).await["error"], "invalid_grant");
    let grant = post(vec![("grant_type", "client_credentials")])
        .await
        .unwrap();
    assert_eq!(json_of(grant).await["error"], "unsupported_grant_type");
    let missing = post(vec![("grant_type", "password"), ("username", ADMIN_EMAIL)])
        .await
        .unwrap();
    assert_eq!(json_of(missing).await["error"], "invalid_request");
    let good = post(vec![
        ("grant_type", "password"),
        ("username", ADMIN_EMAIL),
        ("password", ADMIN_PASSWORD),
    ])
    .await
    .unwrap();
    assert_eq!(good.status(), StatusCode::OK);
    assert_eq!(good.headers()["cache-control"], "no-store");
    let token = json_of(good).await;
    assert_eq!(token["token_type"], "bearer");
    assert_eq!(token["expires_in"], 3600);
    app.shutdown().await;
}

async fn it_should_serve_the_provider_catalogue(db: TestDb) {
    let app = spawn_app(&db).await;
    let stripe = json_of(
        app.http
            .get(format!("{}/providers/stripe/triggers", app.address))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let ids: Vec<_> = stripe
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trigger_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 4);
    assert!(ids.contains(&"on_customer_created"));
    let one = app
        .http
        .get(format!("{}/providers/github/triggers/on_push", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), StatusCode::OK);
    let one = json_of(one).await;
    assert_eq!(one["kind"], "webhook");
    assert!(one["config_schema"].is_object() && one["sample_payload"].is_object());
    let missing = app
        .http
        .get(format!(
            "{}/providers/github/triggers/on_nothing",
            app.address
        ))
        .send()
        .await
        .unwrap();
    expect_problem(missing, StatusCode::NOT_FOUND, None).await;
    let no_provider = app
        .http
        .get(format!("{}/providers/nobody/triggers", app.address))
        .send()
        .await
        .unwrap();
    expect_problem(no_provider, StatusCode::NOT_FOUND, None).await;
    app.shutdown().await;
}

async fn it_should_let_the_first_admin_sign_in_and_keep_data_across_a_restart(db: TestDb) {
    let app = spawn_app(&db).await;
    let admin = Session {
        org_id: Uuid::nil(),
        user_id: Uuid::nil(),
        token: app.token(ADMIN_EMAIL, ADMIN_PASSWORD).await,
    };
    let created = json_of(create(&app, &admin, "p", rss()).await).await;
    app.shutdown().await;

    let app = spawn_app(&db).await;
    let path = format!(
        "/triggers/{}",
        created["project_trigger_id"].as_str().unwrap()
    );
    let fetched = app
        .request(Method::GET, &path, &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(
        fetched.status(),
        StatusCode::OK,
        "the old token and the trigger survive"
    );
    assert_eq!(json_of(fetched).await, created);
    app.shutdown().await;
}
