//! The scheduler: fires `schedule/on_schedule` triggers on their slots.
//!
//! Each slot fires **exactly once**: a firing is a run whose id derives from (trigger, slot time)
//! (`RunCause::ScheduleSlot`), so a slot fired again (by a restart, a retry, a second process, a
//! catch-up) records nothing. That makes the rest simple: the scheduler keeps no state of its own
//! in the store. It follows the schedule triggers in the read model, keeps the next slot of each
//! trigger it owns (see [`membership`]) in memory, and fires each slot when it is due.
//!
//! **On time.** A slot's firing (its run, event and payload) is built ahead of time, once the
//! slot is within [`PREPARE_AHEAD`]; at the slot only the appends are left, and the appender
//! writes them in a few statements. Building 10,000 firings takes about half a second of CPU on
//! this project's 2-core machine, which would otherwise all come after the slot. A prepared
//! firing belongs to its entry, so a trigger changed, disabled or deleted before its slot drops
//! it. An on-time firing's `fired_at` is its slot; a caught-up one's, the time it was caught up.
//!
//! **Catch-up.** When a process takes a trigger on (start-up, a new or changed trigger, a process
//! that left), slots that passed since the trigger last changed and within its catch-up window are
//! handled by its `catch_up` policy: `latest` (the default) fires the latest of them, `all` fires
//! every one, `none` fires none. Slots that had fired already are no-ops, so a restart of a healthy
//! engine fires nothing twice. `all` starts after the latest slot the run read model shows fired,
//! not from the trigger's last change: a process taking over a trigger that has run for hours
//! would otherwise replay every one of its slots, one no-op append each, before the first missed
//! one. That is safe because a trigger's fired slots stay gap-free: each process fires its slots in
//! order and retries a slot whose firing failed rather than skip it.
//!
//! **Overlap.** `trigger_config.overlap` says what a slot does while the trigger's previous run
//! has not finished: `allow` (the default) fires it anyway; `skip` records its run as skipped
//! (`RunRequested` and `RunSkipped` in one append, so the slot is on record and never runs);
//! `buffer_one` lets one run wait behind the unfinished one (recorded `held`; the releaser lets it
//! go once the trigger has no run requested, running or due again) and skips any further slot. A
//! guarded slot is not built ahead: whether it runs is decided at its slot, from the trigger's
//! newest runs in the read model (a read that fails lets the slot fire).
//!
//! # Layout
//! - [`membership`]: which process fires which trigger.
//! - this module: following the triggers, planning slots, firing them.

pub mod membership;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aggregates::event::Stamp;
use aggregates::schedule::Schedule;
use aggregates::{Actor, Firing, RunCause, TriggerRecord, TriggerStatus};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::catalogue::Catalogue;
use crate::projector::ProjectionHandle;
use crate::providers::ProviderId;
use crate::runs::{RunCommandError, Runs};
use crate::store::{Store, StreamAppend};
pub use membership::Membership;

/// The provider whose triggers the scheduler fires.
pub const PROVIDER: ProviderId = ProviderId::Schedule;

/// The longest the scheduler sleeps without looking at the read model and the clock again; also
/// how long it waits before firing again after a firing failed (a store that refuses now is not
/// retried in a tight loop).
const IDLE: Duration = Duration::from_secs(1);

/// How many of a trigger's newest runs catch-up reads to find its latest fired slot: a few more
/// than one, so a run fired by hand (the deprecated key URL) among them does not hide the latest
/// slot. If none is a slot, catch-up starts from the trigger's last change: slower, never lossy.
const RECENT_RUNS: i64 = 10;

/// How long slots with an overlap policy wait for the runs' read model to reach the log's head
/// before they are judged on what it shows: far longer than its usual lag of milliseconds.
const OVERLAP_CATCH_UP: Duration = Duration::from_secs(2);

/// How long before its slot a firing is built (see "On time" above): enough to build a minute
/// boundary of 10,000 schedules, short enough that a change to a trigger rarely has to drop one.
pub const PREPARE_AHEAD: Duration = Duration::from_secs(2);

/// Catch-up looks back at most this far by default (`trigger_config.catch_up_window_seconds`).
pub const DEFAULT_CATCH_UP_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// What to do with slots that passed while no process could fire them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Fire the latest missed slot once.
    Latest,
    /// Fire every missed slot within the window.
    All,
    /// Fire none; carry on from the next slot.
    None,
}

impl CatchUp {
    /// The trigger's policy and window, as the scheduler reads them (and `explain` repeats).
    pub fn from_config(config: &Value) -> (Self, Duration) {
        let policy = match config.get("catch_up").and_then(Value::as_str) {
            Some("all") => Self::All,
            Some("none") => Self::None,
            _ => Self::Latest,
        };
        let window = config
            .get("catch_up_window_seconds")
            .and_then(Value::as_u64)
            .map_or(DEFAULT_CATCH_UP_WINDOW, Duration::from_secs);
        (policy, window)
    }
}

/// What a slot does while the trigger's previous run has not finished (`trigger_config.overlap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    Allow,
    Skip,
    BufferOne,
}

impl Overlap {
    fn from_config(config: &Value) -> Self {
        match config.get("overlap").and_then(Value::as_str) {
            Some("skip") => Self::Skip,
            Some("buffer_one") => Self::BufferOne,
            _ => Self::Allow,
        }
    }
}

/// How a slot's run is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Recorded {
    /// Due at once (or held, if the trigger is paused).
    Due,
    /// Held behind the trigger's unfinished run (`buffer_one`).
    Waiting,
    /// Recorded as skipped, with why.
    Skipped(String),
}

/// One schedule trigger the scheduler follows.
struct Entry {
    record: TriggerRecord,
    schedule: Schedule,
    /// Where an interval counts from: when the trigger was enabled.
    anchor: DateTime<Utc>,
    catch_up: CatchUp,
    window: Duration,
    overlap: Overlap,
    /// The slot queued for it, when this process owns it.
    next: Option<DateTime<Utc>>,
    /// The firing of a slot about to come, built ahead of it.
    prepared: Option<Prepared>,
}

/// A slot's firing as built: its run's id and the append that records it.
type Built = Result<(Uuid, StreamAppend), RunCommandError>;

/// A slot's firing, ready to append.
struct Prepared {
    at: DateTime<Utc>,
    run_id: Uuid,
    append: StreamAppend,
}

/// Starts the scheduler; it stops when `shutdown` is cancelled.
pub fn spawn(
    store: Arc<Store>,
    runs: Runs,
    projections: ProjectionHandle,
    membership: Membership,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut scheduler = Scheduler {
            store,
            runs,
            membership: membership.clone(),
            entries: HashMap::new(),
            queue: BTreeSet::new(),
            seen: 0,
            hold_until: None,
            request_id: format!("scheduler:{}", membership.node_id()),
        };
        let mut progress = projections.subscribe();
        let mut nodes = membership.subscribe();
        loop {
            if let Err(error) = scheduler.follow_triggers().await {
                tracing::error!(%error, "reading schedule triggers failed; retrying");
            }
            scheduler.fire_due().await;
            let pause = scheduler.pause();
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = progress.changed() => {}
                Ok(()) = nodes.changed() => scheduler.reassign().await,
                () = tokio::time::sleep(pause) => {}
            }
        }
        tracing::debug!("scheduler stopped");
    })
}

fn until(at: DateTime<Utc>) -> Duration {
    (at - Utc::now()).to_std().unwrap_or(Duration::ZERO)
}

struct Scheduler {
    store: Arc<Store>,
    runs: Runs,
    membership: Membership,
    entries: HashMap<Uuid, Entry>,
    queue: BTreeSet<(DateTime<Utc>, Uuid)>,
    /// The read-model position up to which trigger changes have been taken in.
    seen: i64,
    /// Recorded with every firing: which process fired it (`scheduler:<node id>`).
    request_id: String,
    /// After a firing failed: no firing before then.
    hold_until: Option<tokio::time::Instant>,
}

impl Scheduler {
    /// Takes in schedule triggers created, enabled, changed, disabled or deleted since last time.
    async fn follow_triggers(&mut self) -> Result<(), crate::store::StoreError> {
        let changed = self
            .store
            .trigger_views_of_since(PROVIDER.as_str(), self.seen)
            .await?;
        for view in changed {
            self.seen = self.seen.max(view.last_position);
            let id = view.record.project_trigger_id;
            self.forget(id);
            if view.record.status != TriggerStatus::Enabled || view.record.is_deleted() {
                continue;
            }
            let config = view.record.trigger_config.clone().unwrap_or(Value::Null);
            let schedule = match Schedule::from_config(&config) {
                Ok(schedule) => schedule,
                Err(error) => {
                    tracing::warn!(trigger = %id, %error, "schedule cannot be read; not firing it");
                    continue;
                }
            };
            let (catch_up, window) = CatchUp::from_config(&config);
            let overlap = Overlap::from_config(&config);
            let anchor = view.record.enabled_at.unwrap_or(view.record.updated_at);
            self.entries.insert(
                id,
                Entry {
                    record: view.record,
                    schedule,
                    anchor,
                    catch_up,
                    window,
                    overlap,
                    next: None,
                    prepared: None,
                },
            );
            if self.membership.owns(id) {
                self.take_on(id).await;
            }
        }
        Ok(())
    }

    /// How long to sleep: until the next queued slot or a failed firing's hold, at most [`IDLE`].
    fn pause(&self) -> Duration {
        let next = self
            .queue
            .first()
            .map_or(IDLE, |(at, _)| until(*at).min(IDLE));
        self.hold_until.map_or(next, |hold| {
            next.max(hold.saturating_duration_since(tokio::time::Instant::now()))
        })
    }

    fn forget(&mut self, id: Uuid) {
        if let Some(entry) = self.entries.remove(&id) {
            if let Some(at) = entry.next {
                self.queue.remove(&(at, id));
            }
        }
    }

    /// After the list of processes changed: queue the triggers this process now owns, drop the
    /// ones it no longer does.
    async fn reassign(&mut self) {
        let mut gained = Vec::new();
        for (id, entry) in &mut self.entries {
            match (self.membership.owns(*id), entry.next) {
                (true, None) => gained.push(*id),
                (false, Some(at)) => {
                    self.queue.remove(&(at, *id));
                    entry.next = None;
                }
                _ => {}
            }
        }
        for id in gained {
            self.take_on(id).await;
        }
    }

    /// Takes on a trigger: queues the slot its catch-up policy says to fire now, if any, else its
    /// next slot. After a slot fires, the next one after it is queued, so `all` works through the
    /// missed slots one by one until it reaches the present.
    async fn take_on(&mut self, id: Uuid) {
        match self.catch_up_slot(id).await {
            Some(at) => self.queue_at(id, at),
            None => self.queue_next(id, Utc::now()),
        }
    }

    /// The missed slot to fire first, by the trigger's policy: slots after its last change and
    /// within its window count as missed; for `all`, only those after its latest fired slot.
    async fn catch_up_slot(&self, id: Uuid) -> Option<DateTime<Utc>> {
        let entry = self.entries.get(&id)?;
        let now = Utc::now();
        let window = chrono::Duration::from_std(entry.window).unwrap_or(chrono::Duration::MAX);
        let floor = entry.record.updated_at.max(now - window);
        match entry.catch_up {
            CatchUp::None => None,
            CatchUp::All => {
                let floor = match self.last_fired_slot(id).await {
                    Some(fired) => floor.max(fired),
                    None => floor,
                };
                let entry = self.entries.get(&id)?;
                entry
                    .schedule
                    .between(floor, now, entry.anchor, 1)
                    .first()
                    .map(|slot| slot.at)
            }
            CatchUp::Latest => latest_between(&entry.schedule, floor, now, entry.anchor),
        }
    }

    /// The latest slot of the trigger's current schedule among its newest runs in the read model.
    /// The read model may lag the log by a few firings; starting before them only costs no-ops.
    async fn last_fired_slot(&self, id: Uuid) -> Option<DateTime<Utc>> {
        let runs = match self.store.trigger_runs(id, None, RECENT_RUNS).await {
            Ok(runs) => runs,
            Err(error) => {
                tracing::warn!(trigger = %id, %error, "reading fired slots failed; catching up from the last change");
                return None;
            }
        };
        let entry = self.entries.get(&id)?;
        runs.iter()
            .filter_map(|run| match run.record.firing.cause {
                RunCause::ScheduleSlot { at } => Some(at),
                _ => None,
            })
            // A run fired by hand is recorded as a slot at the time it was asked for, which is
            // not on the schedule: starting after it would skip the real slots before it.
            .filter(|at| {
                entry
                    .schedule
                    .next_after(*at - chrono::Duration::nanoseconds(1), entry.anchor)
                    .is_some_and(|slot| slot.at == *at)
            })
            .max()
    }

    fn queue_next(&mut self, id: Uuid, after: DateTime<Utc>) {
        let Some(entry) = self.entries.get(&id) else {
            return;
        };
        if let Some(slot) = entry.schedule.next_after(after, entry.anchor) {
            self.queue_at(id, slot.at);
        }
    }

    fn queue_at(&mut self, id: Uuid, at: DateTime<Utc>) {
        if let Some(entry) = self.entries.get_mut(&id) {
            if let Some(previous) = entry.next.replace(at) {
                self.queue.remove(&(previous, id));
            }
            self.queue.insert((at, id));
        }
    }

    /// Builds the firings of the queued slots due within [`PREPARE_AHEAD`] that are not built yet.
    fn prepare_ahead(&mut self, now: DateTime<Utc>) {
        let horizon = now + chrono::Duration::from_std(PREPARE_AHEAD).unwrap_or_default();
        let coming: Vec<(DateTime<Utc>, Uuid)> = self
            .queue
            .iter()
            .take_while(|(at, _)| *at <= horizon)
            .copied()
            .collect();
        for (at, id) in coming {
            let Some(entry) = self.entries.get(&id) else {
                continue;
            };
            let ready = entry
                .prepared
                .as_ref()
                .is_some_and(|prepared| prepared.at == at);
            if ready || at <= now || entry.overlap != Overlap::Allow {
                continue;
            }
            match self.build(id, at, at, Recorded::Due) {
                Some(Ok((run_id, append))) => {
                    if let Some(entry) = self.entries.get_mut(&id) {
                        entry.prepared = Some(Prepared { at, run_id, append });
                    }
                }
                Some(Err(error)) => {
                    tracing::warn!(trigger = %id, %error, "building a firing ahead failed; building it at its slot");
                }
                None => {}
            }
        }
    }

    /// Fires every queued slot that is due, all at once (the appender writes them in a few
    /// statements), then queues each trigger's next slot, or the same slot again if its firing
    /// failed: skipping it would lose it for good.
    async fn fire_due(&mut self) {
        if let Some(hold) = self.hold_until {
            if tokio::time::Instant::now() < hold {
                return;
            }
            self.hold_until = None;
        }
        let now = Utc::now();
        let mut due = Vec::new();
        let mut guarded = Vec::new();
        while let Some(&(at, id)) = self.queue.first() {
            if at > now {
                break;
            }
            self.queue.pop_first();
            let Some(entry) = self.entries.get_mut(&id) else {
                continue;
            };
            entry.next = None;
            if entry.overlap != Overlap::Allow {
                guarded.push((id, at, entry.overlap));
                continue;
            }
            let prepared = entry
                .prepared
                .take()
                .filter(|prepared| prepared.at == at)
                .map(|prepared| Ok((prepared.run_id, prepared.append)));
            // A slot not built ahead (caught up, or queued late) is built now, fired now.
            if let Some(firing) = prepared.or_else(|| self.build(id, at, now, Recorded::Due)) {
                due.push((id, at, firing));
            }
        }
        if !guarded.is_empty() {
            self.catch_up_runs().await;
        }
        for (id, at, overlap) in guarded {
            let recorded = self.overlap_decision(id, overlap).await;
            if let Some(firing) = self.build(id, at, now, recorded) {
                due.push((id, at, firing));
            }
        }
        if !due.is_empty() {
            self.record(due).await;
        }
        self.prepare_ahead(Utc::now());
    }

    /// Appends the due firings, each on its own, all at once.
    async fn record(&mut self, due: Vec<(Uuid, DateTime<Utc>, Built)>) {
        let mut firing = JoinSet::new();
        let mut slots = Vec::with_capacity(due.len());
        for (id, at, built) in due {
            slots.push((id, at));
            match built {
                Ok((run_id, append)) => {
                    let runs = self.runs.clone();
                    firing.spawn(async move { (id, runs.record(run_id, append).await) });
                }
                Err(error) => {
                    tracing::error!(trigger = %id, %error, "building a schedule slot's firing failed; retrying it");
                }
            }
        }
        let mut recorded = std::collections::HashSet::new();
        while let Some(result) = firing.join_next().await {
            match result {
                Ok((id, Ok(_))) => {
                    recorded.insert(id);
                }
                Ok((id, Err(error))) => {
                    tracing::error!(trigger = %id, %error, "firing a schedule slot failed; retrying it");
                }
                Err(error) => tracing::error!(%error, "a firing task failed; retrying its slot"),
            }
        }
        for (id, at) in slots {
            if !self.membership.owns(id) {
                continue;
            }
            if recorded.contains(&id) {
                self.queue_next(id, at);
            } else if self.entries.contains_key(&id) {
                self.queue_at(id, at);
                self.hold_until = Some(tokio::time::Instant::now() + IDLE);
            }
        }
    }

    /// Waits for the runs' read model to show every run recorded so far, the previous slots'
    /// among them: behind the log, it would show no run under way while one is, and an overlap
    /// policy would let a slot run beside it.
    async fn catch_up_runs(&self) {
        let head = match self.store.head().await {
            Ok(head) => head,
            Err(error) => {
                tracing::warn!(%error, "reading the log's head for the overlap policies failed");
                return;
            }
        };
        if !self
            .runs
            .projections()
            .wait_for(head, OVERLAP_CATCH_UP)
            .await
        {
            tracing::warn!(
                head,
                "the runs' read model is behind the log; overlap policies judge what it shows"
            );
        }
    }

    /// How a slot of a trigger with an overlap policy is recorded, from its newest runs.
    async fn overlap_decision(&self, id: Uuid, overlap: Overlap) -> Recorded {
        let runs = match self.store.trigger_runs(id, None, RECENT_RUNS).await {
            Ok(runs) => runs,
            Err(error) => {
                tracing::warn!(trigger = %id, %error, "reading the trigger's runs for its overlap policy failed; firing the slot");
                return Recorded::Due;
            }
        };
        let unfinished: Vec<_> = runs
            .iter()
            .filter(|run| !run.record.status.is_final())
            .collect();
        let Some(newest) = unfinished.first() else {
            return Recorded::Due;
        };
        let newest_id = newest.record.run_id;
        match overlap {
            Overlap::Allow => Recorded::Due,
            Overlap::Skip => Recorded::Skipped(format!(
                "overlap: the previous run {newest_id} had not finished"
            )),
            Overlap::BufferOne
                if unfinished.len() == 1 && newest.record.status != aggregates::RunStatus::Held =>
            {
                Recorded::Waiting
            }
            Overlap::BufferOne => Recorded::Skipped(format!(
                "overlap: run {newest_id} was already waiting behind the running one"
            )),
        }
    }

    /// The run firing slot `at` of trigger `id` starts, fired at `fired_at`, and its append.
    fn build(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        fired_at: DateTime<Utc>,
        recorded: Recorded,
    ) -> Option<Built> {
        let record = &self.entries.get(&id)?.record;
        let config = record.trigger_config.clone().unwrap_or(Value::Null);
        let shown = Catalogue::builtin()
            .find(&record.provider_id, &record.trigger_id)
            .map_or(Value::Null, |definition| definition.redact(&config));
        let firing = Firing::of(
            record,
            RunCause::ScheduleSlot { at },
            json!({
                "scheduled_at": at,
                "fired_at": fired_at,
                "schedule": shown,
            }),
            fired_at,
        );
        Some(match recorded {
            Recorded::Due => {
                Runs::request(firing, stamp(fired_at), record.paused, &self.request_id)
            }
            Recorded::Waiting => Runs::request(firing, stamp(fired_at), true, &self.request_id),
            Recorded::Skipped(reason) => {
                Runs::request_skipped(firing, stamp(fired_at), reason, &self.request_id)
            }
        })
    }
}

fn stamp(at: DateTime<Utc>) -> Stamp {
    Stamp {
        at,
        by: Actor::system("scheduler"),
    }
}

/// The latest slot in (from, to]: looked for in growing spans back from `to`, so a frequent
/// schedule over a long window costs a few slots, not all of them.
fn latest_between(
    schedule: &Schedule,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    anchor: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let mut span = chrono::Duration::minutes(2);
    loop {
        let start = (to - span).max(from);
        if let Some(last) = schedule.between(start, to, anchor, usize::MAX).last() {
            return Some(last.at);
        }
        if start == from {
            return None;
        }
        span = span * 8;
    }
}
