//! Identity on a real store: organisations, users, password grants, access tokens, API keys, the
//! first-run bootstrap, and the admin commands run as the real binary.

use std::ffi::OsStr;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use trigger_engine::identity::{Identity, IdentityError, Role, DEFAULT_TOKEN_TTL};
use trigger_engine::store::Store;
use uuid::Uuid;

use crate::helpers::{spawn_app, TestDb};

crate::on_every_store!(
    it_should_grant_a_token_for_the_right_password_only,
    it_should_refuse_users_it_cannot_register,
    it_should_expire_a_token_at_its_expiry_time,
    it_should_accept_tokens_issued_before_a_restart,
    it_should_give_every_process_the_same_signing_key,
    it_should_accept_an_api_key_for_its_own_organisation_only,
    it_should_bootstrap_an_admin_once_and_only_once,
    it_should_bootstrap_with_the_credentials_given,
    it_should_not_bootstrap_a_store_that_has_users,
    it_should_create_organisations_users_and_keys_from_the_command_line,
    it_should_name_what_is_wrong_when_an_admin_command_fails,
    it_should_create_users_of_each_role_and_change_roles_from_the_command_line,
);

async fn identity(store: &Arc<Store>) -> Identity {
    Identity::load(store.clone(), DEFAULT_TOKEN_TTL)
        .await
        .expect("loading identity")
}

/// Another engine process on the same database: a store with its own pool.
async fn another_process(db: &TestDb) -> Arc<Store> {
    let store = Store::connect(&db.url, 4).await.expect("connecting");
    Arc::new(store)
}

async fn it_should_grant_a_token_for_the_right_password_only(db: TestDb) {
    let app = spawn_app(&db).await;
    let identity = identity(&app.store).await;
    let org_id = identity.create_org("Acme").await.unwrap();
    let user_id = identity
        .create_user(org_id, "Alice@Example.com", "correct horse", Role::Member)
        .await
        .unwrap();
    let now = Utc::now();

    let issued = identity
        .password_grant("alice@example.com", "correct horse", now)
        .await
        .expect("the right password is granted a token");
    assert_eq!(issued.expires_in, 3600);
    let principal = identity.verify_token(&issued.access_token, now).unwrap();
    assert_eq!((principal.user_id, principal.org_id), (user_id, org_id));
    let in_any_case = identity
        .password_grant(" ALICE@example.COM", "correct horse", now)
        .await;
    assert!(
        in_any_case.is_ok(),
        "emails are matched whatever their case"
    );

    for (email, password) in [
        ("alice@example.com", "wrong horse"),
        ("alice@example.com", "Correct horse"),
        ("alice@example.com", ""),
        ("bob@example.com", "correct horse"),
        ("not an email", "correct horse"),
    ] {
        let refused = identity.password_grant(email, password, now).await;
        assert!(
            matches!(refused, Err(IdentityError::InvalidGrant)),
            "{email} / {password}: {refused:?}"
        );
    }
    app.shutdown().await;
}

async fn it_should_refuse_users_it_cannot_register(db: TestDb) {
    let app = spawn_app(&db).await;
    let identity = identity(&app.store).await;
    let org_id = identity.create_org("Acme").await.unwrap();
    let other_org = identity.create_org("Globex").await.unwrap();
    identity
        .create_user(org_id, "alice@example.com", "pw", Role::Member)
        .await
        .unwrap();

    let refused = [
        identity
            .create_user(other_org, "ALICE@example.com", "pw", Role::Member)
            .await,
        identity
            .create_user(Uuid::new_v4(), "bob@example.com", "pw", Role::Member)
            .await,
        identity
            .create_user(org_id, "bob", "pw", Role::Member)
            .await,
        identity
            .create_user(org_id, "bob@example.com", "", Role::Member)
            .await,
    ];
    assert!(matches!(refused[0], Err(IdentityError::DuplicateEmail)));
    assert!(matches!(
        refused[1],
        Err(IdentityError::UnknownOrganisation)
    ));
    assert!(matches!(refused[2], Err(IdentityError::InvalidEmail)));
    assert!(matches!(refused[3], Err(IdentityError::EmptyPassword)));
    assert!(matches!(
        identity.create_org("  ").await,
        Err(IdentityError::EmptyOrganisationName)
    ));
    app.shutdown().await;
}

async fn it_should_expire_a_token_at_its_expiry_time(db: TestDb) {
    let app = spawn_app(&db).await;
    let ttl = Duration::from_secs(60);
    let identity = Identity::load(app.store.clone(), ttl).await.unwrap();
    let org_id = identity.create_org("Acme").await.unwrap();
    identity
        .create_user(org_id, "alice@example.com", "pw", Role::Member)
        .await
        .unwrap();
    let issued_at = Utc::now();

    let issued = identity
        .password_grant("alice@example.com", "pw", issued_at)
        .await
        .unwrap();
    assert_eq!(issued.expires_in, 60);
    let token = &issued.access_token;
    let verify_at =
        |seconds: i64| identity.verify_token(token, issued_at + chrono::Duration::seconds(seconds));
    assert!(verify_at(59).is_ok());
    assert!(matches!(verify_at(60), Err(IdentityError::ExpiredToken)));
    assert!(matches!(
        verify_at(86_400),
        Err(IdentityError::ExpiredToken)
    ));
    app.shutdown().await;
}

async fn it_should_accept_tokens_issued_before_a_restart(db: TestDb) {
    let app = spawn_app(&db).await;
    let before = identity(&app.store).await;
    let org_id = before.create_org("Acme").await.unwrap();
    let user_id = before
        .create_user(org_id, "alice@example.com", "pw", Role::Member)
        .await
        .unwrap();
    let now = Utc::now();
    let token = before
        .password_grant("alice@example.com", "pw", now)
        .await
        .unwrap()
        .access_token;
    app.shutdown().await;

    let app = spawn_app(&db).await;
    let after = identity(&app.store).await;
    let principal = after.verify_token(&token, now).expect("still valid");
    assert_eq!((principal.user_id, principal.org_id), (user_id, org_id));
    app.shutdown().await;
}

async fn it_should_give_every_process_the_same_signing_key(db: TestDb) {
    // Migrate first, as `serve` does before anything loads identity.
    let app = spawn_app(&db).await;
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(another_process(&db).await);
    }
    // Every process starts at once on a store that has no signing key yet.
    let identities: Vec<Identity> = futures::future::try_join_all(
        stores
            .iter()
            .map(|store| Identity::load(store.clone(), DEFAULT_TOKEN_TTL)),
    )
    .await
    .expect("every process loads the key");
    let org_id = identities[0].create_org("Acme").await.unwrap();
    identities[1]
        .create_user(org_id, "alice@example.com", "pw", Role::Member)
        .await
        .unwrap();
    let now = Utc::now();
    for issuer in &identities {
        let token = issuer
            .password_grant("alice@example.com", "pw", now)
            .await
            .unwrap()
            .access_token;
        for verifier in &identities {
            assert_eq!(verifier.verify_token(&token, now).unwrap().org_id, org_id);
        }
    }
    for store in stores {
        store.close().await;
    }
    app.shutdown().await;
}

async fn it_should_accept_an_api_key_for_its_own_organisation_only(db: TestDb) {
    let app = spawn_app(&db).await;
    let identity = identity(&app.store).await;
    let org_id = identity.create_org("Acme").await.unwrap();
    let other_org = identity.create_org("Globex").await.unwrap();
    let (key_id, key) = identity.create_api_key(org_id).await.unwrap();
    let (_, other_key) = identity.create_api_key(other_org).await.unwrap();
    assert!(key.starts_with("tek_"));

    assert_eq!(identity.verify_api_key(org_id, &key).await.unwrap(), key_id);
    let mut altered = key.clone();
    altered.replace_range(4..5, if &key[4..5] == "A" { "B" } else { "A" });
    for (org, candidate) in [
        (other_org, key.as_str()),
        (org_id, other_key.as_str()),
        (org_id, altered.as_str()),
        (org_id, &key[4..]),
        (org_id, ""),
    ] {
        assert!(
            matches!(
                identity.verify_api_key(org, candidate).await,
                Err(IdentityError::InvalidApiKey)
            ),
            "{candidate:?} was accepted for {org}"
        );
    }
    assert!(matches!(
        identity.create_api_key(Uuid::new_v4()).await,
        Err(IdentityError::UnknownOrganisation)
    ));

    let stored: Vec<String> = sqlx_key_hashes(&app.store).await;
    assert!(!stored.iter().any(|hash| hash.contains(&key[4..])));
    assert!(stored.iter().all(|hash| hash.len() == 64));
    app.shutdown().await;
}

/// What the store holds for API keys: hashes, never the keys.
async fn sqlx_key_hashes(store: &Store) -> Vec<String> {
    trigger_engine::on_pool!(store, |pool| {
        sqlx::query_scalar("SELECT key_hash FROM api_keys")
            .fetch_all(pool)
            .await
    })
    .unwrap()
}

async fn it_should_bootstrap_an_admin_once_and_only_once(db: TestDb) {
    // A store no engine has served yet (spawn_app would bootstrap it).
    let store = another_process(&db).await;
    store.migrate().await.unwrap();
    let mut identities = vec![identity(&store).await];
    for _ in 0..3 {
        identities.push(identity(&another_process(&db).await).await);
    }
    assert!(!identities[0].has_users().await.unwrap());

    // Several processes start at once on an empty store.
    let outcomes = futures::future::try_join_all(
        identities
            .iter()
            .map(|identity| identity.bootstrap_admin(None, None)),
    )
    .await
    .expect("bootstrap");
    let created: Vec<_> = outcomes.into_iter().flatten().collect();
    assert_eq!(created.len(), 1, "exactly one process bootstraps");
    let admin = &created[0];
    assert_eq!(admin.email, "admin@localhost");
    let password = admin
        .generated_password
        .as_deref()
        .expect("a generated password");
    assert!(
        !format!("{admin:?}").contains(password),
        "Debug shows the password"
    );

    let now = Utc::now();
    let token = identities[1]
        .password_grant("admin@localhost", password, now)
        .await
        .expect("the generated password signs in")
        .access_token;
    let principal = identities[2].verify_token(&token, now).unwrap();
    assert_eq!(
        (principal.user_id, principal.org_id, principal.role),
        (admin.user_id, admin.org_id, Role::Admin)
    );

    assert!(identities[0].has_users().await.unwrap());
    assert!(identities[3]
        .bootstrap_admin(None, None)
        .await
        .unwrap()
        .is_none());
}

async fn it_should_bootstrap_with_the_credentials_given(db: TestDb) {
    let store = another_process(&db).await;
    store.migrate().await.unwrap();
    let identity = identity(&store).await;
    assert!(matches!(
        identity.bootstrap_admin(Some("root"), None).await,
        Err(IdentityError::InvalidEmail)
    ));
    let admin = identity
        .bootstrap_admin(Some("Ops@Example.com"), Some("s3cret"))
        .await
        .unwrap()
        .expect("bootstrapped");
    assert_eq!(admin.email, "ops@example.com");
    assert_eq!(admin.generated_password, None);
    let token = identity
        .password_grant("ops@example.com", "s3cret", Utc::now())
        .await;
    assert!(token.is_ok());
}

async fn it_should_not_bootstrap_a_store_that_has_users(db: TestDb) {
    let app = spawn_app(&db).await;
    let identity = identity(&app.store).await;
    let org_id = identity.create_org("Acme").await.unwrap();
    identity
        .create_user(org_id, "alice@example.com", "pw", Role::Member)
        .await
        .unwrap();
    assert!(identity
        .bootstrap_admin(None, None)
        .await
        .unwrap()
        .is_none());
    app.shutdown().await;
}

async fn admin(db: &TestDb, args: &[impl AsRef<OsStr>], stdin: Option<&str>) -> Output {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_trigger-engine"))
        .arg("admin")
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running trigger-engine admin");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    drop(input);
    child.wait_with_output().await.unwrap()
}

/// The one JSON object a successful admin command prints.
fn object(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "trigger-engine admin failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line: {stdout}");
    serde_json::from_str(lines[0]).expect("a JSON object")
}

fn id(value: &Value, field: &str) -> Uuid {
    value[field]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("{field} in {value}"))
}

async fn it_should_create_organisations_users_and_keys_from_the_command_line(db: TestDb) {
    let app = spawn_app(&db).await;
    let org = object(&admin(&db, &["create-org", "Acme"], None).await);
    let org_id = id(&org, "org_id");
    let org_text = org_id.to_string();

    let alice = object(
        &admin(
            &db,
            &[
                "create-user",
                "--org",
                &org_text,
                "--email",
                "alice@example.com",
                "--password",
                "pw-1",
            ],
            None,
        )
        .await,
    );
    let bob = object(
        &admin(
            &db,
            &[
                "create-user",
                "--org",
                &org_text,
                "--email",
                "bob@example.com",
                "--password-stdin",
            ],
            Some("pw two\r\n"),
        )
        .await,
    );
    let key = object(&admin(&db, &["create-api-key", "--org", &org_text], None).await);

    let identity = identity(&app.store).await;
    let now = Utc::now();
    for (email, password, user) in [
        ("alice@example.com", "pw-1", &alice),
        ("bob@example.com", "pw two", &bob),
    ] {
        let token = identity
            .password_grant(email, password, now)
            .await
            .unwrap_or_else(|error| panic!("{email}: {error}"))
            .access_token;
        let principal = identity.verify_token(&token, now).unwrap();
        assert_eq!(
            (principal.user_id, principal.org_id),
            (id(user, "user_id"), org_id)
        );
    }
    let api_key = key["api_key"].as_str().unwrap();
    assert_eq!(
        identity.verify_api_key(org_id, api_key).await.unwrap(),
        id(&key, "api_key_id")
    );
    app.shutdown().await;
}

async fn it_should_name_what_is_wrong_when_an_admin_command_fails(db: TestDb) {
    let app = spawn_app(&db).await;
    let org_id = identity(&app.store).await.create_org("Acme").await.unwrap();
    let (org, unknown) = (org_id.to_string(), Uuid::new_v4().to_string());
    let alice = |org: &str| {
        [
            "create-user",
            "--org",
            org,
            "--email",
            "alice@example.com",
            "--password",
            "pw",
        ]
        .map(String::from)
        .to_vec()
    };

    object(&admin(&db, &alice(&org), None).await);
    let bob = |last: &[&str]| {
        let mut args = ["create-user", "--org", &org, "--email", "bob@example.com"].to_vec();
        args.extend(last);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    for (command, expected) in [
        (alice(&unknown), format!("no organisation {unknown}")),
        (alice(&org), "email already registered".to_owned()),
        (
            ["create-api-key", "--org", &unknown]
                .map(String::from)
                .to_vec(),
            format!("no organisation {unknown}"),
        ),
        (bob(&[]), "--password".to_owned()),
        (bob(&["--password-stdin"]), "password is empty".to_owned()),
    ] {
        let output = admin(&db, &command, Some("")).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{command:?} succeeded");
        assert!(output.stdout.is_empty(), "{command:?} printed to stdout");
        assert!(stderr.contains(&expected), "{command:?}: {stderr}");
    }
    app.shutdown().await;
}

async fn it_should_create_users_of_each_role_and_change_roles_from_the_command_line(db: TestDb) {
    let app = spawn_app(&db).await;
    let org = object(&admin(&db, &["create-org", "Acme"], None).await);
    let org_id = id(&org, "org_id");
    let org_text = org_id.to_string();
    let create = |email: &str, role: Option<&str>| {
        let mut args = [
            "create-user",
            "--org",
            &org_text,
            "--email",
            email,
            "--password",
            "pw",
        ]
        .map(String::from)
        .to_vec();
        if let Some(role) = role {
            args.extend(["--role".to_owned(), role.to_owned()]);
        }
        args
    };
    let identity = identity(&app.store).await;
    let role_of = |email: &'static str| {
        let identity = identity.clone();
        async move {
            let now = Utc::now();
            let token = identity.password_grant(email, "pw", now).await.unwrap();
            identity
                .verify_token(&token.access_token, now)
                .unwrap()
                .role
        }
    };

    // The default is `member`; each role can be asked for.
    let member = object(&admin(&db, &create("member@example.com", None), None).await);
    assert_eq!(member["role"], "member");
    assert_eq!(role_of("member@example.com").await, Role::Member);
    for (email, role) in [
        ("auditor@example.com", Role::Auditor),
        ("boss@example.com", Role::Admin),
        ("member2@example.com", Role::Member),
    ] {
        let created = object(&admin(&db, &create(email, Some(role.as_str())), None).await);
        assert_eq!(created["role"], role.as_str());
        assert_eq!(role_of(email).await, role, "{email}");
    }

    // set-role changes it for the tokens issued from then on.
    let member_id = id(&member, "user_id").to_string();
    let changed = object(
        &admin(
            &db,
            &["set-role", "--user", &member_id, "--role", "auditor"],
            None,
        )
        .await,
    );
    assert_eq!(changed["user_id"], member_id);
    assert_eq!(changed["role"], "auditor");
    assert_eq!(role_of("member@example.com").await, Role::Auditor);

    let unknown = Uuid::new_v4().to_string();
    for (command, expected) in [
        (
            vec!["set-role", "--user", &unknown, "--role", "admin"],
            format!("no user {unknown}"),
        ),
        (
            vec!["set-role", "--user", &member_id, "--role", "root"],
            "root".to_owned(),
        ),
        (vec!["set-role", "--user", &member_id], "--role".to_owned()),
    ] {
        let output = admin(&db, &command, None).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{command:?} succeeded");
        assert!(output.stdout.is_empty(), "{command:?} printed to stdout");
        assert!(stderr.contains(&expected), "{command:?}: {stderr}");
    }
    let refused = admin(&db, &create("root@example.com", Some("root")), None).await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("possible values"));
    app.shutdown().await;
}
