//! Inbound webhooks: how providers sign their deliveries, verified over the raw body.
//!
//! # Layout
//! - [`signatures`]: Stripe, GitHub, Typeform, Slack and Standard Webhooks signatures, verified in
//!   constant time against any of several secrets (rotation), with replay windows where the
//!   provider timestamps its deliveries.
//! - [`inbound`]: what a verified delivery means for one trigger: fire (with its delivery key),
//!   ignore (another event, a ping), or answer a challenge.

pub mod inbound;
pub mod signatures;
