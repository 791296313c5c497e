//! The integration suite: the real engine on a real socket, over a real SQLite file and, when
//! `TEST_DATABASE_URL` is set, a fresh PostgreSQL database. Each test runs once per backend.

mod fake_github;
mod fake_stripe;
mod helpers;

mod backfill;
mod circuit;
mod cli;
mod connections;
mod crash;
mod durability;
mod events;
mod executor;
mod executor_target;
mod explain;
mod fairness;
mod feed_server;
mod filters;
mod github_api;
mod health;
mod history;
mod http_triggers;
mod identity;
mod log;
mod multiprocess;
mod nul;
mod openapi;
mod operations;
mod ordering;
mod outage;
mod outbound;
mod overlap;
mod pause;
mod pollers;
mod projections;
mod registration;
mod replay;
mod roles;
mod schedules;
mod streams;
mod stripe_api;
mod trigger_cache;
mod typeform;
mod webhooks;
