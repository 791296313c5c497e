//! Providers, one folder each: what the engine knows about Stripe, GitHub, Typeform... and how it
//! talks to their APIs.
//!
//! # Layout
//! - [`stripe`]: Stripe's webhook endpoints API.
//! - [`github`]: GitHub's repository hooks API.

pub mod github;
pub mod stripe;
