//! A local executor target for the circuit-breaker, fairness and replay tests: answers every call with the
//! status it is set to, after a set delay, and records each call.

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use trigger_engine::config::ServeConfig;
use trigger_engine::identity::Secret;
use uuid::Uuid;

/// One call the target received.
#[derive(Debug, Clone)]
pub struct Call {
    pub run_id: Uuid,
    pub org_id: Uuid,
    pub at: Instant,
    /// The status it was answered with.
    pub status: u16,
    /// The JSON the engine sent.
    pub body: Value,
}

#[derive(Clone)]
pub struct Target {
    pub calls: Arc<Mutex<Vec<Call>>>,
    status: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU64>,
    /// `http://127.0.0.1:PORT`, the origin the engine keys the target's circuit on.
    pub origin: String,
}

impl Target {
    pub async fn start(status: u16, delay: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = Self {
            calls: Arc::default(),
            status: Arc::new(AtomicU16::new(status)),
            delay_ms: Arc::new(AtomicU64::new(delay.as_millis() as u64)),
            origin: format!("http://{}", listener.local_addr().unwrap()),
        };
        let app = axum::Router::new()
            .route("/run", axum::routing::post(receive))
            .with_state(target.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        target
    }

    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Answers later calls after `delay`.
    pub fn delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Points the engine's executor at this target, with `concurrency` slots.
    pub fn configure(&self, concurrency: usize) -> impl FnOnce(&mut ServeConfig) {
        let url = format!("{}/run", self.origin);
        move |serve| {
            let key = STANDARD.encode(b"the executor's shared secret key");
            serve.executor.executor_url = Some(url);
            serve.executor.executor_secret = Some(Secret::new(format!("whsec_{key}")));
            serve.executor.executor_concurrency = concurrency;
        }
    }
}

async fn receive(State(target): State<Target>, body: String) -> StatusCode {
    let at = Instant::now();
    let delay = Duration::from_millis(target.delay_ms.load(Ordering::SeqCst));
    tokio::time::sleep(delay).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    let status = target.status.load(Ordering::SeqCst);
    let id = |field: &str| body[field].as_str().unwrap().parse().unwrap();
    target.calls.lock().unwrap().push(Call {
        run_id: id("run_id"),
        org_id: id("org_id"),
        at,
        status,
        body,
    });
    StatusCode::from_u16(status).unwrap()
}
