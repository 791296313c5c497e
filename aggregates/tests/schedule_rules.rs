//! The schedule's rules, read as sentences: given this config and this instant, then these slots.
//! Every instant is fixed: daylight-saving changes are reached by naming their dates, not by
//! waiting for them.
//!
//! The changes used: Europe/Paris goes forward on 2026-03-29 at 02:00 CET (01:00 UTC) and back on
//! 2026-10-25 at 03:00 CEST (01:00 UTC); America/New_York goes forward on 2026-03-08 at 02:00 EST
//! (07:00 UTC) and back on 2026-11-01 at 02:00 EDT (06:00 UTC).

use aggregates::schedule::{Cron, DstNote, Schedule, Slot};
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde_json::{json, Value};

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().expect("a UTC instant")
}

fn wall(text: &str) -> NaiveDateTime {
    text.parse().expect("a wall-clock time")
}

/// An anchor for schedules that ignore it.
fn anchor() -> DateTime<Utc> {
    utc("2020-01-01T00:00:00Z")
}

fn cron(expression: &str) -> Schedule {
    Schedule::from_config(&json!({ "cron": expression })).expect("a valid cron config")
}

fn cron_in(expression: &str, time_zone: &str) -> Schedule {
    Schedule::from_config(&json!({ "cron": expression, "timezone": time_zone }))
        .expect("a valid cron config")
}

fn instants(slots: &[Slot]) -> Vec<DateTime<Utc>> {
    slots.iter().map(|slot| slot.at).collect()
}

fn next(schedule: &Schedule, after: &str) -> Option<DateTime<Utc>> {
    schedule
        .next_after(utc(after), anchor())
        .map(|slot| slot.at)
}

/// Asserts the refusal, and returns its reason.
fn refused(config: Value, field: &str) -> String {
    let error = Schedule::from_config(&config).expect_err("the config should be refused");
    assert_eq!(error.field, field, "{config}: {error}");
    error.reason
}

fn cron_refused(expression: &str) -> String {
    refused(json!({ "cron": expression }), "trigger_config.cron")
}

fn matches(expression: &str, at: &str) -> bool {
    Cron::parse(expression)
        .expect("a valid expression")
        .matches(wall(at))
}

// --- parsing ---

#[test]
fn it_should_read_each_of_the_three_ways_to_schedule() {
    assert!(matches!(
        Schedule::from_config(&json!({ "cron": "0 9 * * MON-FRI" })),
        Ok(Schedule::Cron {
            time_zone: chrono_tz::UTC,
            ..
        })
    ));
    assert!(matches!(
        Schedule::from_config(&json!({ "cron": "0 9 * * *", "timezone": "Europe/Paris" })),
        Ok(Schedule::Cron {
            time_zone: chrono_tz::Europe::Paris,
            ..
        })
    ));
    assert_eq!(
        Schedule::from_config(&json!({ "interval_seconds": 90 })),
        Ok(Schedule::Interval { seconds: 90 })
    );
    assert_eq!(
        Schedule::from_config(&json!({ "at": "2026-03-29T09:00:00+02:00" })),
        Ok(Schedule::Once {
            at: utc("2026-03-29T07:00:00Z")
        })
    );
}

#[test]
fn it_should_read_numbers_ranges_lists_and_steps() {
    let expression = "5,10-12,30-40/5 */6 1 1 *";
    for minute in ["05", "10", "11", "12", "30", "35", "40"] {
        assert!(matches(expression, &format!("2026-01-01T18:{minute}:00")));
    }
    for minute in ["00", "06", "13", "31", "45"] {
        assert!(!matches(expression, &format!("2026-01-01T18:{minute}:00")));
    }
    for hour in ["00", "06", "12", "18"] {
        assert!(matches(expression, &format!("2026-01-01T{hour}:05:00")));
    }
    assert!(!matches(expression, "2026-01-01T07:05:00"));
    assert!(!matches(expression, "2026-01-02T06:05:00"));
    assert!(!matches(expression, "2026-02-01T06:05:00"));
}

#[test]
fn it_should_read_a_value_with_a_step_as_running_to_the_end_of_the_field() {
    let fired = instants(&cron("5/20 0 * * *").upcoming(utc("2026-01-01T00:00:00Z"), anchor(), 4));
    assert_eq!(
        fired,
        [
            utc("2026-01-01T00:05:00Z"),
            utc("2026-01-01T00:25:00Z"),
            utc("2026-01-01T00:45:00Z"),
            utc("2026-01-02T00:05:00Z"),
        ]
    );
}

#[test]
fn it_should_read_month_and_day_names_in_any_case() {
    // 2026-03-02 is a Monday, 2026-03-07 a Saturday.
    assert!(matches("0 9 * mar mon", "2026-03-02T09:00:00"));
    assert!(matches("0 9 * Jan-Mar,DEC Mon-Fri", "2026-03-02T09:00:00"));
    assert!(!matches("0 9 * JAN-FEB * ", "2026-03-02T09:00:00"));
    assert!(!matches("0 9 * * MON-FRI", "2026-03-07T09:00:00"));
    assert!(matches("0 9 * * sat,SUN", "2026-03-07T09:00:00"));
}

#[test]
fn it_should_read_both_0_and_7_as_sunday() {
    // 2026-03-01 is a Sunday.
    assert!(matches("0 0 * * 0", "2026-03-01T00:00:00"));
    assert!(matches("0 0 * * 7", "2026-03-01T00:00:00"));
    assert!(!matches("0 0 * * 7", "2026-03-07T00:00:00"));
    assert!(matches("0 0 * * 5-7", "2026-03-01T00:00:00"));
    assert!(matches("0 0 * * 5-7", "2026-03-07T00:00:00"));
    // A range ending in SUN runs to the end of the week.
    assert!(matches("0 0 * * FRI-SUN", "2026-03-01T00:00:00"));
    assert!(matches("0 0 * * FRI-SUN", "2026-03-06T00:00:00"));
    assert!(!matches("0 0 * * FRI-SUN", "2026-03-02T00:00:00"));
}

#[test]
fn it_should_read_a_question_mark_as_a_star_in_the_day_fields() {
    assert_eq!(
        Cron::parse("0 9 ? * MON").map(|c| c.matches(wall("2026-03-02T09:00:00"))),
        Ok(true)
    );
    assert_eq!(
        Cron::parse("0 9 ? * MON").map(|c| c.matches(wall("2026-03-03T09:00:00"))),
        Ok(false)
    );
    assert!(matches("0 9 13 * ?", "2026-03-13T09:00:00"));
    assert!(!matches("0 9 13 * ?", "2026-03-12T09:00:00"));
}

#[test]
fn it_should_refuse_an_expression_without_five_fields() {
    assert_eq!(
        cron_refused("0 9 * *"),
        "must have five fields (minute hour day-of-month month day-of-week), found 4"
    );
    assert_eq!(
        cron_refused("0 0 9 * * *"),
        "must have five fields (minute hour day-of-month month day-of-week), found 6"
    );
}

#[test]
fn it_should_refuse_a_value_out_of_range_naming_the_cron_field() {
    assert_eq!(cron_refused("60 * * * *"), "minute 60 is out of range 0-59");
    assert_eq!(cron_refused("0 24 * * *"), "hour 24 is out of range 0-23");
    assert_eq!(
        cron_refused("0 0 0 * *"),
        "day-of-month 0 is out of range 1-31"
    );
    assert_eq!(
        cron_refused("0 0 32 * *"),
        "day-of-month 32 is out of range 1-31"
    );
    assert_eq!(cron_refused("0 0 * 13 *"), "month 13 is out of range 1-12");
    assert_eq!(cron_refused("0 0 * 0 *"), "month 0 is out of range 1-12");
    assert_eq!(
        cron_refused("0 0 * * 8"),
        "day-of-week 8 is out of range 0-7"
    );
    assert_eq!(cron_refused("0 1-99 * * *"), "hour 99 is out of range 0-23");
    assert_eq!(
        cron_refused("60 * * * 8"),
        "minute 60 is out of range 0-59",
        "the first field at fault is reported"
    );
    assert_eq!(
        cron_refused("99999999999 * * * *"),
        "minute 99999999999 is out of range 0-59"
    );
}

#[test]
fn it_should_refuse_what_is_not_a_number_a_name_or_a_range() {
    assert_eq!(cron_refused("MON * * * *"), "minute `MON` is not a number");
    assert_eq!(
        cron_refused("0 0 * FOO *"),
        "month `FOO` is neither a number nor a month name (JAN-DEC)"
    );
    assert_eq!(
        cron_refused("0 0 * * MON-FOO"),
        "day-of-week `FOO` is neither a number nor a day name (SUN-SAT)"
    );
    assert_eq!(cron_refused("+5 * * * *"), "minute `+5` is not a number");
    assert_eq!(cron_refused("0 5-2 * * *"), "hour range 5-2 runs backwards");
    assert_eq!(
        cron_refused("0 -2 * * *"),
        "hour has a range with a missing end"
    );
    assert_eq!(
        cron_refused("0,,5 * * * *"),
        "minute has an empty item in its list"
    );
    assert_eq!(
        cron_refused("*/0 * * * *"),
        "minute step must be at least 1"
    );
    assert_eq!(
        cron_refused("*/x * * * *"),
        "minute step `x` is not a number"
    );
    assert_eq!(
        cron_refused("? * * * *"),
        "`?` in minute is only allowed in day-of-month and day-of-week"
    );
}

#[test]
fn it_should_refuse_quartz_l_w_and_hash_naming_the_field() {
    assert_eq!(
        cron_refused("0 0 L * *"),
        "`L` in day-of-month is not supported"
    );
    assert_eq!(
        cron_refused("0 0 15W * *"),
        "`W` in day-of-month is not supported"
    );
    assert_eq!(
        cron_refused("0 0 LW * *"),
        "`L` in day-of-month is not supported"
    );
    assert_eq!(
        cron_refused("0 0 * * 5L"),
        "`L` in day-of-week is not supported"
    );
    assert_eq!(
        cron_refused("0 0 * * FRI#2"),
        "`#` in day-of-week is not supported"
    );
    // WED holds a W, which is not Quartz's W.
    assert!(Cron::parse("0 0 * * WED").is_ok());
}

#[test]
fn it_should_refuse_a_config_that_is_not_exactly_one_schedule() {
    let one_of = "must set exactly one of cron, interval_seconds, at";
    assert_eq!(refused(json!({}), "trigger_config"), one_of);
    assert_eq!(
        refused(
            json!({ "cron": "* * * * *", "interval_seconds": 60 }),
            "trigger_config"
        ),
        one_of
    );
    assert_eq!(
        refused(json!("* * * * *"), "trigger_config"),
        "must be an object"
    );
    assert_eq!(
        refused(
            json!({ "interval_seconds": 60, "timezone": "UTC" }),
            "trigger_config.timezone"
        ),
        "is only allowed together with cron"
    );
}

#[test]
fn it_should_refuse_a_bad_time_zone_interval_or_instant() {
    assert_eq!(
        refused(
            json!({ "cron": "* * * * *", "timezone": "Europe/Atlantis" }),
            "trigger_config.timezone"
        ),
        "must be an IANA time zone name such as Europe/Paris"
    );
    assert_eq!(
        refused(
            json!({ "interval_seconds": 0 }),
            "trigger_config.interval_seconds"
        ),
        "must be at least 1"
    );
    assert_eq!(
        refused(
            json!({ "interval_seconds": -5 }),
            "trigger_config.interval_seconds"
        ),
        "must be at least 1"
    );
    assert_eq!(
        refused(
            json!({ "interval_seconds": 1.5 }),
            "trigger_config.interval_seconds"
        ),
        "must be an integer"
    );
    refused(json!({ "at": "2026-03-29T09:00:00" }), "trigger_config.at");
    refused(json!({ "at": "next tuesday" }), "trigger_config.at");
    refused(json!({ "cron": 5 }), "trigger_config.cron");
}

// --- cron in UTC ---

#[test]
fn it_should_fire_a_cron_strictly_after_the_given_instant() {
    let every_quarter = cron("*/15 * * * *");
    assert_eq!(
        next(&every_quarter, "2026-03-02T10:00:00Z"),
        Some(utc("2026-03-02T10:15:00Z"))
    );
    assert_eq!(
        next(&every_quarter, "2026-03-02T10:14:59.999Z"),
        Some(utc("2026-03-02T10:15:00Z"))
    );
    assert_eq!(
        next(&every_quarter, "2026-03-02T23:59:00Z"),
        Some(utc("2026-03-03T00:00:00Z"))
    );
    assert_eq!(
        next(&cron("0 0 1 1 *"), "2026-03-02T10:00:00Z"),
        Some(utc("2027-01-01T00:00:00Z"))
    );
}

#[test]
fn it_should_fire_weekdays_only_across_a_weekend() {
    // 2026-03-06 is a Friday.
    let weekdays = cron("0 9 * * MON-FRI");
    assert_eq!(
        next(&weekdays, "2026-03-06T09:00:00Z"),
        Some(utc("2026-03-09T09:00:00Z"))
    );
}

#[test]
fn it_should_fire_when_either_day_field_matches_if_both_are_restricted() {
    // 2026-03-13 is a Friday; the 6th and 20th are Fridays too.
    let fired = instants(&cron("0 0 13 * FRI").upcoming(utc("2026-03-01T00:00:00Z"), anchor(), 5));
    assert_eq!(
        fired,
        [
            utc("2026-03-06T00:00:00Z"),
            utc("2026-03-13T00:00:00Z"),
            utc("2026-03-20T00:00:00Z"),
            utc("2026-03-27T00:00:00Z"),
            utc("2026-04-03T00:00:00Z"),
        ]
    );
    let fired = instants(&cron("0 0 1 * MON").upcoming(utc("2026-03-29T00:00:00Z"), anchor(), 3));
    // 2026-03-30 is a Monday; 2026-04-01 a Wednesday.
    assert_eq!(
        fired,
        [
            utc("2026-03-30T00:00:00Z"),
            utc("2026-04-01T00:00:00Z"),
            utc("2026-04-06T00:00:00Z"),
        ]
    );
}

#[test]
fn it_should_need_only_the_restricted_day_field_when_the_other_is_a_star() {
    for expression in ["0 0 * * FRI", "0 0 ? * FRI"] {
        assert_eq!(
            next(&cron(expression), "2026-03-06T00:00:00Z"),
            Some(utc("2026-03-13T00:00:00Z")),
            "{expression}"
        );
    }
    for expression in ["0 0 13 * *", "0 0 13 * ?"] {
        assert_eq!(
            next(&cron(expression), "2026-03-13T00:00:00Z"),
            Some(utc("2026-04-13T00:00:00Z")),
            "{expression}"
        );
    }
}

#[test]
fn it_should_skip_months_too_short_for_the_day() {
    let thirty_first = cron("0 0 31 * *");
    assert_eq!(
        instants(&thirty_first.upcoming(utc("2026-01-31T00:00:00Z"), anchor(), 3)),
        [
            utc("2026-03-31T00:00:00Z"),
            utc("2026-05-31T00:00:00Z"),
            utc("2026-07-31T00:00:00Z"),
        ]
    );
    assert_eq!(
        next(&cron("0 0 30 * *"), "2026-01-30T00:00:00Z"),
        Some(utc("2026-03-30T00:00:00Z"))
    );
}

#[test]
fn it_should_fire_on_29_february_in_leap_years_only() {
    let leap_day = cron("0 0 29 2 *");
    assert_eq!(
        instants(&leap_day.upcoming(utc("2026-01-01T00:00:00Z"), anchor(), 2)),
        [utc("2028-02-29T00:00:00Z"), utc("2032-02-29T00:00:00Z")]
    );
    // 2100 is not a leap year: eight years between two slots, still found.
    assert_eq!(
        next(&leap_day, "2096-02-29T00:00:00Z"),
        Some(utc("2104-02-29T00:00:00Z"))
    );
}

#[test]
fn it_should_find_no_slot_for_a_date_that_never_exists() {
    for expression in ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *"] {
        let never = cron(expression);
        assert_eq!(next(&never, "2026-01-01T00:00:00Z"), None, "{expression}");
        assert!(never
            .upcoming(utc("2026-01-01T00:00:00Z"), anchor(), 100)
            .is_empty());
    }
}

// --- cron across daylight-saving changes ---

#[test]
fn it_should_fire_a_time_skipped_in_spring_once_at_the_end_of_the_gap_in_paris() {
    let half_past_two = cron_in("30 2 * * *", "Europe/Paris");
    let slots = half_past_two.upcoming(utc("2026-03-28T00:00:00Z"), anchor(), 3);
    assert_eq!(
        instants(&slots),
        [
            utc("2026-03-28T01:30:00Z"), // 02:30 CET
            utc("2026-03-29T01:00:00Z"), // 03:00 CEST: 02:30 does not exist
            utc("2026-03-30T00:30:00Z"), // 02:30 CEST
        ]
    );
    assert_eq!(slots[0].note, None);
    assert_eq!(slots[2].note, None);
    let note = slots[1].note.as_ref().expect("the skipped slot says so");
    assert!(matches!(note, DstNote::Skipped { .. }));
    assert_eq!(note.wall_clock(), wall("2026-03-29T02:30:00"));
    assert_eq!(
        note.describe(),
        "02:30 does not exist on 2026-03-29 in Europe/Paris (clocks go forward): fires at 03:00 CEST"
    );
}

#[test]
fn it_should_fire_a_time_skipped_in_spring_once_at_the_end_of_the_gap_in_new_york() {
    let half_past_two = cron_in("30 2 * * *", "America/New_York");
    let slots = half_past_two.upcoming(utc("2026-03-07T12:00:00Z"), anchor(), 2);
    assert_eq!(
        instants(&slots),
        [utc("2026-03-08T07:00:00Z"), utc("2026-03-09T06:30:00Z")]
    );
    assert_eq!(
        slots[0].note.as_ref().map(DstNote::describe).as_deref(),
        Some(
            "02:30 does not exist on 2026-03-08 in America/New_York (clocks go forward): \
             fires at 03:00 EDT"
        )
    );
}

#[test]
fn it_should_collapse_every_skipped_time_and_the_first_valid_one_into_one_slot() {
    // 02:00 and 02:30 do not exist; 03:00 is the instant the gap ends: one slot for all three.
    let schedule = cron_in("0,30 2,3 * * *", "Europe/Paris");
    let slots = schedule.upcoming(utc("2026-03-28T23:00:00Z"), anchor(), 2);
    assert_eq!(
        instants(&slots),
        [utc("2026-03-29T01:00:00Z"), utc("2026-03-29T01:30:00Z")]
    );
    assert_eq!(
        slots[0].note.as_ref().map(DstNote::wall_clock),
        Some(wall("2026-03-29T02:00:00"))
    );
    assert_eq!(slots[1].note, None);
}

#[test]
fn it_should_never_repeat_or_go_back_every_quarter_hour_across_the_spring_gap() {
    let every_quarter = cron_in("*/15 * * * *", "Europe/Paris");
    let slots = every_quarter.upcoming(utc("2026-03-29T00:30:00Z"), anchor(), 4);
    assert_eq!(
        instants(&slots),
        [
            utc("2026-03-29T00:45:00Z"), // 01:45 CET
            utc("2026-03-29T01:00:00Z"), // 03:00 CEST, for 02:00 to 03:00
            utc("2026-03-29T01:15:00Z"), // 03:15 CEST
            utc("2026-03-29T01:30:00Z"),
        ]
    );
    assert_eq!(
        slots[1].note.as_ref().map(DstNote::wall_clock),
        Some(wall("2026-03-29T02:00:00"))
    );
    strictly_increasing_for_a_day(
        &every_quarter,
        "2026-03-28T12:00:00Z",
        Duration::minutes(15),
    );
    let new_york = cron_in("*/15 * * * *", "America/New_York");
    strictly_increasing_for_a_day(&new_york, "2026-03-07T18:00:00Z", Duration::minutes(15));
}

/// Iterates `next_after` over a day and checks each slot is later than the one before and that
/// no two are further apart than `at_most` (clock changes only ever remove slots, never time).
fn strictly_increasing_for_a_day(schedule: &Schedule, from: &str, at_most: Duration) {
    let mut after = utc(from);
    while after < utc(from) + Duration::days(1) {
        let slot = schedule.next_after(after, anchor()).expect("a next slot");
        assert!(slot.at > after, "{} after {after}", slot.at);
        assert!(slot.at - after <= at_most, "{} after {after}", slot.at);
        after = slot.at;
    }
}

#[test]
fn it_should_fire_a_whole_skipped_day_at_the_end_of_the_gap_on_the_next_date() {
    // Samoa crossed the date line: 2011-12-29 24:00 (-10) was followed by 2011-12-31 00:00 (+14).
    let noon = cron_in("0 12 * * *", "Pacific/Apia");
    let slots = noon.upcoming(utc("2011-12-29T22:00:00Z"), anchor(), 2);
    assert_eq!(
        instants(&slots),
        [utc("2011-12-30T10:00:00Z"), utc("2011-12-30T22:00:00Z")]
    );
    assert_eq!(
        slots[0].note.as_ref().map(DstNote::describe).as_deref(),
        Some(
            "12:00 does not exist on 2011-12-30 in Pacific/Apia (clocks go forward): \
             fires at 00:00 +14 on 2011-12-31"
        )
    );
}

#[test]
fn it_should_fire_a_time_repeated_in_autumn_once_at_the_first_in_new_york() {
    let half_past_one = cron_in("30 1 * * *", "America/New_York");
    let slots = half_past_one.upcoming(utc("2026-10-31T12:00:00Z"), anchor(), 2);
    assert_eq!(
        instants(&slots),
        [
            utc("2026-11-01T05:30:00Z"), // 01:30 EDT, the first of two
            utc("2026-11-02T06:30:00Z"), // 01:30 EST, the next day
        ]
    );
    let note = slots[0].note.as_ref().expect("the repeated slot says so");
    assert!(matches!(note, DstNote::Repeated { .. }));
    assert_eq!(
        note.describe(),
        "01:30 occurs twice on 2026-11-01 in America/New_York (clocks go back): \
         fires once, at the first (01:30 EDT)"
    );
    assert_eq!(
        half_past_one.between(
            utc("2026-11-01T00:00:00Z"),
            utc("2026-11-01T23:59:00Z"),
            anchor(),
            10
        ),
        slots[..1]
    );
}

#[test]
fn it_should_not_fire_a_repeated_time_again_when_asked_during_the_second_pass() {
    // 06:10 UTC is 01:10 EST, the second pass through 01:00-02:00: 01:30 fired at 05:30 UTC.
    let half_past_one = cron_in("30 1 * * *", "America/New_York");
    assert_eq!(
        next(&half_past_one, "2026-11-01T06:10:00Z"),
        Some(utc("2026-11-02T06:30:00Z"))
    );
    let every_quarter = cron_in("*/15 * * * *", "America/New_York");
    assert_eq!(
        next(&every_quarter, "2026-11-01T06:10:00Z"),
        Some(utc("2026-11-01T07:00:00Z")) // 02:00 EST
    );
}

#[test]
fn it_should_fire_each_repeated_quarter_hour_once_across_the_autumn_change_in_paris() {
    let every_quarter = cron_in("*/15 * * * *", "Europe/Paris");
    let slots = every_quarter.between(
        utc("2026-10-24T23:30:00Z"),
        utc("2026-10-25T02:00:00Z"),
        anchor(),
        100,
    );
    assert_eq!(
        instants(&slots),
        [
            utc("2026-10-24T23:45:00Z"), // 01:45 CEST
            utc("2026-10-25T00:00:00Z"), // 02:00 CEST, the first of two
            utc("2026-10-25T00:15:00Z"),
            utc("2026-10-25T00:30:00Z"),
            utc("2026-10-25T00:45:00Z"), // 02:45 CEST
            utc("2026-10-25T02:00:00Z"), // 03:00 CET; 02:00-02:45 CET do not fire again
        ]
    );
    assert_eq!(
        slots[3].note.as_ref().map(DstNote::describe).as_deref(),
        Some(
            "02:30 occurs twice on 2026-10-25 in Europe/Paris (clocks go back): \
             fires once, at the first (02:30 CEST)"
        )
    );
    assert!(slots[0].note.is_none() && slots[5].note.is_none());
}

#[test]
fn it_should_show_a_dst_note_with_its_sentence_in_json() {
    let slot = cron_in("30 2 * * *", "Europe/Paris")
        .next_after(utc("2026-03-28T12:00:00Z"), anchor())
        .expect("a slot");
    assert_eq!(
        serde_json::to_value(&slot).expect("serializes"),
        json!({
            "at": "2026-03-29T01:00:00Z",
            "note": {
                "kind": "skipped",
                "wall_clock": "2026-03-29T02:30:00",
                "time_zone": "Europe/Paris",
                "fires_at": "2026-03-29T03:00:00+02:00",
                "description": "02:30 does not exist on 2026-03-29 in Europe/Paris \
                                (clocks go forward): fires at 03:00 CEST",
            }
        })
    );
    let plain = cron("0 0 * * *")
        .next_after(utc("2026-03-28T12:00:00Z"), anchor())
        .expect("a slot");
    assert_eq!(
        serde_json::to_value(&plain).expect("serializes"),
        json!({ "at": "2026-03-29T00:00:00Z", "note": null })
    );
}

// --- intervals and one-offs ---

#[test]
fn it_should_count_an_interval_from_the_enable_time() {
    let every_minute = Schedule::Interval { seconds: 60 };
    let enabled = utc("2026-03-02T10:00:00.250Z");
    let next = |after: &str| every_minute.next_after(utc(after), enabled).map(|s| s.at);
    assert_eq!(
        next("2026-03-02T10:00:00.250Z"),
        Some(utc("2026-03-02T10:01:00.250Z"))
    );
    assert_eq!(
        next("2026-03-02T10:05:00Z"),
        Some(utc("2026-03-02T10:05:00.250Z"))
    );
    assert_eq!(
        next("2026-03-02T10:05:00.250Z"),
        Some(utc("2026-03-02T10:06:00.250Z"))
    );
    assert_eq!(
        next("2026-03-02T10:05:00.300Z"),
        Some(utc("2026-03-02T10:06:00.250Z"))
    );
}

#[test]
fn it_should_fire_an_interval_one_period_after_enable_when_asked_before_it() {
    let hourly = Schedule::Interval { seconds: 3600 };
    let enabled = utc("2026-03-02T10:00:00Z");
    assert_eq!(
        hourly
            .next_after(utc("2026-03-01T00:00:00Z"), enabled)
            .map(|s| s.at),
        Some(utc("2026-03-02T11:00:00Z"))
    );
}

#[test]
fn it_should_find_no_slot_for_an_interval_beyond_the_representable() {
    let huge = Schedule::Interval { seconds: u64::MAX };
    assert_eq!(huge.next_after(utc("2026-03-02T10:00:00Z"), anchor()), None);
}

#[test]
fn it_should_fire_a_one_off_once_and_never_after_it() {
    let once = Schedule::from_config(&json!({ "at": "2026-03-29T09:00:00+02:00" }))
        .expect("a valid one-off");
    assert_eq!(
        next(&once, "2026-03-29T06:59:59Z"),
        Some(utc("2026-03-29T07:00:00Z"))
    );
    assert_eq!(next(&once, "2026-03-29T07:00:00Z"), None);
    assert_eq!(next(&once, "2027-01-01T00:00:00Z"), None);
    assert_eq!(
        once.upcoming(utc("2026-01-01T00:00:00Z"), anchor(), 100)
            .len(),
        1
    );
}

// --- catch-up and listings ---

#[test]
fn it_should_list_the_slots_between_two_instants_oldest_first_up_to_a_limit() {
    let every_five = cron("*/5 * * * *");
    let from = utc("2026-03-02T10:00:00Z");
    let to = utc("2026-03-02T10:30:00Z");
    // (from, to]: the slot at `from` was fired before the downtime; the one at `to` is due.
    assert_eq!(
        instants(&every_five.between(from, to, anchor(), 100)),
        [
            utc("2026-03-02T10:05:00Z"),
            utc("2026-03-02T10:10:00Z"),
            utc("2026-03-02T10:15:00Z"),
            utc("2026-03-02T10:20:00Z"),
            utc("2026-03-02T10:25:00Z"),
            utc("2026-03-02T10:30:00Z"),
        ]
    );
    assert_eq!(
        instants(&every_five.between(from, to, anchor(), 2)),
        [utc("2026-03-02T10:05:00Z"), utc("2026-03-02T10:10:00Z")]
    );
    assert!(every_five.between(to, from, anchor(), 100).is_empty());
    let hourly = Schedule::Interval { seconds: 3600 };
    assert_eq!(
        instants(&hourly.between(from, utc("2026-03-02T13:00:00Z"), from, 100)),
        [
            utc("2026-03-02T11:00:00Z"),
            utc("2026-03-02T12:00:00Z"),
            utc("2026-03-02T13:00:00Z"),
        ]
    );
}

#[test]
fn it_should_list_upcoming_slots_strictly_increasing() {
    let after = utc("2026-03-28T00:00:00Z");
    let schedules = [
        cron("* * * * *"),
        cron_in("*/7 1-3 * * *", "Europe/Paris"),
        cron_in("0,30 * 25-31 3,10 SUN", "Europe/Paris"),
        cron_in("*/10 0-3 * * *", "America/New_York"),
        Schedule::Interval { seconds: 45 },
    ];
    for schedule in &schedules {
        let slots = schedule.upcoming(after, anchor(), 100);
        assert_eq!(slots.len(), 100, "{schedule:?}");
        assert!(slots[0].at > after);
        for pair in slots.windows(2) {
            assert!(pair[0].at < pair[1].at, "{schedule:?}: {pair:?}");
        }
    }
}
