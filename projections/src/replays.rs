//! The replay read model: one row per bulk replay, with its selection and its counts, behind
//! `GET /replays` and `GET /replays/{id}`. The matched runs themselves stay in the replay's stream:
//! the row keeps only how many there are.

use std::collections::HashMap;

use aggregates::{Actor, ReplayEvent, ReplaySelection, ReplayState};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The projection's name: its checkpoint key and its `projections rebuild` argument.
pub const NAME: &str = "replays";

/// One replay as the API serves it, with the log position it reflects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayView {
    pub replay_id: Uuid,
    pub org_id: Uuid,
    pub selection: ReplaySelection,
    pub requested_at: DateTime<Utc>,
    pub requested_by: Actor,
    /// Runs the selection matched when the replay was requested.
    pub matched: usize,
    /// Runs released so far: retried in place, or run again as new runs.
    pub released: usize,
    /// Released runs that have finished, and how.
    pub succeeded: usize,
    pub failed: usize,
    pub state: ReplayState,
    /// Who cancelled it, for a cancelled replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_by: Option<Actor>,
    pub updated_at: DateTime<Utc>,
    /// The log position of the request: a selected run whose row changed after it has been
    /// through something since it was selected.
    pub requested_position: i64,
    pub last_position: i64,
}

impl ReplayView {
    pub fn fold(view: Option<Self>, event: &ReplayEvent, position: i64) -> Option<Self> {
        if let ReplayEvent::ReplayRequested {
            replay_id,
            org_id,
            selection,
            items,
            stamp,
        } = event
        {
            return Some(Self {
                replay_id: *replay_id,
                org_id: *org_id,
                selection: selection.clone(),
                requested_at: stamp.at,
                requested_by: stamp.by.clone(),
                matched: items.len(),
                released: 0,
                succeeded: 0,
                failed: 0,
                state: ReplayState::Running,
                cancelled_by: None,
                updated_at: stamp.at,
                requested_position: position,
                last_position: position,
            });
        }
        let mut view = view?;
        match event {
            ReplayEvent::ReplayRequested { .. } => unreachable!("handled above"),
            ReplayEvent::ReplayStepped {
                released,
                succeeded,
                failed,
                ..
            } => {
                view.released += released;
                view.succeeded += succeeded.len();
                view.failed += failed.len();
            }
            ReplayEvent::ReplayFinished { .. } => view.state = ReplayState::Finished,
            ReplayEvent::ReplayCancelled { stamp } => {
                view.state = ReplayState::Cancelled;
                view.cancelled_by = Some(stamp.by.clone());
            }
        }
        view.updated_at = event.stamp().at;
        view.last_position = position;
        Some(view)
    }

    /// Released runs that have finished.
    pub fn done(&self) -> usize {
        self.succeeded + self.failed
    }
}

/// Folds a batch of replay events (in log order) over the rows they touch; see
/// [`crate::fold_batch`].
pub fn fold_batch<'a>(
    current: HashMap<Uuid, ReplayView>,
    events: impl IntoIterator<Item = (Uuid, &'a ReplayEvent, i64)>,
) -> Vec<ReplayView> {
    crate::fold_batch(current, events, ReplayView::fold)
}

#[cfg(test)]
mod tests {
    use aggregates::event::Stamp;
    use aggregates::ReplayItem;

    use super::*;

    fn stamp(seconds: i64) -> Stamp {
        Stamp {
            at: DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap(),
            by: Actor::system("test"),
        }
    }

    #[test]
    fn it_should_count_what_a_replay_released_and_settled() {
        let id = Uuid::from_u128(1);
        let item = |n| ReplayItem {
            run_id: Uuid::from_u128(n),
            project_trigger_id: Uuid::from_u128(9),
            rerun: false,
        };
        let events = [
            ReplayEvent::ReplayRequested {
                replay_id: id,
                org_id: Uuid::from_u128(2),
                selection: ReplaySelection::default(),
                items: vec![item(10), item(11), item(12)],
                stamp: stamp(0),
            },
            ReplayEvent::ReplayStepped {
                released: 2,
                succeeded: vec![],
                failed: vec![],
                stamp: stamp(1),
            },
            ReplayEvent::ReplayStepped {
                released: 0,
                succeeded: vec![Uuid::from_u128(10)],
                failed: vec![Uuid::from_u128(11)],
                stamp: stamp(2),
            },
            ReplayEvent::ReplayCancelled { stamp: stamp(3) },
        ];
        let changed = fold_batch(
            HashMap::new(),
            events
                .iter()
                .enumerate()
                .map(|(n, event)| (id, event, n as i64 + 1)),
        );
        assert_eq!(changed.len(), 1, "one row per replay");
        let view = &changed[0];
        assert_eq!((view.matched, view.released, view.done()), (3, 2, 2));
        assert_eq!((view.succeeded, view.failed), (1, 1));
        assert_eq!(view.state, ReplayState::Cancelled);
        assert_eq!(view.cancelled_by, Some(Actor::system("test")));
        assert_eq!((view.last_position, view.updated_at), (4, stamp(3).at));
        assert_eq!(view.requested_position, 1);
    }
}
