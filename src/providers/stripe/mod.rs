//! Stripe.

pub mod api;
