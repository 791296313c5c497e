//! Removing `writeOnly` fields from a config before anyone reads it.
//!
//! The schema is the one place that says which fields are secret, so redaction follows it rather
//! than a list of names: a provider that adds a secret field only marks it `writeOnly`.
//! A field counts as secret when any schema that applies to it (including `allOf`/`anyOf`/`oneOf`
//! branches) marks it so: when in doubt, hide.

use serde_json::{Map, Value};

pub(super) fn redact(schema: &Value, config: &Value) -> Value {
    redact_under(&[schema], config)
}

/// `schemas`: every schema that applies at this point of the config.
fn redact_under(schemas: &[&Value], value: &Value) -> Value {
    let schemas: Vec<&Value> = schemas.iter().flat_map(|s| applicable(s)).collect();
    match value {
        Value::Object(fields) => {
            let mut kept = Map::new();
            for (name, field) in fields {
                let field_schemas: Vec<&Value> =
                    schemas.iter().filter_map(|s| property(s, name)).collect();
                let secret = field_schemas
                    .iter()
                    .flat_map(|s| applicable(s))
                    .any(|s| s["writeOnly"] == Value::Bool(true));
                if !secret {
                    kept.insert(name.clone(), redact_under(&field_schemas, field));
                }
            }
            Value::Object(kept)
        }
        Value::Array(items) => {
            let item_schemas: Vec<&Value> = schemas.iter().filter_map(|s| s.get("items")).collect();
            Value::Array(
                items
                    .iter()
                    .map(|item| redact_under(&item_schemas, item))
                    .collect(),
            )
        }
        scalar => scalar.clone(),
    }
}

/// A schema and, recursively, the branches of its combinators: everything that constrains the
/// same value.
fn applicable(schema: &Value) -> Vec<&Value> {
    let mut found = vec![schema];
    for combinator in ["allOf", "anyOf", "oneOf"] {
        if let Some(branches) = schema.get(combinator).and_then(Value::as_array) {
            found.extend(branches.iter().flat_map(applicable));
        }
    }
    found
}

/// The schema a property's value is held to: its entry in `properties`, or else an
/// `additionalProperties` schema.
fn property<'s>(schema: &'s Value, name: &str) -> Option<&'s Value> {
    schema
        .get("properties")
        .and_then(|properties| properties.get(name))
        .or_else(|| schema.get("additionalProperties").filter(|s| s.is_object()))
}
