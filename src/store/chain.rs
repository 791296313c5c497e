//! The tamper-evident chain over the global log: every event carries
//! `hash = SHA-256(previous hash || canonical bytes of the event)`, the first event chaining onto
//! 32 zero bytes ([`GENESIS`]).
//!
//! The canonical bytes are the RFC 8785 (JSON Canonicalization Scheme) form of one object:
//!
//! ```json
//! {"event_id":"…","metadata":{…},"payload":{…},"position":1,"recorded_at":"2026-12-02T13:47:57.123456Z",
//!  "sequence":1,"stream_id":"…","stream_type":"trigger","type":"TriggerCreated","version":"1"}
//! ```
//!
//! RFC 8785 because an auditor can reproduce it with a short script over rows exported from the
//! database, without the engine (docs/operations.md has one): keys sorted by UTF-16 code units,
//! no whitespace, strings with JSON's minimal escapes, numbers as ECMAScript prints a double.
//! `recorded_at` is UTC with exactly six fractional digits (microseconds, what PostgreSQL keeps).
//!
//! The appender ([`super::appender`]) computes the hashes in commit order as it writes; this
//! module recomputes them: once to back-fill the log the chain was added to, and whenever the log
//! is verified.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, SqlitePool};

use super::log::{read_log_sql, LoggedEvent, COLUMNS};
use super::{Store, StoreError};

/// A link of the chain.
pub type Hash = [u8; 32];

/// What the first event chains onto.
pub const GENESIS: Hash = [0; 32];

/// Rows read per query when back-filling or verifying.
const PAGE: i64 = 1_000;

/// `recorded_at` as the canonical bytes write it.
pub fn canonical_time(recorded_at: &DateTime<Utc>) -> String {
    recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A time as the store keeps it: to the microsecond, so that what is hashed reads back the same.
pub fn stored_time(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.timestamp_micros()).unwrap_or(time)
}

/// The canonical bytes of an event, split around the two fields only known once the appender holds
/// the log head (its position and recorded_at), so that a retried batch reuses the rest.
pub(crate) struct Canonical {
    /// `{"event_id":…,"metadata":…,"payload":…,"position":`
    before_position: Vec<u8>,
    /// `,"sequence":…,"stream_id":…,"stream_type":…,"type":…,"version":…}`
    after_time: Vec<u8>,
}

/// An event's fields, as the canonical form names them.
pub(crate) struct EventFields<'a> {
    pub event_id: &'a str,
    /// Already in canonical form: one stream append's rows share it.
    pub metadata: &'a [u8],
    pub payload: &'a Value,
    pub sequence: i64,
    pub stream_id: &'a str,
    pub stream_type: &'a str,
    pub event_type: &'a str,
    pub version: &'a str,
}

impl Canonical {
    pub(crate) fn new(fields: &EventFields<'_>) -> Self {
        let mut before_position = Vec::with_capacity(256);
        before_position.extend_from_slice(b"{\"event_id\":");
        write_string(&mut before_position, fields.event_id);
        before_position.extend_from_slice(b",\"metadata\":");
        before_position.extend_from_slice(fields.metadata);
        before_position.extend_from_slice(b",\"payload\":");
        write_canonical(&mut before_position, fields.payload);
        before_position.extend_from_slice(b",\"position\":");
        let mut after_time = Vec::with_capacity(128);
        after_time.extend_from_slice(b",\"sequence\":");
        write_integer(&mut after_time, fields.sequence);
        after_time.extend_from_slice(b",\"stream_id\":");
        write_string(&mut after_time, fields.stream_id);
        after_time.extend_from_slice(b",\"stream_type\":");
        write_string(&mut after_time, fields.stream_type);
        after_time.extend_from_slice(b",\"type\":");
        write_string(&mut after_time, fields.event_type);
        after_time.extend_from_slice(b",\"version\":");
        write_string(&mut after_time, fields.version);
        after_time.push(b'}');
        Self {
            before_position,
            after_time,
        }
    }

    /// The event's link when it lands at `position` after `previous`, recorded at `recorded_at`
    /// (in [`canonical_time`] form).
    pub(crate) fn link(&self, previous: &Hash, position: i64, recorded_at: &str) -> Hash {
        let mut digest = Sha256::new();
        digest.update(previous);
        self.write_to(position, recorded_at, |part| digest.update(part));
        digest.finalize().into()
    }

    fn write_to(&self, position: i64, recorded_at: &str, mut write: impl FnMut(&[u8])) {
        write(&self.before_position);
        write(position.to_string().as_bytes());
        write(b",\"recorded_at\":\"");
        write(recorded_at.as_bytes());
        write(b"\"");
        write(&self.after_time);
    }

    fn of(event: &LoggedEvent) -> Self {
        let mut metadata = Vec::new();
        write_canonical(&mut metadata, &event.metadata);
        Self::new(&EventFields {
            event_id: &event.event_id,
            metadata: &metadata,
            payload: &event.payload,
            sequence: event.sequence,
            stream_id: &event.aggregate_id,
            stream_type: &event.aggregate_type,
            event_type: &event.event_type,
            version: &event.event_version,
        })
    }
}

/// The canonical bytes of a stored event (what its link hashes after the previous one).
pub fn canonical_bytes(event: &LoggedEvent) -> Vec<u8> {
    let mut bytes = Vec::new();
    Canonical::of(event).write_to(
        event.position,
        &canonical_time(&event.recorded_at),
        |part| bytes.extend_from_slice(part),
    );
    bytes
}

/// A stored event's link after `previous`.
pub fn link(previous: &Hash, event: &LoggedEvent) -> Hash {
    Canonical::of(event).link(
        previous,
        event.position,
        &canonical_time(&event.recorded_at),
    )
}

/// Writes `value` in RFC 8785 form.
pub fn write_canonical(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => write_number(out, number),
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push(b'[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_canonical(out, item);
            }
            out.push(b']');
        }
        Value::Object(members) => {
            // serde_json's map is ordered by bytes, which is UTF-16 order for every key below
            // U+E000; only keys beyond it (rare) need the reordering RFC 8785 §3.2.3 asks for.
            let mut members: Vec<(&String, &Value)> = members.iter().collect();
            if members.iter().any(|(key, _)| !key.is_ascii()) {
                members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            }
            out.push(b'{');
            for (n, (key, item)) in members.into_iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_string(out, key);
                out.push(b':');
                write_canonical(out, item);
            }
            out.push(b'}');
        }
    }
}

/// serde_json escapes exactly what RFC 8785 §3.2.2.2 does: `"`, `\`, and controls below U+0020
/// (as `\b \t \n \f \r` or `\u00xx` in lower case); everything else is written as UTF-8.
fn write_string(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *out, text).expect("writing a string to memory");
}

fn write_integer(out: &mut Vec<u8>, integer: i64) {
    write_number(out, &serde_json::Number::from(integer));
}

/// The largest integer a double holds exactly: up to it, ECMAScript prints an integer as itself.
const EXACT_INTEGER: u64 = 1 << 53;

/// RFC 8785 §3.2.2.3: a number is the double it denotes, printed as ECMAScript's
/// `Number.prototype.toString` does (shortest round-trip digits; exponent from 1e21 up and below
/// 1e-6).
fn write_number(out: &mut Vec<u8>, number: &serde_json::Number) {
    if let Some(integer) = number
        .as_i64()
        .filter(|i| i.unsigned_abs() <= EXACT_INTEGER)
    {
        out.extend_from_slice(integer.to_string().as_bytes());
        return;
    }
    if let Some(integer) = number.as_u64().filter(|&u| u <= EXACT_INTEGER) {
        out.extend_from_slice(integer.to_string().as_bytes());
        return;
    }
    // Without serde_json's `arbitrary_precision` every number is an i64, a u64 or a finite f64.
    let double = number.as_f64().unwrap_or(0.0);
    out.extend_from_slice(ecmascript_number(double).as_bytes());
}

fn ecmascript_number(double: f64) -> String {
    if double == 0.0 || !double.is_finite() {
        return "0".into();
    }
    // `{:e}` prints the shortest digits that read back as the same double, as ECMAScript asks:
    // `d[.ddd]e[-]x`.
    let scientific = format!("{:e}", double.abs());
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("`{:e}` writes an exponent");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exponent: i32 = exponent.parse().expect("`{:e}` writes an integer exponent");
    let k = digits.len() as i32;
    // ECMAScript's n: the value is 0.digits × 10^n.
    let n = exponent + 1;
    let sign = if double < 0.0 { "-" } else { "" };
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let e_sign = if e >= 0 { "+" } else { "-" };
        let fraction = if k > 1 {
            format!(".{}", &digits[1..])
        } else {
            String::new()
        };
        format!("{}{fraction}e{e_sign}{}", &digits[..1], e.abs())
    };
    format!("{sign}{body}")
}

/// The last position handed out and the link of the event there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub position: i64,
    pub hash: Hash,
}

/// Where and how the chain first fails to hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    pub position: i64,
    pub reason: BreakReason,
}

/// Why a position does not match. Each names a position only, never what the event holds: the
/// log is every organisation's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakReason {
    /// No event holds this position, though the log (or its head) goes beyond it: deleted.
    Missing,
    /// The stored hash is not the one its event and the previous link give: the event was
    /// edited, moved, swapped or inserted.
    Altered,
    /// The event has no hash: it was written without the engine.
    Unchained,
    /// The head row names another last position or hash than the log's last event.
    HeadDiffers,
    /// The hash stored here is not the one the auditor recorded (`--expect`).
    NotAsRecorded,
}

impl BreakReason {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Missing => "no event holds this position (deleted)",
            Self::Altered => "the stored hash does not follow from the event and its predecessor (edited, moved or inserted)",
            Self::Unchained => "the event has no hash (written without the engine)",
            Self::HeadDiffers => "the log head names another last position or hash",
            Self::NotAsRecorded => "the hash here is not the one recorded",
        }
    }
}

/// The outcome of recomputing the chain over `from..=to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub from: i64,
    /// The last position that was found to hold (`from - 1` when none did).
    pub to: i64,
    /// The link at `to`.
    pub hash: Hash,
    /// `None` when the chain holds over the whole range.
    pub broken: Option<Break>,
}

#[derive(sqlx::FromRow)]
struct ChainedRow {
    #[sqlx(flatten)]
    event: LoggedEvent,
    hash: Option<Vec<u8>>,
}

/// Up to `$2` events after position `$1` and through `$3`, with their hashes.
fn chained_sql() -> String {
    format!(
        "SELECT {COLUMNS}, hash FROM events WHERE position > $1 AND position <= $3
          ORDER BY position LIMIT $2"
    )
}

fn as_hash(bytes: Option<Vec<u8>>) -> Option<Hash> {
    bytes.and_then(|bytes| bytes.try_into().ok())
}

impl Store {
    /// The head row: the last position handed out and its link.
    pub async fn chain_head(&self) -> Result<ChainHead, StoreError> {
        let (position, hash): (i64, Option<Vec<u8>>) = crate::on_pool!(self, |pool| {
            sqlx::query_as("SELECT position, hash FROM event_log_head")
                .fetch_one(pool)
                .await
        })?;
        let hash = as_hash(hash)
            .ok_or_else(|| StoreError::Corrupt("the log head holds no hash".into()))?;
        Ok(ChainHead { position, hash })
    }

    /// Recomputes the chain from `from` (at least 1) through `to`, or through the log's end and
    /// its head row when `to` is `None`. The link before `from` is taken as stored: verifying from
    /// 1 proves everything, a later `from` proves the rest follows from what is there.
    pub async fn verify_chain(&self, from: i64, to: Option<i64>) -> Result<Verdict, StoreError> {
        let from = from.max(1);
        let mut verdict = Verdict {
            from,
            to: from - 1,
            hash: GENESIS,
            broken: None,
        };
        if from > 1 {
            let stored: Option<Option<Vec<u8>>> = crate::on_pool!(self, |pool| {
                sqlx::query_scalar("SELECT hash FROM events WHERE position = $1")
                    .bind(from - 1)
                    .fetch_optional(pool)
                    .await
            })?;
            match stored {
                None => return Ok(verdict.broken_at(from - 1, BreakReason::Missing)),
                Some(hash) => match as_hash(hash) {
                    Some(hash) => verdict.hash = hash,
                    None => return Ok(verdict.broken_at(from - 1, BreakReason::Unchained)),
                },
            }
        }
        let last = to.unwrap_or(i64::MAX);
        let sql = chained_sql();
        loop {
            let page: Vec<ChainedRow> = crate::on_pool!(self, |pool| {
                sqlx::query_as(&sql)
                    .bind(verdict.to)
                    .bind(PAGE)
                    .bind(last)
                    .fetch_all(pool)
                    .await
            })?;
            for row in &page {
                if let Some(reason) = verdict.follow(row) {
                    let position = if reason == BreakReason::Missing {
                        verdict.to + 1
                    } else {
                        row.event.position
                    };
                    return Ok(verdict.broken_at(position, reason));
                }
            }
            if (page.len() as i64) < PAGE {
                break;
            }
        }
        match to {
            Some(to) if verdict.to < to => {
                let position = verdict.to + 1;
                Ok(verdict.broken_at(position, BreakReason::Missing))
            }
            Some(_) => Ok(verdict),
            None => {
                let head = self.chain_head().await?;
                if head.position > verdict.to {
                    let position = verdict.to + 1;
                    Ok(verdict.broken_at(position, BreakReason::Missing))
                } else if head.position < verdict.to || head.hash != verdict.hash {
                    let position = head.position.max(from - 1);
                    Ok(verdict.broken_at(position, BreakReason::HeadDiffers))
                } else {
                    Ok(verdict)
                }
            }
        }
    }

    /// Whether the event at `position` carries `hash`: the check of a head an auditor recorded.
    pub async fn has_link(&self, position: i64, hash: &Hash) -> Result<Option<Break>, StoreError> {
        let stored: Option<Option<Vec<u8>>> = crate::on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT hash FROM events WHERE position = $1")
                .bind(position)
                .fetch_optional(pool)
                .await
        })?;
        let reason = match stored {
            None if position == 0 && *hash == GENESIS => return Ok(None),
            None => BreakReason::Missing,
            Some(stored) if stored.as_deref() == Some(hash.as_slice()) => return Ok(None),
            Some(_) => BreakReason::NotAsRecorded,
        };
        Ok(Some(Break { position, reason }))
    }

    /// Chains the events written before the chain existed, once: while the head row has no hash
    /// (migration 0008 leaves it so). Several processes starting together take turns on the head
    /// row's lock, and only the first finds work.
    pub(crate) async fn chain_existing(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(backend) => chain_existing_sqlite(&backend.pool).await,
            Store::Postgres(backend) => chain_existing_postgres(&backend.pool).await,
        }
    }
}

impl Verdict {
    fn broken_at(mut self, position: i64, reason: BreakReason) -> Self {
        self.broken = Some(Break { position, reason });
        self
    }

    /// Checks the next row; on success moves `to` and `hash` past it.
    fn follow(&mut self, row: &ChainedRow) -> Option<BreakReason> {
        if row.event.position != self.to + 1 {
            return Some(BreakReason::Missing);
        }
        let Some(stored) = as_hash(row.hash.clone()) else {
            return Some(BreakReason::Unchained);
        };
        let computed = link(&self.hash, &row.event);
        if stored != computed {
            return Some(BreakReason::Altered);
        }
        self.to = row.event.position;
        self.hash = computed;
        None
    }
}

async fn chain_existing_postgres(pool: &PgPool) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let chained: bool =
        sqlx::query_scalar("SELECT hash IS NOT NULL FROM event_log_head FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
    if chained {
        return Ok(());
    }
    let (mut after, mut hash, mut recorded_at) = (0, GENESIS, None);
    loop {
        let page: Vec<LoggedEvent> = sqlx::query_as(&read_log_sql())
            .bind(after)
            .bind(PAGE)
            .fetch_all(&mut *tx)
            .await?;
        let mut positions = Vec::with_capacity(page.len());
        let mut hashes = Vec::with_capacity(page.len());
        for event in &page {
            hash = link(&hash, event);
            positions.push(event.position);
            hashes.push(hash.to_vec());
            after = event.position;
            recorded_at = Some(event.recorded_at);
        }
        sqlx::query(
            "UPDATE events SET hash = v.hash
               FROM UNNEST($1::bigint[], $2::bytea[]) AS v(position, hash)
              WHERE events.position = v.position",
        )
        .bind(positions)
        .bind(hashes)
        .execute(&mut *tx)
        .await?;
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    sqlx::query("UPDATE event_log_head SET hash = $1, recorded_at = $2")
        .bind(hash.to_vec())
        .bind(recorded_at)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// As on PostgreSQL; `recorded_at` is rewritten in the canonical form too (older rows kept
/// milliseconds), so that rows exported with `sqlite3` carry exactly what was hashed.
async fn chain_existing_sqlite(pool: &SqlitePool) -> Result<(), StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let chained: bool = sqlx::query_scalar("SELECT hash IS NOT NULL FROM event_log_head")
        .fetch_one(&mut *tx)
        .await?;
    if chained {
        return Ok(());
    }
    let (mut after, mut hash, mut recorded_at) = (0, GENESIS, None);
    loop {
        let page: Vec<LoggedEvent> = sqlx::query_as(&read_log_sql())
            .bind(after)
            .bind(PAGE)
            .fetch_all(&mut *tx)
            .await?;
        for event in &page {
            hash = link(&hash, event);
            let time = canonical_time(&event.recorded_at);
            sqlx::query("UPDATE events SET hash = $1, recorded_at = $2 WHERE position = $3")
                .bind(hash.to_vec())
                .bind(&time)
                .bind(event.position)
                .execute(&mut *tx)
                .await?;
            after = event.position;
            recorded_at = Some(time);
        }
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    sqlx::query("UPDATE event_log_head SET hash = $1, recorded_at = $2")
        .bind(hash.to_vec())
        .bind(recorded_at)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn canonical(value: &Value) -> String {
        let mut out = Vec::new();
        write_canonical(&mut out, value);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn it_should_write_the_example_of_rfc_8785() {
        // RFC 8785 §3.2.2's example, parsed the way serde_json reads it.
        let input: Value = serde_json::from_str(
            r#"{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
                "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
                "literals": [null, true, false]}"#,
        )
        .unwrap();
        assert_eq!(
            canonical(&input),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }

    #[test]
    fn it_should_print_numbers_as_ecmascript_does() {
        // RFC 8785 Appendix B's table, and the integer edges.
        let cases = [
            (json!(0), "0"),
            (json!(-0.0), "0"),
            (json!(1.0), "1"),
            (json!(-1.5), "-1.5"),
            (json!(5e-324), "5e-324"),
            (json!(1.7976931348623157e308), "1.7976931348623157e+308"),
            (json!(9007199254740992_u64), "9007199254740992"),
            (json!(9007199254740993_u64), "9007199254740992"),
            (json!(-9007199254740992_i64), "-9007199254740992"),
            (json!(295147905179352830000.0), "295147905179352830000"),
            (json!(1e21), "1e+21"),
            (json!(1e20), "100000000000000000000"),
            (json!(0.000001), "0.000001"),
            (json!(0.0000001), "1e-7"),
            (json!(123456789.0e-12), "0.000123456789"),
            (json!(u64::MAX), "18446744073709552000"),
        ];
        for (value, expected) in cases {
            assert_eq!(canonical(&value), expected, "{value}");
        }
    }

    #[test]
    fn it_should_sort_keys_by_utf16_code_units() {
        // U+FB33 sorts after U+1F600 in UTF-16 (a surrogate pair starts 0xD83D) but before it by
        // code point.
        let value = json!({"\u{1F600}": 1, "\u{FB33}": 2, "a": 3});
        assert_eq!(
            canonical(&value),
            "{\"a\":3,\"\u{1F600}\":1,\"\u{FB33}\":2}"
        );
    }

    /// The event the documentation's script is checked against (docs/operations.md).
    pub(crate) fn documented_event() -> LoggedEvent {
        LoggedEvent {
            position: 1,
            event_id: "0f8b7a2e-6d5c-4b3a-9e1f-2a3b4c5d6e7f".into(),
            recorded_at: "2026-12-02T13:47:57.123456Z".parse().unwrap(),
            aggregate_type: "trigger".into(),
            aggregate_id: "6a1f3c2e-0b9d-4e8f-a7c6-5d4e3f2a1b0c".into(),
            sequence: 1,
            event_type: "TriggerEnabled".into(),
            event_version: "1".into(),
            payload: json!({"TriggerEnabled": {"at": "2026-12-02T13:47:57Z", "ratio": 0.5}}),
            metadata: json!({"actor": "user:é", "request_id": "req-1"}),
        }
    }

    #[test]
    fn it_should_hash_the_documented_event_as_the_documentation_says() {
        let event = documented_event();
        assert_eq!(
            String::from_utf8(canonical_bytes(&event)).unwrap(),
            concat!(
                r#"{"event_id":"0f8b7a2e-6d5c-4b3a-9e1f-2a3b4c5d6e7f","#,
                r#""metadata":{"actor":"user:é","request_id":"req-1"},"#,
                r#""payload":{"TriggerEnabled":{"at":"2026-12-02T13:47:57Z","ratio":0.5}},"#,
                r#""position":1,"recorded_at":"2026-12-02T13:47:57.123456Z","sequence":1,"#,
                r#""stream_id":"6a1f3c2e-0b9d-4e8f-a7c6-5d4e3f2a1b0c","stream_type":"trigger","#,
                r#""type":"TriggerEnabled","version":"1"}"#
            )
        );
        let first = link(&GENESIS, &event);
        assert_eq!(hex::encode(first), DOCUMENTED_FIRST);
        let second = LoggedEvent {
            position: 2,
            sequence: 2,
            ..event
        };
        assert_eq!(hex::encode(link(&first, &second)), DOCUMENTED_SECOND);
    }

    /// The hashes docs/operations.md prints for its example rows.
    const DOCUMENTED_FIRST: &str =
        "00dd212e42019f0b67232164297b85968a7252cfdbb11a94374c5ff13282ff20";
    const DOCUMENTED_SECOND: &str =
        "f332e920c536849d8fc40a647ffe7cfd61fe0cfe3c2e78d33add05adedb054b3";

    /// The script docs/operations.md gives auditors computes what the engine does (skipped where
    /// there is no `python3`).
    #[test]
    fn it_should_agree_with_the_documented_script() {
        let docs = include_str!("../../docs/operations.md");
        let script = docs
            .split("```python\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("docs/operations.md holds the script");
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("verify_chain.py");
        std::fs::write(&path, script).unwrap();
        let event = documented_event();
        let second = LoggedEvent {
            position: 2,
            sequence: 2,
            ..event.clone()
        };
        let mut rows = String::new();
        for (event, hash) in [(&event, DOCUMENTED_FIRST), (&second, DOCUMENTED_SECOND)] {
            let mut row = serde_json::to_value(event).unwrap();
            let row = row.as_object_mut().unwrap();
            for (from, to) in [
                ("aggregate_type", "stream_type"),
                ("aggregate_id", "stream_id"),
                ("event_type", "type"),
                ("event_version", "version"),
            ] {
                let value = row.remove(from).unwrap();
                row.insert(to.into(), value);
            }
            row.insert(
                "recorded_at".into(),
                canonical_time(&event.recorded_at).into(),
            );
            row.insert("hash".into(), hash.into());
            rows.push_str(&serde_json::to_string(row).unwrap());
            rows.push('\n');
        }
        let child = std::process::Command::new("python3")
            .arg(&path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            eprintln!("skipped: no python3");
            return;
        };
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(rows.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            String::from_utf8(output.stdout).unwrap().trim(),
            format!("holds through position 2: {DOCUMENTED_SECOND}")
        );
    }

    #[test]
    fn it_should_link_the_same_whether_split_or_whole() {
        let event = documented_event();
        let mut metadata = Vec::new();
        write_canonical(&mut metadata, &event.metadata);
        let split = Canonical::new(&EventFields {
            event_id: &event.event_id,
            metadata: &metadata,
            payload: &event.payload,
            sequence: event.sequence,
            stream_id: &event.aggregate_id,
            stream_type: &event.aggregate_type,
            event_type: &event.event_type,
            version: &event.event_version,
        });
        let previous = [7; 32];
        let time = canonical_time(&event.recorded_at);
        assert_eq!(split.link(&previous, 1, &time), link(&previous, &event));
        let mut whole = previous.to_vec();
        whole.extend(canonical_bytes(&event));
        assert_eq!(
            split.link(&previous, 1, &time),
            <[u8; 32]>::from(Sha256::digest(whole))
        );
    }
}
