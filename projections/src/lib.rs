//! Read models folded from the event log, independent of where they are stored.
//!
//! The storage side (tailing the log, transactions, checkpoints) lives in the service crate; this
//! crate holds the pure part: what a read model looks like and how one event changes it.
//!
//! # Layout
//! - [`triggers`]: the trigger read model behind the trigger GET endpoints, and its fold.
//! - [`runs`]: the run read model behind `GET /triggers/{id}/runs` and the executors' work queue.
//! - [`replays`]: the bulk replay read model behind `GET /replays` and the replayers' work list.

pub mod replays;
pub mod runs;
pub mod triggers;

use std::collections::HashMap;
use std::hash::Hash;

/// The read models the engine keeps, by the name operators use on the command line.
pub const NAMES: [&str; 3] = [triggers::NAME, runs::NAME, replays::NAME];

/// Folds a batch of events (in log order) over the rows they touch, returning only the rows that
/// changed, each once. Storage loads `current` for the batch's streams, then writes the result back.
pub fn fold_batch<'a, K, V, E: 'a>(
    mut current: HashMap<K, V>,
    events: impl IntoIterator<Item = (K, &'a E, i64)>,
    fold: impl Fn(Option<V>, &E, i64) -> Option<V>,
) -> Vec<V>
where
    K: Copy + Eq + Hash,
{
    let mut changed = Vec::new();
    for (key, event, position) in events {
        if let Some(view) = fold(current.remove(&key), event, position) {
            if !changed.contains(&key) {
                changed.push(key);
            }
            current.insert(key, view);
        }
    }
    changed
        .into_iter()
        .filter_map(|key| current.remove(&key))
        .collect()
}
