//! Spawning the engine against a fresh store, and the commands tests issue.

use std::future::Future;
use std::num::NonZeroU32;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::Once;

use aggregates::event::Stamp;
use aggregates::{Actor, NewTrigger, TriggerAction, TriggerCommand, TriggerEvent};
use chrono::Utc;
use sqlx::Connection;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use trigger_engine::app::App;
use trigger_engine::commands::Commands;
use trigger_engine::config::{ServeConfig, StoreConfig};
use trigger_engine::connections::{Connections, EncryptionKey};
use trigger_engine::identity::{Identity, Role};
use trigger_engine::projector::ProjectionHandle;
use trigger_engine::store::Store;
use uuid::Uuid;

/// Generates one `#[tokio::test]` per backend for an `async fn(TestDb)`.
#[macro_export]
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$name($crate::helpers::TestDb::sqlite()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if let Some(db) = $crate::helpers::TestDb::postgres().await {
                    super::$name(db).await;
                }
            }
        }
    )*};
}

/// A store of its own for one test: an SQLite file in a temporary folder, or a PostgreSQL
/// database created for the test and dropped after it.
pub struct TestDb {
    pub url: String,
    postgres: Option<(String, String)>,
    _folder: Option<tempfile::TempDir>,
}

impl TestDb {
    pub fn sqlite() -> Self {
        init_logs();
        let folder = tempfile::tempdir().expect("a temporary folder");
        let url = format!("sqlite://{}/store.db", folder.path().display());
        Self {
            url,
            postgres: None,
            _folder: Some(folder),
        }
    }

    /// `None` (the test is skipped) when `TEST_DATABASE_URL` is unset, unless
    /// `TRIGGER_ENGINE_REQUIRE_POSTGRES=1`, which CI sets so that a missing PostgreSQL fails.
    pub async fn postgres() -> Option<Self> {
        init_logs();
        let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
            assert!(
                std::env::var("TRIGGER_ENGINE_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "TEST_DATABASE_URL is unset but TRIGGER_ENGINE_REQUIRE_POSTGRES=1"
            );
            eprintln!("skipped: TEST_DATABASE_URL is unset");
            return None;
        };
        let name = format!("trigger_engine_test_{}", Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connecting to TEST_DATABASE_URL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("creating a test database");
        let url = replace_database(&admin_url, &name);
        Some(Self {
            url,
            postgres: Some((admin_url, name)),
            _folder: None,
        })
    }

    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            database_url: self.url.clone(),
            pool_size: 16,
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs outside any runtime we may block, so the clean-up gets a thread of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for clean-up");
            runtime.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(&drop).execute(&mut admin).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// The URL with its database name replaced.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = match base.rfind('/') {
        Some(slash) if base[..slash].ends_with('/') => format!("{base}/{name}"),
        Some(slash) => format!("{}/{name}", &base[..slash]),
        None => format!("{base}/{name}"),
    };
    match query {
        Some(query) => format!("{base}?{query}"),
        None => base,
    }
}

fn init_logs() {
    static LOGS: Once = Once::new();
    LOGS.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tracing_subscriber::fmt()
                .with_env_filter("info,sqlx=warn")
                .with_test_writer()
                .init();
        }
    });
}

/// The first-run admin every test engine creates.
pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";
/// The outbound guard's allow list in tests: the loopback address the tests' own feed and
/// record servers listen on, and nothing more.
pub const LOCAL_SOURCES: &str = "127.0.0.1";

/// The key every test engine seals connections' credentials with.
pub fn test_encryption_key() -> EncryptionKey {
    EncryptionKey::from_bytes([0x5e; 32])
}

/// A port nobody listens on now; the engine binds it a moment later.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the real binary (`serve`) on `db`, with `env` added to its environment, and waits until
/// it answers `/healthz`; returns the process (killed if dropped) and its base URL. For tests that
/// kill the engine, which an in-process [`spawn_app`] cannot show. Its logs are errors only
/// unless `TEST_LOG` is set.
pub async fn start_engine(
    db: &TestDb,
    http: &reqwest::Client,
    env: &[(&str, String)],
) -> (Child, String) {
    let port = free_port();
    let logs = if std::env::var_os("TEST_LOG").is_some() {
        "info,sqlx=warn"
    } else {
        "error"
    };
    let child = Command::new(env!("CARGO_BIN_EXE_trigger-engine"))
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("TRIGGER_ENGINE_LISTEN", format!("127.0.0.1:{port}"))
        .env("TRIGGER_ENGINE_OUTBOUND_ALLOW", LOCAL_SOURCES)
        .env("TRIGGER_ENGINE_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("TRIGGER_ENGINE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", logs)
        .envs(env.iter().map(|(name, value)| (name, value)))
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting trigger-engine serve");
    let address = format!("http://127.0.0.1:{port}");
    let healthz = format!("{address}/healthz");
    eventually(60, "the engine to answer /healthz", || {
        let (http, healthz) = (http.clone(), healthz.clone());
        async move { matches!(http.get(&healthz).send().await, Ok(r) if r.status() == 200) }
    })
    .await;
    (child, address)
}

/// An access token for the first-run admin of the engine at `address`.
pub async fn admin_token(http: &reqwest::Client, address: &str) -> String {
    let response = http
        .post(format!("{address}/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", ADMIN_EMAIL),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "signing in as the admin");
    let body: serde_json::Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// A running engine on 127.0.0.1 with a free port.
pub struct TestApp {
    pub address: String,
    pub store: Arc<Store>,
    pub commands: Commands,
    pub projections: ProjectionHandle,
    pub identity: Identity,
    pub connections: Connections,
    pub pollers: trigger_engine::poller::Poller,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn_app(db: &TestDb) -> TestApp {
    spawn_app_with(db, |_| {}).await
}

/// Like [`spawn_app`], with the configuration changed by `configure` first (tighter rate limits, a
/// readiness bound...).
pub async fn spawn_app_with(db: &TestDb, configure: impl FnOnce(&mut ServeConfig)) -> TestApp {
    spawn_app_on(&db.store_config(), configure).await
}

/// Like [`spawn_app_with`], on the store `store` names (the test's database reached another way,
/// through a proxy the test can take down, for instance).
pub async fn spawn_app_on(
    store: &StoreConfig,
    configure: impl FnOnce(&mut ServeConfig),
) -> TestApp {
    // Limits far above anything a test sends, so only tests that set their own ever meet one.
    let generous = NonZeroU32::new(1_000_000).unwrap();
    let mut serve = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        token_ttl_seconds: 3600,
        admin_email: Some(ADMIN_EMAIL.into()),
        admin_password: Some(ADMIN_PASSWORD.into()),
        token_rate_per_minute: generous,
        token_burst: generous,
        api_rate_per_second: generous,
        api_burst: generous,
        ready_max_lag: 1_000,
        encryption_key: Some(test_encryption_key()),
        public_url: Some("https://engine.example.com".parse().unwrap()),
        // Nothing listens there: a test that reaches Typeform starts its own (`typeform.rs`).
        typeform_api_url: "http://127.0.0.1:9".parse().unwrap(),
        stripe_api_url: "http://127.0.0.1:9".parse().unwrap(),
        github_api_url: "http://127.0.0.1:9".parse().unwrap(),
        webhook_rate_per_second: generous,
        webhook_burst: generous,
        // Polling tests poll every few tens of milliseconds; the floor must let them. Other tests'
        // `rss` triggers point nowhere, so only the polling tests (`pollers.rs`) turn polling on.
        min_polling_ms: 10,
        polling: false,
        // The tests' feed servers listen on 127.0.0.1, which the outbound guard refuses unless
        // allowed: exactly that address, so the guard's own tests still see its neighbours refused.
        outbound_allow: LOCAL_SOURCES.parse().unwrap(),
        ..ServeConfig::from_env()
    };
    configure(&mut serve);
    let app = App::build(store, &serve)
        .await
        .expect("building the engine");
    let address = format!("http://{}", app.local_addr());
    let pollers = app.pollers.clone();
    let (store, commands, projections, identity, connections) = (
        app.store.clone(),
        app.commands.clone(),
        app.projections.clone(),
        app.identity.clone(),
        app.connections.clone(),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    TestApp {
        address,
        store,
        commands,
        projections,
        identity,
        connections,
        pollers,
        http: reqwest::Client::new(),
        stop: Some(stop),
        server: Some(server),
    }
}

impl TestApp {
    /// Stops the engine the way SIGTERM does and waits until it has finished.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("clean shutdown");
        }
    }

    /// Runs a command as `user` and waits until the read model shows it.
    pub async fn run(&self, id: Uuid, action: TriggerAction) -> Option<i64> {
        self.commands
            .execute_and_wait(id, command(action), &request_id())
            .await
            .expect("command accepted")
            .position
    }

    /// A new organisation with one user, a `member` (who may do everything on triggers,
    /// connections and runs), signed in through `POST /token` over HTTP.
    pub async fn sign_up(&self) -> Session {
        self.sign_up_as(Role::Member).await
    }

    /// Like [`Self::sign_up`], the user having `role`.
    pub async fn sign_up_as(&self, role: Role) -> Session {
        let org_id = self.identity.create_org("test organisation").await.unwrap();
        self.join(org_id, role).await
    }

    /// Another user of `org_id`, with `role`, signed in through `POST /token` over HTTP.
    pub async fn join(&self, org_id: Uuid, role: Role) -> Session {
        let email = format!("{}@example.com", Uuid::new_v4().simple());
        let user_id = self
            .identity
            .create_user(org_id, &email, "a password", role)
            .await
            .unwrap();
        let token = self.token(&email, "a password").await;
        Session {
            org_id,
            user_id,
            token,
        }
    }

    /// An access token from the real token endpoint.
    pub async fn token(&self, email: &str, password: &str) -> String {
        let response = self
            .http
            .post(format!("{}/token", self.address))
            .form(&[
                ("grant_type", "password"),
                ("username", email),
                ("password", password),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "signing in as {email}");
        let body: serde_json::Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A request to `path` on this engine, as `session`.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        session: &Session,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.address))
            .bearer_auth(&session.token)
    }

    /// Creates and enables a trigger of `provider_id/trigger_id` in `org_id`; returns its id.
    pub async fn enabled_trigger(
        &self,
        org_id: Uuid,
        provider_id: &str,
        trigger_id: &str,
        trigger_config: serde_json::Value,
    ) -> Uuid {
        let id = Uuid::new_v4();
        let create = TriggerAction::CreateTrigger(NewTrigger {
            project_trigger_id: id,
            org_id,
            project_id: "project-1".into(),
            connection_id: None,
            provider_id: provider_id.into(),
            trigger_id: trigger_id.into(),
            trigger_config: Some(trigger_config),
        });
        self.run(id, create).await;
        self.run(id, TriggerAction::EnableTrigger).await;
        id
    }

    /// Waits until every read model shows everything in the log now, then lists the trigger's
    /// runs, newest first.
    /// `GET /triggers/{id}` as `session`, which must answer 200.
    pub async fn trigger_json(&self, session: &Session, trigger: Uuid) -> serde_json::Value {
        let response = self
            .request(
                reqwest::Method::GET,
                &format!("/triggers/{trigger}"),
                session,
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response.json().await.unwrap()
    }

    pub async fn runs_of(&self, trigger: Uuid) -> Vec<projections::runs::RunView> {
        let head = self.store.head().await.unwrap();
        assert!(
            self.projections
                .wait_for(head, std::time::Duration::from_secs(10))
                .await,
            "read models reach the log head"
        );
        self.store.trigger_runs(trigger, None, 1_000).await.unwrap()
    }

    /// Creates a trigger in `org` and returns its id.
    pub async fn create_trigger(&self, org_id: Uuid) -> Uuid {
        let (id, action) = create_action(org_id);
        self.run(id, action).await;
        id
    }
    /// Creates a trigger, then appends to its stream an event the projector has no reader for (a
    /// version from the future, as a botched deploy would write): the read model stops at the
    /// event before it while the log moves on. Returns the trigger's id, for
    /// [`Self::unstall_projection`].
    pub async fn stall_projection(&self) -> Uuid {
        let id = self.create_trigger(Uuid::new_v4()).await;
        let enabled = serde_json::to_value(TriggerEvent::TriggerEnabled {
            stamp: Stamp {
                at: Utc::now(),
                by: user(),
            },
        })
        .unwrap();
        let mut tx = self.store.begin().await.unwrap();
        tx.execute(&format!(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             VALUES ('trigger', '{id}', 2, 'TriggerEnabled', '2', '{enabled}', '{{}}')"
        ))
        .await
        .unwrap();
        tx.commit().await.unwrap();
        id
    }

    /// Makes the event [`Self::stall_projection`] appended readable, so the projector folds it
    /// (the trigger becomes enabled) and goes on.
    pub async fn unstall_projection(&self, id: Uuid) {
        let mut tx = self.store.begin().await.unwrap();
        tx.execute(&format!(
            "UPDATE events SET event_version = '1' WHERE aggregate_id = '{id}' AND sequence = 2"
        ))
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
}

/// A signed-in user of a fresh organisation.
pub struct Session {
    pub org_id: Uuid,
    pub user_id: Uuid,
    pub token: String,
}

pub fn user() -> Actor {
    Actor::User(Uuid::from_u128(0x5e55_1011))
}

pub fn request_id() -> String {
    format!("req-{}", Uuid::new_v4().simple())
}

pub fn command(action: TriggerAction) -> TriggerCommand {
    TriggerCommand::new(Utc::now(), user(), action)
}

pub fn create_action(org_id: Uuid) -> (Uuid, TriggerAction) {
    let id = Uuid::new_v4();
    let action = TriggerAction::CreateTrigger(NewTrigger {
        project_trigger_id: id,
        org_id,
        project_id: "project-1".into(),
        connection_id: None,
        provider_id: "rss".into(),
        trigger_id: "on_new_item".into(),
        trigger_config: Some(serde_json::json!({"feed_url": "http://127.0.0.1/feed"})),
    });
    (id, action)
}

pub fn advance(seen: Option<u64>, next: u64) -> TriggerAction {
    TriggerAction::AdvanceCursor {
        seen: seen.map(|n| serde_json::json!({"last_processed_event_id": n.to_string()})),
        next: serde_json::json!({"last_processed_event_id": next.to_string()}),
    }
}

/// Checks that `response` is a problem document with `status`, naming `field` when given;
/// returns it.
pub async fn expect_problem(
    response: reqwest::Response,
    status: reqwest::StatusCode,
    field: Option<&str>,
) -> serde_json::Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["status"], status.as_u16());
    assert!(
        problem["type"].is_string()
            && problem["title"].is_string()
            && problem["detail"].is_string()
    );
    if let Some(field) = field {
        assert_eq!(problem["field"], field, "{problem}");
    }
    problem
}

/// Polls `check` until it is true, failing the test after `seconds`: for conditions that live in
/// another process or database session, where there is nothing to subscribe to.
pub async fn eventually<F, Fut>(seconds: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
