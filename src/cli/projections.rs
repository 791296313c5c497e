//! `trigger-engine projections status|rebuild`.

use std::io::Write;

use anyhow::bail;
use serde_json::json;

use super::print_line;
use crate::config::ProjectionsCommand;
use crate::rebuild::{rebuild_replays, rebuild_runs, rebuild_triggers};
use crate::store::Store;

pub async fn run(
    store: &Store,
    command: &ProjectionsCommand,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match command {
        ProjectionsCommand::Status => {
            let head = store.head().await?;
            for checkpoint in store.checkpoints().await? {
                print_line(
                    out,
                    &json!({
                        "projection": checkpoint.name,
                        "checkpoint": checkpoint.position,
                        "head": head,
                        "lag": head - checkpoint.position,
                    }),
                )?;
            }
        }
        ProjectionsCommand::Rebuild { name } => {
            let known = projections::NAMES;
            if let Some(name) = name.as_deref().filter(|name| !known.contains(name)) {
                bail!("unknown projection `{name}` (known: {})", known.join(", "));
            }
            let all = name.is_none();
            if all || name.as_deref() == Some(projections::triggers::NAME) {
                print_line(out, &rebuild_triggers(store).await?)?;
            }
            if all || name.as_deref() == Some(projections::runs::NAME) {
                print_line(out, &rebuild_runs(store).await?)?;
            }
            if all || name.as_deref() == Some(projections::replays::NAME) {
                print_line(out, &rebuild_replays(store).await?)?;
            }
        }
    }
    Ok(())
}
