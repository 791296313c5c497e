//! When to try a failed run again: exponential backoff with "full jitter" (AWS Architecture Blog,
//! "Exponential Backoff And Jitter"), so runs that failed together during an executor outage do not
//! all come back together when it recovers; and when to stop and dead-letter instead.

use std::time::Duration;

use rand::Rng;

/// The longest `Retry-After` obeyed. A target may ask for more, but a hostile or mistaken header
/// must not park a run for a year; an hour covers any maintenance window a 503 announces.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60 * 60);

/// How often and how patiently a run is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included, before the run is dead-lettered. The default 8 with a
    /// 5 s base waits at most 5 + 10 + ... + 320 = 635 s over its 7 retries (about half that on
    /// average, given the jitter): long enough to ride out an executor restart or a rolling deploy,
    /// short enough that a real outage reaches the dead letters, where a person retries, within
    /// minutes.
    pub max_attempts: u32,
    /// The ceiling of the first retry's delay; each later retry doubles it.
    pub base_delay: Duration,
    /// No ceiling grows past this. 10 minutes: the default policy never reaches it, but raising
    /// `max_attempts` keeps adding retries ten minutes apart rather than days apart.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(10 * 60),
        }
    }
}

impl RetryPolicy {
    /// How long to wait after attempt `attempt` (1 for the first) failed, or `None` when it was the
    /// last and the run is dead-lettered. The delay is drawn uniformly from zero to
    /// [`ceiling`](Self::ceiling), but is never shorter than the target's `Retry-After` (up to
    /// [`MAX_RETRY_AFTER`]): the target knows when it will be back better than a dice roll does.
    pub fn next_delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let jittered = rng.gen_range(Duration::ZERO..=self.ceiling(attempt));
        let floor = retry_after.unwrap_or_default().min(MAX_RETRY_AFTER);
        Some(jittered.max(floor))
    }

    /// The longest delay after attempt `attempt`: `min(max_delay, base_delay * 2^(attempt - 1))`,
    /// which saturates at `max_delay` rather than overflowing however high `attempt` goes.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        2u32.checked_pow(attempt.saturating_sub(1))
            .and_then(|factor| self.base_delay.checked_mul(factor))
            .map_or(self.max_delay, |delay| delay.min(self.max_delay))
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    const SAMPLES: usize = 2_000;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 12,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }

    fn rng() -> StdRng {
        StdRng::seed_from_u64(4)
    }

    fn secs(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    /// Every delay drawn after `attempt`.
    fn samples(policy: &RetryPolicy, attempt: u32, retry_after: Option<Duration>) -> Vec<Duration> {
        let mut rng = rng();
        (0..SAMPLES)
            .map(|_| policy.next_delay(attempt, retry_after, &mut rng).unwrap())
            .collect()
    }

    #[test]
    fn it_should_double_the_ceiling_each_attempt_up_to_the_cap() {
        let ceilings: Vec<u64> = (1..=8)
            .map(|attempt| policy().ceiling(attempt).as_secs())
            .collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(policy().ceiling(0), secs(1));
        assert_eq!(policy().ceiling(40), secs(60));
        assert_eq!(policy().ceiling(u32::MAX), secs(60));
        let huge = RetryPolicy {
            base_delay: Duration::MAX,
            max_delay: Duration::MAX,
            ..policy()
        };
        assert_eq!(huge.ceiling(3), Duration::MAX);
    }

    #[test]
    fn it_should_draw_delays_across_the_whole_range_up_to_the_ceiling() {
        for attempt in 1..policy().max_attempts {
            let ceiling = policy().ceiling(attempt);
            let delays = samples(&policy(), attempt, None);
            assert!(delays.iter().all(|delay| *delay <= ceiling), "{attempt}");
            // Full jitter, not "equal jitter": short waits are as likely as long ones.
            assert!(
                delays.iter().any(|delay| *delay < ceiling / 10),
                "{attempt}"
            );
            assert!(
                delays.iter().any(|delay| *delay > ceiling * 9 / 10),
                "{attempt}"
            );
        }
    }

    #[test]
    fn it_should_wait_longer_on_average_as_attempts_grow() {
        let mean =
            |attempt| samples(&policy(), attempt, None).iter().sum::<Duration>() / SAMPLES as u32;
        let means: Vec<Duration> = (1..=7).map(mean).collect();
        assert!(means.windows(2).all(|pair| pair[0] < pair[1]), "{means:?}");
    }

    #[test]
    fn it_should_wait_at_least_as_long_as_the_target_asked() {
        assert!(samples(&policy(), 1, Some(secs(7)))
            .iter()
            .all(|delay| *delay == secs(7)));
        let floor = Duration::from_millis(500);
        let delays = samples(&policy(), 3, Some(floor));
        assert!(delays.iter().all(|delay| *delay >= floor));
        assert!(delays.iter().any(|delay| *delay > secs(2)));
    }

    #[test]
    fn it_should_cap_what_the_target_may_ask_for() {
        let year = Some(secs(365 * 24 * 60 * 60));
        assert!(samples(&policy(), 2, year)
            .iter()
            .all(|delay| *delay == MAX_RETRY_AFTER));
    }

    #[test]
    fn it_should_dead_letter_after_the_last_attempt() {
        let policy = policy();
        let mut rng = rng();
        assert!(policy.next_delay(11, None, &mut rng).is_some());
        assert_eq!(policy.next_delay(12, None, &mut rng), None);
        assert_eq!(policy.next_delay(13, Some(secs(1)), &mut rng), None);
        let once = RetryPolicy {
            max_attempts: 1,
            ..policy
        };
        assert_eq!(once.next_delay(1, Some(secs(1)), &mut rng), None);
    }

    #[test]
    fn it_should_default_to_eight_attempts_within_about_ten_minutes() {
        let policy = RetryPolicy::default();
        let mut rng = rng();
        assert!(policy.next_delay(7, None, &mut rng).is_some());
        assert_eq!(policy.next_delay(8, None, &mut rng), None);
        let worst: Duration = (1..8).map(|attempt| policy.ceiling(attempt)).sum();
        assert_eq!(worst, secs(635));
    }
}
