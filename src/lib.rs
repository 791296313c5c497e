//! trigger-engine: stores triggers as event streams, serves the Triggers API from read models.
//!
//! # Layout
//! - [`config`]: the command line and environment (`--help` documents every option).
//! - [`app`]: builds the engine (store, projector, command path, HTTP) and runs it.
//! - [`store`]: the event store on SQLite or PostgreSQL, with the global log and read models.
//! - [`identity`]: organisations, users and their roles, API keys, password grants and access
//!   tokens.
//! - [`connections`]: the credentials triggers act with at providers, sealed at rest.
//! - [`commands`]: the write path (load, decide, append, snapshot).
//! - [`catalogue`]: the native triggers each provider offers, their config schemas and samples.
//! - [`registration`]: webhooks the engine registers at providers (Typeform), in step with
//!   triggers.
//! - [`providers`]: one folder per provider: its API clients (more moving in, issue 11).
//! - [`projector`]: tails the log into the read model; read-your-writes waits.
//! - [`rebuild`]: blue/green rebuild of a read model.
//! - [`http`]: the HTTP routes, and the OpenAPI document generated from them.
//! - [`cli`]: the operator and auditor subcommands.
//! - [`webhooks`]: verifying providers' webhook signatures and judging what a delivery fires.
//! - [`filter`]: `trigger_config.filter`, a CEL expression a delivery or polled item must make
//!   true to fire; compiled once per trigger config, evaluated within bounds.
//! - [`runs`]: recording firings (deduplicated by cause) and run transitions.
//! - [`executor`]: takes due runs, claims one attempt at a time, delivers, records the outcome.
//! - [`scheduler`]: fires schedule triggers on their slots, shared among engine processes.
//! - [`release`]: releases held runs once their trigger resumes (or a buffered slot's turn comes).
//! - [`replayer`]: works bulk replays step by step, shared among engine processes.
//! - [`outbound`]: the guard on requests to tenant-chosen destinations (no private addresses).
//! - [`outcomes`]: recent outcomes the log does not hold (rejected, ignored, filtered deliveries),
//!   written off the request's path, bounded per trigger: what `explain` reads besides the log.
//! - [`poller`]: polls RSS/Atom feeds and JSON endpoints, firing one run per new item.
//! - [`nul`]: U+0000 in recorded data, which PostgreSQL cannot hold: refused or replaced.
//! - [`delivery`]: handing a run's attempt to the executor over signed HTTP, and retry backoff.

pub mod app;
pub mod catalogue;
pub mod cli;
pub mod commands;
pub mod config;
pub mod connections;
pub mod delivery;
pub mod executor;
pub mod filter;
pub mod http;
pub mod identity;
pub mod nul;
pub mod outbound;
pub mod outcomes;
pub mod poller;
pub mod projector;
pub mod providers;
pub mod rebuild;
pub mod registration;
pub mod release;
pub mod replayer;
pub mod runs;
pub mod scheduler;
pub mod store;
pub mod trigger_cache;
pub mod webhooks;
