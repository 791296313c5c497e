//! U+0000 (NUL) in the data the engine records.
//!
//! JSON may carry it (`"\u0000"`), but PostgreSQL's `text` and `jsonb` cannot hold it: an event
//! with one would fail its append, and with it every other append of the same batch. So the
//! engine decides at its edges, the same way on both stores:
//! - what a client asks for (a trigger's config, a project id, a connection's name) is refused
//!   with a 422 naming the field: the client can send it again without;
//! - what a provider sent (a webhook delivery, a polled item) is kept with each U+0000 replaced
//!   by U+FFFD, as a lossy UTF-8 decoder would: refusing it would lose the event;
//! - the appender refuses an event that still holds one, so that no other write fails with it.

use serde_json::Value;

/// The character stored in place of each U+0000 that a provider sent.
pub const REPLACEMENT: char = char::REPLACEMENT_CHARACTER;

/// Where in `value` the first U+0000 is, in a string or in an object key: `items_path`,
/// `headers.x-a`, `tags[2]`, or the empty string for a top-level string. `None` when there is none.
pub fn find(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => text.contains('\0').then(String::new),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| find(item).map(|inner| join(&format!("[{index}]"), &inner))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                return Some(key.replace('\0', "\\u0000"));
            }
            find(item).map(|inner| join(key, &inner))
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

/// `outer` then `inner`, as a field path: `a.b`, `a[0]`, `[0].b`.
fn join(outer: &str, inner: &str) -> String {
    match inner.chars().next() {
        None => outer.to_owned(),
        Some('[') => format!("{outer}{inner}"),
        Some(_) => format!("{outer}.{inner}"),
    }
}

/// Replaces each U+0000 in `value`'s strings and keys by [`REPLACEMENT`].
pub fn replace(value: &mut Value) {
    match value {
        Value::String(text) => {
            if text.contains('\0') {
                *text = text.replace('\0', "\u{FFFD}");
            }
        }
        Value::Array(items) => items.iter_mut().for_each(replace),
        Value::Object(fields) => {
            if fields.keys().any(|key| key.contains('\0')) {
                let taken = std::mem::take(fields);
                for (key, mut item) in taken {
                    replace(&mut item);
                    fields.insert(key.replace('\0', "\u{FFFD}"), item);
                }
            } else {
                fields.values_mut().for_each(replace);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Whether a JSON text may hold a U+0000: only as the escape `\u0000`, since JSON allows no raw
/// control character in a string. A cheap scan that lets the common case skip [`find`]; it may
/// answer `true` for an escaped backslash followed by `u0000`, never `false` for a real one.
pub fn may_hold(json: &[u8]) -> bool {
    json.windows(6).any(|window| window == b"\\u0000")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn it_should_name_where_the_first_nul_is() {
        assert_eq!(find(&json!({"a": "x", "b": 1})), None);
        assert_eq!(find(&json!("a\u{0}")), Some(String::new()));
        assert_eq!(find(&json!({"a": {"b": "x\u{0}"}})), Some("a.b".into()));
        assert_eq!(find(&json!({"a": ["ok", "x\u{0}"]})), Some("a[1]".into()));
        assert_eq!(find(&json!([{"b": "\u{0}"}])), Some("[0].b".into()));
        assert_eq!(find(&json!({"k\u{0}": 1})), Some("k\\u0000".into()));
    }

    #[test]
    fn it_should_replace_every_nul_in_strings_and_keys() {
        let mut value = json!({"a\u{0}": ["x\u{0}y", {"b": "\u{0}"}], "c": 1});
        replace(&mut value);
        assert_eq!(
            value,
            json!({"a\u{FFFD}": ["x\u{FFFD}y", {"b": "\u{FFFD}"}], "c": 1})
        );
        assert_eq!(find(&value), None);
    }

    #[test]
    fn it_should_tell_a_text_that_may_hold_one() {
        assert!(may_hold(br#"{"a":"\u0000"}"#));
        assert!(!may_hold(br#"{"a":"\u0001"}"#));
        assert!(!may_hold(b"{}"));
    }
}
