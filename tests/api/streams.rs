//! One trigger's stream: commands in, events stored with their metadata, state loaded back.

use aggregates::{Trigger, TriggerAction, TriggerError, TriggerStatus};
use cqrs_es::Aggregate;
use trigger_engine::commands::{CommandError, SNAPSHOT_EVERY};
use trigger_engine::store::Store;
use uuid::Uuid;

use crate::helpers::{advance, command, create_action, request_id, spawn_app, user, TestDb};

crate::on_every_store!(
    it_should_store_events_with_their_audit_metadata,
    it_should_load_from_a_snapshot_exactly_what_a_replay_gives,
    it_should_let_only_one_of_two_racing_pollers_advance_the_cursor,
    it_should_record_nothing_for_a_command_that_changes_nothing,
    it_should_refuse_commands_to_a_deleted_trigger,
    it_should_batch_concurrent_appends_and_reject_only_the_racing_ones,
    it_should_append_several_streams_all_together_or_not_at_all,
);

async fn it_should_store_events_with_their_audit_metadata(db: TestDb) {
    let app = spawn_app(&db).await;
    let org = Uuid::new_v4();
    let (id, create) = create_action(org);
    let request = request_id();
    app.commands
        .execute(id, command(create), &request)
        .await
        .unwrap();
    app.run(id, TriggerAction::EnableTrigger).await;
    app.run(id, advance(None, 1)).await;

    let loaded = app.store.load::<Trigger>(id).await.unwrap();
    let record = loaded.state.record().expect("created");
    assert_eq!(loaded.sequence, 3);
    assert_eq!(record.status, TriggerStatus::Enabled);
    assert_eq!(record.org_id, org);
    assert_eq!(
        record.cursor_data.as_ref().unwrap()["last_processed_event_id"],
        "1"
    );

    let history = app
        .store
        .stream_history(Trigger::TYPE, &id.to_string())
        .await
        .unwrap();
    let types: Vec<_> = history
        .iter()
        .map(|event| event.event_type.as_str())
        .collect();
    assert_eq!(
        types,
        ["TriggerCreated", "TriggerEnabled", "CursorAdvanced"]
    );
    assert_eq!(history[0].meta("request_id"), Some(request.as_str()));
    for event in &history {
        assert_eq!(event.meta("actor"), Some(user().to_string().as_str()));
        assert_eq!(event.meta("org_id"), Some(org.to_string().as_str()));
        assert_eq!(event.event_version, "1");
        assert!(
            Uuid::parse_str(&event.event_id).is_ok(),
            "event id {}",
            event.event_id
        );
    }
    assert!(history
        .windows(2)
        .all(|pair| pair[0].position < pair[1].position));
    assert!(history
        .windows(2)
        .all(|pair| pair[0].recorded_at <= pair[1].recorded_at));
    assert_ne!(history[0].event_id, history[1].event_id);
    app.shutdown().await;
}

async fn it_should_load_from_a_snapshot_exactly_what_a_replay_gives(db: TestDb) {
    let app = spawn_app(&db).await;
    let id = app.create_trigger(Uuid::new_v4()).await;
    let advances = 2 * SNAPSHOT_EVERY as u64 + 50;
    let mut seen = None;
    for next in 1..=advances {
        app.commands
            .execute(id, command(advance(seen, next)), &request_id())
            .await
            .unwrap();
        seen = Some(next);
    }
    let snapshot_sequence = snapshot_sequence(&app.store, id).await;
    assert_eq!(snapshot_sequence, Some(2 * SNAPSHOT_EVERY as i64));

    let from_snapshot = app.store.load::<Trigger>(id).await.unwrap();
    let replayed = app.store.replay::<Trigger>(id).await.unwrap();
    assert_eq!(from_snapshot.sequence, advances as usize + 1);
    assert_eq!(from_snapshot.sequence, replayed.sequence);
    assert_eq!(from_snapshot.state, replayed.state);
    app.shutdown().await;
}

async fn snapshot_sequence(store: &Store, id: Uuid) -> Option<i64> {
    let sql = "SELECT last_sequence FROM snapshots WHERE aggregate_id = $1";
    trigger_engine::on_pool!(store, |pool| {
        sqlx::query_scalar(sql)
            .bind(id.to_string())
            .fetch_optional(pool)
            .await
    })
    .unwrap()
}

async fn it_should_let_only_one_of_two_racing_pollers_advance_the_cursor(db: TestDb) {
    let app = spawn_app(&db).await;
    let id = app.create_trigger(Uuid::new_v4()).await;
    app.run(id, advance(None, 1)).await;
    let (one, two) = (request_id(), request_id());
    let (first, second) = tokio::join!(
        app.commands.execute(id, command(advance(Some(1), 2)), &one),
        app.commands.execute(id, command(advance(Some(1), 3)), &two),
    );
    let outcomes = [first, second];
    let winners = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    let losers = outcomes
        .iter()
        .filter(|outcome| {
            matches!(
                outcome,
                Err(CommandError::Rejected(TriggerError::CursorConflict { .. }))
            )
        })
        .count();
    assert_eq!((winners, losers), (1, 1), "{outcomes:?}");
    let history = app
        .store
        .stream_history(Trigger::TYPE, &id.to_string())
        .await
        .unwrap();
    assert_eq!(
        history.len(),
        3,
        "created, advanced to 1, advanced once more"
    );
    app.shutdown().await;
}

async fn it_should_record_nothing_for_a_command_that_changes_nothing(db: TestDb) {
    let app = spawn_app(&db).await;
    let id = app.create_trigger(Uuid::new_v4()).await;
    assert!(app.run(id, TriggerAction::EnableTrigger).await.is_some());
    let head = app.store.head().await.unwrap();
    assert_eq!(app.run(id, TriggerAction::EnableTrigger).await, None);
    assert_eq!(app.run(id, TriggerAction::ClearWebhook).await, None);
    assert_eq!(app.store.head().await.unwrap(), head);
    app.shutdown().await;
}

async fn it_should_refuse_commands_to_a_deleted_trigger(db: TestDb) {
    let app = spawn_app(&db).await;
    let id = app.create_trigger(Uuid::new_v4()).await;
    app.run(id, TriggerAction::DeleteTrigger).await;
    let head = app.store.head().await.unwrap();
    let refused = app
        .commands
        .execute(id, command(TriggerAction::EnableTrigger), &request_id())
        .await;
    assert!(matches!(
        refused,
        Err(CommandError::Rejected(TriggerError::Deleted))
    ));
    let never_created = app
        .commands
        .execute(
            Uuid::new_v4(),
            command(TriggerAction::EnableTrigger),
            &request_id(),
        )
        .await;
    assert!(matches!(
        never_created,
        Err(CommandError::Rejected(TriggerError::NotFound))
    ));
    assert_eq!(app.store.head().await.unwrap(), head);
    let view = app
        .store
        .trigger_view(id)
        .await
        .unwrap()
        .expect("kept for history");
    assert!(view.record.is_deleted());
    app.shutdown().await;
}

#[tokio::test]
async fn it_should_refuse_a_database_url_it_does_not_know() {
    let refused = Store::connect("mysql://localhost/triggers", 1).await;
    assert!(matches!(
        refused,
        Err(trigger_engine::store::StoreError::UnsupportedUrl(_))
    ));
}

async fn it_should_batch_concurrent_appends_and_reject_only_the_racing_ones(db: TestDb) {
    use aggregates::event::Stamp;
    use aggregates::TriggerEvent;
    use trigger_engine::store::streams::EventMetadata;
    use trigger_engine::store::StoreError;

    let app = spawn_app(&db).await;
    let contested = app.create_trigger(Uuid::new_v4()).await;
    let mut others = Vec::new();
    for _ in 0..8 {
        others.push(app.create_trigger(Uuid::new_v4()).await);
    }
    let head = app.store.head().await.unwrap();
    let metadata = EventMetadata {
        actor: user(),
        org_id: Uuid::new_v4(),
        request_id: request_id(),
    };
    let enabled = || TriggerEvent::TriggerEnabled {
        stamp: Stamp {
            at: chrono::Utc::now(),
            by: user(),
        },
    };
    // Eight writers race for sequence 2 of one stream while eight others append to their own.
    let appends: Vec<_> = (0..8)
        .map(|_| contested)
        .chain(others.iter().copied())
        .map(|id| {
            let (store, metadata, event) = (app.store.clone(), metadata.clone(), enabled());
            tokio::spawn(async move {
                (
                    id,
                    store.append::<Trigger>(id, 1, &[event], &metadata).await,
                )
            })
        })
        .collect();
    let mut won = Vec::new();
    let mut lost = 0;
    for append in appends {
        match append.await.unwrap() {
            (id, Ok(position)) => won.push((id, position)),
            (id, Err(StoreError::Conflict)) => {
                assert_eq!(id, contested);
                lost += 1;
            }
            (_, Err(error)) => panic!("unexpected {error}"),
        }
    }
    assert_eq!((won.len(), lost), (9, 7));
    let mut positions: Vec<_> = won.iter().map(|(_, position)| *position).collect();
    positions.sort_unstable();
    assert_eq!(positions, ((head + 1)..=(head + 9)).collect::<Vec<_>>());
    for (id, position) in won {
        let history = app
            .store
            .stream_history("trigger", &id.to_string())
            .await
            .unwrap();
        assert_eq!(history.last().unwrap().position, position);
    }
    app.shutdown().await;
}

async fn it_should_append_several_streams_all_together_or_not_at_all(db: TestDb) {
    use aggregates::event::Stamp;
    use aggregates::TriggerEvent;
    use trigger_engine::store::streams::EventMetadata;
    use trigger_engine::store::StoreError;

    let app = spawn_app(&db).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.create_trigger(Uuid::new_v4()).await);
    }
    let mut bystanders = Vec::new();
    for _ in 0..6 {
        bystanders.push(app.create_trigger(Uuid::new_v4()).await);
    }
    let metadata = EventMetadata {
        actor: user(),
        org_id: Uuid::new_v4(),
        request_id: request_id(),
    };
    let enabled = || TriggerEvent::TriggerEnabled {
        stamp: Stamp {
            at: chrono::Utc::now(),
            by: user(),
        },
    };
    let part = |id: Uuid, after: usize| {
        Store::stream_append::<Trigger>(id, after, &[enabled()], &metadata).unwrap()
    };
    let length = |id: Uuid| {
        let store = app.store.clone();
        async move {
            store
                .stream_history("trigger", &id.to_string())
                .await
                .unwrap()
                .len()
        }
    };

    // The last part clashes (sequence 1 is taken): the first two must not be recorded either,
    // also when the group shares a statement with other writers' appends.
    let clashing = vec![part(ids[0], 1), part(ids[1], 1), part(ids[2], 0)];
    let alone: Vec<_> = bystanders
        .iter()
        .map(|id| {
            let (store, append) = (app.store.clone(), part(*id, 1));
            tokio::spawn(async move { store.append_together(vec![append]).await })
        })
        .collect();
    let refused = app.store.append_together(clashing).await;
    assert!(matches!(refused, Err(StoreError::Conflict)), "{refused:?}");
    for append in alone {
        assert!(
            append.await.unwrap().is_ok(),
            "a bystander pays for the clash"
        );
    }
    for id in &ids {
        assert_eq!(
            length(*id).await,
            1,
            "nothing of the refused group is recorded"
        );
    }

    let head = app.store.head().await.unwrap();
    let positions = app
        .store
        .append_together(vec![part(ids[0], 1), part(ids[1], 1), part(ids[2], 1)])
        .await
        .unwrap();
    assert_eq!(
        positions,
        [head + 1, head + 2, head + 3],
        "each stream's last position, in order"
    );
    for id in &ids {
        assert_eq!(length(*id).await, 2);
    }
    app.shutdown().await;
}
