//! Rate limits: `POST /token` per (client address, username), to slow password guessing, the
//! authenticated API per organisation, so one tenant cannot starve the others, and webhook
//! deliveries per trigger, so one runaway sender cannot flood the store.
//!
//! Both are keyed GCRA limiters (`governor`): a key may spend its burst back to back, then one
//! request per period. A refused request is answered 429 with `Retry-After` before it does any work,
//! so it changes nothing. Limits live in each process's memory: N engine processes behind a load
//! balancer allow up to N times the configured rates.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::error::ApiError;
use crate::config::ServeConfig;

/// How often the limiters forget idle keys. A key's state is back to "fresh" one burst-refill
/// after its last request (30 s for the default token quota, 2 s for the API's), and a fresh key is
/// dropped without changing any answer; so each map holds about the keys seen in the last minute or
/// two, whatever the number of usernames or addresses ever seen.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(60);

/// Longest username kept in a token-limiter key: RFC 5321's 254, the longest email that can be an
/// account. Longer names all fail the grant anyway; cutting them keeps a key small whatever a
/// client sends.
const MAX_USERNAME: usize = 254;

/// The engine's limiters. Cheap to clone: clones share state.
#[derive(Clone)]
pub struct RateLimits {
    token: Arc<DefaultKeyedRateLimiter<(IpAddr, String)>>,
    api: Arc<DefaultKeyedRateLimiter<Uuid>>,
    webhook: Arc<DefaultKeyedRateLimiter<Uuid>>,
    clock: DefaultClock,
}

impl RateLimits {
    pub fn new(config: &ServeConfig) -> Self {
        Self {
            token: Arc::new(DefaultKeyedRateLimiter::keyed(
                Quota::per_minute(config.token_rate_per_minute).allow_burst(config.token_burst),
            )),
            api: Arc::new(DefaultKeyedRateLimiter::keyed(
                Quota::per_second(config.api_rate_per_second).allow_burst(config.api_burst),
            )),
            webhook: Arc::new(DefaultKeyedRateLimiter::keyed(
                Quota::per_second(config.webhook_rate_per_second).allow_burst(config.webhook_burst),
            )),
            clock: DefaultClock::default(),
        }
    }

    /// Counts a password-grant attempt for `username` from `client`. Usernames are compared as
    /// the identity store compares emails (trimmed, lower-cased), so changing the case of an
    /// address does not buy more guesses.
    pub fn check_token(&self, client: IpAddr, username: &str) -> Result<(), ApiError> {
        let username: String = username.trim().chars().take(MAX_USERNAME).collect();
        let key = (client_key(client), username.to_lowercase());
        self.token
            .check_key(&key)
            .map_err(|refused| refusal(refused.wait_time_from(self.clock.now())))
    }

    /// Counts an authenticated request of organisation `org_id`.
    pub fn check_org(&self, org_id: Uuid) -> Result<(), ApiError> {
        self.api
            .check_key(&org_id)
            .map_err(|refused| refusal(refused.wait_time_from(self.clock.now())))
    }

    /// Counts a webhook delivery to trigger `project_trigger_id`.
    pub fn check_webhook(&self, project_trigger_id: Uuid) -> Result<(), ApiError> {
        self.webhook
            .check_key(&project_trigger_id)
            .map_err(|refused| refusal(refused.wait_time_from(self.clock.now())))
    }

    /// Forgets idle keys every [`FORGET_IDLE_EVERY`] until `stop` is cancelled. Keyed limiters
    /// otherwise keep one entry per key ever seen, and a client chooses the usernames it sends.
    pub fn spawn_forgetting(&self, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let limits = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(FORGET_IDLE_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = every.tick() => {}
                }
                limits.token.retain_recent();
                limits.token.shrink_to_fit();
                limits.api.retain_recent();
                limits.api.shrink_to_fit();
                limits.webhook.retain_recent();
                limits.webhook.shrink_to_fit();
            }
        })
    }
}

fn refusal(wait: Duration) -> ApiError {
    ApiError::TooManyRequests {
        retry_after_secs: retry_after_secs(wait),
    }
}

/// `Retry-After` is whole seconds (RFC 9110 §10.2.3): round up, so a client that waits that long
/// is let through, and never say 0, which invites an immediate retry.
fn retry_after_secs(wait: Duration) -> u64 {
    let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    whole.max(1)
}

/// The address a client is counted under. One IPv6 host usually holds a whole /64 and can pick any
/// address in it, so IPv6 clients are counted per /64; an IPv4-mapped IPv6 address is its IPv4.
fn client_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn per(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    #[test]
    fn it_should_round_retry_after_up_to_a_whole_second_of_at_least_one() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(6)), 6);
        assert_eq!(retry_after_secs(Duration::from_millis(6_001)), 7);
    }

    #[test]
    fn it_should_count_an_ipv6_client_by_its_64_prefix() {
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(one), client_key(other));
        assert_ne!(client_key(one), client_key(elsewhere));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn it_should_limit_a_username_whatever_its_case() {
        let config = ServeConfig {
            token_rate_per_minute: per(1),
            token_burst: per(1),
            ..test_config()
        };
        let limits = RateLimits::new(&config);
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(limits.check_token(client, "Alice@Example.com").is_ok());
        assert!(matches!(
            limits.check_token(client, " alice@example.com"),
            Err(ApiError::TooManyRequests { retry_after_secs }) if (1..=60).contains(&retry_after_secs)
        ));
        assert!(limits.check_token(client, "bob@example.com").is_ok());
    }

    fn test_config() -> ServeConfig {
        ServeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            token_ttl_seconds: 3600,
            admin_email: None,
            admin_password: None,
            token_rate_per_minute: per(10),
            token_burst: per(5),
            api_rate_per_second: per(100),
            api_burst: per(200),
            ready_max_lag: 1000,
            encryption_key: None,
            public_url: None,
            typeform_api_url: "https://api.typeform.com".parse().unwrap(),
            stripe_api_url: "https://api.stripe.com".parse().unwrap(),
            github_api_url: "https://api.github.com".parse().unwrap(),
            ..ServeConfig::from_env()
        }
    }
}
