//! Compiled filters by trigger: a delivery looks its trigger's filter up instead of compiling it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::{source_in, Filter, FilterError, Outcome};

/// How many triggers' filters are kept, and how much text they may hold together. A compiled
/// filter's tree grows with its text: about 1 KiB for a one-clause filter, up to about 60 bytes
/// a character for a long one (a list of calls). So 10,000 typical filters take about 10 MiB, and
/// filters of the most text take about 60 MiB however many triggers tenants create. Past either
/// bound, the least recently used is dropped, to be compiled again (tens of microseconds,
/// docs/benchmarks.md) at its next delivery.
pub const CAPACITY: usize = 10_000;
pub const CAPACITY_BYTES: usize = 1 << 20;

/// The engine's compiled filters, shared by the webhook routes and the poller; clones share them.
#[derive(Clone, Default)]
pub struct Filters {
    cache: Arc<Mutex<Cache>>,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<Uuid, Entry>,
    /// The bytes of the entries' sources, together.
    bytes: usize,
    /// Counts lookups; an entry's `used` is the count at its last one.
    clock: u64,
}

struct Entry {
    source: String,
    /// A stored filter that does not compile (kept from before a check existed) is kept as
    /// such, so that each delivery does not parse it again to fail the same way.
    compiled: Result<Arc<Filter>, FilterError>,
    used: u64,
}

impl Filters {
    /// What the filter in `trigger`'s `config` says of `payload`: [`Outcome::Fire`] when it
    /// has none.
    pub async fn judge(
        &self,
        trigger: Uuid,
        config: Option<&serde_json::Value>,
        payload: &serde_json::Value,
        event_type: Option<&str>,
    ) -> Outcome {
        let Some(source) = source_in(config) else {
            return Outcome::Fire;
        };
        match self.compiled(trigger, source).await {
            Ok(filter) => filter.evaluate(payload, event_type).await,
            Err(error) => Outcome::Failed(format!("the stored filter {error}")),
        }
    }

    /// `trigger`'s filter compiled, from the cache while its text is `source`.
    pub async fn compiled(&self, trigger: Uuid, source: &str) -> Result<Arc<Filter>, FilterError> {
        if let Some(hit) = self.lookup(trigger, source) {
            return hit;
        }
        // Compiled without the lock: two deliveries racing compile twice, harmlessly.
        let compiled = Filter::compile(source).await.map(Arc::new);
        self.keep(trigger, source, compiled.clone());
        compiled
    }

    /// How many filters are compiled and kept.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lookup(&self, trigger: Uuid, source: &str) -> Option<Result<Arc<Filter>, FilterError>> {
        let mut cache = self.lock();
        cache.clock += 1;
        let now = cache.clock;
        let entry = cache.entries.get_mut(&trigger)?;
        if entry.source != source {
            return None;
        }
        entry.used = now;
        Some(entry.compiled.clone())
    }

    fn keep(&self, trigger: Uuid, source: &str, compiled: Result<Arc<Filter>, FilterError>) {
        let mut cache = self.lock();
        if let Some(replaced) = cache.entries.remove(&trigger) {
            cache.bytes -= replaced.source.len();
        }
        while !cache.entries.is_empty()
            && (cache.entries.len() >= CAPACITY || cache.bytes + source.len() > CAPACITY_BYTES)
        {
            // A scan rather than an ordered index: it runs only on a miss in a full cache,
            // next to a compilation that costs more.
            let oldest = cache
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.used)
                .map(|(id, _)| *id);
            if let Some(evicted) = oldest.and_then(|id| cache.entries.remove(&id)) {
                cache.bytes -= evicted.source.len();
            }
        }
        let used = cache.clock;
        cache.bytes += source.len();
        cache.entries.insert(
            trigger,
            Entry {
                source: source.to_owned(),
                compiled,
                used,
            },
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A panic while holding the lock leaves a cache of whole entries: keep using it.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
