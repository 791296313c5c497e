//! The operator and auditor commands, run as the real binary against the test's store.

use std::process::{Output, Stdio};

use tokio::io::{AsyncBufReadExt, BufReader};

use aggregates::TriggerAction;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{advance, spawn_app, TestDb};

crate::on_every_store!(
    it_should_print_a_triggers_history_and_its_state_at_any_point,
    it_should_print_the_global_log_after_a_position,
    it_should_report_and_rebuild_projections_from_the_command_line,
    it_should_follow_the_log_as_events_are_appended,
);

pub(crate) async fn engine(db: &TestDb, args: &[&str]) -> Output {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_trigger-engine"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("running trigger-engine");
    output
}

pub(crate) fn lines(output: &Output) -> Vec<Value> {
    assert!(
        output.status.success(),
        "trigger-engine failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object a line"))
        .collect()
}

async fn it_should_print_a_triggers_history_and_its_state_at_any_point(db: TestDb) {
    let app = spawn_app(&db).await;
    let id = app.create_trigger(Uuid::new_v4()).await;
    app.run(id, TriggerAction::EnableTrigger).await;
    app.run(id, advance(None, 7)).await;
    app.shutdown().await;
    let id_text = id.to_string();

    let full = lines(&engine(&db, &["history", &id_text]).await);
    assert_eq!(full.len(), 4, "three events, then the state");
    assert_eq!(full[0]["event_type"], "TriggerCreated");
    assert_eq!(full[1]["event_type"], "TriggerEnabled");
    assert!(full[0]["actor"].as_str().unwrap().starts_with("user:"));
    assert!(full[0]["request_id"].as_str().unwrap().starts_with("req-"));
    assert_eq!(full[3]["state"]["status"], "ENABLED");
    assert_eq!(
        full[3]["state"]["cursor_data"]["last_processed_event_id"],
        "7"
    );

    let first_position = full[0]["position"].as_i64().unwrap().to_string();
    let at_first = lines(
        &engine(
            &db,
            &["history", &id_text, "--at-position", &first_position],
        )
        .await,
    );
    assert_eq!(at_first.len(), 2);
    assert_eq!(at_first[1]["state"]["status"], "DISABLED");
    assert_eq!(at_first[1]["state"]["cursor_data"], Value::Null);

    let first_time = full[0]["recorded_at"].as_str().unwrap();
    let recorded_by_then = full[..3]
        .iter()
        .filter(|event| event["recorded_at"].as_str().unwrap() <= first_time)
        .count();
    let as_of = lines(&engine(&db, &["history", &id_text, "--as-of", first_time]).await);
    assert_eq!(as_of.len(), recorded_by_then + 1);

    let unknown = engine(&db, &["history", &Uuid::new_v4().to_string()]).await;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no trigger"));
}

async fn it_should_print_the_global_log_after_a_position(db: TestDb) {
    let app = spawn_app(&db).await;
    let id = app.create_trigger(Uuid::new_v4()).await;
    app.run(id, TriggerAction::EnableTrigger).await;
    app.create_trigger(Uuid::new_v4()).await;
    app.shutdown().await;

    let all = lines(&engine(&db, &["events"]).await);
    let positions: Vec<_> = all
        .iter()
        .map(|event| event["position"].as_i64().unwrap())
        .collect();
    assert_eq!(positions, [1, 2, 3]);
    let after_one = lines(&engine(&db, &["events", "--after", "1"]).await);
    assert_eq!(after_one.len(), 2);
    assert_eq!(after_one[0]["event_type"], "TriggerEnabled");
    assert_eq!(after_one[0]["aggregate_id"], id.to_string());
}

async fn it_should_report_and_rebuild_projections_from_the_command_line(db: TestDb) {
    let app = spawn_app(&db).await;
    app.create_trigger(Uuid::new_v4()).await;
    app.shutdown().await;

    let status = lines(&engine(&db, &["projections", "status"]).await);
    let names: Vec<&Value> = status.iter().map(|line| &line["projection"]).collect();
    assert_eq!(
        names,
        [&json!("replays"), &json!("runs"), &json!("triggers")]
    );
    for line in &status {
        assert_eq!(line["lag"], 0);
        assert_eq!(line["checkpoint"], 1);
    }

    let rebuilt = lines(&engine(&db, &["projections", "rebuild", "triggers"]).await);
    assert_eq!(rebuilt.len(), 1);
    assert_eq!(rebuilt[0]["position"], 1);
    let every = lines(&engine(&db, &["projections", "rebuild"]).await);
    let names: Vec<&Value> = every.iter().map(|line| &line["projection"]).collect();
    assert_eq!(
        names,
        [&json!("triggers"), &json!("runs"), &json!("replays")]
    );
    let unknown = engine(&db, &["projections", "rebuild", "nonesuch"]).await;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown projection"));
}

async fn it_should_follow_the_log_as_events_are_appended(db: TestDb) {
    let app = spawn_app(&db).await;
    let first = app.create_trigger(Uuid::new_v4()).await;
    let mut follower = tokio::process::Command::new(env!("CARGO_BIN_EXE_trigger-engine"))
        .args(["events", "--follow"])
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting trigger-engine events --follow");
    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    let line = next_json_line(&mut lines).await;
    assert_eq!(line["aggregate_id"], first.to_string());

    let second = app.create_trigger(Uuid::new_v4()).await;
    let line = next_json_line(&mut lines).await;
    assert_eq!(
        (line["position"].as_i64(), line["aggregate_id"].as_str()),
        (Some(2), Some(second.to_string().as_str()))
    );
    follower.kill().await.unwrap();
    app.shutdown().await;
}

async fn next_json_line(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) -> Value {
    let line = tokio::time::timeout(std::time::Duration::from_secs(10), lines.next_line());
    let line = line
        .await
        .expect("a line in time")
        .unwrap()
        .expect("still running");
    serde_json::from_str(&line).unwrap()
}
