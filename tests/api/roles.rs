//! Roles over HTTP: what an auditor may do (read) and may not (write), checked on every operation
//! the OpenAPI document lists, so that a new operation is covered the day it is served; the role
//! an access token carries, and what a role change does to tokens already issued; and the
//! migration that gave the users of an existing store their roles.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::migrate::Migrator;
use trigger_engine::identity::Role;
use uuid::Uuid;

use crate::helpers::{
    admin_token, expect_problem, spawn_app, Session, TestApp, TestDb, ADMIN_EMAIL, ADMIN_PASSWORD,
};

crate::on_every_store!(
    it_should_refuse_every_write_to_an_auditor_and_record_nothing,
    it_should_let_an_auditor_read_everything,
    it_should_carry_the_role_in_the_access_token,
    it_should_keep_a_tokens_role_until_it_expires,
    it_should_give_existing_users_their_roles_when_migrating,
    it_should_promote_nobody_when_the_cli_came_before_the_bootstrap,
);

async fn document(app: &TestApp) -> Value {
    let response = app
        .http
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Every operation of the document that takes a bearer token: (method, path, operation).
fn bearer_operations(document: &Value) -> Vec<(Method, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let takes_token = operation["security"]
                .as_array()
                .is_some_and(|requirements| {
                    requirements
                        .iter()
                        .any(|requirement| requirement.get("OAuth2PasswordBearer").is_some())
                });
            if takes_token {
                let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                found.push((method, path.clone(), operation.clone()));
            }
        }
    }
    assert!(!found.is_empty(), "no operation takes a bearer token");
    found
}

/// What the operations of an organisation act on: one of each, made by a member.
struct Resources {
    trigger: String,
    connection: String,
}

async fn resources(app: &TestApp, member: &Session) -> Resources {
    let created = app
        .request(Method::POST, "/projects/p1/triggers", member)
        .json(&rss())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let trigger: Value = created.json().await.unwrap();
    let connection = app
        .request(Method::POST, "/connections", member)
        .json(&typeform_connection())
        .send()
        .await
        .unwrap();
    assert_eq!(connection.status(), StatusCode::CREATED);
    let connection: Value = connection.json().await.unwrap();
    Resources {
        trigger: trigger["project_trigger_id"].as_str().unwrap().to_owned(),
        connection: connection["connection_id"].as_str().unwrap().to_owned(),
    }
}

fn rss() -> Value {
    json!({
        "provider_id": "rss",
        "trigger_id": "on_new_item",
        "connection_id": null,
        "trigger_config": {"feed_url": "https://example.com/feed.xml", "polling_frequency": "10000"}
    })
}

fn typeform_connection() -> Value {
    json!({
        "provider_id": "typeform",
        "name": "Forms",
        "credentials": {"access_token": "tfp_a_token"}
    })
}

/// `path` with its parameters naming the organisation's resources (a run and a replay no one
/// has: there is none to name).
fn concrete(path: &str, resources: &Resources) -> String {
    path.replace("{project_id}", "p1")
        .replace("{project_trigger_id}", &resources.trigger)
        .replace("{connection_id}", &resources.connection)
        .replace("{run_id}", &Uuid::new_v4().to_string())
        .replace("{replay_id}", &Uuid::new_v4().to_string())
        .replace("{provider_id}", "rss")
        .replace("{trigger_id}", "on_new_item")
}

/// A body the operation would accept from a member, so that only the role can refuse it.
fn body(method: &Method, path: &str) -> Option<Value> {
    match (method.as_str(), path) {
        ("POST", "/projects/{project_id}/triggers") => Some(rss()),
        ("POST", "/connections") => Some(typeform_connection()),
        // Nothing to replay: the member's answer is a 422, not a 403.
        ("POST", "/runs/replay") => Some(json!({"statuses": ["dead_lettered"]})),
        _ => None,
    }
}

/// What an organisation holds, as its member sees it: any write shows here or in the log.
async fn holdings(app: &TestApp, member: &Session) -> (i64, Value, Value) {
    let list = |path: &'static str| async move {
        let response = app.request(Method::GET, path, member).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.json::<Value>().await.unwrap()
    };
    (
        app.store.head().await.unwrap(),
        list("/triggers").await,
        list("/connections").await,
    )
}

async fn it_should_refuse_every_write_to_an_auditor_and_record_nothing(db: TestDb) {
    let app = spawn_app(&db).await;
    let document = document(&app).await;
    let member = app.sign_up().await;
    let auditor = app.join(member.org_id, Role::Auditor).await;
    let resources = resources(&app, &member).await;

    let mut writes = 0;
    for (method, path, operation) in bearer_operations(&document) {
        if method == Method::GET {
            continue;
        }
        writes += 1;
        let what = format!("{method} {path}");
        assert_eq!(operation["x-required-role"], "member", "{what}");
        assert!(
            operation["responses"]["403"].is_object(),
            "{what} does not declare its 403"
        );
        assert!(
            operation["description"]
                .as_str()
                .is_some_and(|description| description.contains("`member` role")),
            "{what}: {}",
            operation["description"]
        );

        let before = holdings(&app, &member).await;
        let mut request = app.request(method.clone(), &concrete(&path, &resources), &auditor);
        if let Some(body) = body(&method, &path) {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{what}");
        let problem = expect_problem(response, StatusCode::FORBIDDEN, None).await;
        assert_eq!(problem["type"], "/problems/forbidden", "{what}");
        assert_eq!(problem["role"], "auditor", "{what}");
        assert!(
            problem["detail"].as_str().unwrap().contains("auditor"),
            "{what}: {problem}"
        );
        assert_eq!(holdings(&app, &member).await, before, "{what} wrote");
    }
    // Creating and deleting triggers and connections, enabling, disabling, retrying.
    assert!(writes >= 7, "only {writes} write operations found");

    // The same writes from a member are not refused for the role.
    for (method, path, _) in bearer_operations(&document) {
        if method == Method::GET {
            continue;
        }
        let mut request = app.request(method.clone(), &concrete(&path, &resources), &member);
        if let Some(body) = body(&method, &path) {
            request = request.json(&body);
        }
        let status = request.send().await.unwrap().status();
        assert_ne!(status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    app.shutdown().await;
}

async fn it_should_let_an_auditor_read_everything(db: TestDb) {
    let app = spawn_app(&db).await;
    let document = document(&app).await;
    let member = app.sign_up().await;
    let auditor = app.join(member.org_id, Role::Auditor).await;
    let resources = resources(&app, &member).await;

    let mut reads = 0;
    for (method, path, operation) in bearer_operations(&document) {
        if method != Method::GET {
            continue;
        }
        reads += 1;
        let what = format!("{method} {path}");
        // The one read for administrators alone: the engine process's executor, whose targets
        // are the operator's configuration rather than an organisation's data.
        if path == "/executor/status" {
            assert_eq!(operation["x-required-role"], "admin", "{what}");
            assert_eq!(operation["x-allowed-roles"], json!(["admin"]), "{what}");
            for refused in [&auditor, &member] {
                let response = app.request(Method::GET, &path, refused).send().await;
                assert_eq!(response.unwrap().status(), StatusCode::FORBIDDEN, "{what}");
            }
            let admin = app.join(member.org_id, Role::Admin).await;
            let as_admin = app.request(Method::GET, &path, &admin).send().await;
            assert_eq!(as_admin.unwrap().status(), StatusCode::OK, "{what}");
            continue;
        }
        assert_eq!(operation["x-required-role"], "auditor", "{what}");
        let concrete = concrete(&path, &resources);
        let as_auditor = app.request(Method::GET, &concrete, &auditor).send().await;
        let as_auditor = as_auditor.unwrap();
        let as_member = app.request(Method::GET, &concrete, &member).send().await;
        let as_member = as_member.unwrap();
        // The one read open to a set of roles: the whole log's verification, for auditors and
        // administrators; a member is refused, as the document says.
        if path == "/log/verify" {
            assert_eq!(
                operation["x-allowed-roles"],
                json!(["auditor", "admin"]),
                "{what}"
            );
            assert!(operation["responses"].get("403").is_some(), "{what}");
            assert_eq!(as_member.status(), StatusCode::FORBIDDEN, "{what}");
            let problem: Value = as_member.json().await.unwrap();
            assert_eq!(problem["role"], "member", "{problem}");
            assert_eq!(as_auditor.status(), StatusCode::OK, "{what}");
            let admin = app.join(member.org_id, Role::Admin).await;
            let as_admin = app
                .request(Method::GET, &concrete, &admin)
                .send()
                .await
                .unwrap();
            assert_eq!(as_admin.status(), StatusCode::OK, "{what}");
            continue;
        }
        assert_eq!(
            operation["x-allowed-roles"],
            json!(["auditor", "member", "admin"]),
            "{what}"
        );
        assert!(operation["responses"].get("403").is_none(), "{what}");
        // The auditor sees what the member sees: the same status (200 where the trigger's kind
        // has the resource), the same body.
        assert_eq!(as_auditor.status(), as_member.status(), "{what}");
        assert_ne!(as_auditor.status(), StatusCode::FORBIDDEN, "{what}");
        let auditor_body = as_auditor.text().await.unwrap();
        let member_body = as_member.text().await.unwrap();
        // A schedule's preview and an explanation's default window start from the moment of
        // asking, so the two answers differ by their instants; their statuses are compared above.
        if !path.contains("/schedule") && !path.ends_with("/explain") {
            assert_eq!(auditor_body, member_body, "{what}");
        }
    }
    assert!(reads >= 7, "only {reads} read operations found");
    app.shutdown().await;
}

/// The claims of an access token, read without checking its signature (the engine checks it).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn it_should_carry_the_role_in_the_access_token(db: TestDb) {
    let app = spawn_app(&db).await;
    let admin = admin_token(&app.http, &app.address).await;
    assert_eq!(claims(&admin)["role"], "admin", "the first-run admin");
    for role in Role::ALL {
        let session = app.sign_up_as(role).await;
        let claims = claims(&session.token);
        assert_eq!(claims["role"], role.as_str());
        assert_eq!(claims["sub"], session.user_id.to_string());
        let principal = app
            .identity
            .verify_token(&session.token, chrono::Utc::now())
            .unwrap();
        assert_eq!(principal.role, role);
        // Writes: an admin and a member may, an auditor may not.
        let created = app
            .request(Method::POST, "/projects/p1/triggers", &session)
            .json(&rss())
            .send()
            .await
            .unwrap();
        let expected = match role {
            Role::Auditor => StatusCode::FORBIDDEN,
            Role::Member | Role::Admin => StatusCode::CREATED,
        };
        assert_eq!(created.status(), expected, "{role}");
    }
    let admin = Session {
        org_id: Uuid::nil(),
        user_id: Uuid::nil(),
        token: admin,
    };
    let created = app
        .request(Method::POST, "/projects/p1/triggers", &admin)
        .json(&rss())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    app.shutdown().await;
}

async fn it_should_keep_a_tokens_role_until_it_expires(db: TestDb) {
    let app = spawn_app(&db).await;
    let org_id = app.identity.create_org("Acme").await.unwrap();
    let email = "demoted@example.com";
    let user_id = app
        .identity
        .create_user(org_id, email, "pw", Role::Member)
        .await
        .unwrap();
    let before = Session {
        org_id,
        user_id,
        token: app.token(email, "pw").await,
    };
    app.identity.set_role(user_id, Role::Auditor).await.unwrap();
    let after = Session {
        org_id,
        user_id,
        token: app.token(email, "pw").await,
    };
    assert_eq!(claims(&before.token)["role"], "member");
    assert_eq!(claims(&after.token)["role"], "auditor");

    let create = |session: &Session| {
        app.request(Method::POST, "/projects/p1/triggers", session)
            .json(&rss())
            .send()
    };
    // Documented: the role is the token's, until it expires.
    assert_eq!(create(&before).await.unwrap().status(), StatusCode::CREATED);
    let refused = create(&after).await.unwrap();
    expect_problem(refused, StatusCode::FORBIDDEN, None).await;

    assert!(matches!(
        app.identity.set_role(Uuid::new_v4(), Role::Admin).await,
        Err(trigger_engine::identity::IdentityError::UnknownUser)
    ));
    app.shutdown().await;
}

/// Brings `db` to the schema before roles (migrations 0001 to 0006), then runs each batch of
/// statements in a transaction of its own, a few milliseconds apart, as separate commands are.
async fn store_before_roles(db: &TestDb, batches: &[Vec<String>]) {
    let backend = if db.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut before_roles = Migrator::new(folder).await.unwrap();
    let kept: Vec<_> = before_roles
        .migrations
        .iter()
        .filter(|migration| migration.version < 7)
        .cloned()
        .collect();
    assert_eq!(kept.len(), 6);
    before_roles.migrations = kept.into();

    macro_rules! run_on {
        ($pool:expr) => {{
            let pool = $pool;
            before_roles.run(&pool).await.unwrap();
            for batch in batches {
                let mut tx = pool.begin().await.unwrap();
                for statement in batch {
                    sqlx::query(statement).execute(&mut *tx).await.unwrap();
                }
                tx.commit().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            pool.close().await;
        }};
    }
    if db.is_postgres() {
        run_on!(sqlx::PgPool::connect(&db.url).await.unwrap());
    } else {
        let options: sqlx::sqlite::SqliteConnectOptions = db.url.parse().unwrap();
        run_on!(
            sqlx::SqlitePool::connect_with(options.create_if_missing(true))
                .await
                .unwrap()
        );
    }
}

fn insert_org(id: Uuid, name: &str) -> String {
    format!("INSERT INTO organisations (id, name) VALUES ('{id}', '{name}')")
}

/// A user as the engine inserted one before roles. Its password hash is no hash: these users
/// never sign in.
fn insert_user(id: Uuid, org_id: Uuid, email: &str) -> String {
    format!(
        "INSERT INTO users (id, org_id, email, password_hash)
         VALUES ('{id}', '{org_id}', '{email}', 'x')"
    )
}

const CLAIM_BOOTSTRAP: &str = "INSERT INTO identity_bootstrap (singleton) VALUES (1)";

async fn role_of(app: &TestApp, user_id: Uuid) -> String {
    trigger_engine::on_pool!(&*app.store, |pool| {
        sqlx::query_scalar("SELECT role FROM users WHERE id = $1")
            .bind(user_id.to_string())
            .fetch_one(pool)
            .await
    })
    .unwrap()
}

/// Whether the test engine's own first-run admin can sign in: not when the store had users.
async fn test_admin_signs_in(app: &TestApp) -> bool {
    let response = app
        .http
        .post(format!("{}/token", app.address))
        .form(&[
            ("grant_type", "password"),
            ("username", ADMIN_EMAIL),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    response.status() == StatusCode::OK
}

/// A store bootstrapped before roles, with a user the admin CLI added later: the bootstrap's
/// admin becomes `admin`, the other a `member`. And one where the CLI came first, so the bootstrap
/// found users and created no admin: nobody is promoted.
async fn it_should_give_existing_users_their_roles_when_migrating(db: TestDb) {
    let (org, admin, later) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    store_before_roles(
        &db,
        &[
            // The bootstrap's one transaction.
            vec![
                CLAIM_BOOTSTRAP.to_owned(),
                insert_org(org, "default"),
                insert_user(admin, org, "first@example.com"),
            ],
            vec![insert_user(later, org, "later@example.com")],
        ],
    )
    .await;
    let app = spawn_app(&db).await;
    assert_eq!(role_of(&app, admin).await, "admin", "the first-run admin");
    assert_eq!(role_of(&app, later).await, "member", "a user the CLI added");
    assert!(!test_admin_signs_in(&app).await);
    app.shutdown().await;
}

async fn it_should_promote_nobody_when_the_cli_came_before_the_bootstrap(db: TestDb) {
    let (org, first, later) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    store_before_roles(
        &db,
        &[
            // An organisation named like the bootstrap's, to show the name alone does not count.
            vec![insert_org(org, "default")],
            vec![insert_user(first, org, "first@example.com")],
            // The bootstrap claims, finds a user and creates nothing.
            vec![CLAIM_BOOTSTRAP.to_owned()],
            vec![insert_user(later, org, "later@example.com")],
        ],
    )
    .await;
    let app = spawn_app(&db).await;
    assert_eq!(role_of(&app, first).await, "member");
    assert_eq!(role_of(&app, later).await, "member");
    assert!(!test_admin_signs_in(&app).await);
    app.shutdown().await;
}
