//! The trigger's rules, read as sentences: given these events, when this command, then that.

use aggregates::event::Stamp;
use aggregates::{
    Actor, NewTrigger, Trigger, TriggerAction, TriggerCommand, TriggerError, TriggerEvent,
};
use chrono::{DateTime, Utc};
use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;
use serde_json::json;
use uuid::Uuid;

type TriggerTest = TestFramework<Trigger>;

fn at() -> DateTime<Utc> {
    "2026-03-02T10:30:09Z".parse().unwrap()
}

fn alice() -> Actor {
    Actor::User(Uuid::from_u128(0xa11ce))
}

fn stamp() -> Stamp {
    Stamp {
        at: at(),
        by: alice(),
    }
}

fn command(action: TriggerAction) -> TriggerCommand {
    TriggerCommand::new(at(), alice(), action)
}

fn new_trigger() -> NewTrigger {
    NewTrigger {
        project_trigger_id: Uuid::from_u128(1),
        org_id: Uuid::from_u128(2),
        project_id: "project-1".into(),
        connection_id: None,
        provider_id: "stripe".into(),
        trigger_id: "on_customer_created".into(),
        trigger_config: Some(json!({"polling_frequency": "10000"})),
    }
}

fn created() -> TriggerEvent {
    let new = new_trigger();
    TriggerEvent::TriggerCreated {
        project_trigger_id: new.project_trigger_id,
        org_id: new.org_id,
        project_id: new.project_id,
        connection_id: new.connection_id,
        provider_id: new.provider_id,
        trigger_id: new.trigger_id,
        trigger_config: new.trigger_config,
        stamp: stamp(),
    }
}

fn advanced(cursor: serde_json::Value) -> TriggerEvent {
    TriggerEvent::CursorAdvanced {
        cursor_data: cursor,
        stamp: stamp(),
    }
}

#[test]
fn it_should_create_a_trigger_that_starts_disabled() {
    TriggerTest::with(())
        .given_no_previous_events()
        .when(command(TriggerAction::CreateTrigger(new_trigger())))
        .then_expect_events(vec![created()]);
    let mut trigger = Trigger::default();
    trigger.apply(created());
    assert_eq!(trigger.record().unwrap().status.as_str(), "DISABLED");
}

#[test]
fn it_should_not_create_a_trigger_twice() {
    TriggerTest::with(())
        .given(vec![created()])
        .when(command(TriggerAction::CreateTrigger(new_trigger())))
        .then_expect_error(TriggerError::AlreadyExists);
}

#[test]
fn it_should_refuse_a_trigger_without_a_provider() {
    let mut new = new_trigger();
    new.provider_id = " ".into();
    TriggerTest::with(())
        .given_no_previous_events()
        .when(command(TriggerAction::CreateTrigger(new)))
        .then_expect_error(TriggerError::InvalidField {
            field: "provider_id",
            reason: "must not be empty",
        });
}

#[test]
fn it_should_refuse_a_config_that_is_not_an_object() {
    let mut new = new_trigger();
    new.trigger_config = Some(json!([1, 2]));
    TriggerTest::with(())
        .given_no_previous_events()
        .when(command(TriggerAction::CreateTrigger(new)))
        .then_expect_error(TriggerError::InvalidField {
            field: "trigger_config",
            reason: "must be a JSON object",
        });
}

#[test]
fn it_should_enable_a_disabled_trigger() {
    TriggerTest::with(())
        .given(vec![created()])
        .when(command(TriggerAction::EnableTrigger))
        .then_expect_events(vec![TriggerEvent::TriggerEnabled { stamp: stamp() }]);
}

#[test]
fn it_should_record_nothing_when_enabling_an_enabled_trigger() {
    TriggerTest::with(())
        .given(vec![
            created(),
            TriggerEvent::TriggerEnabled { stamp: stamp() },
        ])
        .when(command(TriggerAction::EnableTrigger))
        .then_expect_events(vec![]);
}

#[test]
fn it_should_record_nothing_when_disabling_a_disabled_trigger() {
    TriggerTest::with(())
        .given(vec![created()])
        .when(command(TriggerAction::DisableTrigger))
        .then_expect_events(vec![]);
}

#[test]
fn it_should_disable_an_enabled_trigger() {
    TriggerTest::with(())
        .given(vec![
            created(),
            TriggerEvent::TriggerEnabled { stamp: stamp() },
        ])
        .when(command(TriggerAction::DisableTrigger))
        .then_expect_events(vec![TriggerEvent::TriggerDisabled { stamp: stamp() }]);
}

#[test]
fn it_should_not_enable_a_deleted_trigger() {
    TriggerTest::with(())
        .given(vec![
            created(),
            TriggerEvent::TriggerDeleted { stamp: stamp() },
        ])
        .when(command(TriggerAction::EnableTrigger))
        .then_expect_error(TriggerError::Deleted);
}

#[test]
fn it_should_not_delete_a_deleted_trigger_again() {
    TriggerTest::with(())
        .given(vec![
            created(),
            TriggerEvent::TriggerDeleted { stamp: stamp() },
        ])
        .when(command(TriggerAction::DeleteTrigger))
        .then_expect_error(TriggerError::Deleted);
}

#[test]
fn it_should_not_recreate_a_deleted_trigger() {
    TriggerTest::with(())
        .given(vec![
            created(),
            TriggerEvent::TriggerDeleted { stamp: stamp() },
        ])
        .when(command(TriggerAction::CreateTrigger(new_trigger())))
        .then_expect_error(TriggerError::Deleted);
}

#[test]
fn it_should_not_touch_a_trigger_that_was_never_created() {
    TriggerTest::with(())
        .given_no_previous_events()
        .when(command(TriggerAction::DisableTrigger))
        .then_expect_error(TriggerError::NotFound);
}

#[test]
fn it_should_update_the_config_only_when_it_changes() {
    TriggerTest::with(())
        .given(vec![created()])
        .when(command(TriggerAction::UpdateConfig {
            trigger_config: Some(json!({"polling_frequency": "10000"})),
        }))
        .then_expect_events(vec![]);
    TriggerTest::with(())
        .given(vec![created()])
        .when(command(TriggerAction::UpdateConfig {
            trigger_config: None,
        }))
        .then_expect_events(vec![TriggerEvent::TriggerConfigUpdated {
            trigger_config: None,
            stamp: stamp(),
        }]);
}

#[test]
fn it_should_record_and_clear_the_webhook_registration() {
    let webhook_data = json!({"form_id": "43dc2afb", "webhook_tag": "stackai-webhook"});
    let recorded = TriggerEvent::WebhookRecorded {
        webhook_data: webhook_data.clone(),
        stamp: stamp(),
    };
    TriggerTest::with(())
        .given(vec![created()])
        .when(command(TriggerAction::RecordWebhook { webhook_data }))
        .then_expect_events(vec![recorded.clone()]);
    TriggerTest::with(())
        .given(vec![created(), recorded])
        .when(command(TriggerAction::ClearWebhook))
        .then_expect_events(vec![TriggerEvent::WebhookCleared { stamp: stamp() }]);
    TriggerTest::with(())
        .given(vec![created()])
        .when(command(TriggerAction::ClearWebhook))
        .then_expect_events(vec![]);
}

#[test]
fn it_should_advance_the_cursor_from_the_one_the_poller_saw() {
    TriggerTest::with(())
        .given(vec![
            created(),
            advanced(json!({"last_processed_event_id": "1"})),
        ])
        .when(command(TriggerAction::AdvanceCursor {
            seen: Some(json!({"last_processed_event_id": "1"})),
            next: json!({"last_processed_event_id": "2"}),
        }))
        .then_expect_events(vec![advanced(json!({"last_processed_event_id": "2"}))]);
}

#[test]
fn it_should_refuse_the_losing_poller_of_a_race() {
    TriggerTest::with(())
        .given(vec![
            created(),
            advanced(json!({"last_processed_event_id": "2"})),
        ])
        .when(command(TriggerAction::AdvanceCursor {
            seen: Some(json!({"last_processed_event_id": "1"})),
            next: json!({"last_processed_event_id": "3"}),
        }))
        .then_expect_error(TriggerError::CursorConflict {
            expected: json!({"last_processed_event_id": "1"}),
            actual: json!({"last_processed_event_id": "2"}),
        });
}

#[test]
fn it_should_refuse_a_cursor_that_is_not_an_object() {
    TriggerTest::with(())
        .given(vec![created()])
        .when(command(TriggerAction::AdvanceCursor {
            seen: None,
            next: json!("42"),
        }))
        .then_expect_error(TriggerError::InvalidField {
            field: "next",
            reason: "must be a JSON object",
        });
}

#[test]
fn it_should_tell_an_unknown_command_from_a_malformed_one() {
    let unknown = TriggerCommand::from_json(json!({
        "command": "explode", "at": at(), "actor": alice()
    }));
    assert_eq!(unknown, Err(TriggerError::UnknownCommand("explode".into())));
    let malformed = TriggerCommand::from_json(json!({
        "command": "advance_cursor", "at": at(), "actor": alice(), "next": {}, "extra": 1
    }));
    assert!(
        matches!(malformed, Err(TriggerError::MalformedCommand { command, .. }) if command == "advance_cursor")
    );
    let valid = TriggerCommand::from_json(json!({
        "command": "enable_trigger", "at": at(), "actor": alice()
    }));
    assert_eq!(valid, Ok(command(TriggerAction::EnableTrigger)));
}

#[test]
fn it_should_stamp_every_change_with_its_author_and_time() {
    let bob = Actor::User(Uuid::from_u128(0xb0b));
    let later: DateTime<Utc> = "2026-03-03T00:00:00Z".parse().unwrap();
    let mut trigger = Trigger::default();
    trigger.apply(created());
    trigger.apply(TriggerEvent::TriggerEnabled {
        stamp: Stamp {
            at: later,
            by: bob.clone(),
        },
    });
    let record = trigger.record().unwrap();
    assert_eq!((record.created_at, &record.created_by), (at(), &alice()));
    assert_eq!((record.updated_at, &record.updated_by), (later, &bob));
}

#[test]
fn it_should_disable_a_failing_trigger_on_its_own_with_the_reason() {
    let reason = "10 polls in a row failed; last: feed answered 500".to_owned();
    TriggerTest::with(())
        .given(vec![
            created(),
            TriggerEvent::TriggerEnabled { stamp: stamp() },
        ])
        .when(command(TriggerAction::AutoDisableTrigger {
            reason: reason.clone(),
        }))
        .then_expect_events(vec![TriggerEvent::TriggerAutoDisabled {
            reason,
            stamp: stamp(),
        }]);
    let mut trigger = Trigger::default();
    trigger.apply(created());
    trigger.apply(TriggerEvent::TriggerEnabled { stamp: stamp() });
    trigger.apply(TriggerEvent::TriggerAutoDisabled {
        reason: "failing".into(),
        stamp: stamp(),
    });
    assert_eq!(trigger.record().unwrap().status.as_str(), "DISABLED");
}

#[test]
fn it_should_record_nothing_when_auto_disabling_a_disabled_trigger() {
    TriggerTest::with(())
        .given(vec![created()])
        .when(command(TriggerAction::AutoDisableTrigger {
            reason: "failing".into(),
        }))
        .then_expect_events(vec![]);
}

#[test]
fn it_should_refuse_an_auto_disable_without_a_reason() {
    TriggerTest::with(())
        .given(vec![
            created(),
            TriggerEvent::TriggerEnabled { stamp: stamp() },
        ])
        .when(command(TriggerAction::AutoDisableTrigger {
            reason: " ".into(),
        }))
        .then_expect_error(TriggerError::InvalidField {
            field: "reason",
            reason: "must not be empty",
        });
}
