//! Which engine process fires which schedule and polls which source. Every process beats a heartbeat into the store and
//! reads who else is alive; each trigger belongs to the live process that ranks highest for it
//! (rendezvous hashing), which every process computes alike from the same list. When a process
//! stops beating, the others drop it from their lists once its lease has passed and take over its
//! triggers; when one joins, only the triggers it now ranks highest for move to it.
//!
//! Membership is an optimisation, not the guarantee: while lists disagree (for up to one beat),
//! two processes may both fire a slot, and the run id derived from the slot makes the second
//! firing record nothing; or both poll a source, and the cursor's `seen` check makes the second
//! poll's commit record nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::store::{Store, StoreError};

/// This process's view of the live processes.
#[derive(Clone)]
pub struct Membership {
    node_id: String,
    live: watch::Receiver<Vec<String>>,
}

impl Membership {
    /// Registers this process, then keeps beating every third of `lease` until `shutdown`, when
    /// it leaves (so the others take over at once rather than after the lease).
    pub async fn join(
        store: std::sync::Arc<Store>,
        lease: Duration,
        shutdown: CancellationToken,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), StoreError> {
        let node_id = format!("node-{}", Uuid::new_v4().simple());
        let started_at = Utc::now();
        let first = beat(&store, &node_id, started_at, lease).await?;
        let (publish, live) = watch::channel(first);
        let me = node_id.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(lease / 3) => {}
                }
                match beat(&store, &me, started_at, lease).await {
                    Ok(nodes) => {
                        publish.send_if_modified(|current| {
                            let changed = *current != nodes;
                            if changed {
                                tracing::info!(?nodes, "engine processes changed");
                                *current = nodes;
                            }
                            changed
                        });
                    }
                    // Keep the last list: stopping would hand our triggers to nobody.
                    Err(error) => tracing::warn!(%error, "heartbeat failed; retrying"),
                }
            }
            if let Err(error) = store.leave(&me, Utc::now()).await {
                tracing::warn!(%error, "could not leave the engine list; others wait out the lease");
            }
        });
        Ok((Self { node_id, live }, task))
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// A receiver that wakes whenever the list of live processes changes.
    pub fn subscribe(&self) -> watch::Receiver<Vec<String>> {
        self.live.clone()
    }

    /// Whether this process fires `trigger`'s schedule (or polls its source), by the current list.
    pub fn owns(&self, trigger: Uuid) -> bool {
        owner(&self.live.borrow(), trigger).is_none_or(|owner| owner == self.node_id)
    }
}

async fn beat(
    store: &Store,
    node_id: &str,
    started_at: DateTime<Utc>,
    lease: Duration,
) -> Result<Vec<String>, StoreError> {
    let now = Utc::now();
    store.heartbeat(node_id, started_at, now).await?;
    let since = now - chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    store.live_nodes(since, now).await
}

/// The live node that ranks highest for `trigger`: a hash of both, so the choice spreads triggers
/// evenly and moves only the triggers of a node that came or went.
pub fn owner(nodes: &[String], trigger: Uuid) -> Option<&str> {
    nodes
        .iter()
        .max_by_key(|node| rank(node, trigger))
        .map(String::as_str)
}

fn rank(node: &str, trigger: Uuid) -> [u8; 8] {
    let digest = Sha256::new()
        .chain_update(node.as_bytes())
        .chain_update(trigger.as_bytes())
        .finalize();
    let mut rank = [0; 8];
    rank.copy_from_slice(&digest[..8]);
    rank
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn it_should_spread_triggers_over_nodes_and_move_only_a_leavers_share() {
        let three = nodes(&["a", "b", "c"]);
        let two = nodes(&["a", "c"]);
        let triggers: Vec<Uuid> = (0..3_000).map(Uuid::from_u128).collect();
        let mut per_node = std::collections::HashMap::new();
        for trigger in &triggers {
            *per_node
                .entry(owner(&three, *trigger).unwrap())
                .or_insert(0) += 1;
        }
        for count in per_node.values() {
            assert!((800..1_200).contains(count), "uneven spread: {per_node:?}");
        }
        for trigger in &triggers {
            let before = owner(&three, *trigger).unwrap();
            let after = owner(&two, *trigger).unwrap();
            if before != "b" {
                assert_eq!(before, after, "only b's triggers move when b leaves");
            }
        }
    }

    #[test]
    fn it_should_have_no_owner_without_nodes() {
        assert_eq!(owner(&[], Uuid::nil()), None);
    }
}
