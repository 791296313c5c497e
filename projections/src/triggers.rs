//! The trigger read model: one row per trigger, found by id, by organisation, or by project.

use std::collections::HashMap;

use aggregates::{TriggerEvent, TriggerRecord};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The projection's name: its checkpoint key and its `projections rebuild` argument.
pub const NAME: &str = "triggers";

/// One trigger as the GET endpoints serve it, with the log position it reflects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerView {
    pub record: TriggerRecord,
    /// Position of the last event folded in: lets a reader tell how fresh the row is.
    pub last_position: i64,
}

impl TriggerView {
    /// Folds one event at its log position. Events that precede a trigger's creation (which a
    /// well-formed log does not have) leave nothing behind rather than inventing a row.
    pub fn fold(view: Option<Self>, event: &TriggerEvent, position: i64) -> Option<Self> {
        let record = TriggerRecord::evolve(view.map(|view| view.record), event)?;
        Some(Self {
            record,
            last_position: position,
        })
    }
}

/// Folds a batch of trigger events (in log order) over the rows they touch; see
/// [`crate::fold_batch`].
pub fn fold_batch<'a>(
    current: HashMap<Uuid, TriggerView>,
    events: impl IntoIterator<Item = (Uuid, &'a TriggerEvent, i64)>,
) -> Vec<TriggerView> {
    crate::fold_batch(current, events, TriggerView::fold)
}

#[cfg(test)]
mod tests {
    use aggregates::event::Stamp;
    use aggregates::Actor;

    use super::*;

    fn stamp() -> Stamp {
        Stamp {
            at: "2026-01-01T00:00:00Z".parse().unwrap(),
            by: Actor::system("test"),
        }
    }

    fn created(id: Uuid) -> TriggerEvent {
        TriggerEvent::TriggerCreated {
            project_trigger_id: id,
            org_id: Uuid::from_u128(9),
            project_id: "p".into(),
            connection_id: None,
            provider_id: "rss".into(),
            trigger_id: "on_new_item".into(),
            trigger_config: None,
            stamp: stamp(),
        }
    }

    #[test]
    fn it_should_fold_a_batch_into_one_row_per_trigger() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let enabled = TriggerEvent::TriggerEnabled { stamp: stamp() };
        let events = [(a, created(a), 1), (b, created(b), 2), (a, enabled, 3)];
        let rows = fold_batch(
            HashMap::new(),
            events
                .iter()
                .map(|(id, event, position)| (*id, event, *position)),
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].record.project_trigger_id, a);
        assert_eq!(rows[0].record.status.as_str(), "ENABLED");
        assert_eq!(rows[0].last_position, 3);
        assert_eq!(rows[1].last_position, 2);
    }

    #[test]
    fn it_should_ignore_changes_to_a_trigger_it_never_saw_created() {
        let enabled = TriggerEvent::TriggerEnabled { stamp: stamp() };
        let rows = fold_batch(HashMap::new(), [(Uuid::from_u128(1), &enabled, 1)]);
        assert!(rows.is_empty());
    }
}
