//! Circuit breakers, one per executor target (an origin: scheme, host and port): after repeated
//! failures to reach a target, the executor stops calling it for a cool-down, then lets one probe
//! through; a success closes the circuit, a failure opens it again for twice as long.
//!
//! Runs for an open target are not attempted at all: they stay due without an `AttemptStarted`,
//! so an outage does not use up their attempts, and they go out as soon as the circuit closes.
//! The state is per process (each engine process learns for itself that a target is down, within
//! a threshold of calls); it is not in the log, since it describes the target, not a run.
//!
//! The state machine reads no clock: callers pass the time in, so tests step through it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// When a circuit opens and how long it stays open.
#[derive(Debug, Clone, Copy)]
pub struct CircuitSettings {
    /// Consecutive failures to reach a target that open its circuit.
    pub threshold: u32,
    /// The first cool-down; each reopening after a failed probe doubles it.
    pub cool_down: Duration,
    pub max_cool_down: Duration,
}

impl Default for CircuitSettings {
    fn default() -> Self {
        Self {
            threshold: 5,
            cool_down: Duration::from_secs(1),
            max_cool_down: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls go out.
    Closed,
    /// No calls until the cool-down has passed.
    Open,
    /// One probe call is out; its outcome closes or reopens the circuit.
    HalfOpen,
}

impl CircuitState {
    /// The value of the state gauge in `/metrics`.
    pub fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }
}

/// Whether a call to a target may go out now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Go,
    /// The one call that tells whether an open target is back.
    Probe,
    Wait,
}

/// One target's circuit.
#[derive(Debug, Clone)]
struct Circuit {
    state: CircuitState,
    consecutive_failures: u32,
    cool_down: Duration,
    reopen_at: Option<Instant>,
    opened_at: Option<DateTime<Utc>>,
    next_probe_at: Option<DateTime<Utc>>,
    opened_total: u64,
}

impl Circuit {
    fn new(settings: &CircuitSettings) -> Self {
        Self {
            state: CircuitState::Closed,
            consecutive_failures: 0,
            cool_down: settings.cool_down,
            reopen_at: None,
            opened_at: None,
            next_probe_at: None,
            opened_total: 0,
        }
    }

    fn admit(&mut self, now: Instant) -> Admission {
        match self.state {
            CircuitState::Closed => Admission::Go,
            CircuitState::HalfOpen => Admission::Wait,
            CircuitState::Open if self.reopen_at.is_some_and(|at| now < at) => Admission::Wait,
            CircuitState::Open => {
                self.state = CircuitState::HalfOpen;
                Admission::Probe
            }
        }
    }

    fn open(&mut self, cool_down: Duration, now: Instant, wall: DateTime<Utc>) {
        self.state = CircuitState::Open;
        self.cool_down = cool_down;
        self.reopen_at = Some(now + cool_down);
        self.opened_at = Some(wall);
        self.next_probe_at =
            Some(wall + chrono::Duration::from_std(cool_down).unwrap_or(chrono::Duration::MAX));
        self.opened_total += 1;
    }
}

/// What changed, for the one log line per change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    Opened { cool_down: Duration },
    Closed,
}

/// One target's circuit as `GET /executor/status` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CircuitStatus {
    /// The target's origin, e.g. `https://executor.example:443`.
    pub origin: String,
    pub state: CircuitState,
    pub consecutive_failures: u32,
    /// When it last opened.
    pub opened_at: Option<DateTime<Utc>>,
    /// When the next probe may go out, while open.
    pub next_probe_at: Option<DateTime<Utc>>,
    /// The current (or last) cool-down, in milliseconds.
    pub cool_down_ms: u64,
    /// Times it has opened since this process started.
    pub opened_total: u64,
}

/// Every target's circuit in this process.
#[derive(Debug, Default)]
pub struct Circuits {
    settings: CircuitSettings,
    circuits: Mutex<HashMap<String, Circuit>>,
}

impl Circuits {
    pub fn new(settings: CircuitSettings) -> Self {
        Self {
            settings,
            circuits: Mutex::default(),
        }
    }

    /// Whether a call to `origin` may go out at `now`; a `Probe` must be followed by
    /// [`Circuits::record`] or [`Circuits::abandon`].
    pub fn admit(&self, origin: &str, now: Instant) -> Admission {
        let mut circuits = self.circuits.lock().expect("circuits lock");
        match circuits.get_mut(origin) {
            // A target never seen is closed; no entry is made until it fails.
            None => Admission::Go,
            Some(circuit) => circuit.admit(now),
        }
    }

    /// Records a call's outcome: `reached` when the target answered as a working target does
    /// (a success, or a rejection only the run can be blamed for).
    pub fn record(&self, origin: &str, reached: bool, now: Instant, wall: DateTime<Utc>) -> Change {
        let mut circuits = self.circuits.lock().expect("circuits lock");
        if reached {
            let Some(circuit) = circuits.get_mut(origin) else {
                return Change::None;
            };
            let was = circuit.state;
            circuit.state = CircuitState::Closed;
            circuit.consecutive_failures = 0;
            circuit.cool_down = self.settings.cool_down;
            circuit.reopen_at = None;
            circuit.next_probe_at = None;
            return match was {
                CircuitState::Closed => Change::None,
                _ => Change::Closed,
            };
        }
        let circuit = circuits
            .entry(origin.to_owned())
            .or_insert_with(|| Circuit::new(&self.settings));
        circuit.consecutive_failures = circuit.consecutive_failures.saturating_add(1);
        match circuit.state {
            CircuitState::Closed if circuit.consecutive_failures >= self.settings.threshold => {
                let cool_down = self.settings.cool_down;
                circuit.open(cool_down, now, wall);
                Change::Opened { cool_down }
            }
            CircuitState::HalfOpen => {
                let cool_down = (circuit.cool_down * 2).min(self.settings.max_cool_down);
                circuit.open(cool_down, now, wall);
                Change::Opened { cool_down }
            }
            // Calls that were already out when it opened fail too; they change nothing.
            CircuitState::Closed | CircuitState::Open => Change::None,
        }
    }

    /// A probe that was admitted but not sent (another process had started the run): the next
    /// call may probe instead.
    pub fn abandon(&self, origin: &str) {
        let mut circuits = self.circuits.lock().expect("circuits lock");
        if let Some(circuit) = circuits.get_mut(origin) {
            if circuit.state == CircuitState::HalfOpen {
                circuit.state = CircuitState::Open;
                circuit.reopen_at = None;
            }
        }
    }

    /// Every target that has failed since this process started, by origin.
    pub fn status(&self) -> Vec<CircuitStatus> {
        let circuits = self.circuits.lock().expect("circuits lock");
        let mut status: Vec<CircuitStatus> = circuits
            .iter()
            .map(|(origin, circuit)| CircuitStatus {
                origin: origin.clone(),
                state: circuit.state,
                consecutive_failures: circuit.consecutive_failures,
                opened_at: circuit.opened_at,
                next_probe_at: match circuit.state {
                    CircuitState::Open => circuit.next_probe_at,
                    _ => None,
                },
                cool_down_ms: u64::try_from(circuit.cool_down.as_millis()).unwrap_or(u64::MAX),
                opened_total: circuit.opened_total,
            })
            .collect();
        status.sort_by(|a, b| a.origin.cmp(&b.origin));
        status
    }

    pub fn settings(&self) -> CircuitSettings {
        self.settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: &str = "http://127.0.0.1:9";

    fn circuits() -> Circuits {
        Circuits::new(CircuitSettings {
            threshold: 3,
            cool_down: Duration::from_secs(1),
            max_cool_down: Duration::from_secs(4),
        })
    }

    fn fail(circuits: &Circuits, now: Instant) -> Change {
        circuits.record(TARGET, false, now, Utc::now())
    }

    #[test]
    fn it_should_open_after_the_threshold_and_probe_once_after_the_cool_down() {
        let circuits = circuits();
        let start = Instant::now();
        assert_eq!(fail(&circuits, start), Change::None);
        assert_eq!(fail(&circuits, start), Change::None);
        assert_eq!(circuits.admit(TARGET, start), Admission::Go);
        assert_eq!(
            fail(&circuits, start),
            Change::Opened {
                cool_down: Duration::from_secs(1)
            }
        );
        assert_eq!(circuits.admit(TARGET, start), Admission::Wait);
        let later = start + Duration::from_millis(1001);
        assert_eq!(circuits.admit(TARGET, later), Admission::Probe);
        assert_eq!(
            circuits.admit(TARGET, later),
            Admission::Wait,
            "one probe at a time"
        );
        assert_eq!(
            circuits.record(TARGET, true, later, Utc::now()),
            Change::Closed
        );
        assert_eq!(circuits.admit(TARGET, later), Admission::Go);
        assert_eq!(circuits.status()[0].consecutive_failures, 0);
    }

    #[test]
    fn it_should_double_the_cool_down_after_each_failed_probe_up_to_the_maximum() {
        let circuits = circuits();
        let mut now = Instant::now();
        for _ in 0..3 {
            fail(&circuits, now);
        }
        let mut cool_downs = Vec::new();
        for _ in 0..4 {
            now += Duration::from_secs(10);
            assert_eq!(circuits.admit(TARGET, now), Admission::Probe);
            match fail(&circuits, now) {
                Change::Opened { cool_down } => cool_downs.push(cool_down.as_secs()),
                other => panic!("a failed probe reopens the circuit, not {other:?}"),
            }
        }
        assert_eq!(cool_downs, [2, 4, 4, 4]);
        let status = &circuits.status()[0];
        assert_eq!(status.state, CircuitState::Open);
        assert_eq!(status.opened_total, 5);
    }

    #[test]
    fn it_should_ignore_late_failures_of_calls_made_before_it_opened() {
        let circuits = circuits();
        let now = Instant::now();
        for _ in 0..3 {
            fail(&circuits, now);
        }
        assert_eq!(fail(&circuits, now), Change::None);
        assert_eq!(circuits.status()[0].cool_down_ms, 1000);
    }

    #[test]
    fn it_should_let_another_call_probe_when_a_probe_was_not_sent() {
        let circuits = circuits();
        let now = Instant::now();
        for _ in 0..3 {
            fail(&circuits, now);
        }
        let later = now + Duration::from_secs(2);
        assert_eq!(circuits.admit(TARGET, later), Admission::Probe);
        circuits.abandon(TARGET);
        assert_eq!(circuits.admit(TARGET, later), Admission::Probe);
    }

    #[test]
    fn it_should_reset_the_count_when_a_target_answers() {
        let circuits = circuits();
        let now = Instant::now();
        fail(&circuits, now);
        fail(&circuits, now);
        assert_eq!(circuits.record(TARGET, true, now, Utc::now()), Change::None);
        fail(&circuits, now);
        fail(&circuits, now);
        assert_eq!(circuits.admit(TARGET, now), Admission::Go);
    }
}
