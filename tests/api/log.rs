//! The tamper-evident log (issue 12): every event chained to the one before it, the chain kept
//! under concurrent writers and several processes, and `log verify` (CLI) and `GET /log/verify`
//! (HTTP) naming the first position that an edit made with plain SQL breaks.

use std::process::Output;

use reqwest::Method;
use serde_json::{json, Value};
use trigger_engine::store::chain::{self, BreakReason, GENESIS};
use trigger_engine::store::Store;
use uuid::Uuid;

use trigger_engine::identity::Role;

use crate::helpers::{admin_token, spawn_app, start_engine, Session, TestApp, TestDb};

crate::on_every_store!(
    it_should_keep_the_chain_under_concurrent_writers,
    it_should_answer_the_head_log_verify_computes,
    it_should_name_an_edited_payload,
    it_should_name_a_deleted_row,
    it_should_name_an_inserted_row,
    it_should_name_a_swapped_pair,
    it_should_expose_a_rewritten_chain_to_a_recorded_head,
    it_should_chain_a_log_written_before_the_chain,
    it_should_keep_one_chain_across_two_processes,
    it_should_keep_one_chain_across_two_appenders_racing,
);

async fn log_verify(db: &TestDb, args: &[&str]) -> (Output, Value) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_trigger-engine"))
        .args(["log", "verify"])
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("running trigger-engine log verify");
    let verdict = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "one JSON verdict on stdout; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, verdict)
}

/// Three triggers created and enabled: positions 1 to 6.
async fn six_events(app: &TestApp) {
    for _ in 0..3 {
        let id = app.create_trigger(Uuid::new_v4()).await;
        app.run(id, aggregates::TriggerAction::EnableTrigger).await;
    }
    assert_eq!(app.store.chain_head().await.unwrap().position, 6);
}

async fn sql(store: &Store, statements: &[&str]) {
    let mut tx = store.begin().await.unwrap();
    for statement in statements {
        tx.execute(statement).await.unwrap();
    }
    tx.commit().await.unwrap();
}

async fn http_verdict(app: &TestApp, session: &Session, query: &str) -> Value {
    let response = app
        .request(Method::GET, &format!("/log/verify{query}"), session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The CLI exits non-zero naming `position` and `reason`, and `GET /log/verify` answers the same
/// without a word of the events' content.
async fn assert_broken_at(db: &TestDb, app: &TestApp, position: i64, reason: &str) {
    let (output, verdict) = log_verify(db, &[]).await;
    assert!(!output.status.success(), "log verify passed: {verdict}");
    assert_eq!(verdict["holds"], false);
    assert_eq!(
        verdict["broken"],
        json!({"position": position, "reason": reason})
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("position {position}")),
        "stderr names the position: {stderr}"
    );

    let session = app.sign_up_as(Role::Auditor).await;
    let verdict = http_verdict(app, &session, "?from=1").await;
    assert_eq!(verdict["holds"], false, "{verdict}");
    assert_eq!(
        verdict["broken"],
        json!({"position": position, "reason": reason})
    );
    assert_eq!(verdict["verified_to"], position - 1);
    let fields: Vec<&String> = verdict.as_object().unwrap().keys().collect();
    assert_eq!(
        fields,
        ["broken", "from", "hash", "holds", "to", "verified_to"],
        "positions, hashes and a verdict only"
    );
}

async fn it_should_keep_the_chain_under_concurrent_writers(db: TestDb) {
    let app = spawn_app(&db).await;
    let writers = (0..8).map(|_| {
        let commands = app.commands.clone();
        tokio::spawn(async move {
            for _ in 0..15 {
                let (id, create) = crate::helpers::create_action(Uuid::new_v4());
                let request = crate::helpers::request_id();
                commands
                    .execute(id, crate::helpers::command(create), &request)
                    .await
                    .unwrap();
                commands
                    .execute(
                        id,
                        crate::helpers::command(aggregates::TriggerAction::EnableTrigger),
                        &request,
                    )
                    .await
                    .unwrap();
            }
        })
    });
    for writer in writers.collect::<Vec<_>>() {
        writer.await.unwrap();
    }
    let verdict = app.store.verify_chain(1, None).await.unwrap();
    assert_eq!(verdict.broken, None);
    assert_eq!(verdict.to, 240);
    // Each link is the one its event and its predecessor give, in position order.
    let events = app.store.read_log(0, 1_000).await.unwrap();
    let mut previous = GENESIS;
    for event in &events {
        previous = chain::link(&previous, event);
    }
    assert_eq!(previous, app.store.chain_head().await.unwrap().hash);
    app.shutdown().await;
}

async fn it_should_answer_the_head_log_verify_computes(db: TestDb) {
    let app = spawn_app(&db).await;
    let session = app.sign_up_as(Role::Auditor).await;
    let empty: Value = app
        .request(Method::GET, "/log/head", &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(empty, json!({"position": 0, "hash": "0".repeat(64)}));

    six_events(&app).await;
    let head: Value = app
        .request(Method::GET, "/log/head", &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(head["position"], 6);
    let (output, verdict) = log_verify(&db, &[]).await;
    assert!(output.status.success(), "{verdict}");
    assert_eq!(verdict["holds"], true);
    assert_eq!(verdict["to"], 6);
    assert_eq!(verdict["hash"], head["hash"]);

    let recorded = format!("6:{}", head["hash"].as_str().unwrap());
    let (output, _) = log_verify(&db, &["--expect", &recorded]).await;
    assert!(output.status.success());
    let (output, verdict) = log_verify(&db, &["--from", "4", "--expect", &recorded]).await;
    assert!(output.status.success(), "{verdict}");
    assert_eq!(verdict["from"], 4);

    let over_http = http_verdict(&app, &session, "?from=1&to=6").await;
    assert_eq!(over_http["holds"], true);
    assert_eq!(over_http["hash"], head["hash"]);
    // A range past the head stops at the head.
    let past = http_verdict(&app, &session, "?from=5&to=600").await;
    assert_eq!(
        (past["to"].clone(), past["holds"].clone()),
        (json!(6), json!(true))
    );

    // Bounded: a longer range is cut at 10,000 positions (here, first, at the head), and for
    // bearers of a token only.
    let long = http_verdict(&app, &session, "?from=1&to=9223372036854775806").await;
    assert_eq!(
        (long["to"].clone(), long["holds"].clone()),
        (json!(6), json!(true))
    );
    let beyond = app
        .request(Method::GET, "/log/verify?from=8", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 422);
    // Right after the head there is nothing to verify, and that holds.
    let after_head = http_verdict(&app, &session, "?from=7").await;
    assert_eq!(after_head["holds"], true);
    assert_eq!(after_head["verified_to"], 6);
    for path in ["/log/head", "/log/verify"] {
        let anonymous = app
            .http
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 401, "{path}");
    }
    app.shutdown().await;
}

async fn it_should_name_an_edited_payload(db: TestDb) {
    let app = spawn_app(&db).await;
    six_events(&app).await;
    sql(
        &app.store,
        &[r#"UPDATE events SET payload = '{"TriggerEnabled":{"edited":true}}' WHERE position = 4"#],
    )
    .await;
    assert_broken_at(&db, &app, 4, "altered").await;
    app.shutdown().await;
}

async fn it_should_name_a_deleted_row(db: TestDb) {
    let app = spawn_app(&db).await;
    six_events(&app).await;
    sql(&app.store, &["DELETE FROM events WHERE position = 3"]).await;
    assert_broken_at(&db, &app, 3, "missing").await;
    // The last row, too: the head row still names it.
    sql(&app.store, &["DELETE FROM events WHERE position >= 3"]).await;
    let (output, verdict) = log_verify(&db, &[]).await;
    assert!(!output.status.success());
    assert_eq!(
        verdict["broken"],
        json!({"position": 3, "reason": "missing"})
    );
    app.shutdown().await;
}

async fn it_should_name_an_inserted_row(db: TestDb) {
    let app = spawn_app(&db).await;
    six_events(&app).await;
    // Rows 3 to 6 move up one, and a copy of row 2 (hash and all) takes position 3.
    sql(
        &app.store,
        &[
            "UPDATE events SET position = -position WHERE position >= 3",
            "UPDATE events SET position = 1 - position WHERE position < 0",
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                                 payload, metadata, position, event_id, recorded_at, hash)
             SELECT aggregate_type, aggregate_id, 99, event_type, event_version, payload,
                    metadata, 3, '11111111-2222-4333-8444-555555555555', recorded_at, hash
               FROM events WHERE position = 2",
            "UPDATE event_log_head SET position = position + 1",
        ],
    )
    .await;
    assert_broken_at(&db, &app, 3, "altered").await;
    app.shutdown().await;
}

async fn it_should_name_a_swapped_pair(db: TestDb) {
    let app = spawn_app(&db).await;
    six_events(&app).await;
    sql(
        &app.store,
        &[
            "UPDATE events SET position = -1 WHERE position = 4",
            "UPDATE events SET position = 4 WHERE position = 5",
            "UPDATE events SET position = 5 WHERE position = -1",
        ],
    )
    .await;
    assert_broken_at(&db, &app, 4, "altered").await;
    app.shutdown().await;
}

/// Whoever owns the database can edit an event and recompute every hash after it, as the
/// documented script does: the chain holds again, and only a head recorded before gives it away.
async fn it_should_expose_a_rewritten_chain_to_a_recorded_head(db: TestDb) {
    let app = spawn_app(&db).await;
    six_events(&app).await;
    let recorded = app.store.chain_head().await.unwrap();
    sql(
        &app.store,
        &[r#"UPDATE events SET payload = '{"TriggerEnabled":{"edited":true}}' WHERE position = 2"#],
    )
    .await;
    let mut previous = GENESIS;
    let mut statements = Vec::new();
    for event in app.store.read_log(0, 100).await.unwrap() {
        previous = chain::link(&previous, &event);
        let hex = hex::encode(previous);
        let literal = if db.is_postgres() {
            format!("'\\x{hex}'::bytea")
        } else {
            format!("X'{hex}'")
        };
        statements.push(format!(
            "UPDATE events SET hash = {literal} WHERE position = {}",
            event.position
        ));
        if event.position == 6 {
            statements.push(format!("UPDATE event_log_head SET hash = {literal}"));
        }
    }
    let statements: Vec<&str> = statements.iter().map(String::as_str).collect();
    sql(&app.store, &statements).await;

    let (output, verdict) = log_verify(&db, &[]).await;
    assert!(
        output.status.success(),
        "a rewritten chain holds: {verdict}"
    );
    let expect = format!("6:{}", hex::encode(recorded.hash));
    let (output, verdict) = log_verify(&db, &["--expect", &expect]).await;
    assert!(!output.status.success());
    assert_eq!(
        verdict["broken"],
        json!({"position": 6, "reason": "not_as_recorded"})
    );
    app.shutdown().await;
}

/// A log from before migration 0008 (no hashes, a head without one) is chained by the next
/// `migrate`, once; a row added later without the engine stays unchained.
async fn it_should_chain_a_log_written_before_the_chain(db: TestDb) {
    let app = spawn_app(&db).await;
    six_events(&app).await;
    let chained = app.store.chain_head().await.unwrap();
    app.shutdown().await;
    let store = Store::connect(&db.url, 2).await.unwrap();
    sql(
        &store,
        &[
            "UPDATE events SET hash = NULL",
            "UPDATE event_log_head SET hash = NULL, recorded_at = NULL",
        ],
    )
    .await;
    store.migrate().await.unwrap();
    assert_eq!(store.chain_head().await.unwrap(), chained);
    assert_eq!(store.verify_chain(1, None).await.unwrap().broken, None);

    sql(
        &store,
        &["UPDATE events SET hash = NULL WHERE position = 5"],
    )
    .await;
    store.migrate().await.unwrap();
    let broken = store.verify_chain(1, None).await.unwrap().broken.unwrap();
    assert_eq!(
        (broken.position, broken.reason),
        (5, BreakReason::Unchained)
    );
}

/// Two `serve` processes on one PostgreSQL append at once: each chains onto the other's events
/// (SQLite is one process's store).
async fn it_should_keep_one_chain_across_two_processes(db: TestDb) {
    if !db.is_postgres() {
        return;
    }
    let http = reqwest::Client::new();
    let mut engines = Vec::new();
    for _ in 0..2 {
        let (process, address) = start_engine(&db, &http, &[]).await;
        let token = admin_token(&http, &address).await;
        engines.push((process, address, token));
    }
    let mut clients = Vec::new();
    for (_, address, token) in &engines {
        for _ in 0..4 {
            let (http, address, token) = (http.clone(), address.clone(), token.clone());
            clients.push(tokio::spawn(async move {
                for _ in 0..25 {
                    let created = http
                        .post(format!("{address}/projects/chain/triggers"))
                        .bearer_auth(&token)
                        .json(
                            &json!({"provider_id": "schedule", "trigger_id": "on_schedule",
                                      "trigger_config": {"interval_seconds": 3600}}),
                        )
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(created.status(), 201);
                }
            }));
        }
    }
    for client in clients {
        client.await.unwrap();
    }
    let (output, verdict) = log_verify(&db, &[]).await;
    assert!(output.status.success(), "{verdict}");
    assert_eq!(verdict["to"], 200);
    let head: Value = http
        .get(format!("{}/log/head", engines[1].1))
        .bearer_auth(&engines[1].2)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(head, json!({"position": 200, "hash": verdict["hash"]}));
}

/// Two stores (two appender tasks, each with its own idea of the head) on one PostgreSQL, sixteen
/// writers each: most batches find the head moved by the other, many several times in a row, so
/// both the retried statement and the locked fallback chain onto the other's events.
async fn it_should_keep_one_chain_across_two_appenders_racing(db: TestDb) {
    if !db.is_postgres() {
        return;
    }
    let app = spawn_app(&db).await;
    let other = std::sync::Arc::new(Store::connect(&db.url, 16).await.unwrap());
    let commands = [
        app.commands.clone(),
        trigger_engine::commands::Commands::new(other.clone(), app.projections.clone()),
    ];
    let mut writers = Vec::new();
    for commands in &commands {
        for _ in 0..16 {
            let commands = commands.clone();
            writers.push(tokio::spawn(async move {
                for _ in 0..20 {
                    let (id, create) = crate::helpers::create_action(Uuid::new_v4());
                    commands
                        .execute(
                            id,
                            crate::helpers::command(create),
                            &crate::helpers::request_id(),
                        )
                        .await
                        .unwrap();
                }
            }));
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let verdict = other.verify_chain(1, None).await.unwrap();
    assert_eq!(verdict.broken, None);
    assert_eq!(verdict.to, 640);
    other.close().await;
    app.shutdown().await;
}
