//! JSON pages (src/poller/json.rs, `json::parse` and `json::next_link`), as an endpoint answers
//! them.
//!
//! Input: UTF-8 lines. Line 0 is the `Link` header, 1 the trigger's `items_path`, 2 its
//! `id_field`, 3 its `timestamp_field` (empty: none); the rest is the body, read as the poller
//! reads it. The items go through the cursor.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trigger_engine::poller::json::{self, Fields};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(5, '\n');
    let (Some(link), Some(items_path), Some(id_field), Some(timestamp_field), Some(body)) = (
        lines.next(),
        lines.next(),
        lines.next(),
        lines.next(),
        lines.next(),
    ) else {
        return;
    };
    if let Some(next) = json::next_link(link) {
        assert!(link.contains(next));
    }
    let Ok(body) = serde_json::from_str::<serde_json::Value>(body) else {
        return;
    };
    let fields = Fields {
        items_path,
        id_field,
        timestamp_field: (!timestamp_field.is_empty()).then_some(timestamp_field),
    };
    if let Ok(items) = json::parse("https://api.example.com/items", &body, &fields) {
        trigger_engine_fuzz::poll_twice(&items);
    }
});
