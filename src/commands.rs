//! The write path: load a trigger, let the aggregate decide, append what it decided.

use std::sync::Arc;
use std::time::Duration;

use aggregates::{Trigger, TriggerAction, TriggerCommand, TriggerError};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use uuid::Uuid;

use crate::projector::ProjectionHandle;
use crate::store::streams::EventMetadata;
use crate::store::{Store, StoreError, StreamAppend};

/// A snapshot every this many events: loading a trigger then replays fewer than 100 events,
/// whatever the length of its stream, at the cost of one small write per 100 events.
pub const SNAPSHOT_EVERY: usize = 100;

/// How many times a command is decided again after losing a race to append. Each retry reloads
/// the trigger, so the decision is always made against its latest state.
const CONFLICT_RETRIES: usize = 5;

/// How long a write waits for the read model to show it before answering anyway.
pub const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Rejected(#[from] TriggerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Every attempt lost the race to another writer of the same trigger.
    #[error("trigger is changing too fast; try again")]
    Contended,
}

/// What a command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Executed {
    /// Position of the last event recorded; `None` when the command changed nothing.
    pub position: Option<i64>,
}

/// Runs trigger commands against the store and keeps the read model informed.
#[derive(Clone)]
pub struct Commands {
    store: Arc<Store>,
    projections: ProjectionHandle,
}

impl Commands {
    pub fn new(store: Arc<Store>, projections: ProjectionHandle) -> Self {
        Self { store, projections }
    }

    /// Decides and records one command on behalf of the engine itself (any organisation's
    /// trigger). Returns once the events are committed.
    pub async fn execute(
        &self,
        id: Uuid,
        command: TriggerCommand,
        request_id: &str,
    ) -> Result<Executed, CommandError> {
        self.run(None, id, &[command], request_id, &[]).await
    }

    /// Like [`execute`](Self::execute), recording `also` (other streams' first events, such as
    /// the runs a poll fires) in the same commit as the trigger's: all of them or none. A clash
    /// on one of `also`'s streams is retried like a clash on the trigger's, and ends in
    /// [`CommandError::Contended`] when it persists: callers leave out streams that exist.
    pub async fn execute_with(
        &self,
        id: Uuid,
        command: TriggerCommand,
        request_id: &str,
        also: &[StreamAppend],
    ) -> Result<Executed, CommandError> {
        self.run(None, id, &[command], request_id, also).await
    }

    /// Like [`execute`](Self::execute), for a caller of organisation `org_id`: another
    /// organisation's trigger is, to this caller, a trigger that does not exist.
    pub async fn execute_in_org(
        &self,
        org_id: Uuid,
        id: Uuid,
        command: TriggerCommand,
        request_id: &str,
    ) -> Result<Executed, CommandError> {
        self.execute_all_in_org(org_id, id, &[command], request_id)
            .await
    }

    /// Like [`execute_in_org`](Self::execute_in_org) for several commands decided one after the
    /// other against the same trigger and recorded in one append: all of their events or none.
    /// For changes that are one fact to the outside world, such as "the webhook is registered and
    /// the trigger enabled".
    pub async fn execute_all_in_org(
        &self,
        org_id: Uuid,
        id: Uuid,
        commands: &[TriggerCommand],
        request_id: &str,
    ) -> Result<Executed, CommandError> {
        for command in commands {
            if let TriggerAction::CreateTrigger(new) = &command.action {
                if new.org_id != org_id {
                    return Err(TriggerError::NotFound.into());
                }
            }
        }
        self.run(Some(org_id), id, commands, request_id, &[]).await
    }

    #[tracing::instrument(skip(self, commands, also), fields(trigger_id = %id))]
    async fn run(
        &self,
        org_id: Option<Uuid>,
        id: Uuid,
        commands: &[TriggerCommand],
        request_id: &str,
        also: &[StreamAppend],
    ) -> Result<Executed, CommandError> {
        let Some(first) = commands.first() else {
            return Ok(Executed { position: None });
        };
        for _ in 0..=CONFLICT_RETRIES {
            let loaded = self.store.load::<Trigger>(id).await?;
            let mut trigger = loaded.state;
            let foreign = matches!(
                (org_id, trigger.record()),
                (Some(org_id), Some(record)) if record.org_id != org_id
            );
            if foreign {
                return Err(TriggerError::NotFound.into());
            }
            let sink = EventSink::default();
            // The sink applies each event to `trigger` as it is written, so every command is
            // decided against the state the ones before it left.
            for command in commands {
                trigger.handle(command.clone(), &(), &sink).await?;
            }
            let events = sink.collect().await;
            let org_id = match (events.is_empty(), trigger.record()) {
                (false, Some(record)) => record.org_id,
                // No events: the command asked for what already is, and nothing is recorded.
                _ => return Ok(Executed { position: None }),
            };
            let metadata = EventMetadata {
                actor: first.actor.clone(),
                org_id,
                request_id: request_id.to_owned(),
            };
            let mut group = vec![Store::stream_append::<Trigger>(
                id,
                loaded.sequence,
                &events,
                &metadata,
            )?];
            group.extend(also.iter().cloned());
            match self.store.append_together(group).await {
                Ok(positions) => {
                    let position = positions.into_iter().max().unwrap_or_default();
                    self.projections.wake();
                    self.snapshot_if_due(id, &trigger, loaded.sequence, events.len())
                        .await;
                    return Ok(Executed {
                        position: Some(position),
                    });
                }
                Err(StoreError::Conflict) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(CommandError::Contended)
    }

    /// Like [`execute`](Self::execute), then waits (bounded) until reads show the change.
    pub async fn execute_and_wait(
        &self,
        id: Uuid,
        command: TriggerCommand,
        request_id: &str,
    ) -> Result<Executed, CommandError> {
        let executed = self.execute(id, command, request_id).await?;
        self.wait_until_visible(executed).await;
        Ok(executed)
    }

    /// Waits (at most [`READ_YOUR_WRITES_WAIT`]) until the read model shows `executed`.
    pub async fn wait_until_visible(&self, executed: Executed) {
        if let Some(position) = executed.position {
            if !self
                .projections
                .wait_for(position, READ_YOUR_WRITES_WAIT)
                .await
            {
                tracing::warn!(
                    position,
                    "read model is behind; answering before it shows the write"
                );
            }
        }
    }

    async fn snapshot_if_due(&self, id: Uuid, trigger: &Trigger, before: usize, added: usize) {
        let after = before + added;
        if after / SNAPSHOT_EVERY == before / SNAPSHOT_EVERY {
            return;
        }
        // The append is committed: a failed snapshot costs only replay time, so it is not an error.
        if let Err(error) = self.store.save_snapshot(id, trigger, after).await {
            tracing::warn!(%error, trigger_id = %id, "could not save snapshot");
        }
    }
}
