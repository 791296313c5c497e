//! A polled trigger's source: its config read once per poll into its provider's typed struct
//! ([`RssConfig`], [`HttpConfig`]) rather than looked up field by field.

use aggregates::TriggerRecord;
use chrono::{DateTime, Utc};

use super::json::Fields;
use super::{feed, SourceError};
use crate::providers::config::{decode, PollingFrequency};
use crate::providers::http::HttpConfig;
use crate::providers::rss::RssConfig;
use crate::providers::ProviderId;

/// What a polled trigger polls.
pub(super) enum Source {
    /// An RSS or Atom feed.
    Feed(RssConfig),
    /// A JSON endpoint listing records.
    Records(HttpConfig),
}

impl Source {
    pub(super) fn of(record: &TriggerRecord) -> Result<Source, SourceError> {
        let config = record.trigger_config.as_ref();
        let unreadable = |error: crate::catalogue::ConfigError| SourceError(error.to_string());
        match ProviderId::of(&record.provider_id) {
            Some(ProviderId::Rss) => decode(config).map(Source::Feed).map_err(unreadable),
            Some(ProviderId::Http) => decode(config).map(Source::Records).map_err(unreadable),
            _ => Err(SourceError(format!(
                "`{}` is not a polled provider",
                record.provider_id
            ))),
        }
    }

    /// The URL of the first page.
    pub(super) fn url(&self) -> &str {
        match self {
            Source::Feed(config) => &config.feed_url,
            Source::Records(config) => &config.url,
        }
    }

    /// Items published after this fire on the first poll of an enabling (a feed's `since`).
    pub(super) fn since(&self) -> Option<DateTime<Utc>> {
        match self {
            Source::Feed(config) => config.since.as_deref().and_then(feed::parse_date),
            Source::Records(_) => None,
        }
    }

    pub(super) fn polling_frequency(&self) -> Option<&PollingFrequency> {
        match self {
            Source::Feed(config) => config.polling_frequency.as_ref(),
            Source::Records(config) => config.polling_frequency.as_ref(),
        }
    }

    /// Where a JSON endpoint's records and their ids are; `None` for a feed.
    pub(super) fn fields(&self) -> Option<Fields<'_>> {
        match self {
            Source::Feed(_) => None,
            Source::Records(config) => Some(Fields {
                items_path: config.items_path.as_deref().unwrap_or(""),
                id_field: &config.id_field,
                timestamp_field: config.timestamp_field.as_deref(),
            }),
        }
    }

    /// The header a JSON endpoint's connection credential goes in, when the config names one.
    pub(super) fn header_name(&self) -> Option<&str> {
        match self {
            Source::Feed(_) => None,
            Source::Records(config) => config.header_name.as_deref(),
        }
    }
}
