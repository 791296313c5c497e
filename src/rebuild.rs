//! Blue/green rebuild of a read model (triggers, runs or replays), safe while `serve` runs on the same store.
//!
//! The new table is filled from position 0 beside the live one, batch by batch, while the live
//! projector carries on. The swap is one transaction: it takes the live checkpoint's row lock (so
//! the live projector pauses), folds the last few events into the new table, renames the tables
//! and moves the live checkpoint. Readers see the old table until that commit and the new one after.

use serde::Serialize;

use crate::projector::BATCH_SIZE;
use crate::store::views::{
    ViewTarget, LIVE_REPLAYS, LIVE_RUNS, LIVE_TRIGGERS, NEXT_REPLAYS, NEXT_RUNS, NEXT_TRIGGERS,
};
use crate::store::{Store, StoreError};

/// What a rebuild did, printed by `trigger-engine projections rebuild`.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    pub projection: &'static str,
    pub position: i64,
    pub events_per_second: f64,
}

/// Rebuilds the trigger read model from the start of the log and swaps it in.
pub async fn rebuild_triggers(store: &Store) -> Result<RebuildReport, StoreError> {
    rebuild(
        store,
        projections::triggers::NAME,
        LIVE_TRIGGERS,
        NEXT_TRIGGERS,
    )
    .await
}

/// Rebuilds the run read model from the start of the log and swaps it in.
pub async fn rebuild_runs(store: &Store) -> Result<RebuildReport, StoreError> {
    rebuild(store, projections::runs::NAME, LIVE_RUNS, NEXT_RUNS).await
}

/// Rebuilds the replay read model from the start of the log and swaps it in.
pub async fn rebuild_replays(store: &Store) -> Result<RebuildReport, StoreError> {
    rebuild(
        store,
        projections::replays::NAME,
        LIVE_REPLAYS,
        NEXT_REPLAYS,
    )
    .await
}

async fn rebuild(
    store: &Store,
    projection: &'static str,
    live: ViewTarget,
    next: ViewTarget,
) -> Result<RebuildReport, StoreError> {
    let started = std::time::Instant::now();
    let mut tx = store.begin().await?;
    tx.create_view_table(next).await?;
    tx.set_checkpoint(next.checkpoint, 0).await?;
    tx.commit().await?;

    let mut reached = 0;
    loop {
        let next = store.project_next_batch(next, BATCH_SIZE).await?;
        if next == reached {
            break;
        }
        reached = next;
    }

    let mut swap = store.begin().await?;
    swap.lock_checkpoint(live.checkpoint).await?;
    loop {
        let next = swap.project_batch(next, BATCH_SIZE).await?;
        if next == reached {
            break;
        }
        reached = next;
    }
    let retired = format!("{}_retired", live.table);
    swap.execute(&format!("ALTER TABLE {} RENAME TO {retired}", live.table))
        .await?;
    swap.execute(&format!(
        "ALTER TABLE {} RENAME TO {}",
        next.table, live.table
    ))
    .await?;
    swap.set_checkpoint(live.checkpoint, reached).await?;
    swap.execute(&format!(
        "DELETE FROM projection_checkpoints WHERE name = '{}'",
        next.checkpoint
    ))
    .await?;
    swap.execute(&format!("DROP TABLE {retired}")).await?;
    swap.commit().await?;

    let seconds = started.elapsed().as_secs_f64();
    Ok(RebuildReport {
        projection,
        position: reached,
        events_per_second: if seconds > 0.0 {
            reached as f64 / seconds
        } else {
            0.0
        },
    })
}
