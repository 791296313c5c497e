//! The cron parser (aggregates/src/schedule.rs, `Cron::parse`) and the slot search behind it.
//!
//! Input: 8 bytes choosing the instant to search after (years 1-9999, what an RFC 3339 `after`
//! can name), 1 byte choosing a time zone, then the expression as UTF-8. A parsed expression
//! must print back to itself, and its next slots must come strictly one after another, each on
//! a wall-clock minute the expression matches unless a daylight-saving change moved it.
#![no_main]

use aggregates::schedule::Cron;
use aggregates::Schedule;
use chrono::DateTime;
use chrono_tz::Tz;
use libfuzzer_sys::fuzz_target;

/// Zones with the odd cases: DST both ways, half-hour DST, a skipped day (Apia, 2011-12-30),
/// a two-hour DST (Troll), and no DST at all.
const ZONES: [Tz; 8] = [
    Tz::UTC,
    Tz::Europe__Paris,
    Tz::America__New_York,
    Tz::Australia__Lord_Howe,
    Tz::Asia__Kathmandu,
    Tz::Pacific__Apia,
    Tz::America__Santiago,
    Tz::Antarctica__Troll,
];

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
const FIRST: i64 = -62_135_596_800;
const LAST: i64 = 253_402_300_799;

fuzz_target!(|data: &[u8]| {
    let Some((head, expression)) = data.split_first_chunk::<9>() else {
        return;
    };
    let Ok(expression) = std::str::from_utf8(expression) else {
        return;
    };
    let Ok(cron) = Cron::parse(expression) else {
        return;
    };
    assert_eq!(Cron::parse(cron.expression()).as_ref(), Ok(&cron));

    let seconds = i64::from_le_bytes(head[..8].try_into().unwrap());
    let after = FIRST + seconds.rem_euclid(LAST - FIRST + 1);
    let after = DateTime::from_timestamp(after, 0).unwrap();
    let time_zone = ZONES[usize::from(head[8]) % ZONES.len()];
    let schedule = Schedule::Cron {
        cron: cron.clone(),
        time_zone,
    };
    let mut previous = after;
    for slot in schedule.upcoming(after, after, 4) {
        assert!(slot.at > previous, "{slot:?} is not after {previous}");
        if slot.note.is_none() {
            let wall = slot.at.with_timezone(&time_zone).naive_local();
            assert!(cron.matches(wall), "{slot:?} does not match {cron}");
        }
        previous = slot.at;
    }
});
