//! `Retry-After` (RFC 9110 §10.2.3): how long a target asks us to wait, as delta-seconds or as an
//! HTTP-date. Capping what a target may ask for is the retry policy's business, not the parser's.

use std::time::{Duration, SystemTime};

/// The wait a `Retry-After` value asks for, measured from `now`; `None` when it is neither form.
/// A date already past asks for no wait at all.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    // `u64::from_str` would also take `+7`, which delta-seconds (`1*DIGIT`) does not allow.
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        // Too many digits for a u64 is still "a very long time"; the policy caps it.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    // httpdate reads IMF-fixdate and the two obsolete forms recipients must still accept.
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sun, 06 Nov 1994 08:49:37 GMT, the date RFC 9110's examples use.
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777)
    }

    #[test]
    fn it_should_read_delta_seconds() {
        assert_eq!(parse_retry_after("7", now()), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(" 120 ", now()),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("0", now()), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now()),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn it_should_read_an_http_date_in_any_of_its_three_forms() {
        let later = Some(Duration::from_secs(90));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:51:07 GMT", now()),
            later
        );
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:51:07 GMT", now()),
            later
        );
        assert_eq!(parse_retry_after("Sun Nov  6 08:51:07 1994", now()), later);
    }

    #[test]
    fn it_should_ask_for_no_wait_when_the_date_has_passed() {
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn it_should_ignore_anything_else() {
        for value in ["", "soon", "-5", "+5", "1.5", "7 s", "2024-01-01T00:00:00Z"] {
            assert_eq!(parse_retry_after(value, now()), None, "{value:?}");
        }
    }
}
