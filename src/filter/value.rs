//! A payload, as JSON, into the values CEL evaluates over.

use std::sync::Arc;

use cel::objects::{Key, Map};
use cel::Value;

/// `json` as CEL sees it. Integers stay integers (`int`, or `uint` above `i64::MAX`) so that
/// `payload.amount > 1000` and `payload.count % 2 == 0` read as written; other numbers are
/// `double`. Recursive, as deep as the payload: payloads come from `serde_json`'s parser, which
/// stops at 128 levels, and are dropped and serialised just as recursively elsewhere.
pub fn to_cel(json: &serde_json::Value) -> Value {
    use serde_json::Value as Json;
    match json {
        Json::Null => Value::Null,
        Json::Bool(flag) => Value::Bool(*flag),
        Json::Number(number) => match (number.as_i64(), number.as_u64()) {
            (Some(signed), _) => Value::Int(signed),
            (None, Some(unsigned)) => Value::UInt(unsigned),
            (None, None) => Value::Float(number.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(text) => Value::String(Arc::new(text.clone())),
        Json::Array(items) => Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Json::Object(fields) => Value::Map(Map {
            map: Arc::new(
                fields
                    .iter()
                    .map(|(name, value)| (Key::String(Arc::new(name.clone())), to_cel(value)))
                    .collect(),
            ),
        }),
    }
}
