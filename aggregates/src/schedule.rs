//! Schedules, as pure maths: when the slots of a `schedule` trigger fall.
//!
//! A schedule is read from a trigger's `trigger_config` ([`Schedule::from_config`]) and answers
//! one question: which slot comes after a given instant ([`Schedule::next_after`]), and from that
//! the next few ([`Schedule::upcoming`]) and those missed during downtime ([`Schedule::between`]).
//! Nothing here reads a clock: "now" and the trigger's enable time always come in as arguments,
//! so daylight-saving changes are tested at fixed instants rather than by waiting for them.
//!
//! A slot's instant is what names its run (see [`crate::run_id`]), so a slot must come out the
//! same every time it is computed, and two slots must never share an instant.
//!
//! # Cron
//! Five fields, read as wall-clock time in the schedule's time zone: minute (0-59), hour (0-23),
//! day of month (1-31), month (1-12 or JAN-DEC), day of week (0-7 or SUN-SAT; 0 and 7 are both
//! Sunday). Each field is `*` or a list of items (`a,b`); an item is a value, a range `a-b`, or
//! either of them or `*` with a step (`*/n`, `a-b/n`, `a/n`, the last meaning `a-max/n`). Names
//! are case-insensitive. `?` means `*` in the two day fields. Quartz's `L`, `W` and `#` are
//! refused.
//!
//! As in Vixie cron, when both day fields are restricted (neither is `*` or `?`), a day matches
//! if *either* does: `0 0 13 * FRI` fires on every 13th and on every Friday. Unlike Vixie, which
//! looks only at a field's first character, `*/2` counts as restricted: it does restrict the days.
//!
//! # Daylight saving
//! A wall-clock time that the spring change skips fires once, at the first instant after the gap
//! (the instant of the change): `30 2 * * *` in Europe/Paris fires at 03:00 CEST on 2026-03-29.
//! Several skipped times collapse into that one instant, together with the first valid wall time
//! if it is itself a slot. A wall-clock time that the autumn change repeats fires once, at the
//! first of its two instants. Such slots carry a [`DstNote`] saying so.

use std::fmt;

use chrono::{
    DateTime, Datelike, Days, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike,
    Utc,
};
use chrono_tz::Tz;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use serde_json::Value;

/// What every error's `field` starts with: the name the API gives the whole config.
const ROOT: &str = "trigger_config";

/// How far ahead a cron search looks before concluding that the expression never fires. The
/// longest gap between two slots of an expression that does fire is eight years: `0 0 29 2 *`
/// from 2096-02-29 to 2104-02-29, as 2100 is not a leap year. Nine years covers it; the search
/// visits only days of matching months, so even a never-firing `0 0 31 2 *` costs a few hundred
/// cheap steps.
const CRON_HORIZON_DAYS: u64 = 9 * 366;

/// When a `schedule` trigger fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// A cron expression, read as wall-clock time in `time_zone`.
    Cron { cron: Cron, time_zone: Tz },
    /// Every `seconds`, counted from when the trigger was enabled.
    Interval { seconds: u64 },
    /// Once, at `at`.
    Once { at: DateTime<Utc> },
}

/// One firing of a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Slot {
    /// The scheduled instant; with the trigger, it names the run.
    pub at: DateTime<Utc>,
    /// Set when a daylight-saving change moved or merged this slot.
    pub note: Option<DstNote>,
}

/// How a daylight-saving change bent a cron slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DstNote {
    /// `wall_clock` does not exist (clocks go forward past it); the slot fires at `fires_at`,
    /// the first instant after the gap. When several wall-clock times fall in the gap, this is
    /// the first of them.
    Skipped {
        wall_clock: NaiveDateTime,
        fires_at: DateTime<Tz>,
    },
    /// `wall_clock` occurs twice (clocks go back); the slot fires once, at `fires_at`, the first.
    Repeated {
        wall_clock: NaiveDateTime,
        fires_at: DateTime<Tz>,
    },
}

/// Why a schedule config was refused. `field` names the offending field the way the catalogue
/// does (`trigger_config.cron`), and `reason` says what is wrong with it, naming the cron field
/// (minute, hour, ...) when the fault is inside the expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {reason}")]
pub struct ScheduleError {
    pub field: String,
    pub reason: String,
}

impl ScheduleError {
    fn new(field: &str, reason: impl Into<String>) -> Self {
        Self {
            field: if field.is_empty() {
                ROOT.to_owned()
            } else {
                format!("{ROOT}.{field}")
            },
            reason: reason.into(),
        }
    }
}

impl Schedule {
    /// Reads a schedule/on_schedule trigger_config. The catalogue's schema has normally checked
    /// it already; this checks again, as it is the one place that reads the values, and goes
    /// further: the schema checks a cron expression's characters, this its values.
    pub fn from_config(config: &Value) -> Result<Schedule, ScheduleError> {
        let Some(config) = config.as_object() else {
            return Err(ScheduleError::new("", "must be an object"));
        };
        let cron = config.get("cron");
        let interval = config.get("interval_seconds");
        let at = config.get("at");
        if [cron, interval, at].iter().filter(|f| f.is_some()).count() != 1 {
            return Err(ScheduleError::new(
                "",
                "must set exactly one of cron, interval_seconds, at",
            ));
        }
        let time_zone = config.get("timezone");
        if time_zone.is_some() && cron.is_none() {
            return Err(ScheduleError::new(
                "timezone",
                "is only allowed together with cron",
            ));
        }

        if let Some(cron) = cron {
            let cron = cron
                .as_str()
                .ok_or_else(|| ScheduleError::new("cron", "must be a string"))?;
            let cron = Cron::parse(cron)?;
            let time_zone = match time_zone {
                None => Tz::UTC,
                Some(name) => name
                    .as_str()
                    .and_then(|name| name.parse::<Tz>().ok())
                    .ok_or_else(|| {
                        ScheduleError::new(
                            "timezone",
                            "must be an IANA time zone name such as Europe/Paris",
                        )
                    })?,
            };
            return Ok(Schedule::Cron { cron, time_zone });
        }
        if let Some(interval) = interval {
            return match interval.as_u64() {
                Some(0) => Err(ScheduleError::new("interval_seconds", "must be at least 1")),
                Some(seconds) => Ok(Schedule::Interval { seconds }),
                None if interval.is_i64() => {
                    Err(ScheduleError::new("interval_seconds", "must be at least 1"))
                }
                None => Err(ScheduleError::new("interval_seconds", "must be an integer")),
            };
        }
        let at = at
            .and_then(Value::as_str)
            .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
            .ok_or_else(|| {
                ScheduleError::new(
                    "at",
                    "must be an RFC 3339 date-time with its offset, \
                     such as 2026-03-29T09:00:00+02:00",
                )
            })?;
        Ok(Schedule::Once { at: at.to_utc() })
    }

    /// The first slot strictly after `after`. `anchor` is when the schedule started counting
    /// (the trigger's enable time): interval slots are `anchor + k * interval`, k >= 1; cron and
    /// one-off schedules ignore it. `None` when there is none: a one-off in the past, a cron
    /// expression that never fires (`0 0 31 2 *`), or an instant beyond what chrono represents.
    pub fn next_after(&self, after: DateTime<Utc>, anchor: DateTime<Utc>) -> Option<Slot> {
        match self {
            Schedule::Cron { cron, time_zone } => cron.next_after(*time_zone, after),
            Schedule::Interval { seconds } => {
                next_interval(*seconds, after, anchor).map(|at| Slot { at, note: None })
            }
            Schedule::Once { at } => (*at > after).then_some(Slot {
                at: *at,
                note: None,
            }),
        }
    }

    /// The slots after `after`, in order, each strictly later than the one before.
    pub fn slots_after(
        &self,
        after: DateTime<Utc>,
        anchor: DateTime<Utc>,
    ) -> impl Iterator<Item = Slot> + '_ {
        std::iter::successors(self.next_after(after, anchor), move |slot| {
            self.next_after(slot.at, anchor)
        })
    }

    /// The next `count` slots after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, anchor: DateTime<Utc>, count: usize) -> Vec<Slot> {
        self.slots_after(after, anchor).take(count).collect()
    }

    /// The slots in `(from, to]`, oldest first, at most `limit` (catch-up after downtime).
    pub fn between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        anchor: DateTime<Utc>,
        limit: usize,
    ) -> Vec<Slot> {
        self.slots_after(from, anchor)
            .take_while(|slot| slot.at <= to)
            .take(limit)
            .collect()
    }
}

/// The first `anchor + k * seconds` (k >= 1) strictly after `after`. Counted in whole seconds
/// with the anchor's fraction carried along, so slots keep the anchor's sub-second part.
fn next_interval(
    seconds: u64,
    after: DateTime<Utc>,
    anchor: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let interval = i128::from(seconds);
    let k = if after < anchor {
        1
    } else {
        // Whole seconds elapsed, rounded down; as the interval is whole seconds, the fraction
        // cannot move the next slot.
        let mut elapsed = i128::from(after.timestamp()) - i128::from(anchor.timestamp());
        if after.timestamp_subsec_nanos() < anchor.timestamp_subsec_nanos() {
            elapsed -= 1;
        }
        elapsed / interval + 1
    };
    let at = i128::from(anchor.timestamp()).checked_add(k.checked_mul(interval)?)?;
    DateTime::from_timestamp(i64::try_from(at).ok()?, anchor.timestamp_subsec_nanos())
}

/// A parsed five-field cron expression. Each field is a bit set: bit n set means value n matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    expression: String,
    minutes: u64,
    hours: u64,
    /// Bits 1-31.
    days_of_month: u64,
    /// Bits 1-12.
    months: u64,
    /// Bits 0-6, 0 = Sunday (a 7 in the expression is folded into 0).
    days_of_week: u64,
    /// Both day fields are restricted, so a day matches if either does (Vixie cron's rule).
    either_day: bool,
}

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names accepted in place of numbers, with their values.
    names: &'static [(&'static str, u32)],
    /// What the names are, for the error when a word is neither a number nor a name.
    names_hint: &'static str,
    /// `?` is accepted as `*` (the two day fields only).
    question_mark: bool,
}

const MONTH_NAMES: &[(&str, u32)] = &[
    ("JAN", 1),
    ("FEB", 2),
    ("MAR", 3),
    ("APR", 4),
    ("MAY", 5),
    ("JUN", 6),
    ("JUL", 7),
    ("AUG", 8),
    ("SEP", 9),
    ("OCT", 10),
    ("NOV", 11),
    ("DEC", 12),
];

const DAY_NAMES: &[(&str, u32)] = &[
    ("SUN", 0),
    ("MON", 1),
    ("TUE", 2),
    ("WED", 3),
    ("THU", 4),
    ("FRI", 5),
    ("SAT", 6),
];

const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    names_hint: "",
    question_mark: false,
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    names_hint: "",
    question_mark: false,
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    names_hint: "",
    question_mark: true,
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: MONTH_NAMES,
    names_hint: "a month name (JAN-DEC)",
    question_mark: false,
};
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: DAY_NAMES,
    names_hint: "a day name (SUN-SAT)",
    question_mark: true,
};

impl Cron {
    /// Parses a five-field expression. The error names `trigger_config.cron`, as
    /// [`Schedule::from_config`] reports it, and its reason names the cron field at fault.
    pub fn parse(expression: &str) -> Result<Cron, ScheduleError> {
        let error = |reason: String| ScheduleError::new("cron", reason);
        let fields: Vec<&str> = expression.split_whitespace().collect();
        let [minute, hour, day_of_month, month, day_of_week] = fields[..] else {
            return Err(error(format!(
                "must have five fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            )));
        };
        let unrestricted = |field: &str| field == "*" || field == "?";
        // Left to right, so that the first field at fault is the one reported.
        let minutes = parse_field(minute, &MINUTE).map_err(error)?;
        let hours = parse_field(hour, &HOUR).map_err(error)?;
        let days_of_month = parse_field(day_of_month, &DAY_OF_MONTH).map_err(error)?;
        let months = parse_field(month, &MONTH).map_err(error)?;
        let days_of_week = parse_field(day_of_week, &DAY_OF_WEEK).map_err(error)?;
        Ok(Cron {
            expression: fields.join(" "),
            minutes,
            hours,
            days_of_month,
            months,
            // 7 is Sunday too: fold it into 0.
            days_of_week: (days_of_week & 0x7f) | (days_of_week >> 7),
            either_day: !unrestricted(day_of_month) && !unrestricted(day_of_week),
        })
    }

    /// The expression, with its fields separated by single spaces.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Whether a wall-clock minute matches (seconds are ignored).
    pub fn matches(&self, wall: NaiveDateTime) -> bool {
        has(self.minutes, wall.minute())
            && has(self.hours, wall.hour())
            && has(self.months, wall.month())
            && self.day_matches(wall.date())
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        let by_month = has(self.days_of_month, date.day());
        let by_week = has(self.days_of_week, date.weekday().num_days_from_sunday());
        if self.either_day {
            by_month || by_week
        } else {
            by_month && by_week
        }
    }

    /// The first matching wall-clock minute at or after `from` (a whole minute), on or before
    /// `until`. Skips whole months, then days, then hours, rather than walking minute by minute.
    fn next_wall(&self, from: NaiveDateTime, until: NaiveDate) -> Option<NaiveDateTime> {
        let mut date = from.date();
        let (mut hour, mut minute) = (from.hour(), from.minute());
        loop {
            if date > until {
                return None;
            }
            if !has(self.months, date.month()) {
                date = match next_bit(self.months, date.month() + 1) {
                    Some(month) => NaiveDate::from_ymd_opt(date.year(), month, 1)?,
                    None => NaiveDate::from_ymd_opt(
                        date.year().checked_add(1)?,
                        next_bit(self.months, 0)?,
                        1,
                    )?,
                };
                (hour, minute) = (0, 0);
                continue;
            }
            if self.day_matches(date) {
                if let Some(next_hour) = next_bit(self.hours, hour) {
                    if next_hour != hour {
                        (hour, minute) = (next_hour, 0);
                    }
                    if let Some(minute) = next_bit(self.minutes, minute) {
                        return date.and_hms_opt(hour, minute, 0);
                    }
                    if hour < 23 {
                        (hour, minute) = (hour + 1, 0);
                        continue;
                    }
                }
            }
            date = date.succ_opt()?;
            (hour, minute) = (0, 0);
        }
    }

    fn next_after(&self, time_zone: Tz, after: DateTime<Utc>) -> Option<Slot> {
        let local = after.with_timezone(&time_zone).naive_local();
        let mut from = local
            .with_second(0)?
            .with_nanosecond(0)?
            .checked_add_signed(Duration::minutes(1))?;
        let until = from.date().checked_add_days(Days::new(CRON_HORIZON_DAYS))?;
        loop {
            let wall = self.next_wall(from, until)?;
            let slot = resolve(time_zone, wall)?;
            // Wall-clock order and instant order agree, except that a wall time repeated by the
            // autumn change resolves to its first instant: when `after` is in the second pass,
            // the repeated times behind it have fired already, at most an hour or so of them.
            if slot.at > after {
                return Some(slot);
            }
            from = wall.checked_add_signed(Duration::minutes(1))?;
        }
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

/// The instant a matching wall-clock time fires at in `time_zone`, with a note when a
/// daylight-saving change bends it.
fn resolve(time_zone: Tz, wall: NaiveDateTime) -> Option<Slot> {
    Some(match time_zone.from_local_datetime(&wall) {
        LocalResult::Single(at) => Slot {
            at: at.to_utc(),
            note: None,
        },
        LocalResult::Ambiguous(first, _) => Slot {
            at: first.to_utc(),
            note: Some(DstNote::Repeated {
                wall_clock: wall,
                fires_at: first,
            }),
        },
        LocalResult::None => {
            let at = end_of_gap(time_zone, wall)?;
            Slot {
                at,
                note: Some(DstNote::Skipped {
                    wall_clock: wall,
                    fires_at: at.with_timezone(&time_zone),
                }),
            }
        }
    })
}

/// The first instant whose wall-clock time is past `wall`, a time inside a gap: the instant the
/// clocks went forward. Found by bisection over whole seconds (transitions fall on whole seconds)
/// between a day either side, as UTC offsets stay within a day; it assumes one transition there.
fn end_of_gap(time_zone: Tz, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    let past = |seconds: i64| {
        DateTime::from_timestamp(seconds, 0)
            .is_some_and(|at| at.with_timezone(&time_zone).naive_local() > wall)
    };
    let day = 24 * 60 * 60;
    let (mut before, mut after) = (
        wall.and_utc().timestamp() - day,
        wall.and_utc().timestamp() + day,
    );
    while after - before > 1 {
        let middle = before + (after - before) / 2;
        if past(middle) {
            after = middle;
        } else {
            before = middle;
        }
    }
    DateTime::from_timestamp(after, 0)
}

fn has(set: u64, value: u32) -> bool {
    set & (1 << value) != 0
}

/// The smallest value at or above `from` in `set`.
fn next_bit(set: u64, from: u32) -> Option<u32> {
    let rest = set.checked_shr(from)?;
    (rest != 0).then(|| from + rest.trailing_zeros())
}

/// Parses one cron field into its bit set, or says why not (naming the field).
fn parse_field(text: &str, spec: &FieldSpec) -> Result<u64, String> {
    let name = spec.name;
    // Quartz's extensions, refused by name so that the author sees they are not typos.
    let is_day_of_month = spec.name == DAY_OF_MONTH.name;
    let is_day_of_week = spec.name == DAY_OF_WEEK.name;
    let unsupported = [
        ('#', true),
        ('L', is_day_of_month || is_day_of_week),
        ('W', is_day_of_month),
    ];
    for (c, refused) in unsupported {
        if refused && text.chars().any(|t| t.eq_ignore_ascii_case(&c)) {
            return Err(format!("`{c}` in {name} is not supported"));
        }
    }

    let mut set = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!("{name} has an empty item in its list"));
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(parse_step(step, name)?)),
            None => (item, None),
        };
        let (low, high) = if range == "*" || range == "?" {
            if range == "?" && !spec.question_mark {
                return Err(format!(
                    "`?` in {name} is only allowed in day-of-month and day-of-week"
                ));
            }
            (spec.min, spec.max)
        } else if let Some((low, high)) = range.split_once('-') {
            let low = parse_value(low, spec, false)?;
            let high = parse_value(high, spec, true)?;
            if low > high {
                return Err(format!("{name} range {range} runs backwards"));
            }
            (low, high)
        } else {
            let value = parse_value(range, spec, false)?;
            // `a/n` steps from a to the end of the field.
            (value, if step.is_some() { spec.max } else { value })
        };
        for value in (low..=high).step_by(step.unwrap_or(1)) {
            set |= 1 << value;
        }
    }
    Ok(set)
}

fn parse_step(step: &str, name: &str) -> Result<usize, String> {
    if step.is_empty() || !step.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{name} step `{step}` is not a number"));
    }
    match step.parse::<usize>() {
        Ok(0) => Err(format!("{name} step must be at least 1")),
        Ok(step) => Ok(step),
        // Too many digits for a number: larger than any field, so it matches only the start.
        Err(_) => Ok(usize::MAX),
    }
}

/// A number or a name. `range_end`: a range ending in SUN (`FRI-SUN`) means Sunday as 7.
fn parse_value(text: &str, spec: &FieldSpec, range_end: bool) -> Result<u32, String> {
    let name = spec.name;
    if text.is_empty() {
        return Err(format!("{name} has a range with a missing end"));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(value) if (spec.min..=spec.max).contains(&value) => Ok(value),
            _ => Err(format!(
                "{name} {text} is out of range {}-{}",
                spec.min, spec.max
            )),
        };
    }
    match spec
        .names
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(text))
    {
        Some((_, 0)) if range_end && spec.name == DAY_OF_WEEK.name => Ok(7),
        Some((_, value)) => Ok(*value),
        None if spec.names.is_empty() => Err(format!("{name} `{text}` is not a number")),
        None => Err(format!(
            "{name} `{text}` is neither a number nor {}",
            spec.names_hint
        )),
    }
}

impl DstNote {
    /// The wall-clock time the cron expression asked for.
    pub fn wall_clock(&self) -> NaiveDateTime {
        match self {
            DstNote::Skipped { wall_clock, .. } | DstNote::Repeated { wall_clock, .. } => {
                *wall_clock
            }
        }
    }

    /// When the slot fires, in the schedule's time zone.
    pub fn fires_at(&self) -> DateTime<Tz> {
        match self {
            DstNote::Skipped { fires_at, .. } | DstNote::Repeated { fires_at, .. } => *fires_at,
        }
    }

    /// One sentence for people, e.g. "02:30 does not exist on 2026-03-29 in Europe/Paris
    /// (clocks go forward): fires at 03:00 CEST".
    pub fn describe(&self) -> String {
        let wall = self.wall_clock();
        let fires_at = self.fires_at();
        let zone = fires_at.timezone().name();
        let time = wall.format("%H:%M");
        let date = wall.date();
        let fires = fires_at.format("%H:%M %Z");
        // A gap of a whole day (Samoa, 2011-12-30) moves the slot to another date.
        let other_date = if fires_at.date_naive() == date {
            String::new()
        } else {
            format!(" on {}", fires_at.date_naive())
        };
        match self {
            DstNote::Skipped { .. } => format!(
                "{time} does not exist on {date} in {zone} (clocks go forward): \
                 fires at {fires}{other_date}"
            ),
            DstNote::Repeated { .. } => format!(
                "{time} occurs twice on {date} in {zone} (clocks go back): \
                 fires once, at the first ({fires})"
            ),
        }
    }
}

impl fmt::Display for DstNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// `{"kind": "skipped", "wall_clock": "2026-03-29T02:30:00", "time_zone": "Europe/Paris",
/// "fires_at": "2026-03-29T03:00:00+02:00", "description": "02:30 does not exist ..."}`: the
/// sentence travels with the data so that an API client need not write its own.
impl Serialize for DstNote {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let kind = match self {
            DstNote::Skipped { .. } => "skipped",
            DstNote::Repeated { .. } => "repeated",
        };
        let fires_at = self.fires_at();
        let mut note = serializer.serialize_struct("DstNote", 5)?;
        note.serialize_field("kind", kind)?;
        note.serialize_field("wall_clock", &self.wall_clock())?;
        note.serialize_field("time_zone", fires_at.timezone().name())?;
        note.serialize_field("fires_at", &fires_at.fixed_offset())?;
        note.serialize_field("description", &self.describe())?;
        note.end()
    }
}
