//! Wiring: the store, the projector, the command path and the HTTP server, started together.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::commands::Commands;
use crate::config::{ExecutorConfig, ServeConfig, StoreConfig};
use crate::connections::Connections;
use crate::delivery::{HttpExecutor, HttpExecutorConfig, RetryPolicy};
use crate::executor::circuit::CircuitSettings;
use crate::executor::{self, Circuits, ExecutorSettings, Target};
use crate::filter::Filters;
use crate::http::metrics::Metrics;
use crate::http::rate_limit::RateLimits;
use crate::http::{self, AppState, WebhookApps};
use crate::identity::Identity;
use crate::poller::{self, PollSettings, Poller};
use crate::projector::{self, ProjectionHandle};
use crate::registration::{ApiUrls, Registration};
use crate::runs::Runs;
use crate::scheduler::{self, Membership};
use crate::store::Store;
use crate::trigger_cache::TriggerCache;

/// A built engine, listening but not yet serving: tests read its address and reach its parts.
pub struct App {
    listener: TcpListener,
    pub store: Arc<Store>,
    pub commands: Commands,
    pub runs: Runs,
    pub projections: ProjectionHandle,
    pub identity: Identity,
    pub connections: Connections,
    pub pollers: Poller,
    /// The executor's circuit breakers, one per target (empty when no executor runs here).
    pub circuits: Arc<Circuits>,
    executor_concurrency: usize,
    node_lease: std::time::Duration,
    trigger_cache: TriggerCache,
    filters: Filters,
    registration: Registration,
    ready: Arc<AtomicBool>,
    webhook_apps: WebhookApps,
    rate_limits: RateLimits,
    ready_max_lag: u64,
    stop: CancellationToken,
    projector: tokio::task::JoinHandle<()>,
    executor: Option<tokio::task::JoinHandle<()>>,
    releaser: tokio::task::JoinHandle<()>,
    replayer: Option<tokio::task::JoinHandle<()>>,
    outcomes: crate::outcomes::Outcomes,
    outcome_writer: tokio::task::JoinHandle<()>,
    scheduler: tokio::task::JoinHandle<()>,
    poller: Option<tokio::task::JoinHandle<()>>,
    membership: tokio::task::JoinHandle<()>,
}

impl App {
    /// Connects and migrates the store, starts the projector and binds the listener.
    pub async fn build(store_config: &StoreConfig, serve: &ServeConfig) -> anyhow::Result<Self> {
        let store = Arc::new(open_store(store_config).await?);
        let stop = CancellationToken::new();
        let (projections, projector) = projector::spawn(store.clone(), stop.clone());
        let commands = Commands::new(store.clone(), projections.clone());
        let runs = Runs::new(store.clone(), projections.clone());
        let trigger_cache = TriggerCache::new(store.clone(), projections.clone());
        let identity = Identity::load(
            store.clone(),
            std::time::Duration::from_secs(serve.token_ttl_seconds),
        )
        .await
        .context("loading the token-signing key")?;
        bootstrap(&identity, serve).await?;
        let connections = Connections::new(store.clone(), serve.encryption_key.as_ref());
        if serve.encryption_key.is_none() {
            tracing::warn!(
                "no TRIGGER_ENGINE_ENCRYPTION_KEY: creating connections and registering provider webhooks will answer 503"
            );
        }
        let registration = Registration::new(
            store.clone(),
            commands.clone(),
            connections.clone(),
            ApiUrls {
                typeform: serve.typeform_api_url.clone(),
                stripe: serve.stripe_api_url.clone(),
                github: serve.github_api_url.clone(),
            },
            serve.public_url.clone(),
        )
        .context("configuring provider webhook registration")?;
        let listener = TcpListener::bind(serve.listen)
            .await
            .with_context(|| format!("binding {}", serve.listen))?;
        let ready = Arc::new(AtomicBool::new(false));
        let head = store.head().await.context("reading the log head")?;
        let catching_up = projections.clone();
        let ready_flag = ready.clone();
        tokio::spawn(async move {
            // Ready once the read model has caught up with what was in the log at start-up.
            while !catching_up
                .wait_for(head, std::time::Duration::from_secs(60))
                .await
            {
                tracing::info!(
                    head,
                    reached = catching_up.checkpoint(),
                    "projections catching up"
                );
            }
            ready_flag.store(true, Ordering::Release);
        });
        let rate_limits = RateLimits::new(serve);
        rate_limits.spawn_forgetting(stop.clone());
        let (nodes, membership) = Membership::join(
            store.clone(),
            std::time::Duration::from_secs(serve.node_lease_seconds),
            stop.clone(),
        )
        .await
        .context("joining the engine processes")?;
        let scheduler = scheduler::spawn(
            store.clone(),
            runs.clone(),
            projections.clone(),
            nodes.clone(),
            stop.clone(),
        );
        let filters = Filters::default();
        let pollers = Poller::new(
            store.clone(),
            commands.clone(),
            connections.clone(),
            filters.clone(),
            PollSettings {
                min_interval: std::time::Duration::from_millis(serve.min_polling_ms),
                max_failures: serve.poll_max_failures,
            },
            crate::outbound::Guard::new(serve.outbound_allow.clone()),
            nodes.node_id(),
        )
        .context("configuring the poller's HTTP client")?;
        let poller = serve.polling.then(|| {
            poller::spawn(
                pollers.clone(),
                store.clone(),
                projections.clone(),
                nodes.clone(),
                stop.clone(),
            )
        });
        let releaser = crate::release::spawn(store.clone(), runs.clone(), stop.clone());
        let (outcomes, outcome_writer) = crate::outcomes::spawn(
            store.clone(),
            crate::outcomes::OutcomeSettings {
                per_trigger: serve.outcomes_per_trigger,
                retention: std::time::Duration::from_secs(serve.outcome_retention_hours * 3600),
                queue: serve.outcome_queue,
            },
            stop.clone(),
        );
        // A process without executors only serves the API: the processes that execute runs
        // work the replays, at their pace.
        let replayer = (serve.executor.executor_concurrency > 0).then(|| {
            crate::replayer::spawn(
                store.clone(),
                runs.clone(),
                projections.clone(),
                serve.executor.executor_concurrency,
                stop.clone(),
            )
        });
        let circuits = Arc::new(Circuits::new(CircuitSettings {
            threshold: serve.executor.executor_circuit_threshold.max(1),
            cool_down: std::time::Duration::from_millis(
                serve.executor.executor_circuit_cool_down_ms,
            ),
            max_cool_down: std::time::Duration::from_millis(
                serve
                    .executor
                    .executor_circuit_max_cool_down_ms
                    .max(serve.executor.executor_circuit_cool_down_ms),
            ),
        }));
        let executor = executor_settings(&serve.executor)?.map(|settings| {
            executor::spawn(
                store.clone(),
                runs.clone(),
                projections.clone(),
                settings,
                circuits.clone(),
                stop.clone(),
            )
        });
        Ok(Self {
            listener,
            store,
            commands,
            runs,
            projections,
            identity,
            connections,
            pollers,
            circuits,
            executor_concurrency: serve.executor.executor_concurrency,
            node_lease: std::time::Duration::from_secs(serve.node_lease_seconds),
            trigger_cache,
            filters,
            registration,
            ready,
            webhook_apps: WebhookApps {
                slack: serve.slack_signing_secret.clone(),
                github: serve.github_webhook_secret.clone(),
            },
            rate_limits,
            ready_max_lag: serve.ready_max_lag,
            stop,
            projector,
            executor,
            releaser,
            replayer,
            outcomes,
            outcome_writer,
            scheduler,
            poller,
            membership,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests, stops the projector
    /// after its current batch, and closes the store.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // Live event streams never end by themselves; the graceful shutdown waits for every
        // response, so they are ended as soon as shutdown begins.
        let event_streams = http::events::EventStreams::default();
        let closing = event_streams.clone();
        let shutdown = async move {
            shutdown.await;
            closing.close_all();
        };
        let state = AppState {
            store: self.store.clone(),
            commands: self.commands.clone(),
            runs: self.runs.clone(),
            projections: self.projections.clone(),
            identity: self.identity.clone(),
            connections: self.connections.clone(),
            registration: self.registration.clone(),
            ready: self.ready.clone(),
            rate_limits: self.rate_limits.clone(),
            metrics: Metrics::default(),
            ready_max_lag: self.ready_max_lag,
            webhook_apps: self.webhook_apps.clone(),
            pollers: self.pollers.clone(),
            event_streams: event_streams.clone(),
            filters: self.filters.clone(),
            circuits: self.circuits.clone(),
            executor_concurrency: self.executor_concurrency,
            outcomes: self.outcomes.clone(),
            node_lease: self.node_lease,
            triggers: self.trigger_cache.clone(),
        };
        tracing::info!(address = %self.local_addr(), store = self.store.backend(), "serving");
        // With the peer's address, which the token endpoint's rate limit is keyed on.
        let service = http::router(state).into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")?;
        self.stop.cancel();
        self.scheduler.await.context("stopping the scheduler")?;
        if let Some(poller) = self.poller {
            poller.await.context("stopping the poller")?;
        }
        self.membership
            .await
            .context("leaving the engine processes")?;
        if let Some(executor) = self.executor {
            executor.await.context("stopping the executor")?;
        }
        self.releaser.await.context("stopping the releaser")?;
        if let Some(replayer) = self.replayer {
            replayer.await.context("stopping the replayer")?;
        }
        self.outcome_writer
            .await
            .context("writing the last outcomes")?;
        self.projector.await.context("stopping the projector")?;
        self.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The executor this process runs, if any: `None` when its concurrency is 0 (a process that only
/// serves the API and receives webhooks, leaving runs to the others).
fn executor_settings(config: &ExecutorConfig) -> anyhow::Result<Option<ExecutorSettings>> {
    if config.executor_concurrency == 0 {
        return Ok(None);
    }
    let timeout = std::time::Duration::from_secs(config.executor_timeout_seconds);
    let target = match &config.executor_url {
        None => Target::BuiltIn,
        Some(url) => {
            let secret = config.executor_secret.as_ref().context(
                "TRIGGER_ENGINE_EXECUTOR_URL needs TRIGGER_ENGINE_EXECUTOR_SECRET (a whsec_ \
                 Standard Webhooks secret) to sign the calls",
            )?;
            Target::Http(
                HttpExecutor::new(HttpExecutorConfig {
                    url_template: url.clone(),
                    secret: secret.expose().to_owned(),
                    timeout,
                })
                .context("configuring the HTTP executor")?,
            )
        }
    };
    anyhow::ensure!(
        config.executor_max_attempts >= 1,
        "TRIGGER_ENGINE_EXECUTOR_MAX_ATTEMPTS must be at least 1"
    );
    Ok(Some(ExecutorSettings {
        target: std::sync::Arc::new(target),
        retry: RetryPolicy {
            max_attempts: config.executor_max_attempts,
            base_delay: std::time::Duration::from_millis(config.executor_retry_base_ms),
            ..RetryPolicy::default()
        },
        timeout,
        concurrency: config.executor_concurrency,
    }))
}

/// First run with no users: creates an organisation and an admin, so a newcomer can sign in.
/// A generated password is printed once on stdout, never logged.
async fn bootstrap(identity: &Identity, serve: &ServeConfig) -> anyhow::Result<()> {
    let created = identity
        .bootstrap_admin(
            serve.admin_email.as_deref(),
            serve.admin_password.as_deref(),
        )
        .await
        .context("creating the first admin")?;
    if let Some(created) = created {
        tracing::info!(org_id = %created.org_id, email = %created.email, "created the first organisation and admin");
        if let Some(password) = &created.generated_password {
            println!(
                "{}",
                serde_json::json!({
                    "admin_email": created.email,
                    "admin_password": password,
                    "org_id": created.org_id,
                    "note": "generated once; set TRIGGER_ENGINE_ADMIN_PASSWORD to choose it",
                })
            );
        }
    }
    Ok(())
}

/// Connects to the configured store and brings its schema up to date.
pub async fn open_store(config: &StoreConfig) -> anyhow::Result<Store> {
    let store = Store::connect(&config.database_url, config.pool_size)
        .await
        .context("connecting to the event store")?;
    store.migrate().await.context("migrating the event store")?;
    Ok(store)
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested");
}
