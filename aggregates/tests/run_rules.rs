//! The run's rules, read as sentences: given these events, when this command, then that.

use aggregates::event::Stamp;
use aggregates::run::{run_id, Firing};
use aggregates::{Actor, Run, RunCause, RunCommand, RunError, RunEvent, RunStatus};
use chrono::{DateTime, Duration, Utc};
use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;
use serde_json::json;
use uuid::Uuid;

type RunTest = TestFramework<Run>;

fn at(minutes: i64) -> DateTime<Utc> {
    "2026-03-02T10:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::minutes(minutes)
}

fn stamp(minutes: i64) -> Stamp {
    Stamp {
        at: at(minutes),
        by: Actor::system("executor"),
    }
}

fn firing() -> Firing {
    Firing {
        project_trigger_id: Uuid::from_u128(7),
        org_id: Uuid::from_u128(8),
        project_id: "project-1".into(),
        provider_id: "stripe".into(),
        trigger_id: "on_customer_created".into(),
        cause: RunCause::Delivery {
            key: "evt_1".into(),
        },
        payload: json!({"id": "evt_1"}),
        received_at: at(0),
    }
}

fn requested() -> RunEvent {
    RunEvent::RunRequested {
        run_id: run_id(Uuid::from_u128(7), &firing().cause),
        firing: firing(),
        stamp: stamp(0),
        held: false,
    }
}

fn started(attempt: u32) -> RunEvent {
    RunEvent::AttemptStarted {
        attempt,
        stamp: stamp(attempt as i64),
    }
}

#[test]
fn it_should_name_a_run_after_its_trigger_and_cause() {
    let trigger = Uuid::from_u128(7);
    let delivery = RunCause::Delivery {
        key: "evt_1".into(),
    };
    assert_eq!(
        run_id(trigger, &delivery),
        run_id(trigger, &delivery.clone())
    );
    assert_ne!(
        run_id(trigger, &delivery),
        run_id(Uuid::from_u128(9), &delivery)
    );
    let slot = RunCause::ScheduleSlot { at: at(0) };
    let item = RunCause::PolledItem { id: "evt_1".into() };
    assert_ne!(run_id(trigger, &delivery), run_id(trigger, &item));
    assert_ne!(
        run_id(trigger, &slot),
        run_id(trigger, &RunCause::ScheduleSlot { at: at(1) })
    );
}

#[test]
fn it_should_request_a_run_once_per_cause() {
    RunTest::with(())
        .given_no_previous_events()
        .when(RunCommand::Request {
            firing: firing(),
            stamp: stamp(0),
            held: false,
        })
        .then_expect_events(vec![requested()]);
    RunTest::with(())
        .given(vec![requested()])
        .when(RunCommand::Request {
            firing: firing(),
            stamp: stamp(5),
            held: false,
        })
        .then_expect_events(vec![]);
}

#[test]
fn it_should_start_only_the_next_attempt() {
    RunTest::with(())
        .given(vec![requested()])
        .when(RunCommand::StartAttempt {
            attempt: 1,
            stamp: stamp(1),
        })
        .then_expect_events(vec![started(1)]);
    RunTest::with(())
        .given(vec![requested(), started(1)])
        .when(RunCommand::StartAttempt {
            attempt: 1,
            stamp: stamp(1),
        })
        .then_expect_error(RunError::WrongAttempt {
            attempt: 1,
            action: "start",
            status: RunStatus::Running,
            attempts: 1,
        });
}

#[test]
fn it_should_retry_a_failed_attempt_and_then_succeed() {
    let failed = RunEvent::AttemptFailed {
        attempt: 1,
        error: "503 from the executor".into(),
        retry_at: at(3),
        stamp: stamp(2),
    };
    RunTest::with(())
        .given(vec![requested(), started(1)])
        .when(RunCommand::Fail {
            attempt: 1,
            error: "503 from the executor".into(),
            retry_at: Some(at(3)),
            stamp: stamp(2),
        })
        .then_expect_events(vec![failed.clone()]);
    RunTest::with(())
        .given(vec![requested(), started(1), failed.clone(), started(2)])
        .when(RunCommand::Succeed {
            attempt: 2,
            stamp: stamp(4),
        })
        .then_expect_events(vec![RunEvent::RunSucceeded {
            attempt: 2,
            stamp: stamp(4),
        }]);

    let mut run = Run::default();
    for event in [requested(), started(1), failed] {
        run.apply(event);
    }
    let record = run.record().unwrap();
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(record.next_attempt_at, Some(at(3)));
    assert_eq!(record.last_error.as_deref(), Some("503 from the executor"));
}

#[test]
fn it_should_not_finish_an_attempt_that_is_not_running() {
    RunTest::with(())
        .given(vec![requested()])
        .when(RunCommand::Succeed {
            attempt: 1,
            stamp: stamp(1),
        })
        .then_expect_error(RunError::WrongAttempt {
            attempt: 1,
            action: "finish",
            status: RunStatus::Requested,
            attempts: 0,
        });
}

#[test]
fn it_should_dead_letter_when_no_retry_is_due_and_revive_it_by_hand() {
    let dead = RunEvent::RunDeadLettered {
        attempt: 1,
        error: "404 from the executor".into(),
        stamp: stamp(2),
    };
    RunTest::with(())
        .given(vec![requested(), started(1)])
        .when(RunCommand::Fail {
            attempt: 1,
            error: "404 from the executor".into(),
            retry_at: None,
            stamp: stamp(2),
        })
        .then_expect_events(vec![dead.clone()]);
    RunTest::with(())
        .given(vec![requested(), started(1), dead.clone()])
        .when(RunCommand::Retry {
            stamp: stamp(9),
            replay_id: None,
        })
        .then_expect_events(vec![RunEvent::RetryRequested {
            stamp: stamp(9),
            replay_id: None,
        }]);
    RunTest::with(())
        .given(vec![
            requested(),
            started(1),
            dead,
            RunEvent::RetryRequested {
                stamp: stamp(9),
                replay_id: None,
            },
        ])
        .when(RunCommand::StartAttempt {
            attempt: 2,
            stamp: stamp(10),
        })
        .then_expect_events(vec![RunEvent::AttemptStarted {
            attempt: 2,
            stamp: stamp(10),
        }]);
}

#[test]
fn it_should_not_retry_a_run_that_succeeded() {
    RunTest::with(())
        .given(vec![
            requested(),
            started(1),
            RunEvent::RunSucceeded {
                attempt: 1,
                stamp: stamp(2),
            },
        ])
        .when(RunCommand::Retry {
            stamp: stamp(3),
            replay_id: None,
        })
        .then_expect_error(RunError::NotRetryable(RunStatus::Succeeded));
}

fn held() -> RunEvent {
    RunEvent::RunRequested {
        run_id: run_id(Uuid::from_u128(7), &firing().cause),
        firing: firing(),
        stamp: stamp(0),
        held: true,
    }
}

#[test]
fn it_should_hold_a_run_of_a_paused_trigger_until_it_is_released() {
    let mut run = Run::default();
    run.apply(held());
    assert_eq!(run.record().unwrap().status, RunStatus::Held);
    assert_eq!(
        run.record().unwrap().next_attempt_at,
        None,
        "a held run is never due"
    );
    let start = RunCommand::StartAttempt {
        attempt: 1,
        stamp: stamp(1),
    };
    assert!(matches!(
        run.decide(start),
        Err(RunError::WrongAttempt { .. })
    ));
    let release = RunCommand::Release { stamp: stamp(30) };
    let events = run.decide(release.clone()).unwrap();
    assert_eq!(events, vec![RunEvent::RunReleased { stamp: stamp(30) }]);
    run.apply(events[0].clone());
    let record = run.record().unwrap();
    assert_eq!(record.status, RunStatus::Requested);
    assert_eq!(
        record.next_attempt_at,
        Some(at(0)),
        "due as of its request, so released runs go out oldest first"
    );
    assert_eq!(run.decide(release).unwrap(), vec![], "released once");
}

#[test]
fn it_should_skip_only_a_run_never_attempted() {
    RunTest::with(())
        .given(vec![requested()])
        .when(RunCommand::Skip {
            reason: "overlap".into(),
            stamp: stamp(0),
        })
        .then_expect_events(vec![RunEvent::RunSkipped {
            reason: "overlap".into(),
            stamp: stamp(0),
        }]);
    RunTest::with(())
        .given(vec![requested(), started(1)])
        .when(RunCommand::Skip {
            reason: "overlap".into(),
            stamp: stamp(2),
        })
        .then_expect_error(RunError::NotSkippable(RunStatus::Running));
}

#[test]
fn it_should_retry_a_run_at_most_once_per_replay() {
    let replay = Uuid::from_u128(42);
    let dead = RunEvent::RunDeadLettered {
        attempt: 1,
        error: "HTTP 503".into(),
        stamp: stamp(2),
    };
    let retried = RunEvent::RetryRequested {
        stamp: stamp(9),
        replay_id: Some(replay),
    };
    RunTest::with(())
        .given(vec![requested(), started(1), dead.clone()])
        .when(RunCommand::Retry {
            stamp: stamp(9),
            replay_id: Some(replay),
        })
        .then_expect_events(vec![retried.clone()]);
    // Failed again after the replay's retry: the same replay does not retry it twice.
    RunTest::with(())
        .given(vec![
            requested(),
            started(1),
            dead.clone(),
            retried,
            started(2),
            dead,
        ])
        .when(RunCommand::Retry {
            stamp: stamp(20),
            replay_id: Some(replay),
        })
        .then_expect_events(vec![]);
}
