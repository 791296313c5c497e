//! A polling trigger's cursor (`cursor_data`) and the decision of which polled items are new.
//!
//! Shape: the seed's `last_processed_event_id` and `last_processed_event_timestamp` (the
//! watermark: the newest item seen, never the time of the poll), plus `seen_ids` (the ids seen
//! in the overlap window below the watermark, so items sharing a timestamp, or arriving a little
//! late, are told apart by id), `enabled_at` (which enabling the cursor belongs to) and
//! `poll_status` (consecutive failures and the last error, shown by `GET /triggers/{id}`).
//!
//! **The seed's cursors.** A `cursor_data` the seed wrote holds only its two keys, and it may
//! write the timestamp without a zone (`"2025-03-02 10:30:09"`, Python's naive datetime) or the id
//! as a number: both are read, the time as UTC, fractional seconds kept. Such a cursor has no
//! `seen_ids`, so nothing tells which items just below its watermark the seed had processed: it
//! takes everything up to its timestamp as processed, save other items sharing that very
//! timestamp (ties are not dropped), instead of reopening the [`OVERLAP`] window. What this
//! poller writes keeps the two keys the seed's meaning: the id and time of the newest item seen
//! (the time as RFC 3339 in UTC). A seed cursor with an id and no time marks a place in the
//! source's list: the items listed before it are new ([`Cursor::new_among`]).

use chrono::{DateTime, Duration, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::Item;

/// Items this far below the watermark are still compared by id: a source that publishes an item
/// with a slightly older timestamp after a newer one (clock skew, eventual consistency) does not
/// lose it. Five minutes covers the lag of the usual feed caches and list endpoints.
pub const OVERLAP: Duration = Duration::minutes(5);

/// The most ids `seen_ids` keeps (newest first), so a cursor stays a small event. An id pushed
/// out that the source still lists is fired again, which its run id makes a no-op.
pub const MAX_SEEN: usize = 500;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// The id of the newest item seen.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "id_or_number"
    )]
    pub last_processed_event_id: Option<String>,
    /// The time of the newest item seen: the watermark.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "time_with_or_without_zone"
    )]
    pub last_processed_event_timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    pub seen_ids: Vec<String>,
    /// The `enabled_at` of the trigger when this cursor was started: a cursor of an earlier
    /// enabling is history, and the first poll after enabling starts afresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub poll_status: PollStatus,
    /// Fields someone else wrote (a cursor imported from the seed), kept as they are.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PollStatus {
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
}

impl Cursor {
    /// The cursor in `cursor_data`; `None` when there is none, or none this poller can read.
    pub fn read(value: Option<&Value>) -> Option<Self> {
        serde_json::from_value(value?.clone()).ok()
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a cursor serialises")
    }

    /// Whether `item` is one this cursor has not seen.
    pub fn is_new(&self, item: &Item) -> bool {
        if self.seen_ids.contains(&item.id)
            || self.last_processed_event_id.as_deref() == Some(item.id.as_str())
        {
            return false;
        }
        match (self.last_processed_event_timestamp, item.timestamp) {
            // The seed's cursor: no ids to tell the window apart by.
            (Some(watermark), Some(at)) if self.seen_ids.is_empty() => at >= watermark,
            (Some(watermark), Some(at)) => at > watermark - OVERLAP,
            _ => true,
        }
    }

    /// The items of `observed` (as the source lists them, newest first) this cursor has not
    /// seen. A seed cursor that holds only an id (no time, no `seen_ids`) can only say where the
    /// source stood: the items listed before that id are new, and if the source no longer lists
    /// it, none is known to be (the cursor then moves to what the source lists now).
    pub fn new_among(&self, observed: &[Item]) -> Vec<Item> {
        let only_an_id = self.last_processed_event_timestamp.is_none() && self.seen_ids.is_empty();
        match &self.last_processed_event_id {
            Some(last) if only_an_id => observed
                .iter()
                .position(|item| &item.id == last)
                .map_or_else(Vec::new, |at| observed[..at].to_vec()),
            _ => observed
                .iter()
                .filter(|item| self.is_new(item))
                .cloned()
                .collect(),
        }
    }

    /// The cursor after `observed` (every item the poll read): the watermark moves to the newest
    /// item, and the ids in the overlap window below it are remembered.
    pub fn after(&self, observed: &[Item]) -> Self {
        let mut next = self.clone();
        // Of items sharing the newest time, the one listed first: sources list newest first.
        let newest = observed
            .iter()
            .rev()
            .filter(|item| item.timestamp.is_some())
            .max_by_key(|item| item.timestamp)
            .or(observed.first());
        let watermark = observed
            .iter()
            .filter_map(|item| item.timestamp)
            .chain(self.last_processed_event_timestamp)
            .max();
        if let Some(newest) = newest {
            if newest.timestamp.is_none() || newest.timestamp >= self.last_processed_event_timestamp
            {
                next.last_processed_event_id = Some(newest.id.clone());
            }
        }
        next.last_processed_event_timestamp = watermark;
        let in_window = |item: &&Item| match (item.timestamp, watermark) {
            (Some(at), Some(watermark)) => at >= watermark - OVERLAP,
            _ => true,
        };
        let mut seen: Vec<String> = Vec::new();
        for id in observed
            .iter()
            .filter(in_window)
            .map(|item| &item.id)
            .chain(&self.seen_ids)
        {
            if seen.len() == MAX_SEEN {
                break;
            }
            if !seen.contains(id) {
                seen.push(id.clone());
            }
        }
        next.seen_ids = seen;
        next
    }
}

/// The seed's `last_processed_event_id`: text, or a number written as one.
fn id_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id),
        Some(Value::Number(id)) => Some(id.to_string()),
        Some(other) => {
            return Err(D::Error::custom(format!(
                "`last_processed_event_id` is neither text nor a number: {other}"
            )))
        }
    })
}

/// The watermark as this poller writes it (RFC 3339) or as the seed may have (without a zone,
/// read as UTC). A time that cannot be read fails the whole cursor, which starts afresh: a cursor
/// with an id but no time would take all but one of the source's items for new.
fn time_with_or_without_zone<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        None => Ok(None),
        // What this poller wrote first: chrono's own form, which for a year past 9999 (an item's
        // time may be, if its source says so) is `+47656-12-13T02:00:00Z`, not RFC 3339.
        Some(text) => text
            .parse::<DateTime<Utc>>()
            .ok()
            .or_else(|| super::feed::parse_date(&text))
            .map(Some)
            .ok_or_else(|| {
                D::Error::custom(format!(
                    "`last_processed_event_timestamp` `{text}` is not a date and time"
                ))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(id: &str, at: Option<&str>) -> Item {
        Item {
            id: id.into(),
            timestamp: at.map(|at| at.parse().unwrap()),
            payload: Value::Null,
        }
    }

    #[test]
    fn it_should_take_a_seed_cursor_holding_only_an_id_as_a_place_in_the_list() {
        let cursor = Cursor::read(Some(&json!({"last_processed_event_id": "1234567890"}))).unwrap();
        let listed = [
            item("new-2", None),
            item("new-1", None),
            item("1234567890", None),
            item("old", None),
        ];
        let ids = |items: Vec<Item>| items.into_iter().map(|item| item.id).collect::<Vec<_>>();
        assert_eq!(ids(cursor.new_among(&listed)), ["new-2", "new-1"]);
        assert!(
            cursor.new_among(&listed[3..]).is_empty(),
            "a source that no longer lists the id replays nothing"
        );
        let next = cursor.after(&listed);
        assert_eq!(next.last_processed_event_id.as_deref(), Some("new-2"));
        assert!(next.new_among(&listed).is_empty(), "the ids are remembered");
    }

    #[test]
    fn it_should_move_the_watermark_to_the_newest_item_and_keep_ids_sharing_its_time() {
        let start = Cursor::default().after(&[
            item("b", Some("2025-01-01T10:00:00Z")),
            item("a", Some("2025-01-01T09:00:00Z")),
        ]);
        assert_eq!(start.last_processed_event_id.as_deref(), Some("b"));
        assert_eq!(start.seen_ids, vec!["b"]);
        // A second item at the watermark's very time is new; the one seen is not.
        let polled = [
            item("c", Some("2025-01-01T10:00:00Z")),
            item("b", Some("2025-01-01T10:00:00Z")),
            item("a", Some("2025-01-01T09:00:00Z")),
        ];
        let new: Vec<_> = polled.iter().filter(|i| start.is_new(i)).collect();
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].id, "c");
        let next = start.after(&polled);
        assert_eq!(next.seen_ids, vec!["c", "b"]);
        assert!(polled.iter().all(|i| !next.is_new(i)));
    }

    #[test]
    fn it_should_tell_items_without_time_apart_by_id() {
        let start = Cursor::default().after(&[item("x", None)]);
        assert!(!start.is_new(&item("x", None)));
        assert!(start.is_new(&item("y", None)));
    }

    #[test]
    fn it_should_keep_fields_it_does_not_know_and_read_the_seeds_cursor() {
        let seed = json!({"last_processed_event_id": "42", "last_processed_event_timestamp": "2025-01-01T00:00:00Z", "vendor": 1});
        let cursor = Cursor::read(Some(&seed)).unwrap();
        assert_eq!(cursor.to_value()["vendor"], 1);
        assert!(!cursor.is_new(&item("41", Some("2024-12-31T00:00:00Z"))));
        assert!(cursor.is_new(&item("43", Some("2025-01-01T00:00:01Z"))));
    }

    #[test]
    fn it_should_read_the_seeds_timestamp_without_a_zone_as_utc() {
        for written in [
            "2024-01-01T10:00:00",
            "2024-01-01 10:00:00",
            "2024-01-01T10:00:00Z",
            "2024-01-01 11:00:00+01:00",
        ] {
            let seed =
                json!({"last_processed_event_id": "42", "last_processed_event_timestamp": written});
            let cursor = Cursor::read(Some(&seed)).unwrap_or_else(|| panic!("{written} is read"));
            assert_eq!(
                cursor.last_processed_event_timestamp,
                Some("2024-01-01T10:00:00Z".parse().unwrap()),
                "{written}"
            );
            assert_eq!(cursor.last_processed_event_id.as_deref(), Some("42"));
        }
    }

    #[test]
    fn it_should_keep_the_fraction_of_a_second_of_the_seeds_timestamp() {
        let seed = json!({"last_processed_event_timestamp": "2024-01-01 10:00:00.250000"});
        let cursor = Cursor::read(Some(&seed)).unwrap();
        let watermark: DateTime<Utc> = "2024-01-01T10:00:00.25Z".parse().unwrap();
        assert_eq!(cursor.last_processed_event_timestamp, Some(watermark));
        assert!(!cursor.is_new(&item("x", Some("2024-01-01T10:00:00.1Z"))));
        assert!(cursor.is_new(&item("y", Some("2024-01-01T10:00:00.3Z"))));
        assert_eq!(
            cursor.to_value()["last_processed_event_timestamp"],
            "2024-01-01T10:00:00.250Z",
            "written back in RFC 3339, in UTC"
        );
    }

    #[test]
    fn it_should_read_a_numeric_id_and_refuse_a_time_it_cannot_read() {
        let seed = json!({"last_processed_event_id": 1_234_567_890});
        let cursor = Cursor::read(Some(&seed)).unwrap();
        assert_eq!(
            cursor.last_processed_event_id.as_deref(),
            Some("1234567890")
        );
        assert!(!cursor.is_new(&item("1234567890", None)));
        // An id without its time would make nearly every item new: start afresh instead.
        let unreadable =
            json!({"last_processed_event_id": "42", "last_processed_event_timestamp": "yesterday"});
        assert_eq!(Cursor::read(Some(&unreadable)), None);
    }

    #[test]
    fn it_should_take_the_seeds_cursor_at_its_word_below_its_watermark_but_keep_ties() {
        let seed = json!({"last_processed_event_id": "42", "last_processed_event_timestamp": "2024-01-01 10:00:00"});
        let cursor = Cursor::read(Some(&seed)).unwrap();
        assert!(
            !cursor.is_new(&item("41", Some("2024-01-01T09:59:00Z"))),
            "a minute below the seed's watermark was processed by the seed"
        );
        assert!(!cursor.is_new(&item("42", Some("2024-01-01T10:00:00Z"))));
        assert!(
            cursor.is_new(&item("42b", Some("2024-01-01T10:00:00Z"))),
            "an item sharing the watermark's time is not dropped"
        );
        assert!(cursor.is_new(&item("43", Some("2024-01-01T10:00:01Z"))));
        // Once this poller has written the cursor, the window below the watermark is back.
        let next = cursor.after(&[
            item("43", Some("2024-01-01T10:00:01Z")),
            item("42", Some("2024-01-01T10:00:00Z")),
        ]);
        assert!(next.is_new(&item("late", Some("2024-01-01T09:59:00Z"))));
    }

    #[test]
    fn it_should_write_the_id_and_time_of_the_same_newest_item() {
        let next = Cursor::default().after(&[
            item("e", Some("2025-01-01T12:00:00Z")),
            item("d", Some("2025-01-01T12:00:00Z")),
            item("c", Some("2025-01-01T11:00:00Z")),
        ]);
        let written = next.to_value();
        assert_eq!(
            written["last_processed_event_id"], "e",
            "of a tie, the one the source lists first"
        );
        assert_eq!(
            written["last_processed_event_timestamp"],
            "2025-01-01T12:00:00Z"
        );
        assert_eq!(Cursor::read(Some(&written)), Some(next));
    }

    /// Found by fuzzing (fuzz/fuzz_targets/json_page.rs): a record timed in milliseconds far
    /// ahead put the watermark past year 9999, which chrono writes as `+47656-...`, and the
    /// cursor did not read back, so every poll started afresh.
    #[test]
    fn it_should_read_back_a_cursor_whose_watermark_is_past_year_9999() {
        let far = DateTime::from_timestamp_millis(1_441_751_000_000_000).unwrap();
        let cursor = Cursor::default().after(&[Item {
            id: "b".into(),
            timestamp: Some(far),
            payload: Value::Null,
        }]);
        let written = cursor.to_value();
        assert!(written["last_processed_event_timestamp"]
            .as_str()
            .unwrap()
            .starts_with('+'));
        assert_eq!(Cursor::read(Some(&written)), Some(cursor));
    }
}
