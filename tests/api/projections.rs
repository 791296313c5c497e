//! The trigger read model: kept by the projector, rebuilt blue/green, surviving restarts.

use std::collections::HashMap;

use aggregates::{Trigger, TriggerAction, TriggerStatus};
use projections::triggers::{fold_batch, TriggerView};
use trigger_engine::rebuild::rebuild_triggers;
use trigger_engine::store::Store;
use uuid::Uuid;

use crate::helpers::{advance, command, create_action, request_id, spawn_app, TestApp, TestDb};

crate::on_every_store!(
    it_should_show_a_write_to_the_next_read,
    it_should_find_triggers_by_organisation_and_project,
    it_should_rebuild_the_same_model_while_writes_go_on,
    it_should_keep_the_model_and_checkpoint_across_a_restart,
    it_should_share_one_store_between_two_engines,
);

/// The read model computed straight from the whole log, for comparison.
async fn folded_from_log(store: &Store) -> Vec<TriggerView> {
    let events = store.read_log(0, i64::MAX).await.unwrap();
    let decoded: Vec<_> = events
        .iter()
        .filter_map(|event| {
            let id = Uuid::parse_str(&event.aggregate_id).ok()?;
            Some((id, event.trigger_event().unwrap()?, event.position))
        })
        .collect();
    let mut views = fold_batch(
        HashMap::new(),
        decoded
            .iter()
            .map(|(id, event, position)| (*id, event, *position)),
    );
    views.sort_by_key(|view| view.record.project_trigger_id.to_string());
    views
}

/// A little of everything the trigger does, on `count` triggers.
async fn varied_history(app: &TestApp, org: Uuid, count: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for n in 0..count {
        let id = app.create_trigger(org).await;
        app.run(id, TriggerAction::EnableTrigger).await;
        app.run(id, advance(None, 1)).await;
        app.run(
            id,
            TriggerAction::RecordWebhook {
                webhook_data: serde_json::json!({"job_id": n}),
            },
        )
        .await;
        if n % 3 == 0 {
            app.run(id, TriggerAction::DisableTrigger).await;
        }
        if n % 4 == 0 {
            app.run(id, TriggerAction::DeleteTrigger).await;
        }
        ids.push(id);
    }
    ids
}

async fn it_should_show_a_write_to_the_next_read(db: TestDb) {
    let app = spawn_app(&db).await;
    let id = app.create_trigger(Uuid::new_v4()).await;
    let view = app
        .store
        .trigger_view(id)
        .await
        .unwrap()
        .expect("visible at once");
    assert_eq!(view.record.status, TriggerStatus::Disabled);
    app.run(id, TriggerAction::EnableTrigger).await;
    let view = app.store.trigger_view(id).await.unwrap().unwrap();
    assert_eq!(view.record.status, TriggerStatus::Enabled);
    app.shutdown().await;
}

async fn it_should_find_triggers_by_organisation_and_project(db: TestDb) {
    let app = spawn_app(&db).await;
    let (ours, theirs) = (Uuid::new_v4(), Uuid::new_v4());
    let kept = app.create_trigger(ours).await;
    let deleted = app.create_trigger(ours).await;
    app.run(deleted, TriggerAction::DeleteTrigger).await;
    app.create_trigger(theirs).await;

    let listed = app.store.org_trigger_views(ours, None).await.unwrap();
    let ids: Vec<_> = listed
        .iter()
        .map(|view| view.record.project_trigger_id)
        .collect();
    assert_eq!(
        ids,
        [kept],
        "deleted and other organisations' triggers are not listed"
    );
    let in_project = app
        .store
        .org_trigger_views(ours, Some("project-1"))
        .await
        .unwrap();
    assert_eq!(in_project.len(), 1);
    let elsewhere = app
        .store
        .org_trigger_views(ours, Some("project-2"))
        .await
        .unwrap();
    assert!(elsewhere.is_empty());
    app.shutdown().await;
}

async fn it_should_rebuild_the_same_model_while_writes_go_on(db: TestDb) {
    let app = spawn_app(&db).await;
    varied_history(&app, Uuid::new_v4(), 12).await;
    let incremental = app.store.all_trigger_views().await.unwrap();
    assert_eq!(incremental, folded_from_log(&app.store).await);

    let commands = app.commands.clone();
    let writer = tokio::spawn(async move {
        for _ in 0..20 {
            let (id, create) = create_action(Uuid::new_v4());
            commands
                .execute(id, command(create), &request_id())
                .await
                .unwrap();
        }
    });
    let report = rebuild_triggers(&app.store).await.unwrap();
    writer.await.unwrap();
    assert!(
        report.position
            >= incremental
                .iter()
                .map(|view| view.last_position)
                .max()
                .unwrap()
    );

    let head = app.store.head().await.unwrap();
    assert!(
        app.projections
            .wait_for(head, std::time::Duration::from_secs(10))
            .await
    );
    assert_eq!(
        app.store.all_trigger_views().await.unwrap(),
        folded_from_log(&app.store).await
    );
    let checkpoints = app.store.checkpoints().await.unwrap();
    let names: Vec<&str> = checkpoints.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["replays", "runs", "triggers"],
        "the rebuild leaves no checkpoint behind: {checkpoints:?}"
    );
    assert!(checkpoints
        .iter()
        .all(|checkpoint| checkpoint.position == head));
    app.shutdown().await;
}

async fn it_should_keep_the_model_and_checkpoint_across_a_restart(db: TestDb) {
    let app = spawn_app(&db).await;
    let ids = varied_history(&app, Uuid::new_v4(), 3).await;
    let before = app.store.all_trigger_views().await.unwrap();
    let head = app.store.head().await.unwrap();
    app.shutdown().await;

    let app = spawn_app(&db).await;
    assert_eq!(app.store.head().await.unwrap(), head);
    assert_eq!(app.store.checkpoints().await.unwrap()[0].position, head);
    assert_eq!(app.store.all_trigger_views().await.unwrap(), before);
    let loaded = app.store.load::<Trigger>(ids[1]).await.unwrap();
    assert_eq!(
        loaded.state.record(),
        Some(
            &before
                .iter()
                .find(|v| v.record.project_trigger_id == ids[1])
                .unwrap()
                .record
        )
    );
    app.shutdown().await;
}

async fn it_should_share_one_store_between_two_engines(db: TestDb) {
    let (one, two) = (spawn_app(&db).await, spawn_app(&db).await);
    let writers: Vec<_> = [&one, &two]
        .into_iter()
        .map(|app| {
            let commands = app.commands.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    let (id, create) = create_action(Uuid::new_v4());
                    commands
                        .execute(id, command(create), &request_id())
                        .await
                        .unwrap();
                    commands
                        .execute(id, command(TriggerAction::EnableTrigger), &request_id())
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let head = one.store.head().await.unwrap();
    assert_eq!(head, 100);
    for app in [&one, &two] {
        assert!(
            app.projections
                .wait_for(head, std::time::Duration::from_secs(10))
                .await
        );
    }
    let expected = folded_from_log(&one.store).await;
    assert_eq!(one.store.all_trigger_views().await.unwrap(), expected);
    assert_eq!(two.store.all_trigger_views().await.unwrap(), expected);
    one.shutdown().await;
    two.shutdown().await;
}
