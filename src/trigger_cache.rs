//! The triggers' read model kept in memory, for the reads on every request's path (a delivery
//! looks up its trigger first; `GET /triggers/{id}`).
//!
//! The cache follows the projector: before a lookup it makes sure it holds every change the
//! projector has folded as far as this process has seen ([`ProjectionHandle::checkpoint`]),
//! reading the rows changed since it last looked with one indexed query that every request
//! waiting at that moment shares. A writer that waits for its position to be projected (as the
//! API does before it answers) therefore reads its own write here. A trigger not in memory is
//! read from the store and kept. A row replaces what is held only if it is newer (its
//! `last_position`), so a lookup's read and a catch-up racing each other keep the later one.
//! Unknown ids are not remembered: deliveries to made-up ids cannot fill memory.
//!
//! Changes made through another process reach this one when its projector sees the log move:
//! at once under load, within the projector's idle poll otherwise.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use projections::triggers::TriggerView;
use uuid::Uuid;

use crate::projector::ProjectionHandle;
use crate::store::{Store, StoreError};

#[derive(Clone)]
pub struct TriggerCache {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    projections: ProjectionHandle,
    held: RwLock<Held>,
    /// One catch-up at a time; the others wait for it rather than repeat it.
    catching_up: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Held {
    /// Every change folded up to this position is in `views`.
    upto: i64,
    views: HashMap<Uuid, Arc<TriggerView>>,
}

impl Held {
    fn keep(&mut self, view: TriggerView) {
        let id = view.record.project_trigger_id;
        let newer = self
            .views
            .get(&id)
            .is_none_or(|held| held.last_position < view.last_position);
        if newer {
            self.views.insert(id, Arc::new(view));
        }
    }
}

impl TriggerCache {
    pub fn new(store: Arc<Store>, projections: ProjectionHandle) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                projections,
                held: RwLock::default(),
                catching_up: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Trigger `id` as the read model has it (deleted ones included), at least as fresh as the
    /// projector's checkpoint when the call began.
    pub async fn get(&self, id: Uuid) -> Result<Option<Arc<TriggerView>>, StoreError> {
        self.catch_up().await?;
        if let Some(view) = self.held().views.get(&id) {
            return Ok(Some(view.clone()));
        }
        let Some(view) = self.inner.store.trigger_view(id).await? else {
            return Ok(None);
        };
        let mut held = self
            .inner
            .held
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        held.keep(view);
        Ok(held.views.get(&id).cloned())
    }

    fn held(&self) -> std::sync::RwLockReadGuard<'_, Held> {
        self.inner
            .held
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Reads the rows changed since the cache last looked, when the projector has moved since.
    async fn catch_up(&self) -> Result<(), StoreError> {
        if self.held().upto >= self.inner.projections.checkpoint() {
            return Ok(());
        }
        let _turn = self.inner.catching_up.lock().await;
        let from = self.held().upto;
        // Read before the query: every row folded up to here is committed, so the query sees it.
        let target = self.inner.projections.checkpoint();
        if from >= target {
            return Ok(());
        }
        if self.held().views.is_empty() {
            // Nothing held to bring up to date; what is read from now on is read fresh.
            let mut held = self
                .inner
                .held
                .write()
                .unwrap_or_else(|poison| poison.into_inner());
            held.upto = held.upto.max(target);
            return Ok(());
        }
        let changed = self.inner.store.trigger_views_changed_since(from).await?;
        let mut held = self
            .inner
            .held
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        for view in changed {
            held.keep(view);
        }
        held.upto = held.upto.max(target);
        Ok(())
    }
}
