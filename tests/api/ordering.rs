//! The global log is gap-free and in commit order: a tailing reader that has seen position p
//! never later finds a new event below p.

use std::time::Duration;

use aggregates::event::Stamp;
use aggregates::TriggerEvent;
use chrono::Utc;
use trigger_engine::store::{LoggedEvent, Store};
use uuid::Uuid;

use crate::helpers::{
    advance, command, create_action, eventually, request_id, spawn_app, user, TestDb,
};

crate::on_every_store!(
    it_should_not_let_later_appends_overtake_a_slow_transaction,
    it_should_show_a_tailing_reader_every_position_once_in_order,
);

/// The raw append a slow transaction makes: a trigger created by hand, not yet committed.
async fn begin_slow_append(store: &Store) -> (Uuid, trigger_engine::store::views::Tx) {
    let slow_id = Uuid::new_v4();
    let payload = serde_json::to_value(TriggerEvent::TriggerCreated {
        project_trigger_id: slow_id,
        org_id: Uuid::new_v4(),
        project_id: "slow".into(),
        connection_id: None,
        provider_id: "rss".into(),
        trigger_id: "on_new_item".into(),
        trigger_config: None,
        stamp: Stamp {
            at: Utc::now(),
            by: user(),
        },
    })
    .unwrap();
    let mut slow = store.begin().await.unwrap();
    slow.execute(&format!(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('trigger', '{slow_id}', 1, 'TriggerCreated', '1', '{payload}', '{{}}')"
    ))
    .await
    .unwrap();
    (slow_id, slow)
}

/// Reads everything after `*last` and checks it continues the log without a hole.
async fn tail(store: &Store, last: &mut i64) -> Vec<LoggedEvent> {
    let page = store.read_log(*last, 1_000).await.unwrap();
    for event in &page {
        assert_eq!(
            event.position,
            *last + 1,
            "the reader found a hole after {last}"
        );
        *last = event.position;
    }
    page
}

async fn it_should_not_let_later_appends_overtake_a_slow_transaction(db: TestDb) {
    let app = spawn_app(&db).await;
    for _ in 0..3 {
        app.create_trigger(Uuid::new_v4()).await;
    }
    let mut reader = 0;
    assert_eq!(tail(&app.store, &mut reader).await.len(), 3);

    // A transaction that appends, takes the next position, and then dawdles before committing.
    let (slow_id, slow) = begin_slow_append(&app.store).await;
    // Later appends through the full command path, on other triggers.
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let commands = app.commands.clone();
            tokio::spawn(async move {
                let (id, create) = create_action(Uuid::new_v4());
                commands
                    .execute(id, command(create), &request_id())
                    .await
                    .unwrap()
            })
        })
        .collect();

    if db.is_postgres() {
        // The engine's appender waits on the log head's row lock held by the slow transaction
        // (the other appends queue behind it in the process).
        let store = app.store.clone();
        eventually(10, "the later appends to queue behind the slow one", || {
            let store = store.clone();
            async move { waiting_on_locks(&store).await >= 1 }
        })
        .await;
    } else {
        // SQLite's writers wait inside its busy handler, which no query can observe; watch a while.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        writers.iter().all(|writer| !writer.is_finished()),
        "an append overtook the slow one"
    );
    assert!(
        tail(&app.store, &mut reader).await.is_empty(),
        "nothing new is visible yet"
    );

    slow.commit().await.unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    let after = tail(&app.store, &mut reader).await;
    assert_eq!(after.len(), 5);
    assert_eq!(
        after[0].aggregate_id,
        slow_id.to_string(),
        "the slow append keeps its place"
    );
    assert_eq!(reader, 8);
    app.shutdown().await;
}

async fn waiting_on_locks(store: &Store) -> i64 {
    trigger_engine::on_pool!(store, |pool| {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
    })
    .unwrap()
}

async fn it_should_show_a_tailing_reader_every_position_once_in_order(db: TestDb) {
    const WRITERS: usize = 8;
    const EVENTS_EACH: u64 = 30;
    let app = spawn_app(&db).await;
    let total = WRITERS as i64 * EVENTS_EACH as i64;

    let store = app.store.clone();
    let reader = tokio::spawn(async move {
        let mut last = 0;
        let mut seen = Vec::new();
        while last < total {
            let page = tail(&store, &mut last).await;
            seen.extend(page.into_iter().map(|event| event.position));
            tokio::task::yield_now().await;
        }
        seen
    });

    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let commands = app.commands.clone();
            tokio::spawn(async move {
                let (id, create) = create_action(Uuid::new_v4());
                commands
                    .execute(id, command(create), &request_id())
                    .await
                    .unwrap();
                for next in 1..EVENTS_EACH {
                    let seen = (next > 1).then_some(next - 1);
                    commands
                        .execute(id, command(advance(seen, next)), &request_id())
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let seen = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the reader reached the head")
        .unwrap();
    assert_eq!(seen, (1..=total).collect::<Vec<_>>());
    app.shutdown().await;
}
