//! The operator and auditor subcommands. Each prints JSON, one object a line, on stdout.
//!
//! # Layout
//! - [`history`]: one trigger's events and its state at a point in time.
//! - [`events`]: the global log, optionally followed.
//! - [`log`]: `log verify`, recomputing the log's chain of hashes.
//! - [`projections`]: read-model status and rebuild.
//! - [`admin`]: organisations, users and API keys.

pub mod admin;
pub mod events;
pub mod history;
pub mod log;
pub mod projections;

use std::io::Write;

/// Writes one JSON object as a line.
fn print_line(out: &mut impl Write, value: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")?;
    Ok(())
}
