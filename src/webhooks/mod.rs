//! Inbound webhooks: how providers sign their deliveries, verified over the raw body.
//!
//! # Layout
//! - [`signatures`]: Stripe, GitHub, Typeform, Slack and Standard Webhooks signatures, verified in
//!   constant time against any of several secrets (rotation), with replay windows where the
//!   provider timestamps its deliveries.

pub mod signatures;
