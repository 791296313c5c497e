//! `trigger-engine history`: who changed a trigger, when, through which request, and what it
//! looked like at any moment.

use std::io::Write;

use aggregates::Trigger;
use anyhow::{bail, Context};
use cqrs_es::Aggregate;
use serde_json::json;

use super::print_line;
use crate::config::HistoryArgs;
use crate::store::{LoggedEvent, Store};

pub async fn run(store: &Store, args: &HistoryArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let id = args.trigger_id.to_string();
    let events = store
        .stream_history(Trigger::TYPE, &id)
        .await
        .context("reading the trigger's stream")?;
    if events.is_empty() {
        bail!("no trigger {id} in this store");
    }
    let included = |event: &&LoggedEvent| match (args.as_of, args.at_position) {
        (Some(as_of), _) => event.recorded_at <= as_of,
        (None, Some(position)) => event.position <= position,
        (None, None) => true,
    };
    let mut trigger = Trigger::default();
    let mut last_position = None;
    for event in events.iter().take_while(included) {
        print_line(out, &audit_line(event))?;
        if let Some(decoded) = event.trigger_event()? {
            trigger.apply(decoded);
        }
        last_position = Some(event.position);
    }
    print_line(
        out,
        &json!({
            "state": trigger.record(),
            "position": last_position,
            "as_of": args.as_of,
            "at_position": args.at_position,
        }),
    )
}

/// One event as an auditor reads it.
pub fn audit_line(event: &LoggedEvent) -> serde_json::Value {
    json!({
        "position": event.position,
        "recorded_at": event.recorded_at,
        "event_id": event.event_id,
        "aggregate_type": event.aggregate_type,
        "aggregate_id": event.aggregate_id,
        "sequence": event.sequence,
        "event_type": event.event_type,
        "event_version": event.event_version,
        "actor": event.meta("actor"),
        "org_id": event.meta("org_id"),
        "request_id": event.meta("request_id"),
        "payload": event.payload,
    })
}
