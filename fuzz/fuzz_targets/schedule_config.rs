//! A schedule trigger's `trigger_config` (aggregates/src/schedule.rs, `Schedule::from_config`),
//! as a client sends it in JSON, and the next slots of whatever it accepts.
#![no_main]

use aggregates::Schedule;
use chrono::DateTime;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(config) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(schedule) = Schedule::from_config(&config) else {
        return;
    };
    // A fixed "now" and enable time: the config is what is fuzzed here (`cron` fuzzes instants).
    let now = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
    let mut previous = now;
    for slot in schedule.upcoming(now, now, 4) {
        assert!(slot.at > previous, "{slot:?} is not after {previous}");
        previous = slot.at;
    }
});
