//! GitHub.

pub mod api;
