//! JSON endpoints, read into items: the array at `items_path`, told apart by `id_field`, ordered
//! by the optional `timestamp_field`; and the next page, from an RFC 8288 `Link: <...>;
//! rel="next"` header.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::Item;

/// Which fields of the records matter, from the trigger's config.
pub struct Fields<'a> {
    pub items_path: &'a str,
    pub id_field: &'a str,
    pub timestamp_field: Option<&'a str>,
}

/// Reads one page's records. A field name starting with `/` is a JSON pointer into the record
/// (`/meta/id`); any other is a top-level key.
pub fn parse(url: &str, body: &Value, fields: &Fields) -> Result<Vec<Item>, String> {
    let records = body
        .pointer(fields.items_path)
        .ok_or_else(|| format!("no `{}` in the response", fields.items_path))?
        .as_array()
        .ok_or_else(|| format!("`{}` in the response is not an array", fields.items_path))?;
    records
        .iter()
        .map(|record| {
            let id = match field(record, fields.id_field) {
                Some(Value::String(id)) if !id.is_empty() => id.clone(),
                Some(Value::Number(id)) => id.to_string(),
                _ => {
                    return Err(format!(
                        "a record has no `{}` to identify it",
                        fields.id_field
                    ))
                }
            };
            let timestamp = fields
                .timestamp_field
                .and_then(|name| field(record, name))
                .and_then(timestamp);
            Ok(Item::new(
                id,
                timestamp,
                json!({"url": url, "record": record}),
            ))
        })
        .collect()
}

fn field<'a>(record: &'a Value, name: &str) -> Option<&'a Value> {
    if name.starts_with('/') {
        record.pointer(name)
    } else {
        record.get(name)
    }
}

/// Text as [`super::feed::parse_date`] reads it (RFC 3339, RFC 2822, or a date and time without
/// a zone, as UTC), or a number of seconds since the epoch (of milliseconds, when it is too large
/// to be seconds).
fn timestamp(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::String(text) => super::feed::parse_date(text),
        Value::Number(number) => {
            let number = number.as_i64()?;
            if number > 100_000_000_000 {
                DateTime::from_timestamp_millis(number)
            } else {
                DateTime::from_timestamp(number, 0)
            }
        }
        _ => None,
    }
}

/// The `rel="next"` target of a `Link` header (RFC 8288), if any.
pub fn next_link(header: &str) -> Option<&str> {
    header.split(',').find_map(|link| {
        let (target, params) = link.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .filter_map(|param| param.trim().split_once('='))
            .any(|(name, value)| {
                name.trim().eq_ignore_ascii_case("rel")
                    && value
                        .trim()
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|rel| rel.eq_ignore_ascii_case("next"))
            })
            .then_some(target)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_should_read_records_at_a_pointer_with_their_id_and_time() {
        let body = json!({"data": [
            {"id": 7, "at": "2025-03-02T10:00:00Z"},
            {"id": "b", "at": 1_740_909_600},
        ]});
        let fields = Fields {
            items_path: "/data",
            id_field: "id",
            timestamp_field: Some("at"),
        };
        let items = parse("https://api.example.com", &body, &fields).unwrap();
        assert_eq!(items[0].id, "7");
        assert_eq!(
            items[0].timestamp,
            Some("2025-03-02T10:00:00Z".parse().unwrap())
        );
        assert_eq!(items[1].timestamp, items[0].timestamp);
        assert_eq!(items[0].payload["record"]["id"], 7);
    }

    #[test]
    fn it_should_refuse_records_without_an_id() {
        let fields = Fields {
            items_path: "",
            id_field: "id",
            timestamp_field: None,
        };
        assert!(parse("u", &json!([{"name": "x"}]), &fields).is_err());
        assert!(parse("u", &json!({"not": "an array"}), &fields).is_err());
    }

    #[test]
    fn it_should_find_the_next_page_in_a_link_header() {
        let header = r#"<https://api.example.com/items?page=1>; rel="prev", <https://api.example.com/items?page=3>; rel="next""#;
        assert_eq!(
            next_link(header),
            Some("https://api.example.com/items?page=3")
        );
        assert_eq!(next_link("</x>; rel=last"), None);
    }
}
