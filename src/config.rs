//! Command line and environment: one clap definition that `--help` documents in full.

use std::net::SocketAddr;
use std::num::NonZeroU32;

use clap::{Args, Parser, Subcommand};
use reqwest::Url;
use uuid::Uuid;

use crate::connections::{EncryptionKey, KEY_OPTION};
use crate::identity::{Role, Secret};

/// An event-sourced trigger engine serving the StackAI Triggers API.
///
/// With no subcommand it runs `serve`.
#[derive(Debug, Clone, Parser)]
#[command(name = "trigger-engine", version, about, long_about)]
pub struct Cli {
    #[command(flatten)]
    pub store: StoreConfig,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Where the event store lives.
#[derive(Debug, Clone, Args)]
pub struct StoreConfig {
    /// The event store: `sqlite://PATH` (created on first use) or `postgres://...`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://./data/trigger-engine.db",
        global = true
    )]
    pub database_url: String,

    /// Database connections per process. 16 matches the concurrency the benchmarks measure; a
    /// PostgreSQL shared by several engines needs `max_connections` above the sum.
    #[arg(
        long,
        env = "TRIGGER_ENGINE_DB_POOL_SIZE",
        default_value_t = 16,
        global = true
    )]
    pub pool_size: u32,
}

// `Serve` is far larger than the other variants, but a `Command` is parsed once at start-up:
// boxing it would save nothing worth the indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the HTTP service (the default). Migrates the store first; stops on SIGTERM or Ctrl-C.
    Serve(ServeConfig),
    /// Apply the embedded migrations to the store and exit.
    Migrate,
    /// Inspect or rebuild read models.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
    /// Print a trigger's events, one JSON object a line, then its state at that point.
    History(HistoryArgs),
    /// Print the global event log, one JSON object a line.
    Events(EventsArgs),
    /// Check the tamper-evident chain of the global log.
    #[command(subcommand)]
    Log(LogCommand),
    /// Create organisations, users and API keys. Each prints one JSON object.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "TRIGGER_ENGINE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Lifetime of an access token from `POST /token`, in seconds (one hour: the usual OAuth2
    /// access-token lifetime; there are no refresh tokens).
    #[arg(long, env = "TRIGGER_ENGINE_TOKEN_TTL_SECONDS", default_value_t = 3600)]
    pub token_ttl_seconds: u64,

    /// First run only (no users yet): the email of the admin user `serve` creates.
    #[arg(long, env = "TRIGGER_ENGINE_ADMIN_EMAIL")]
    pub admin_email: Option<String>,

    /// First run only: the admin's password. Without it a password is generated and printed once.
    #[arg(long, env = "TRIGGER_ENGINE_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// `POST /token` attempts allowed per minute for one username from one client address, once
    /// the burst is spent. 10 a minute never holds up a person retyping a password, and holds a
    /// guesser of one account from one address to 14,400 guesses a day instead of the thousands a
    /// minute the endpoint could otherwise serve.
    #[arg(long, env = "TRIGGER_ENGINE_TOKEN_RATE_PER_MINUTE", default_value_t = NonZeroU32::new(10).unwrap())]
    pub token_rate_per_minute: NonZeroU32,

    /// `POST /token` attempts one username may make from one address back to back: 5 covers a few
    /// typos in a row.
    #[arg(long, env = "TRIGGER_ENGINE_TOKEN_BURST", default_value_t = NonZeroU32::new(5).unwrap())]
    pub token_burst: NonZeroU32,

    /// Authenticated API requests per second for one organisation, once the burst is spent. 100/s
    /// is far above what a project's UI or scripts make, yet holds one tenant to about a twentieth
    /// of the ~2,000 commands per second the store sustains (docs/benchmarks.md), so it cannot
    /// starve the others.
    #[arg(long, env = "TRIGGER_ENGINE_API_RATE_PER_SECOND", default_value_t = NonZeroU32::new(100).unwrap())]
    pub api_rate_per_second: NonZeroU32,

    /// Authenticated API requests one organisation may make back to back: two seconds' worth, so
    /// a page load or a script's burst is never refused.
    #[arg(long, env = "TRIGGER_ENGINE_API_BURST", default_value_t = NonZeroU32::new(200).unwrap())]
    pub api_burst: NonZeroU32,

    /// `GET /readyz` fails when the trigger read model is more than this many events behind the
    /// log. 1,000 is one projector batch (`projector::BATCH_SIZE`), about 15 ms of folding at the
    /// rebuild rate measured in docs/benchmarks.md: a lag within one batch is work in flight;
    /// beyond it the projector is not keeping up and reads would be stale.
    #[arg(long, env = "TRIGGER_ENGINE_READY_MAX_LAG", default_value_t = crate::projector::BATCH_SIZE as u64)]
    pub ready_max_lag: u64,

    /// Webhook deliveries per second one trigger accepts once its burst is spent; beyond it the
    /// sender gets 429 with `Retry-After` (providers retry). 500/s is far above any provider's
    /// sending rate for one endpoint, and holds a runaway sender to a fraction of what the store
    /// appends (docs/benchmarks.md).
    #[arg(long, env = "TRIGGER_ENGINE_WEBHOOK_RATE_PER_SECOND", default_value_t = NonZeroU32::new(500).unwrap())]
    pub webhook_rate_per_second: NonZeroU32,

    /// Webhook deliveries one trigger may receive back to back: a provider replaying a backlog
    /// after an outage sends bursts.
    #[arg(long, env = "TRIGGER_ENGINE_WEBHOOK_BURST", default_value_t = NonZeroU32::new(1000).unwrap())]
    pub webhook_burst: NonZeroU32,

    /// The Slack app's signing secret, for `POST /v1/webhooks/slack` (Slack's v0 signatures).
    /// Without it that URL answers 404.
    #[arg(
        long,
        env = "TRIGGER_ENGINE_SLACK_SIGNING_SECRET",
        hide_env_values = true
    )]
    pub slack_signing_secret: Option<Secret>,

    /// The GitHub App's webhook secret, for `POST /v1/webhooks/github`. Without it that URL
    /// answers 404.
    #[arg(
        long,
        env = "TRIGGER_ENGINE_GITHUB_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    pub github_webhook_secret: Option<Secret>,

    /// The key that encrypts connections' credentials at rest: 32 bytes in base64 (e.g. the output
    /// of `openssl rand -base64 32`). Without it the engine runs, but creating a connection, and
    /// registering or removing a provider webhook with one, answers 503 naming this option. Every
    /// process sharing a store needs the same key; lose it and the stored credentials are lost.
    #[arg(long, env = "TRIGGER_ENGINE_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<EncryptionKey>,

    /// The engine's public base URL, as providers reach it: webhooks registered at a provider
    /// deliver to `{public_url}/v1/webhooks/{project_trigger_id}`. Without it, enabling a trigger
    /// whose webhook the engine registers (Typeform, Stripe, GitHub) answers 503 naming this
    /// option.
    #[arg(long, env = "TRIGGER_ENGINE_PUBLIC_URL")]
    pub public_url: Option<Url>,

    /// The base URL of Typeform's API. `https://api.eu.typeform.com` for accounts in Typeform's EU
    /// data centre; tests point it at a local server.
    #[arg(
        long,
        env = "TRIGGER_ENGINE_TYPEFORM_API_URL",
        default_value = "https://api.typeform.com"
    )]
    pub typeform_api_url: Url,

    /// The base URL of Stripe's API, where the engine creates and deletes webhook endpoints;
    /// tests point it at a local server.
    #[arg(
        long,
        env = "TRIGGER_ENGINE_STRIPE_API_URL",
        default_value = "https://api.stripe.com"
    )]
    pub stripe_api_url: Url,

    /// The base URL of GitHub's REST API, where the engine creates and deletes repository hooks.
    /// `https://HOST/api/v3` for GitHub Enterprise Server; tests point it at a local server.
    #[arg(
        long,
        env = "TRIGGER_ENGINE_GITHUB_API_URL",
        default_value = "https://api.github.com"
    )]
    pub github_api_url: Url,

    /// Seconds after its last heartbeat that an engine process counts as gone, and the others
    /// take over its schedules. Processes beat every third of it; shorter hands work over sooner
    /// after a crash, at the cost of a heartbeat write more often.
    #[arg(long, env = "TRIGGER_ENGINE_NODE_LEASE_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub node_lease_seconds: u64,

    /// The shortest interval between two polls of one polling trigger, in milliseconds, whatever
    /// its `polling_frequency` says: 1000 by default, the floor the config schema also sets, so a
    /// misconfigured trigger cannot hammer its source. Tests lower it to poll quickly.
    #[arg(long, env = "TRIGGER_ENGINE_MIN_POLLING_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub min_polling_ms: u64,

    /// Whether this process polls `rss`/`http` triggers (`false`: a process that only serves the
    /// API and receives webhooks, leaving polls to the others). The deprecated polling key URL
    /// polls whatever this says.
    #[arg(long, env = "TRIGGER_ENGINE_POLLING", default_value_t = true, action = clap::ArgAction::Set)]
    pub polling: bool,

    /// After this many failed polls in a row, a polling trigger disables itself, recording why.
    /// 10 by default: with the exponential backoff between failures, that is several hours of a
    /// source that answers nothing usable at the default one-minute frequency.
    #[arg(long, env = "TRIGGER_ENGINE_POLL_MAX_FAILURES", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub poll_max_failures: u32,

    /// Recent outcomes the log does not hold (rejected, ignored, filtered, rate-limited or
    /// refused deliveries, duplicates) kept per trigger for `GET /triggers/{id}/explain`; older
    /// ones are counted, not kept.
    #[arg(long, env = "TRIGGER_ENGINE_OUTCOMES_PER_TRIGGER", default_value_t = 1_000, value_parser = clap::value_parser!(i64).range(1..))]
    pub outcomes_per_trigger: i64,

    /// Outcomes waiting for the background writer at most; past it they are counted, not kept.
    /// `0` records no outcomes at all (`explain` then shows what the log holds).
    #[arg(long, env = "TRIGGER_ENGINE_OUTCOME_QUEUE", default_value_t = 10_000)]
    pub outcome_queue: usize,

    /// How long those outcomes are kept, in hours (7 days by default).
    #[arg(long, env = "TRIGGER_ENGINE_OUTCOME_RETENTION_HOURS", default_value_t = 168, value_parser = clap::value_parser!(u64).range(1..))]
    pub outcome_retention_hours: u64,

    /// Destinations tenants may aim polling triggers at despite the outbound guard, which
    /// otherwise refuses loopback, private, link-local, CGNAT, unique-local, multicast,
    /// documentation and other special-purpose addresses: a comma-separated list of CIDRs
    /// (`10.20.0.0/16`), addresses (`127.0.0.1`, `::1`) and host names (`feeds.internal`). Empty
    /// by default: a multi-tenant engine must not let its users read its own network.
    #[arg(long, env = "TRIGGER_ENGINE_OUTBOUND_ALLOW", default_value = "")]
    pub outbound_allow: crate::outbound::Allowed,

    #[command(flatten)]
    pub executor: ExecutorConfig,
}

/// Where runs are executed, and how hard to try.
#[derive(Debug, Clone, Args)]
pub struct ExecutorConfig {
    /// The executor's URL; `{project_id}` in it is replaced by the run's project. Each run is
    /// POSTed there as JSON, signed with Standard Webhooks headers. Without it, the built-in
    /// executor records every run as executed (so a plain `cargo run` works end to end).
    #[arg(long, env = "TRIGGER_ENGINE_EXECUTOR_URL")]
    pub executor_url: Option<String>,

    /// The Standard Webhooks secret (`whsec_` + base64) the engine signs executor calls with; the
    /// executor verifies with the same. Required with `--executor-url`.
    #[arg(long, env = "TRIGGER_ENGINE_EXECUTOR_SECRET", hide_env_values = true)]
    pub executor_secret: Option<Secret>,

    /// Seconds an executor call may take before it counts as failed (and is retried).
    #[arg(
        long,
        env = "TRIGGER_ENGINE_EXECUTOR_TIMEOUT_SECONDS",
        default_value_t = 30
    )]
    pub executor_timeout_seconds: u64,

    /// Attempts per run before it is dead-lettered (a manual retry revives it).
    #[arg(
        long,
        env = "TRIGGER_ENGINE_EXECUTOR_MAX_ATTEMPTS",
        default_value_t = 8
    )]
    pub executor_max_attempts: u32,

    /// The first retry waits up to this many milliseconds; each later one up to twice the last
    /// (with full jitter), capped at ten minutes. With the default 8 attempts, 5 s lets a run
    /// wait out about ten minutes of executor downtime (a restart, a rolling deploy) before it is
    /// dead-lettered.
    #[arg(
        long,
        env = "TRIGGER_ENGINE_EXECUTOR_RETRY_BASE_MS",
        default_value_t = 5000
    )]
    pub executor_retry_base_ms: u64,

    /// Executor calls in flight at once, per engine process; 0 runs no executor in this process
    /// (it serves the API and receives webhooks; other processes execute the runs).
    #[arg(
        long,
        env = "TRIGGER_ENGINE_EXECUTOR_CONCURRENCY",
        default_value_t = 16
    )]
    pub executor_concurrency: usize,

    /// Consecutive failures to reach a target (network errors, timeouts, 5xx, 429) that open its
    /// circuit: no calls to it for a cool-down, then one probe.
    #[arg(
        long,
        env = "TRIGGER_ENGINE_EXECUTOR_CIRCUIT_THRESHOLD",
        default_value_t = 5
    )]
    pub executor_circuit_threshold: u32,

    /// The first cool-down of an open circuit, in milliseconds; each failed probe doubles it.
    #[arg(
        long,
        env = "TRIGGER_ENGINE_EXECUTOR_CIRCUIT_COOL_DOWN_MS",
        default_value_t = 1000
    )]
    pub executor_circuit_cool_down_ms: u64,

    /// The longest cool-down, in milliseconds.
    #[arg(
        long,
        env = "TRIGGER_ENGINE_EXECUTOR_CIRCUIT_MAX_COOL_DOWN_MS",
        default_value_t = 60000
    )]
    pub executor_circuit_max_cool_down_ms: u64,
}

impl ServeConfig {
    /// The serve options from the environment and defaults alone, for when no subcommand is given.
    pub fn from_env() -> Self {
        #[derive(Parser)]
        struct ServeOnly {
            #[command(flatten)]
            serve: ServeConfig,
        }
        ServeOnly::parse_from(["trigger-engine"]).serve
    }
}

/// Reads `--encryption-key` without ever quoting it: clap's own error for a value that does not
/// parse repeats the value, and this one is a secret even when it is malformed.
#[derive(Debug, Clone, Copy)]
pub struct EncryptionKeyParser;

impl clap::builder::TypedValueParser for EncryptionKeyParser {
    type Value = EncryptionKey;

    fn parse_ref(
        &self,
        command: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Self::Value, clap::Error> {
        let refuse = |reason: &str| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid --encryption-key ({KEY_OPTION}): {reason}\n"),
            )
            .with_cmd(command)
        };
        let text = value.to_str().ok_or_else(|| refuse("not UTF-8"))?;
        text.parse().map_err(|reason: String| refuse(&reason))
    }
}

impl clap::builder::ValueParserFactory for EncryptionKey {
    type Parser = EncryptionKeyParser;

    fn value_parser() -> Self::Parser {
        EncryptionKeyParser
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum ProjectionsCommand {
    /// Rebuild a read model from position 0 into a fresh table and swap it in atomically. Safe
    /// while `serve` runs on the same store. With no NAME, rebuilds every read model.
    Rebuild {
        /// The read model to rebuild (`triggers` or `runs`).
        name: Option<String>,
    },
    /// Print each read model's checkpoint, the log head, and the lag between them.
    Status,
}

#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// The trigger (its project_trigger_id).
    pub trigger_id: Uuid,
    /// Stop at the last event recorded at or before this time (RFC 3339).
    #[arg(long, conflicts_with = "at_position")]
    pub as_of: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Stop at the last event at or before this global log position.
    #[arg(long)]
    pub at_position: Option<i64>,
}

#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    /// Start after this position (0: from the beginning).
    #[arg(long, default_value_t = 0)]
    pub after: i64,
    /// Keep printing new events as they are appended, until interrupted.
    #[arg(long)]
    pub follow: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum LogCommand {
    /// Recompute the chain of hashes; exit 0 if it holds, 1 naming the first position that does
    /// not. Prints one JSON object: the verdict and the head it reached.
    Verify(VerifyArgs),
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Start at this position, taking the hash stored before it as given (1: the whole log).
    #[arg(long, default_value_t = 1)]
    pub from: i64,
    /// A head recorded earlier, `POSITION:HASH` (hex, as `GET /log/head` answers): the event at
    /// POSITION must still carry HASH. May be given several times.
    #[arg(long, value_parser = parse_recorded_head)]
    pub expect: Vec<(i64, [u8; 32])>,
}

fn parse_recorded_head(text: &str) -> Result<(i64, [u8; 32]), String> {
    let (position, hash) = text
        .split_once(':')
        .ok_or("expected POSITION:HASH, e.g. 42:9f86d0...")?;
    let position = position
        .parse()
        .map_err(|error| format!("position `{position}`: {error}"))?;
    let hash = hex::decode(hash)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or("the hash must be 64 hexadecimal digits")?;
    Ok((position, hash))
}

#[derive(Debug, Clone, Subcommand)]
pub enum AdminCommand {
    /// Create an organisation; prints `{"org_id": ...}`.
    CreateOrg {
        /// The organisation's name.
        name: String,
    },
    /// Create a user who signs in with an email and a password; prints `{"user_id": ..., "role":
    /// ...}`.
    CreateUser(CreateUserArgs),
    /// Give a user another role; prints `{"user_id": ..., "role": ...}`. Access tokens issued
    /// before keep their role until they expire (TRIGGER_ENGINE_TOKEN_TTL_SECONDS, one hour by
    /// default).
    SetRole {
        /// The user (its user_id).
        #[arg(long = "user")]
        user_id: Uuid,
        /// The user's new role.
        #[arg(long, value_enum)]
        role: Role,
    },
    /// Create an API key for an organisation; prints `{"api_key": ..., "api_key_id": ...}`. The
    /// key is shown this once: only its hash is stored.
    CreateApiKey {
        /// The organisation the key belongs to (its org_id).
        #[arg(long = "org")]
        org_id: Uuid,
    },
}

#[derive(Debug, Clone, Args)]
pub struct CreateUserArgs {
    /// The organisation the user belongs to (its org_id).
    #[arg(long = "org")]
    pub org_id: Uuid,
    /// The email the user signs in with. Stored lower-cased: it is unique whatever its case.
    #[arg(long)]
    pub email: String,
    /// The user's password. Other users of this machine can read it in the process list: prefer
    /// --password-stdin.
    #[arg(
        long,
        required_unless_present = "password_stdin",
        conflicts_with = "password_stdin"
    )]
    pub password: Option<Secret>,
    /// Read the password from the first line of standard input (without its line ending).
    #[arg(long)]
    pub password_stdin: bool,
    /// What the user may do: `admin` everything, `member` everything on triggers, connections
    /// and runs, `auditor` only read.
    #[arg(long, value_enum, default_value_t = Role::DEFAULT)]
    pub role: Role,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_should_refuse_a_malformed_encryption_key_without_quoting_it() {
        let malformed = "c2VjcmV0LWJ1dC10b28tc2hvcnQ=";
        let error = Cli::try_parse_from(["trigger-engine", "serve", "--encryption-key", malformed])
            .unwrap_err()
            .to_string();
        assert!(error.contains("20 bytes"), "{error}");
        assert!(!error.contains(malformed), "{error}");
    }

    #[test]
    fn it_should_read_a_well_formed_encryption_key() {
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let cli =
            Cli::try_parse_from(["trigger-engine", "serve", "--encryption-key", key]).unwrap();
        let Some(Command::Serve(serve)) = cli.command else {
            panic!("serve was asked for");
        };
        assert!(serve.encryption_key.is_some());
        assert_eq!(serve.typeform_api_url.as_str(), "https://api.typeform.com/");
    }
}
