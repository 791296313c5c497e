//! Providers, one folder each: everything the engine knows about Stripe, GitHub, Typeform... in
//! the place a reader looks for it. A provider is found by its [`ProviderId`], never by comparing
//! strings in shared code.
//!
//! # Adding a provider
//! Write its folder (a `mod.rs` with a unit struct implementing [`Provider`], and whatever parts it
//! needs: `catalogue.rs` for its triggers, `config.rs` for its typed config, `inbound.rs` for its
//! deliveries...), then add one line to the `providers!` list below. The list declares the
//! module, the [`ProviderId`] variant and its id; the [`Provider`] trait's required methods name
//! everything else a provider must say, so the compiler points at what is missing.
//!
//! # Layout
//! - one folder per provider;
//! - [`schema`]: config schema fragments the providers share (a signing secret, a polling
//!   frequency);
//! - [`api_client`]: what the clients of providers' APIs share (bounds, bounded reads);
//! - [`config`]: typed config pieces they share, and decoding a stored config into a provider's
//!   struct.

pub mod api_client;
pub mod config;
pub mod schema;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::catalogue::{ConfigError, TriggerSpec};
use crate::registration::WebhookRegistration;
use crate::webhooks::inbound::{Refusal, Target, Verdict};
use crate::webhooks::signatures::Headers;

/// Declares the provider modules, the [`ProviderId`] enum with one variant per provider, and
/// the id each is known by in the API and in stored triggers: naming a provider once does all.
macro_rules! providers {
    ($($module:ident: $variant:ident = $id:literal => $provider:path),* $(,)?) => {
        $(pub mod $module;)*

        /// A provider the engine knows, by the id triggers and connections name it with.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ProviderId {
            $($variant),*
        }

        impl ProviderId {
            /// Every provider, in the order of their ids.
            pub const ALL: &'static [ProviderId] = &[$(ProviderId::$variant),*];

            /// The id as the API and stored triggers spell it, e.g. `stripe`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ProviderId::$variant => $id),*
                }
            }

            /// What the provider supplies.
            pub fn provider(self) -> &'static dyn Provider {
                match self {
                    $(ProviderId::$variant => &$provider),*
                }
            }
        }

        impl FromStr for ProviderId {
            type Err = UnknownProvider;

            fn from_str(id: &str) -> Result<Self, Self::Err> {
                match id {
                    $($id => Ok(ProviderId::$variant),)*
                    _ => Err(UnknownProvider(id.to_owned())),
                }
            }
        }
    };
}

providers![
    github: Github = "github" => github::GitHub,
    http: Http = "http" => http::Http,
    rss: Rss = "rss" => rss::Rss,
    schedule: Schedule = "schedule" => schedule::Schedule,
    slack: Slack = "slack" => slack::Slack,
    stripe: Stripe = "stripe" => stripe::Stripe,
    typeform: Typeform = "typeform" => typeform::Typeform,
    webhook: Webhook = "webhook" => webhook::Webhook,
];

/// A provider id the engine does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider `{0}`")]
pub struct UnknownProvider(pub String);

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ProviderId {
    /// The provider of a stored trigger or connection; `None` for an id this engine does not
    /// know (a trigger recorded by a newer engine, say), which every caller treats as "not ours".
    pub fn of(id: &str) -> Option<ProviderId> {
        id.parse().ok()
    }
}

/// Verifies a delivery to a trigger's own URL as its provider signs it, and judges what it
/// fires. Pure: headers, raw body, the trigger and the time in, a verdict out.
pub type JudgeDelivery =
    fn(&Target<'_>, &dyn Headers, &[u8], DateTime<Utc>) -> Result<Verdict, Refusal>;

/// Where a polled provider's trigger names its source: the URL a tenant aims the engine at,
/// guarded when the trigger is created and at every poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolledSource {
    /// The `trigger_config` field holding the URL (`feed_url`, `url`).
    pub url_field: &'static str,
}

/// What a provider supplies. Each required method is a question every provider must answer,
/// `None` or an empty list included, so a new provider cannot forget one.
pub trait Provider: Sync {
    /// Its native triggers, as the catalogue lists them.
    fn triggers(&self) -> Vec<TriggerSpec>;

    /// Checks a `trigger_config` its schema accepted by decoding it as the provider will read
    /// it: what a schema cannot say (a cron expression's values, say) is refused here.
    fn check_config(&self, trigger_id: &str, config: &Value) -> Result<(), ConfigError>;

    /// The credentials its connections must hold (non-empty strings), because the engine acts
    /// with them; empty when the engine uses none of them itself.
    fn connection_credentials(&self) -> &'static [&'static str];

    /// How deliveries to one of its triggers' URLs are verified and judged; `None` when it
    /// delivers nothing (polled and scheduled providers).
    fn inbound(&self) -> Option<JudgeDelivery>;

    /// Where its polled triggers name their source; `None` when it is not polled.
    fn polled_source(&self) -> Option<PolledSource>;

    /// How the engine registers its triggers' webhooks at the provider; `None` when the user
    /// wires them, or there is nothing to wire.
    fn registration(&self) -> Option<&'static dyn WebhookRegistration>;
}
