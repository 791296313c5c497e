//! The run read model: one row per run, listed by trigger (newest first) and found by the
//! executors when its next attempt is due.

use std::collections::HashMap;

use aggregates::{RunEvent, RunRecord, RunStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The projection's name: its checkpoint key and its `projections rebuild` argument.
pub const NAME: &str = "runs";

/// One run as `GET /triggers/{id}/runs` serves it, with the log position it reflects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    pub record: RunRecord,
    pub last_position: i64,
}

impl RunView {
    pub fn fold(view: Option<Self>, event: &RunEvent, position: i64) -> Option<Self> {
        let record = RunRecord::evolve(view.map(|view| view.record), event)?;
        Some(Self {
            record,
            last_position: position,
        })
    }

    /// When an executor should next look at this run: its next attempt for a waiting run, the
    /// start of the attempt under way for a running one (an executor takes it over once that
    /// attempt's lease has run out, so a crashed worker never strands a run), never for a
    /// finished one.
    pub fn due_at(&self) -> Option<DateTime<Utc>> {
        match self.record.status {
            RunStatus::Requested | RunStatus::Failed => self.record.next_attempt_at,
            RunStatus::Running => Some(self.record.updated_at),
            RunStatus::Succeeded
            | RunStatus::DeadLettered
            | RunStatus::Held
            | RunStatus::Skipped => None,
        }
    }
}

/// Folds a batch of run events (in log order) over the rows they touch; see
/// [`crate::fold_batch`].
pub fn fold_batch<'a>(
    current: HashMap<Uuid, RunView>,
    events: impl IntoIterator<Item = (Uuid, &'a RunEvent, i64)>,
) -> Vec<RunView> {
    crate::fold_batch(current, events, RunView::fold)
}

#[cfg(test)]
mod tests {
    use aggregates::event::Stamp;
    use aggregates::{run_id, Actor, Firing, RunCause};
    use serde_json::json;

    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn stamp(seconds: i64) -> Stamp {
        Stamp {
            at: at(seconds),
            by: Actor::system("test"),
        }
    }

    fn requested(key: &str) -> (Uuid, RunEvent) {
        let firing = Firing {
            project_trigger_id: Uuid::from_u128(7),
            org_id: Uuid::from_u128(9),
            project_id: "p".into(),
            provider_id: "stripe".into(),
            trigger_id: "on_customer_created".into(),
            cause: RunCause::Delivery { key: key.into() },
            payload: json!({"id": key}),
            received_at: at(0),
        };
        let id = run_id(firing.project_trigger_id, &firing.cause);
        let event = RunEvent::RunRequested {
            run_id: id,
            firing,
            stamp: stamp(0),
            held: false,
        };
        (id, event)
    }

    #[test]
    fn it_should_make_a_run_due_as_soon_as_it_is_requested() {
        let (id, event) = requested("evt_1");
        let rows = fold_batch(HashMap::new(), [(id, &event, 1)]);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].record.status, RunStatus::Requested);
        assert_eq!(rows[0].due_at(), Some(at(0)));
    }

    #[test]
    fn it_should_follow_a_run_through_attempts_to_its_end() {
        let (id, requested) = requested("evt_1");
        let started = RunEvent::AttemptStarted {
            attempt: 1,
            stamp: stamp(5),
        };
        let failed = RunEvent::AttemptFailed {
            attempt: 1,
            error: "HTTP 503".into(),
            retry_at: at(60),
            stamp: stamp(6),
        };
        let rows = fold_batch(HashMap::new(), [(id, &requested, 1), (id, &started, 2)]);
        assert_eq!(rows[0].record.status, RunStatus::Running);
        assert_eq!(rows[0].due_at(), Some(at(5)), "a lease runs from the start");

        let current = HashMap::from([(id, rows[0].clone())]);
        let rows = fold_batch(current, [(id, &failed, 3)]);
        assert_eq!(rows[0].record.status, RunStatus::Failed);
        assert_eq!(rows[0].record.last_error.as_deref(), Some("HTTP 503"));
        assert_eq!(rows[0].due_at(), Some(at(60)));
        assert_eq!(rows[0].last_position, 3);

        let dead = RunEvent::RunDeadLettered {
            attempt: 2,
            error: "HTTP 400".into(),
            stamp: stamp(70),
        };
        let current = HashMap::from([(id, rows[0].clone())]);
        let rows = fold_batch(current, [(id, &dead, 4)]);
        assert_eq!(rows[0].due_at(), None);
    }

    #[test]
    fn it_should_ignore_events_of_a_run_it_never_saw_requested() {
        let started = RunEvent::AttemptStarted {
            attempt: 1,
            stamp: stamp(5),
        };
        assert!(fold_batch(HashMap::new(), [(Uuid::from_u128(1), &started, 1)]).is_empty());
    }
}
