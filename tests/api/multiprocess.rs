//! Several engine processes on one PostgreSQL (#5): three real `serve` processes share the
//! triggers, and when one is killed (SIGKILL) the others take its triggers over once its lease has
//! passed, so nothing is lost or done twice.
//!
//! - Schedules: every slot fires once and each trigger fires from one process; after the kill the
//!   heirs catch up the slots the victim missed.
//! - Polls: a feed server in the test ([`crate::feed_server`]) serves RSS feeds that the test adds
//!   items to while the processes poll them. Each feed is polled at one poller's pace (the server
//!   counts requests: two pollers would leave gaps of half an interval), every item published
//!   fires one run, and after the kill the victim's feeds are polled again within the lease and
//!   an interval, with the items published around the kill fired once.
//!
//! Each firing's or cursor move's `request_id` (`scheduler:<node id>`, `poller:<node id>`) says
//! which process recorded it, which is checked against rendezvous ownership. SQLite is one
//! process's store, so these tests run on PostgreSQL only, one group of processes at a time.
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use chrono::{DateTime, DurationRound, Utc};
use serde_json::{json, Value};
use sqlx::Connection;
use tokio::process::Child;
use tokio::sync::Mutex;
use trigger_engine::config::StoreConfig;
use trigger_engine::scheduler::membership::owner;
use trigger_engine::store::Store;
use uuid::Uuid;

use crate::feed_server::FeedServer;
use crate::helpers::{admin_token, eventually, start_engine, TestDb, ADMIN_EMAIL, ADMIN_PASSWORD};

crate::on_every_store!(
    it_should_share_schedules_among_processes_and_take_over_a_killed_ones,
    it_should_share_polls_among_processes_and_take_over_a_killed_ones,
);

/// The processes' heartbeat lease (the default is 10 s): short, so a takeover fits in seconds.
const LEASE_SECONDS: i64 = 2;
/// Enough triggers that each of three processes owns several (rendezvous hashing spreads them).
const TRIGGERS: usize = 30;
/// Right after start-up the processes' lists of one another converge (each learns of a newcomer
/// at its next beat, a third of the lease later); slots before then may come from a process that
/// is about to hand a trigger on, so ownership is judged from this long after the last start.
const SETTLING_SECONDS: i64 = 2;
/// One group of three processes at a time: two groups of debug builds on the two cores the suite
/// shares starve each other's beats, slots and polls, and the takeover bounds are tight.
static ENGINES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Fires every second and, after a takeover, every slot missed in the last minute.
fn every_second() -> Value {
    json!({"interval_seconds": 1, "catch_up": "all", "catch_up_window_seconds": 60})
}

/// One `serve` process and the node id it heartbeats under.
struct Engine {
    node: String,
    process: Child,
    address: String,
}

/// A schedule trigger and when it was enabled: its first slot is one interval after that.
struct Scheduled {
    id: Uuid,
    enabled_between: (DateTime<Utc>, DateTime<Utc>),
}

/// A slot the log shows fired, and by which process.
struct Fired {
    trigger: Uuid,
    slot: DateTime<Utc>,
    node: String,
    recorded_at: DateTime<Utc>,
}

/// The schedule firings in the log, read incrementally.
#[derive(Default)]
struct Firings {
    after: i64,
    fired: Vec<Fired>,
}

impl Firings {
    async fn refresh(&mut self, store: &Store) {
        loop {
            let events = store.read_log(self.after, 10_000).await.unwrap();
            let Some(last) = events.last() else {
                return;
            };
            self.after = last.position;
            for event in &events {
                let Some(aggregates::RunEvent::RunRequested { firing, .. }) =
                    event.run_event().unwrap()
                else {
                    continue;
                };
                let aggregates::RunCause::ScheduleSlot { at } = firing.cause else {
                    panic!("only schedules fire in this test: {:?}", firing.cause);
                };
                let node = event
                    .meta("request_id")
                    .and_then(|id| id.strip_prefix("scheduler:"))
                    .unwrap_or_else(|| {
                        panic!("a slot fired by no scheduler: {:?}", event.metadata)
                    });
                self.fired.push(Fired {
                    trigger: firing.project_trigger_id,
                    slot: at,
                    node: node.to_owned(),
                    recorded_at: event.recorded_at,
                });
            }
        }
    }

    /// The trigger's fired slots, oldest first, with who fired each.
    fn of(&self, trigger: Uuid) -> Vec<&Fired> {
        let mut fired: Vec<&Fired> = self.fired.iter().filter(|f| f.trigger == trigger).collect();
        fired.sort_by_key(|f| f.slot);
        fired
    }

    /// Who fired the trigger's slots after `from`.
    fn firers_after(&self, trigger: Uuid, from: DateTime<Utc>) -> BTreeSet<&str> {
        self.of(trigger)
            .into_iter()
            .filter(|f| f.slot > from)
            .map(|f| f.node.as_str())
            .collect()
    }

    /// Every trigger has a slot later than `after`.
    fn all_fired_after(&self, triggers: &[Scheduled], after: DateTime<Utc>) -> bool {
        triggers
            .iter()
            .all(|t| self.of(t.id).last().is_some_and(|f| f.slot > after))
    }

    /// No slot recorded twice; each trigger's slots run second by second from its first slot (one
    /// interval after it was enabled) to its latest, so none was skipped.
    fn check_every_slot_once(&self, triggers: &[Scheduled]) {
        let mut seen = HashSet::new();
        for f in &self.fired {
            assert!(
                seen.insert((f.trigger, f.slot)),
                "slot {} of {} fired twice",
                f.slot,
                f.trigger
            );
        }
        let second = chrono::Duration::seconds(1);
        for trigger in triggers {
            let slots: Vec<_> = self.of(trigger.id).iter().map(|f| f.slot).collect();
            let (from, to) = trigger.enabled_between;
            assert!(
                slots
                    .first()
                    .is_some_and(|first| *first >= from + second && *first <= to + second),
                "{}: the first slot is one interval after enabling ({from} to {to}): {slots:?}",
                trigger.id
            );
            for pair in slots.windows(2) {
                assert_eq!(
                    pair[1] - pair[0],
                    second,
                    "{}: no slot lost between {} and {}",
                    trigger.id,
                    pair[0],
                    pair[1]
                );
            }
        }
    }
}

async fn it_should_share_schedules_among_processes_and_take_over_a_killed_ones(db: TestDb) {
    if !db.is_postgres() {
        eprintln!("skipped: several processes share a PostgreSQL store; SQLite is one process's");
        return;
    }
    let _alone = ENGINES.lock().await;
    let started = std::time::Instant::now();
    let lease = chrono::Duration::seconds(LEASE_SECONDS);
    let store = trigger_engine::app::open_store(&StoreConfig {
        pool_size: 2,
        ..db.store_config()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let env = [
        (
            "TRIGGER_ENGINE_NODE_LEASE_SECONDS",
            LEASE_SECONDS.to_string(),
        ),
        // Three processes and the test share the server's connections with the rest of the suite.
        ("TRIGGER_ENGINE_DB_POOL_SIZE", "6".to_owned()),
    ];
    let mut engines = start_engines(&db, &http, &store, &env).await;
    let settled = Utc::now() + chrono::Duration::seconds(SETTLING_SECONDS);
    let nodes: Vec<String> = engines.iter().map(|e| e.node.clone()).collect();

    let api = &engines[0].address;
    let token: Value = http
        .post(format!("{api}/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", ADMIN_EMAIL),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let mut triggers = Vec::new();
    for _ in 0..TRIGGERS {
        let created = http
            .post(format!("{api}/projects/multiproc/triggers"))
            .bearer_auth(&token)
            .json(
                &json!({"provider_id": "schedule", "trigger_id": "on_schedule",
                          "trigger_config": every_second()}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let id: Uuid = created.json::<Value>().await.unwrap()["project_trigger_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let before = Utc::now();
        let enabled = http
            .post(format!("{api}/triggers/{id}/enable"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(enabled.status(), 204);
        triggers.push(Scheduled {
            id,
            enabled_between: (before, Utc::now()),
        });
    }

    // All three alive: each trigger fires from the process that ranks highest for it.
    let firings = Mutex::new(Firings::default());
    let settled_slots = chrono::Duration::seconds(3);
    eventually(
        30,
        "every trigger firing 3 slots after settling",
        || async {
            let mut firings = firings.lock().await;
            firings.refresh(&store).await;
            firings.all_fired_after(&triggers, settled + settled_slots)
        },
    )
    .await;
    let firings = firings.into_inner();
    firings.check_every_slot_once(&triggers);
    for trigger in &triggers {
        let expected = owner(&nodes, trigger.id).unwrap();
        assert_eq!(
            firings.firers_after(trigger.id, settled),
            BTreeSet::from([expected]),
            "{} fires from its owner alone while all three live",
            trigger.id
        );
    }
    let owned_by = |node: &str| -> Vec<Uuid> {
        triggers
            .iter()
            .map(|t| t.id)
            .filter(|id| owner(&nodes, *id) == Some(node))
            .collect()
    };
    for node in &nodes {
        assert!(
            !owned_by(node).is_empty(),
            "each process fires some: {node}"
        );
    }

    // SIGKILL the busiest: no leave, so the others take over when its lease runs out.
    let victim = (0..engines.len())
        .max_by_key(|&n| owned_by(&engines[n].node).len())
        .unwrap();
    let mut victim = engines.remove(victim);
    let orphans = owned_by(&victim.node);
    let survivors: Vec<String> = engines.iter().map(|e| e.node.clone()).collect();
    let killed_at = Utc::now();
    victim.process.kill().await.unwrap();
    let firings = Mutex::new(firings);
    eventually(
        LEASE_SECONDS as u64 + 10,
        "every trigger firing after the killed process's lease",
        || async {
            let mut firings = firings.lock().await;
            firings.refresh(&store).await;
            firings.all_fired_after(&triggers, killed_at + lease)
        },
    )
    .await;
    let firings = firings.into_inner();
    firings.check_every_slot_once(&triggers);
    let mut takeovers = Vec::new();
    for trigger in &triggers {
        let id = trigger.id;
        if !orphans.contains(&id) {
            assert_eq!(
                firings.firers_after(id, settled),
                BTreeSet::from([owner(&nodes, id).unwrap()]),
                "{id} stays with its owner when another process dies"
            );
            continue;
        }
        let fired = firings.of(id);
        let last_of_victim = fired
            .iter()
            .rev()
            .find(|f| f.node == victim.node)
            .expect("the victim fired its triggers")
            .slot;
        let heir = owner(&survivors, id).unwrap();
        assert_eq!(
            firings.firers_after(id, last_of_victim),
            BTreeSet::from([heir]),
            "{id}: the survivor ranking highest takes it over"
        );
        let first_of_heir = fired.iter().find(|f| f.slot > last_of_victim).unwrap();
        takeovers.push((first_of_heir.recorded_at - killed_at).to_std().unwrap());
    }
    takeovers.sort();
    let slowest = *takeovers.last().unwrap();
    // Survivors drop the victim at their first beat after its lease (beats are a third of a
    // lease apart), then fire the slots it missed at once; 2 s on top for a loaded machine (the
    // suite shares two cores). Replaying the trigger's history instead would take seconds more.
    assert!(
        slowest < Duration::from_secs(LEASE_SECONDS as u64) * 4 / 3 + Duration::from_secs(2),
        "taken over within the lease and a beat: {takeovers:?}"
    );

    stop(&mut engines).await;
    store.close().await;

    let mut per_node = BTreeMap::new();
    for f in &firings.fired {
        *per_node.entry(f.node.as_str()).or_insert(0) += 1;
    }
    let heirs: BTreeMap<&str, usize> = survivors
        .iter()
        .map(|node| {
            let taken = orphans
                .iter()
                .filter(|id| owner(&survivors, **id) == Some(node.as_str()))
                .count();
            (node.as_str(), taken)
        })
        .collect();
    eprintln!(
        "slots fired per process: {per_node:?}; killed {} (owned {} triggers), taken over as \
         {heirs:?}; takeover after the kill: {:?} to {:?}; test took {:?}",
        victim.node,
        orphans.len(),
        takeovers[0],
        slowest,
        started.elapsed()
    );
}

/// Starts three `serve` processes one after another with `env`, learning each one's node id: the
/// one live node not seen before (each beats once before it serves).
async fn start_engines(
    db: &TestDb,
    http: &reqwest::Client,
    store: &Store,
    env: &[(&str, String)],
) -> Vec<Engine> {
    let lease = chrono::Duration::seconds(LEASE_SECONDS);
    let mut engines: Vec<Engine> = Vec::new();
    for _ in 0..3 {
        let (process, address) = start_engine(db, http, env).await;
        let now = Utc::now();
        let live = store.live_nodes(now - lease, now).await.unwrap();
        let new: Vec<_> = live
            .into_iter()
            .filter(|node| engines.iter().all(|e| e.node != *node))
            .collect();
        assert_eq!(new.len(), 1, "one new engine process: {new:?}");
        engines.push(Engine {
            node: new.into_iter().next().unwrap(),
            process,
            address,
        });
    }
    engines
}

/// SIGTERMs the processes and checks each stops cleanly.
async fn stop(engines: &mut [Engine]) {
    for engine in engines.iter_mut() {
        let pid = engine.process.id().unwrap().to_string();
        let term = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(term.success());
    }
    for engine in engines.iter_mut() {
        let exit = tokio::time::timeout(Duration::from_secs(10), engine.process.wait())
            .await
            .expect("a survivor stops within 10 s of SIGTERM")
            .unwrap();
        assert!(exit.success(), "a clean shutdown: {exit}");
    }
}

/// Enough feeds that each of three processes polls several: the hash that shares them leaves a
/// process none with odds of 3 x (2/3)^24, under 1 in 5,000 (at 12 feeds 1 in 40: it flaked).
const FEEDS: usize = 24;
/// Each feed's `polling_frequency`: the floor of the config schema and of the engine's default
/// `TRIGGER_ENGINE_MIN_POLLING_MS`.
const POLL_INTERVAL: Duration = Duration::from_millis(1_000);
/// How often the test publishes a round of items: a few rounds per poll, so polls find bursts.
const ROUND: Duration = Duration::from_millis(350);

/// What a poll recorded for a trigger, and which process's poller recorded it.
struct Recorded {
    trigger: Uuid,
    /// The polled item a run was requested for; `None` for a cursor move.
    item: Option<String>,
    node: String,
    recorded_at: DateTime<Utc>,
}

/// The polls' runs and cursor moves in the log, read incrementally, oldest first.
#[derive(Default)]
struct PollLog {
    after: i64,
    recorded: Vec<Recorded>,
}

impl PollLog {
    async fn refresh(&mut self, store: &Store) {
        loop {
            let events = store.read_log(self.after, 10_000).await.unwrap();
            let Some(last) = events.last() else {
                return;
            };
            self.after = last.position;
            for event in &events {
                let (trigger, item) = match (event.trigger_event(), event.run_event()) {
                    (Ok(Some(aggregates::TriggerEvent::CursorAdvanced { .. })), _) => {
                        (event.stream_uuid().unwrap(), None)
                    }
                    (_, Ok(Some(aggregates::RunEvent::RunRequested { firing, .. }))) => {
                        let aggregates::RunCause::PolledItem { id } = firing.cause else {
                            panic!("only polls fire in this test: {:?}", firing.cause);
                        };
                        (firing.project_trigger_id, Some(id))
                    }
                    _ => continue,
                };
                let node = event
                    .meta("request_id")
                    .and_then(|id| id.strip_prefix("poller:"))
                    .unwrap_or_else(|| panic!("recorded by no poller: {:?}", event.metadata));
                self.recorded.push(Recorded {
                    trigger,
                    item,
                    node: node.to_owned(),
                    recorded_at: event.recorded_at,
                });
            }
        }
    }

    fn of(&self, trigger: Uuid) -> impl Iterator<Item = &Recorded> {
        self.recorded.iter().filter(move |r| r.trigger == trigger)
    }

    /// Whether each of `expected` has a run.
    fn fired_all(&self, expected: &[(Uuid, String)]) -> bool {
        let fired: HashSet<(Uuid, &str)> = self.fired().into_iter().collect();
        expected
            .iter()
            .all(|(trigger, item)| fired.contains(&(*trigger, item.as_str())))
    }

    /// The (trigger, item) of every run requested, as often as each was.
    fn fired(&self) -> Vec<(Uuid, &str)> {
        self.recorded
            .iter()
            .filter_map(|r| Some((r.trigger, r.item.as_deref()?)))
            .collect()
    }
}

/// Publishes round `round`: a burst of one to four items in a third of the feeds (in every feed
/// when `all`), each burst's items at one time, which the next round's share too (RSS times are
/// whole seconds), so items share a timestamp within a poll and across polls. Returns what should
/// fire: (trigger of the feed, item id).
fn publish(
    feeds: &FeedServer,
    triggers: &[Uuid],
    round: usize,
    start: DateTime<Utc>,
    all: bool,
) -> Vec<(Uuid, String)> {
    let at = start + chrono::Duration::seconds(round as i64 / 2);
    let mut published = Vec::new();
    for (feed, trigger) in triggers.iter().enumerate() {
        if !all && (round + feed) % 3 != 0 {
            continue;
        }
        for n in 0..1 + (round * 7 + feed) % 4 {
            let id = format!("feed{feed}-round{round}-{n}");
            feeds.add(feed, &id, at);
            published.push((*trigger, id));
        }
    }
    published
}

async fn it_should_share_polls_among_processes_and_take_over_a_killed_ones(db: TestDb) {
    if !db.is_postgres() {
        eprintln!("skipped: several processes share a PostgreSQL store; SQLite is one process's");
        return;
    }
    let _alone = ENGINES.lock().await;
    let started = std::time::Instant::now();
    let feeds = FeedServer::start(FEEDS).await;
    // History, which enabling does not replay.
    let an_hour_ago = Utc::now() - chrono::Duration::hours(1);
    for feed in 0..FEEDS {
        feeds.add(feed, &format!("feed{feed}-history"), an_hour_ago);
    }
    let store = trigger_engine::app::open_store(&StoreConfig {
        pool_size: 2,
        ..db.store_config()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let env = [
        (
            "TRIGGER_ENGINE_NODE_LEASE_SECONDS",
            LEASE_SECONDS.to_string(),
        ),
        ("TRIGGER_ENGINE_DB_POOL_SIZE", "6".to_owned()),
        ("TRIGGER_ENGINE_POLLING", "true".to_owned()),
    ];
    let mut engines = start_engines(&db, &http, &store, &env).await;
    let nodes: Vec<String> = engines.iter().map(|e| e.node.clone()).collect();

    // Settled: each process has beaten since the last one started, so each has read the same
    // list of three, and no trigger created from now on changes hands while all three live.
    let last_started = Utc::now().timestamp_millis();
    let beats = Mutex::new(sqlx::PgConnection::connect(&db.url).await.unwrap());
    eventually(10, "each process seeing the other two", || async {
        let beaten: i64 =
            sqlx::query_scalar("SELECT count(*) FROM engine_nodes WHERE heartbeat_at > $1")
                .bind(last_started)
                .fetch_one(&mut *beats.lock().await)
                .await
                .unwrap();
        beaten == 3
    })
    .await;
    beats.into_inner().close().await.unwrap();

    let api = &engines[0].address;
    let token = admin_token(&http, api).await;
    let mut triggers = Vec::new();
    for feed in 0..FEEDS {
        let config = json!({"feed_url": feeds.url(feed),
                            "polling_frequency": POLL_INTERVAL.as_millis() as u64});
        let created = http
            .post(format!("{api}/projects/multiproc/triggers"))
            .bearer_auth(&token)
            .json(&json!({"provider_id": "rss", "trigger_id": "on_new_item",
                          "trigger_config": config}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let id: Uuid = created.json::<Value>().await.unwrap()["project_trigger_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let enabled = http
            .post(format!("{api}/triggers/{id}/enable"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(enabled.status(), 204);
        triggers.push(id);
    }
    let owned_by = |nodes: &[String], node: &str| -> Vec<Uuid> {
        triggers
            .iter()
            .copied()
            .filter(|id| owner(nodes, *id) == Some(node))
            .collect()
    };
    for node in &nodes {
        assert!(
            !owned_by(&nodes, node).is_empty(),
            "each process polls some: {node}"
        );
    }

    let log = Mutex::new(PollLog::default());
    eventually(15, "every trigger's first cursor", || async {
        let mut log = log.lock().await;
        log.refresh(&store).await;
        triggers.iter().all(|id| log.of(*id).next().is_some())
    })
    .await;

    // All three alive: bursts of new items while the owners poll.
    let start = Utc::now()
        .duration_trunc(chrono::Duration::seconds(1))
        .unwrap();
    let mut expected: Vec<(Uuid, String)> = Vec::new();
    let mut round = 0;
    let three_alive = tokio::time::Instant::now() + POLL_INTERVAL * 3;
    while tokio::time::Instant::now() < three_alive {
        expected.extend(publish(&feeds, &triggers, round, start, false));
        round += 1;
        tokio::time::sleep(ROUND).await;
    }
    eventually(15, "every item published fired", || async {
        let mut log = log.lock().await;
        log.refresh(&store).await;
        log.fired_all(&expected)
    })
    .await;

    // SIGKILL the busiest: no leave, so the others take over when its lease runs out. Every
    // feed gets items at once, so the heirs' first polls fire something.
    let victim = (0..engines.len())
        .max_by_key(|&n| owned_by(&nodes, &engines[n].node).len())
        .unwrap();
    let mut victim = engines.remove(victim);
    let orphans = owned_by(&nodes, &victim.node);
    let survivors: Vec<String> = engines.iter().map(|e| e.node.clone()).collect();
    let killed_at = Utc::now();
    victim.process.kill().await.unwrap();
    let dead_at = Utc::now();
    expected.extend(publish(&feeds, &triggers, round, start, true));
    round += 1;
    let lease = Duration::from_secs(LEASE_SECONDS as u64);
    let after_takeover = tokio::time::Instant::now() + lease + POLL_INTERVAL * 2;
    while tokio::time::Instant::now() < after_takeover {
        tokio::time::sleep(ROUND).await;
        expected.extend(publish(&feeds, &triggers, round, start, false));
        round += 1;
    }
    eventually(
        LEASE_SECONDS as u64 + 15,
        "every item published before and after the kill fired",
        || async {
            let mut log = log.lock().await;
            log.refresh(&store).await;
            log.fired_all(&expected)
        },
    )
    .await;
    let log = log.into_inner();

    // Every item published fired once, and nothing else did (the history neither).
    let mut fired = log.fired();
    fired.sort();
    let mut published: Vec<(Uuid, &str)> = expected.iter().map(|(t, i)| (*t, i.as_str())).collect();
    published.sort();
    assert_eq!(fired, published, "each item published fired exactly once");

    // Polls are not duplicated: each feed is polled at one poller's pace, never more. Two
    // pollers at the same interval leave a gap of at most half of it somewhere in every
    // interval; one poller leaves a whole interval between a poll and the next.
    let requests = feeds.requests();
    let mut gaps = Vec::new();
    let mut polled_again = Vec::new();
    for (feed, trigger) in triggers.iter().enumerate() {
        let times: Vec<DateTime<Utc>> = requests
            .iter()
            .filter(|r| r.feed == feed)
            .map(|r| r.at)
            .collect();
        let span = (*times.last().unwrap() - times[0]).to_std().unwrap();
        assert!(
            times.len() as u32 <= span.div_duration_f64(POLL_INTERVAL) as u32 + 2,
            "feed {feed} polled at one poller's pace: {} polls in {span:?}",
            times.len()
        );
        let shortest = times
            .windows(2)
            .map(|pair| (pair[1] - pair[0]).to_std().unwrap())
            .min()
            .unwrap();
        assert!(
            shortest > POLL_INTERVAL / 2,
            "feed {feed} polled twice within {shortest:?}: {times:?}"
        );
        gaps.push(shortest);
        if orphans.contains(trigger) {
            let again = times.iter().find(|at| **at > dead_at).unwrap();
            polled_again.push((*again - killed_at).to_std().unwrap());
        }
    }
    gaps.sort();
    polled_again.sort();

    // Each trigger's polls were recorded by its owner alone, and an orphan's by its heir after
    // the victim's.
    let mut takeovers = Vec::new();
    for id in &triggers {
        let first = owner(&nodes, *id).unwrap();
        if !orphans.contains(id) {
            let pollers: BTreeSet<&str> = log.of(*id).map(|r| r.node.as_str()).collect();
            assert_eq!(
                pollers,
                BTreeSet::from([first]),
                "{id} is polled by its owner alone"
            );
            continue;
        }
        let heir = owner(&survivors, *id).unwrap();
        let by: Vec<&str> = log.of(*id).map(|r| r.node.as_str()).collect();
        let handed = by.iter().position(|node| *node != first).unwrap();
        assert!(
            by[..handed].iter().all(|node| *node == first)
                && by[handed..].iter().all(|node| *node == heir),
            "{id} is polled by its owner until the kill, then by its heir {heir}: {by:?}"
        );
        let first_of_heir = log.of(*id).nth(handed).unwrap().recorded_at;
        assert!(
            log.of(*id).take(handed).all(|r| r.recorded_at <= dead_at),
            "{id}: nothing recorded by the victim after its death"
        );
        takeovers.push((first_of_heir - killed_at).to_std().unwrap());
    }
    takeovers.sort();
    let slowest = *takeovers.last().unwrap();
    // Survivors drop the victim at their first beat after its lease (a third of a lease apart)
    // and then poll its triggers at once: within the lease and one interval, with 2 s on top
    // for a loaded machine (the suite shares two cores).
    assert!(
        slowest < lease + POLL_INTERVAL + Duration::from_secs(2),
        "taken over within the lease and a polling interval: {takeovers:?}"
    );

    stop(&mut engines).await;
    store.close().await;
    eprintln!(
        "{} items in {round} rounds fired once each; {} feed requests, the shortest gap per feed \
         {:?} to {:?}; killed {} (polled {} feeds), its feeds polled again {:?} to {:?} after the \
         kill, their first runs recorded {:?} to {:?} after it; test took {:?}",
        expected.len(),
        requests.len(),
        gaps[0],
        gaps.last().unwrap(),
        victim.node,
        orphans.len(),
        polled_again[0],
        polled_again.last().unwrap(),
        takeovers[0],
        slowest,
        started.elapsed()
    );
}
