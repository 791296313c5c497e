//! Read models folded from the event log, independent of where they are stored.
//!
//! The storage side (tailing the log, transactions, checkpoints) lives in the service crate; this
//! crate holds the pure part: what a read model looks like and how one event changes it.
//!
//! # Layout
//! - [`triggers`]: the trigger read model behind the GET endpoints, and its fold.

pub mod triggers;

/// The read models the engine keeps, by the name operators use on the command line.
pub const NAMES: [&str; 1] = [triggers::NAME];
