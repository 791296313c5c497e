//! Config validation with the `jsonschema` crate, and the translation of its first violation into
//! a [`ConfigError`] that names the field at fault.
//!
//! The reasons are written here from the kind of violation and the schema, rather than taken from
//! the crate's messages, because those quote the offending value: a mistyped signing secret must
//! not come back in a 422 body or a log line.

use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::{Location, LocationSegment};
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use super::ConfigError;

/// What the error's `field` starts with: the name the API gives the whole config.
const ROOT: &str = "trigger_config";

/// A `format` of our own, for schedule time zones: the scheduler resolves the name with
/// `chrono-tz`, so validation accepts exactly the names the scheduler can use. A client that does
/// not know the format treats it as an annotation, as draft 2020-12 intends.
pub const IANA_TIME_ZONE: &str = "iana-time-zone";

/// `schema` as a tool that knows only standard JSON Schema can use it (the OpenAPI document, a
/// client generator): the `$schema` of a root dropped, so it can be embedded, and each format of
/// ours replaced by the enum of the values it accepts.
pub(super) fn portable(schema: &Value) -> Value {
    match schema {
        Value::Object(fields) => {
            let mut portable = serde_json::Map::with_capacity(fields.len());
            for (key, value) in fields {
                match (key.as_str(), value.as_str()) {
                    ("$schema", _) => {}
                    ("format", Some(IANA_TIME_ZONE)) => {
                        let names = chrono_tz::TZ_VARIANTS.iter().map(|zone| zone.name());
                        portable.insert("enum".into(), names.collect());
                    }
                    _ => {
                        portable.insert(key.clone(), portable_value(key, value));
                    }
                }
            }
            Value::Object(portable)
        }
        other => other.clone(),
    }
}

/// A keyword's value in a portable schema: a subschema, a list or a map of them, or plain data.
fn portable_value(keyword: &str, value: &Value) -> Value {
    match (keyword, value) {
        ("enum" | "const" | "default" | "examples" | "required" | "dependentRequired", _) => {
            value.clone()
        }
        ("properties" | "patternProperties" | "dependentSchemas" | "$defs", Value::Object(map)) => {
            Value::Object(
                map.iter()
                    .map(|(name, schema)| (name.clone(), portable(schema)))
                    .collect(),
            )
        }
        (_, Value::Array(schemas)) => Value::Array(schemas.iter().map(portable).collect()),
        (_, Value::Object(_)) => portable(value),
        _ => value.clone(),
    }
}

pub(super) fn compile(schema: &Value) -> Result<Validator, ValidationError<'static>> {
    jsonschema::draft202012::options()
        // Draft 2020-12 treats `format` as an annotation unless asked; ours are promises.
        .should_validate_formats(true)
        // A misspelt format would otherwise be ignored silently and check nothing.
        .should_ignore_unknown_formats(false)
        .with_format(IANA_TIME_ZONE, |name| name.parse::<chrono_tz::Tz>().is_ok())
        .build(schema)
}

pub(super) fn validate(
    validator: &Validator,
    schema: &Value,
    config: &Value,
) -> Result<(), ConfigError> {
    match validator.iter_errors(config).next() {
        None => Ok(()),
        Some(error) => Err(describe(schema, &error)),
    }
}

fn describe(schema: &Value, error: &ValidationError<'_>) -> ConfigError {
    let at = field_name(error.instance_path());
    let schema_path = error.schema_path().as_str();
    // The schema object that holds the failing keyword; our schemas use no `$ref`, so the path
    // the validator reports is a pointer into the document itself.
    let holder = schema_path
        .rsplit_once('/')
        .and_then(|(parent, _)| schema.pointer(parent))
        .unwrap_or(&Value::Null);

    let (field, reason) = match error.kind() {
        ValidationErrorKind::Required { property } => {
            let property = property.as_str().unwrap_or_default();
            match dependent_of(holder, schema_path, error.instance(), property) {
                // `dependentRequired: {"timezone": ["cron"]}` fails on the field that was set,
                // not on the one that is missing: the missing one may be wrong to add.
                Some(dependent) => (
                    join(&at, dependent),
                    format!("is only allowed together with {property}"),
                ),
                None => (join(&at, property), "is required".to_owned()),
            }
        }
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => match unexpected.first() {
            Some(name) => (join(&at, name), "is not a known field".to_owned()),
            None => (at, "has an unknown field".to_owned()),
        },
        ValidationErrorKind::Type { .. } => (at, format!("must be {}", types(&holder["type"]))),
        // A regular expression alone rarely tells a person what to type: the schema's own
        // example (or else its description) does.
        ValidationErrorKind::Pattern { pattern } => {
            let hint = match (
                holder["examples"][0].as_str(),
                holder["description"].as_str(),
            ) {
                (Some(example), _) => format!(", e.g. {example}"),
                (None, Some(description)) => format!(": {description}"),
                (None, None) => String::new(),
            };
            (at, format!("must match the pattern {pattern}{hint}"))
        }
        ValidationErrorKind::Format { format } => (at, format!("must be {}", format_noun(format))),
        ValidationErrorKind::Minimum { limit } => (at, format!("must be at least {limit}")),
        ValidationErrorKind::Maximum { limit } => (at, format!("must be at most {limit}")),
        ValidationErrorKind::MinLength { limit: 1 }
        | ValidationErrorKind::MinItems { limit: 1 } => (at, "must not be empty".to_owned()),
        ValidationErrorKind::MinLength { limit } => {
            (at, format!("must be at least {limit} characters long"))
        }
        ValidationErrorKind::MaxLength { limit } => {
            (at, format!("must be at most {limit} characters long"))
        }
        ValidationErrorKind::MinItems { limit } => {
            (at, format!("must have at least {limit} items"))
        }
        ValidationErrorKind::MaxItems { limit } => (at, format!("must have at most {limit} items")),
        ValidationErrorKind::Enum { options } => (at, format!("must be one of {options}")),
        ValidationErrorKind::OneOfNotValid { .. }
        | ValidationErrorKind::OneOfMultipleValid { .. } => (at, one_of(&holder["oneOf"])),
        other => (at, format!("does not satisfy `{}`", other.keyword())),
    };
    ConfigError { field, reason }
}

/// `trigger_config.signing_secret[1]` for the instance path `/signing_secret/1`.
fn field_name(path: &Location) -> String {
    let mut name = ROOT.to_owned();
    for segment in path.segments() {
        match segment {
            LocationSegment::Property(property) => {
                name.push('.');
                name.push_str(&property);
            }
            LocationSegment::Index(index) => name.push_str(&format!("[{index}]")),
        }
    }
    name
}

fn join(at: &str, property: &str) -> String {
    format!("{at}.{property}")
}

/// The field whose presence demanded `property`, when the failing keyword is `dependentRequired`
/// (whose violations point at the keyword, not at the entry that failed).
fn dependent_of<'s>(
    holder: &'s Value,
    schema_path: &str,
    instance: &Value,
    property: &str,
) -> Option<&'s str> {
    if !schema_path.ends_with("/dependentRequired") {
        return None;
    }
    holder["dependentRequired"]
        .as_object()?
        .iter()
        .find(|(present, needs)| {
            instance.get(present.as_str()).is_some()
                && needs
                    .as_array()
                    .is_some_and(|needs| needs.iter().any(|n| n == property))
        })
        .map(|(present, _)| present.as_str())
}

/// "a string", "an integer or a string", from a schema's `type`.
fn types(declared: &Value) -> String {
    let named = |name: &str| match name {
        "array" | "integer" | "object" => format!("an {name}"),
        "null" => "null".to_owned(),
        _ => format!("a {name}"),
    };
    match declared {
        Value::String(name) => named(name),
        Value::Array(names) => names
            .iter()
            .filter_map(Value::as_str)
            .map(named)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "of another type".to_owned(),
    }
}

fn format_noun(format: &str) -> String {
    match format {
        "date-time" => "an RFC 3339 date-time such as 2025-03-02T10:30:00Z".to_owned(),
        "uri" => "an absolute URI".to_owned(),
        "json-pointer" => "a JSON pointer such as /data (or empty for the whole body)".to_owned(),
        IANA_TIME_ZONE => "an IANA time zone name such as Europe/Paris".to_owned(),
        other => format!("a valid {other}"),
    }
}

/// A `oneOf` whose branches each require one field reads as a choice between fields, which is
/// how the schedule trigger offers `cron`, `interval_seconds` and `at`.
fn one_of(branches: &Value) -> String {
    let choices: Option<Vec<&str>> = branches.as_array().and_then(|branches| {
        branches
            .iter()
            .map(
                |branch| match branch["required"].as_array().map(Vec::as_slice) {
                    Some([Value::String(name)]) => Some(name.as_str()),
                    _ => None,
                },
            )
            .collect()
    });
    match choices {
        Some(names) if !names.is_empty() => format!("must set exactly one of {}", names.join(", ")),
        _ => "must match exactly one of the allowed forms".to_owned(),
    }
}
