//! Delivery: handing one attempt of a run to the executor, and deciding when to try again.
//!
//! The dispatcher claims a run's next attempt from the store, calls [`HttpExecutor::deliver`], and
//! records the [`Outcome`]: success, a retry at the delay [`RetryPolicy::next_delay`] picks, or a
//! dead letter. Nothing here touches the store or sleeps, so each piece is tested on its own.
//!
//! # Layout
//! - [`http`]: the executor client: a signed POST per attempt, its response read as an [`Outcome`].
//! - [`template`]: the executor URL, with the run's project id substituted into it.
//! - [`retry_after`]: reading a target's `Retry-After` header.
//! - [`backoff`]: exponential backoff with full jitter, and when to give up.

pub mod backoff;
pub mod http;
pub mod retry_after;
pub mod template;

use std::time::Duration;

use aggregates::run::Firing;
use uuid::Uuid;

pub use backoff::RetryPolicy;
pub use http::{HttpExecutor, HttpExecutorConfig};

/// One attempt at running a firing: what the dispatcher hands to an executor.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRequest {
    pub run_id: Uuid,
    /// 1 for the first attempt; the run aggregate numbers them.
    pub attempt: u32,
    pub firing: Firing,
}

/// How an attempt ended, as the dispatcher needs it: done, worth trying again, or never going to
/// work. The error strings go into the run's history, so they are short, name what failed, and
/// never quote the payload, the secret or the executor URL (which may carry credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The executor answered 2xx.
    Delivered,
    /// A failure that may pass: the network, a timeout, 5xx, 408 or 429.
    Retryable {
        error: String,
        /// What the target asked for in `Retry-After`, if anything.
        retry_after: Option<Duration>,
    },
    /// A failure that trying again will not mend: any other 4xx, or a 3xx (redirects are not
    /// followed, so the signed request never goes somewhere the operator did not configure).
    Rejected { error: String },
}

/// What is wrong with an executor's configuration (refused by [`HttpExecutor::new`]), or with a
/// run's project id in its URL (which [`HttpExecutor::deliver`] turns into a rejection). Messages
/// never quote the secret or the URL.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("executor URL is not an absolute URL once `{{project_id}}` is substituted: {0}")]
    InvalidUrl(String),
    #[error("executor URL must be http or https, not `{0}`")]
    UnsupportedScheme(String),
    #[error("executor URL has a `{{` or `}}` other than the `{{project_id}}` placeholder")]
    UnknownPlaceholder,
    #[error("a project id of `.` or `..` would change the executor URL's path")]
    DotSegmentProjectId,
    #[error("executor secret must be a Standard Webhooks secret: `whsec_` then base64")]
    InvalidSecret,
    #[error("executor timeout must be more than zero")]
    ZeroTimeout,
    #[error("building the executor's HTTP client")]
    Client(#[source] reqwest::Error),
}
