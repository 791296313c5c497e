//! A stored cursor (src/poller/cursor.rs, `Cursor::read`): `cursor_data` as this poller or the
//! seed wrote it, or as an import left it. Whatever reads must write back to itself, and must
//! judge items at, around and without its watermark without panicking.
#![no_main]

use chrono::{DateTime, Duration};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use trigger_engine::poller::{Cursor, Item};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Some(cursor) = Cursor::read(Some(&value)) else {
        return;
    };
    let stored = cursor.to_value();
    assert_eq!(
        Cursor::read(Some(&stored)).as_ref(),
        Some(&cursor),
        "{value} was read, but what it wrote, {stored}, does not read back"
    );

    let item = |id: &str, timestamp| Item {
        id: id.to_owned(),
        timestamp,
        payload: Value::Null,
    };
    let fixed = DateTime::from_timestamp(1_767_225_600, 0);
    let watermark = cursor.last_processed_event_timestamp;
    let mut observed = vec![
        item("fixed", fixed),
        item("timeless", None),
        item("at-the-watermark", watermark),
    ];
    if let Some(id) = &cursor.last_processed_event_id {
        observed.push(item(id, fixed));
    }
    if let Some(below) = watermark.and_then(|at| at.checked_sub_signed(Duration::minutes(1))) {
        observed.push(item("just-below", Some(below)));
    }
    let _ = cursor.new_among(&observed);
    let next = cursor.after(&observed);
    let _ = next.new_among(&observed);
    assert_eq!(Cursor::read(Some(&next.to_value())).as_ref(), Some(&next));
});
