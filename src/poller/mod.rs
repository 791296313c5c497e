//! The poller: polls `rss/on_new_item` feeds and `http/on_new_records` JSON endpoints, and fires
//! one run per new item.
//!
//! **Fire and advance in one commit.** A poll's new runs and its cursor move are recorded by
//! one append of several streams (`Commands::execute_with`, `Store::append_together`): the
//! trigger's `CursorAdvanced` and each new item's `RunRequested` (run id derived from (trigger,
//! item id), `RunCause::PolledItem`) commit together or not at all. A crash before the commit
//! leaves both as they were, so the next poll finds the same items new and fires them (no
//! loss); after it, the cursor has passed them (no repeat). A cursor that moved meanwhile
//! (`CursorConflict`: another process polled the trigger first) fails the whole commit, so the
//! poll records nothing; the next one reads the new cursor. An item whose run exists already
//! (fired under an earlier enabling, when `since` replays it) is left out rather than fired again.
//!
//! **Watermark.** The cursor holds the newest item seen (its timestamp and id), never the time of
//! the poll, plus the ids seen in an overlap window below it ([`cursor`]). The first poll after
//! enabling records the cursor at the newest item and fires nothing, unless the config has
//! `since`: then items published after `since` fire. A new item the trigger's filter refuses
//! ([`crate::filter`]) is not fired, and the cursor moves past it all the same.
//!
//! **One poll at a time.** Every trigger this process owns (by [`Membership`], like schedules)
//! has one task that polls, sleeps `polling_frequency` (at least `min_interval`) and polls
//! again; a poll asked for over HTTP takes the same per-trigger lock. Two processes that both
//! think they own a trigger for a moment are kept apart by the cursor's `seen` check and the run
//! ids.
//!
//! **Failures** (the source unreachable, answering an error, or something unreadable) are
//! recorded in the cursor's `poll_status` (consecutive failures, last error), the next poll waits
//! twice as long each time (up to [`MAX_BACKOFF`]), and after `max_failures` in a row the trigger
//! disables itself with `AutoDisableTrigger`, whose event records the reason.
//!
//! # Layout
//! - [`cursor`]: the cursor's shape and which items are new.
//! - [`feed`]: RSS and Atom feeds into items.
//! - [`json`]: JSON records into items, and the next page.
//! - this module: following the triggers, polling, firing, advancing.

pub mod cursor;
pub mod feed;
pub mod json;
mod source;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aggregates::event::Stamp;
use aggregates::{
    Actor, Firing, Run, RunCause, Trigger, TriggerAction, TriggerCommand, TriggerError,
    TriggerRecord, TriggerStatus,
};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::commands::{CommandError, Commands};
use crate::connections::Connections;
use crate::filter::{Filters, Outcome};
use crate::outbound::{self, Guard, ReadError};
use crate::projector::ProjectionHandle;
use crate::providers::config::PollingFrequency;
use crate::providers::ProviderId;
use crate::runs::{RunCommandError, Runs};
use crate::scheduler::Membership;
use crate::store::{Store, StoreError, StreamAppend};
pub use cursor::{Cursor, PollStatus};
use source::Source;

/// The providers whose triggers are polled.
pub fn polled_providers() -> impl Iterator<Item = ProviderId> {
    ProviderId::ALL
        .iter()
        .copied()
        .filter(|id| id.provider().polled_source().is_some())
}

/// `polling_frequency` when a trigger's config has none: the catalogue's default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// The longest wait between two polls of a failing source: an hour keeps probing a source
/// that is down for a day without hammering it.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60 * 60);

/// How long one page's request may take, body included; how long its connect may take; and the
/// most a response may hold (read as a stream and abandoned past it, never buffered whole).
/// Thirty seconds and ten MiB are far above what a feed or a page of records needs.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// The most pages of a source one poll reads before stopping at what it has: a source
/// whose pages never reach the cursor (or a loop of `next` links) cannot hold a poll forever.
pub const MAX_PAGES: usize = 20;

/// The longest the loop goes without looking at the read model again.
const IDLE: Duration = Duration::from_secs(1);

/// One thing a source lists: its id, its time if it has one, and what a run receives.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: String,
    pub timestamp: Option<DateTime<Utc>>,
    pub payload: Value,
}

impl Item {
    /// An item as a source listed it, each U+0000 in its id and payload replaced: the store
    /// cannot hold that character, and a source's item is kept rather than refused for it
    /// (see [`crate::nul`]).
    pub fn new(id: String, timestamp: Option<DateTime<Utc>>, mut payload: Value) -> Self {
        crate::nul::replace(&mut payload);
        Self {
            id: id.replace('\0', "\u{FFFD}"),
            timestamp,
            payload,
        }
    }
}

/// The poller's policy, from `ServeConfig`.
#[derive(Debug, Clone, Copy)]
pub struct PollSettings {
    /// The floor of every trigger's `polling_frequency` (`TRIGGER_ENGINE_MIN_POLLING_MS`).
    pub min_interval: Duration,
    /// Failures in a row after which a trigger disables itself (`TRIGGER_ENGINE_POLL_MAX_FAILURES`).
    pub max_failures: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The trigger is not an enabled polling trigger (any more).
    #[error("not an enabled polling trigger")]
    NotPollable,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Run(#[from] RunCommandError),
}

/// What the source did wrong: recorded in `poll_status` and counted towards auto-disable.
#[derive(Debug)]
struct SourceError(String);

/// A poll decided but not yet carried out: the cursor it read, the items to fire (oldest first)
/// and the cursor to move to.
#[derive(Debug, Clone)]
pub struct Batch {
    pub record: TriggerRecord,
    pub seen: Option<Value>,
    pub new: Vec<Item>,
    pub next: Cursor,
}

/// What a poll did.
#[derive(Debug, Clone, PartialEq)]
pub enum Polled {
    /// The source answered: `fired` new runs were recorded (duplicates not counted) and the
    /// cursor moved, unless another poll had moved it first (`conflict`).
    Succeeded { fired: usize, conflict: bool },
    /// The source failed, for the `consecutive_failures`-th time in a row; `disabled` when that
    /// disabled the trigger.
    Failed {
        error: String,
        consecutive_failures: u32,
        disabled: bool,
    },
}

/// Polls triggers: shared by the background loop and the HTTP "poll now" endpoint.
#[derive(Clone)]
pub struct Poller {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    commands: Commands,
    connections: Connections,
    /// Triggers' filters, shared with the webhook routes: an item a filter refuses is not fired.
    filters: Filters,
    /// Guarded: every source, page link and redirect is a tenant's choice ([`outbound`]).
    client: reqwest::Client,
    guard: Guard,
    settings: PollSettings,
    /// One lock per trigger: one poll at a time per trigger in this process.
    locks: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
    request_id: String,
}

impl Poller {
    pub fn new(
        store: Arc<Store>,
        commands: Commands,
        connections: Connections,
        filters: Filters,
        settings: PollSettings,
        guard: Guard,
        node_id: &str,
    ) -> anyhow::Result<Self> {
        let client = guard.client(REQUEST_TIMEOUT, CONNECT_TIMEOUT)?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                commands,
                connections,
                filters,
                client,
                guard,
                settings,
                locks: Mutex::new(HashMap::new()),
                request_id: format!("poller:{node_id}"),
            }),
        })
    }

    pub fn settings(&self) -> PollSettings {
        self.inner.settings
    }

    /// The outbound guard this poller's requests pass, for judging a source URL before a
    /// trigger is created.
    pub fn guard(&self) -> &Guard {
        &self.inner.guard
    }

    /// Polls `id` once now (waiting for a poll under way to finish first): fetches, fires the
    /// new items, advances the cursor; on a source failure records it, and disables the trigger
    /// after too many.
    #[tracing::instrument(skip(self), fields(trigger_id = %id))]
    pub async fn poll(&self, id: Uuid) -> Result<Polled, PollError> {
        let lock = self.lock_of(id);
        let _polling = lock.lock().await;
        match self.plan_unlocked(id).await? {
            Ok(batch) => Ok(match self.commit(id, batch).await? {
                Some(fired) => Polled::Succeeded {
                    fired,
                    conflict: false,
                },
                None => Polled::Succeeded {
                    fired: 0,
                    conflict: true,
                },
            }),
            Err(SourceError(error)) => self.record_failure(id, error).await,
        }
    }

    /// The first half of a poll: reads the trigger and its source and decides what to fire and
    /// where the cursor goes. With [`commit`](Self::commit) it makes [`poll`](Self::poll);
    /// apart, it lets a test stop where a crash would, or commit a stale batch.
    pub async fn plan(&self, id: Uuid) -> Result<Result<Batch, String>, PollError> {
        let lock = self.lock_of(id);
        let _polling = lock.lock().await;
        Ok(self.plan_unlocked(id).await?.map_err(|SourceError(e)| e))
    }

    async fn plan_unlocked(&self, id: Uuid) -> Result<Result<Batch, SourceError>, PollError> {
        let record = self.current(id).await?;
        let source = match Source::of(&record) {
            Ok(source) => source,
            Err(error) => return Ok(Err(error)),
        };
        let stored = Cursor::read(record.cursor_data.as_ref());
        // A cursor of an earlier enabling (or none) means this is the first poll: start afresh.
        let carried = stored
            .filter(|cursor| cursor.enabled_at.is_none() || cursor.enabled_at == record.enabled_at);
        let first = carried.is_none();
        let since = source.since();
        let mut cursor = carried.unwrap_or_else(|| Cursor {
            enabled_at: record.enabled_at,
            ..Cursor::default()
        });
        if first {
            // Keep what the failures so far say.
            if let Some(stored) = Cursor::read(record.cursor_data.as_ref()) {
                cursor.poll_status = stored.poll_status;
            }
        }
        let is_new = |cursor: &Cursor, item: &Item| match (first, since) {
            (true, None) => false,
            (true, Some(since)) => item.timestamp.is_some_and(|at| at > since),
            (false, _) => cursor.is_new(item),
        };
        let observed = match self.fetch(&record, &source, &cursor, &is_new).await {
            Ok(observed) => observed,
            Err(error) => return Ok(Err(error)),
        };
        let new: Vec<Item> = if first {
            observed
                .iter()
                .filter(|item| is_new(&cursor, item))
                .cloned()
                .collect()
        } else {
            cursor.new_among(&observed)
        };
        let mut new = self.wanted(&record, new).await;
        // Oldest first: sources list newest first; with times, by time.
        new.reverse();
        if new.iter().all(|item| item.timestamp.is_some()) {
            new.sort_by_key(|item| item.timestamp);
        }
        cursor.poll_status.consecutive_failures = 0;
        let next = cursor.after(&observed);
        Ok(Ok(Batch {
            seen: record.cursor_data.clone(),
            record,
            new,
            next,
        }))
    }

    /// The items `record`'s filter lets through, all of them when it has none. An item it
    /// refuses or fails on is passed over for good: the cursor moves past it like any other.
    /// Items have no event type of their own, so `event_type` is `null`.
    async fn wanted(&self, record: &TriggerRecord, items: Vec<Item>) -> Vec<Item> {
        let mut wanted = Vec::with_capacity(items.len());
        for item in items {
            let outcome = self
                .inner
                .filters
                .judge(
                    record.project_trigger_id,
                    record.trigger_config.as_ref(),
                    &item.payload,
                    None,
                )
                .await;
            match outcome {
                Outcome::Fire => wanted.push(item),
                outcome => tracing::info!(trigger_id = %record.project_trigger_id,
                    item = %item.id, %outcome, "polled item not fired"),
            }
        }
        wanted
    }

    /// Records, in one commit, a run for each new item of `batch` (oldest first) and the
    /// cursor's move to `batch.next`. Returns how many runs were recorded, or `None` when another
    /// poll had moved the cursor first: then nothing is recorded, and the next poll reads it.
    pub async fn commit(&self, id: Uuid, batch: Batch) -> Result<Option<usize>, PollError> {
        let now = Utc::now();
        let mut requested = HashSet::new();
        let mut runs = Vec::with_capacity(batch.new.len());
        for item in &batch.new {
            let cause = RunCause::PolledItem {
                id: item.id.clone(),
            };
            let firing = Firing::of(&batch.record, cause, item.payload.clone(), now);
            let (run_id, append) = Runs::request(
                firing,
                stamp(now),
                batch.record.paused,
                &self.inner.request_id,
            )?;
            // A source listing an item twice fires it once.
            if requested.insert(run_id) {
                runs.push((run_id, append));
            }
        }
        let ids: Vec<Uuid> = runs.iter().map(|(run_id, _)| *run_id).collect();
        let existing = self.inner.store.existing::<Run>(&ids).await?;
        let runs: Vec<StreamAppend> = runs
            .into_iter()
            .filter(|(run_id, _)| !existing.contains(run_id))
            .map(|(_, append)| append)
            .collect();
        let command = TriggerCommand::new(
            now,
            Actor::system("poller"),
            TriggerAction::AdvanceCursor {
                seen: batch.seen,
                next: batch.next.to_value(),
            },
        );
        match self
            .inner
            .commands
            .execute_with(id, command, &self.inner.request_id, &runs)
            .await
        {
            Ok(_) => Ok(Some(runs.len())),
            Err(CommandError::Rejected(TriggerError::CursorConflict { .. })) => {
                tracing::info!(trigger_id = %id, "cursor moved under this poll; the next poll reads it");
                Ok(None)
            }
            Err(error) => Err(error.into()),
        }
    }

    async fn record_failure(&self, id: Uuid, error: String) -> Result<Polled, PollError> {
        tracing::warn!(trigger_id = %id, %error, "poll failed");
        let record = self.current(id).await?;
        let mut cursor = Cursor::read(record.cursor_data.as_ref()).unwrap_or_else(|| Cursor {
            enabled_at: record.enabled_at,
            ..Cursor::default()
        });
        let now = Utc::now();
        cursor.poll_status = PollStatus {
            consecutive_failures: cursor.poll_status.consecutive_failures + 1,
            last_error: Some(error.clone()),
            last_error_at: Some(now),
        };
        let consecutive_failures = cursor.poll_status.consecutive_failures;
        let batch = Batch {
            seen: record.cursor_data.clone(),
            record,
            new: Vec::new(),
            next: cursor,
        };
        self.commit(id, batch).await?;
        let disabled = consecutive_failures >= self.inner.settings.max_failures;
        if disabled {
            let reason = format!("{consecutive_failures} polls in a row failed; the last: {error}");
            tracing::warn!(trigger_id = %id, %reason, "disabling the trigger");
            let command = TriggerCommand::new(
                now,
                Actor::system("poller"),
                TriggerAction::AutoDisableTrigger { reason },
            );
            self.inner
                .commands
                .execute(id, command, &self.inner.request_id)
                .await?;
        }
        Ok(Polled::Failed {
            error,
            consecutive_failures,
            disabled,
        })
    }

    /// The trigger as its events say now (not the read model, which may lag the cursor).
    async fn current(&self, id: Uuid) -> Result<TriggerRecord, PollError> {
        let loaded = self.inner.store.load::<Trigger>(id).await?;
        loaded
            .state
            .record()
            .filter(|record| {
                record.status == TriggerStatus::Enabled
                    && !record.is_deleted()
                    && is_polled(&record.provider_id)
            })
            .cloned()
            .ok_or(PollError::NotPollable)
    }

    fn lock_of(&self, id: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .inner
            .locks
            .lock()
            .expect("the lock map is never poisoned");
        locks.entry(id).or_default().clone()
    }

    fn forget(&self, id: Uuid) {
        let mut locks = self
            .inner
            .locks
            .lock()
            .expect("the lock map is never poisoned");
        if locks
            .get(&id)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            locks.remove(&id);
        }
    }

    /// Reads the source page by page, newest first, until a page holds an item that is not new
    /// (the cursor is reached), is empty, has no next page, or links back to a page read
    /// already, or after [`MAX_PAGES`]. A feed's next page is its RFC 5005 `next` (or
    /// `prev-archive`) link ([`feed::Page::next`]); a JSON endpoint's is its `Link: <...>;
    /// rel="next"` header. Relative links are resolved against the page's URL. An item listed
    /// on two pages (the source moved while it was read) is kept once, where it was first seen.
    async fn fetch(
        &self,
        record: &TriggerRecord,
        source: &Source,
        cursor: &Cursor,
        is_new: &(dyn Fn(&Cursor, &Item) -> bool + Sync),
    ) -> Result<Vec<Item>, SourceError> {
        let url = source.url();
        let fields = source.fields();
        let header = match source.header_name() {
            Some(name) => self.credential_header(record, name).await?,
            None => None,
        };
        let mut page = reqwest::Url::parse(url)
            .map_err(|error| SourceError(format!("`{url}` is not a URL: {error}")))?;
        let mut read = std::collections::HashSet::new();
        let mut observed: Vec<Item> = Vec::new();
        let mut ids = std::collections::HashSet::new();
        for _ in 0..MAX_PAGES {
            read.insert(page.clone());
            let (body, link) = self.get(page.as_str(), header.as_ref()).await?;
            let (items, next) = Self::read_page(url, &body, fields.as_ref(), link)?;
            let reached = items.is_empty() || items.iter().any(|item| !is_new(cursor, item));
            observed.extend(items.into_iter().filter(|item| ids.insert(item.id.clone())));
            let Some(next) = next.filter(|_| !reached) else {
                break;
            };
            let next = page.join(&next).map_err(|error| {
                SourceError(format!(
                    "next page `{next}` of {page} is not a URL: {error}"
                ))
            })?;
            if read.contains(&next) {
                tracing::warn!(trigger_id = %record.project_trigger_id, %next, "the source's pages loop; stopping at what was read");
                break;
            }
            page = next;
        }
        Ok(observed)
    }

    /// One GET: the body as text and the `rel="next"` link, or what went wrong.
    async fn get(
        &self,
        url: &str,
        header: Option<&(String, String)>,
    ) -> Result<(String, Option<String>), SourceError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|error| SourceError(format!("`{url}` is not a URL: {error}")))?;
        // An address literal is not resolved, so the resolver cannot judge it: judge it here.
        self.inner
            .guard
            .check_url(&parsed)
            .map_err(|denied| SourceError(format!("GET {url}: {denied}")))?;
        let mut request = self.inner.client.get(parsed);
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|error| {
            SourceError(match outbound::denial_of(&error) {
                Some(denied) => format!("GET {url}: {denied}"),
                None => format!("GET {url} failed: {}", error_chain(&error)),
            })
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(SourceError(format!("GET {url} answered {status}")));
        }
        let next = response
            .headers()
            .get_all(reqwest::header::LINK)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find_map(json::next_link)
            .map(str::to_owned);
        let body = outbound::read_bounded(response, MAX_BODY_BYTES)
            .await
            .map_err(|error| match error {
                ReadError::TooLarge { limit } => {
                    SourceError(format!("{url} answered more than {limit} bytes"))
                }
                ReadError::Client(error) => {
                    SourceError(format!("reading {url} failed: {}", error_chain(&error)))
                }
            })?;
        Ok((String::from_utf8_lossy(&body).into_owned(), next))
    }

    /// One page of the source at `url`: its items and the link to the next page, from the feed
    /// (`fields` is `None`) or, for a JSON endpoint, the `Link` header (`link`). A feed without a
    /// paging link of its own may still name its next page in a `Link` header.
    fn read_page(
        url: &str,
        body: &str,
        fields: Option<&json::Fields>,
        link: Option<String>,
    ) -> Result<(Vec<Item>, Option<String>), SourceError> {
        let Some(fields) = fields else {
            let page = feed::parse(url, body).map_err(SourceError)?;
            return Ok((page.items, page.next.or(link)));
        };
        let body: Value = serde_json::from_str(body)
            .map_err(|error| SourceError(format!("response is not JSON: {error}")))?;
        let items = json::parse(url, &body, fields).map_err(SourceError)?;
        Ok((items, link))
    }

    /// The header carrying the connection's credential, when the config names one: the
    /// credential `header_value` as it is, or `api_key` as it is, or `access_token` (as
    /// `Bearer <token>` in `Authorization`).
    async fn credential_header(
        &self,
        record: &TriggerRecord,
        name: &str,
    ) -> Result<Option<(String, String)>, SourceError> {
        let Some(connection_id) = record.connection_id else {
            return Ok(None);
        };
        let (_, credentials) = self
            .inner
            .connections
            .with_credentials(record.org_id, connection_id)
            .await
            .map_err(|error| SourceError(format!("connection {connection_id}: {error}")))?;
        let value = credentials
            .get_str("header_value")
            .or_else(|| credentials.get_str("api_key"))
            .map(str::to_owned)
            .or_else(|| {
                credentials.get_str("access_token").map(|token| {
                    if name.eq_ignore_ascii_case("authorization") {
                        format!("Bearer {token}")
                    } else {
                        token.to_owned()
                    }
                })
            })
            .ok_or_else(|| {
                SourceError(format!(
                    "connection {connection_id} has no header_value, api_key or access_token"
                ))
            })?;
        Ok(Some((name.to_owned(), value)))
    }
}

/// The `trigger_config` field naming a polled provider's source: the URL a tenant aims the
/// engine at, guarded when the trigger is created and at every poll.
pub fn source_field(provider_id: &str) -> Option<&'static str> {
    let source = ProviderId::of(provider_id)?.provider().polled_source()?;
    Some(source.url_field)
}

/// Whether the provider's triggers are polled.
pub fn is_polled(provider_id: &str) -> bool {
    source_field(provider_id).is_some()
}

/// A client error with its causes: reqwest's own message ("error sending request") hides
/// whether the connect was refused, timed out or failed TLS.
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(error) = cause {
        text.push_str(": ");
        text.push_str(&error.to_string());
        cause = error.source();
    }
    text
}

fn stamp(at: DateTime<Utc>) -> Stamp {
    Stamp {
        at,
        by: Actor::system("poller"),
    }
}

/// How long a trigger waits between polls: its `polling_frequency` (milliseconds, integer or
/// string of digits), at least `min`.
pub fn interval(frequency: Option<&PollingFrequency>, min: Duration) -> Duration {
    frequency
        .and_then(PollingFrequency::millis)
        .map_or(DEFAULT_INTERVAL, Duration::from_millis)
        .max(min)
}

/// The wait after `failures` failed polls in a row: the interval doubled for each, at most
/// [`MAX_BACKOFF`] (or the interval, if that is longer).
pub fn backoff(interval: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.min(16);
    interval
        .saturating_mul(factor)
        .min(MAX_BACKOFF.max(interval))
}

/// What the loop keeps of a trigger it polls: the fields that, changed, restart its task.
#[derive(PartialEq)]
struct Key {
    config: Option<Value>,
    connection_id: Option<Uuid>,
    enabled_at: Option<DateTime<Utc>>,
}

struct Task {
    key: Key,
    interval: Duration,
    stop: Option<CancellationToken>,
}

/// Starts the polling loop; it stops when `shutdown` is cancelled, after the polls under way.
pub fn spawn(
    poller: Poller,
    store: Arc<Store>,
    projections: ProjectionHandle,
    membership: Membership,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tasks: HashMap<Uuid, Task> = HashMap::new();
        let mut running = JoinSet::new();
        let mut seen = 0;
        let mut progress = projections.subscribe();
        let mut nodes = membership.subscribe();
        loop {
            match follow(&store, &mut seen, &mut tasks, &poller).await {
                Ok(()) => {}
                Err(error) => tracing::error!(%error, "reading polling triggers failed; retrying"),
            }
            for (id, task) in &mut tasks {
                let owned = membership.owns(*id);
                match (&task.stop, owned) {
                    (None, true) => {
                        let stop = shutdown.child_token();
                        task.stop = Some(stop.clone());
                        running.spawn(poll_loop(
                            poller.clone(),
                            *id,
                            task.interval,
                            task.key.enabled_at,
                            stop,
                        ));
                    }
                    (Some(stop), false) => {
                        stop.cancel();
                        task.stop = None;
                    }
                    _ => {}
                }
            }
            while running.try_join_next().is_some() {}
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = progress.changed() => {}
                Ok(()) = nodes.changed() => {}
                () = tokio::time::sleep(IDLE) => {}
            }
        }
        while running.join_next().await.is_some() {}
        tracing::debug!("poller stopped");
    })
}

/// Takes in polling triggers changed since `seen`: a new, re-enabled or reconfigured trigger gets
/// a fresh task; a disabled or deleted one loses its task. A cursor move changes none of that.
async fn follow(
    store: &Store,
    seen: &mut i64,
    tasks: &mut HashMap<Uuid, Task>,
    poller: &Poller,
) -> Result<(), StoreError> {
    let mut changed = Vec::new();
    for provider in polled_providers() {
        changed.extend(
            store
                .trigger_views_of_since(provider.as_str(), *seen)
                .await?,
        );
    }
    for view in changed {
        *seen = (*seen).max(view.last_position);
        let record = view.record;
        let id = record.project_trigger_id;
        let active = record.status == TriggerStatus::Enabled && !record.is_deleted();
        let key = Key {
            config: record.trigger_config.clone(),
            connection_id: record.connection_id,
            enabled_at: record.enabled_at,
        };
        if active && tasks.get(&id).is_some_and(|task| task.key == key) {
            continue;
        }
        if let Some(stop) = tasks.remove(&id).and_then(|task| task.stop) {
            stop.cancel();
        }
        if active {
            // A config that does not read polls at the default pace, and each poll then records
            // why it cannot go on.
            let source = Source::of(&record).ok();
            let frequency = source.as_ref().and_then(Source::polling_frequency);
            tasks.insert(
                id,
                Task {
                    key,
                    interval: interval(frequency, poller.settings().min_interval),
                    stop: None,
                },
            );
        } else {
            poller.forget(id);
        }
    }
    Ok(())
}

/// One trigger's polls, on its beat ([`next_beat`]), backing off while it fails. A trigger
/// enabled within the last interval polls at once, so that its first poll records where the
/// source stood when it was enabled. A poll cut short by `stop` is one that crashed, which the
/// single commit makes harmless.
async fn poll_loop(
    poller: Poller,
    id: Uuid,
    interval: Duration,
    enabled_at: Option<DateTime<Utc>>,
    stop: CancellationToken,
) {
    let just_enabled = enabled_at.is_none_or(|at| {
        chrono::Duration::from_std(interval).is_ok_and(|interval| at > Utc::now() - interval)
    });
    if !just_enabled && !sleep_until(next_beat(id, interval, Utc::now()), &stop).await {
        return;
    }
    let mut errors = 0;
    loop {
        let started = Utc::now();
        let outcome = tokio::select! {
            () = stop.cancelled() => return,
            outcome = poller.poll(id) => outcome,
        };
        let wait = match outcome {
            Ok(Polled::Succeeded { .. }) => {
                errors = 0;
                None
            }
            Ok(Polled::Failed { disabled: true, .. }) | Err(PollError::NotPollable) => return,
            Ok(Polled::Failed {
                consecutive_failures,
                ..
            }) => Some(backoff(interval, consecutive_failures)),
            Err(error) => {
                errors += 1;
                tracing::error!(trigger_id = %id, %error, "poll could not be recorded; retrying");
                Some(backoff(interval, errors))
            }
        };
        // Past this poll's beat and before the next: on the beat, polls are one interval apart,
        // and the first one after a poll off the beat (at enabling) comes no sooner than this.
        let earliest = started + wait.unwrap_or(interval * 3 / 4);
        if !sleep_until(next_beat(id, interval, earliest), &stop).await {
            return;
        }
    }
}

/// Sleeps until `at`; `false` when `stop` came first.
async fn sleep_until(at: DateTime<Utc>, stop: &CancellationToken) -> bool {
    let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    tokio::select! {
        () = stop.cancelled() => false,
        () = tokio::time::sleep(wait) => true,
    }
}

/// The first of trigger `id`'s beats after `after`. A trigger polls every `interval` at the same
/// offset within it, derived from its id: a process that takes on many triggers at once (at
/// start, or taking over a stopped process's) spreads their polls over the interval instead of
/// sending them in one burst, and a slow poll does not push the polls after it later.
pub fn next_beat(id: Uuid, interval: Duration, after: DateTime<Utc>) -> DateTime<Utc> {
    let period = (interval.as_millis() as i64).max(1);
    let offset = (id.as_u128() % period as u128) as i64;
    let since = after.timestamp_millis() - offset;
    let beat = since - since.rem_euclid(period) + period + offset;
    DateTime::from_timestamp_millis(beat).unwrap_or(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_should_read_the_polling_frequency_in_milliseconds_above_the_floor() {
        let floor = Duration::from_millis(1_000);
        assert_eq!(
            interval(Some(&PollingFrequency::Text("10000".into())), floor),
            Duration::from_secs(10)
        );
        assert_eq!(
            interval(Some(&PollingFrequency::Millis(5)), floor),
            floor,
            "never below the floor"
        );
        assert_eq!(interval(None, floor), DEFAULT_INTERVAL);
    }

    #[test]
    fn it_should_beat_every_interval_at_an_offset_of_each_trigger_s_own() {
        let interval = Duration::from_secs(10);
        let at = |text: &str| text.parse::<DateTime<Utc>>().unwrap();
        let start = at("2026-11-27T12:00:00.000Z");
        let id = Uuid::from_u128(3_250);
        let first = next_beat(id, interval, start);
        assert_eq!(first, at("2026-11-27T12:00:03.250Z"));
        assert_eq!(
            next_beat(id, interval, first),
            at("2026-11-27T12:00:13.250Z"),
            "strictly after, one interval on"
        );
        assert_eq!(
            next_beat(id, interval, first + chrono::Duration::seconds(5)),
            at("2026-11-27T12:00:13.250Z"),
            "a poll that took time does not move the beat"
        );
        let offsets: std::collections::BTreeSet<i64> = (0..1_000u128)
            .map(|n| {
                let id = Uuid::from_u128(n * 7_919 + (n << 64));
                (next_beat(id, interval, start) - start).num_milliseconds()
            })
            .collect();
        assert!(
            offsets.len() > 600 && offsets.iter().all(|&ms| (1..=10_000).contains(&ms)),
            "1,000 triggers spread over the interval: {} distinct offsets",
            offsets.len()
        );
    }

    #[test]
    fn it_should_double_the_wait_for_each_failure_up_to_the_cap() {
        let second = Duration::from_secs(1);
        assert_eq!(backoff(second, 1), Duration::from_secs(2));
        assert_eq!(backoff(second, 3), Duration::from_secs(8));
        assert_eq!(backoff(second, 40), MAX_BACKOFF);
    }
}
