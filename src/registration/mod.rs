//! Webhooks the engine registers at a provider on a trigger's behalf, kept in step with the
//! trigger's own state. Today that is Typeform's `on_form_response`: Typeform delivers a form's
//! responses only to webhooks created on the form through its API, with the form owner's token.
//!
//! # Order of the provider call and the events
//! The provider call comes first, and the trigger's events are recorded only once it succeeded,
//! in one append (`Commands::execute_all_in_org`):
//! - **enable**: `PUT` the webhook, then record `WebhookRecorded` + `TriggerEnabled` together.
//!   If Typeform refuses or cannot be reached, nothing is recorded: the answer is 502 and the
//!   trigger is as it was. If the events then fail to land (the trigger was deleted meanwhile,
//!   say), the webhook is taken down again, best effort, and the command's own error answers.
//! - **disable** and **delete**: `DELETE` the webhook (404: already gone), then record
//!   `WebhookCleared` + `TriggerDisabled` (or `TriggerDeleted`) together. If Typeform refuses, the
//!   answer is 502 and the trigger stays enabled with its webhook: still consistent, and a retry
//!   finishes the job. A disabled trigger the provider can still deliver to would be the
//!   half-done state this order avoids.
//!
//! The webhook's tag is derived from the trigger id (`trigger-engine-<project_trigger_id>`), so a
//! retried `PUT` updates the same webhook rather than adding another, and removal never depends
//! on anything but the recorded `webhook_data`.
//!
//! Two requests racing on one trigger (an enable and a disable at once) each keep the provider
//! and the trigger consistent on their own, but their provider calls are not ordered with each
//! other's events: the later `PUT` or `DELETE` wins at Typeform. Retrying the last wish settles it.
//!
use std::sync::Arc;

use aggregates::{Actor, TriggerAction, TriggerCommand, TriggerRecord, TriggerStatus};
use chrono::Utc;
use reqwest::Url;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::commands::{CommandError, Commands, Executed};
use crate::connections::{ConnectionError, Connections};
use crate::identity::{Principal, Secret};
use crate::providers::typeform::api::{self as typeform, FormWebhook, TypeformError};
use crate::store::Store;

/// The configuration option naming where providers deliver.
pub const PUBLIC_URL_OPTION: &str = "TRIGGER_ENGINE_PUBLIC_URL";

/// Why a trigger's webhook could not be kept in step with the trigger.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// The engine does not know its public URL, so it cannot tell the provider where to deliver.
    #[error("registering a provider webhook needs {PUBLIC_URL_OPTION}, the engine's public base URL, which this engine was started without")]
    NeedsPublicUrl,
    /// The trigger's webhook is registered with a connection's credentials, and it names none.
    #[error("`{provider_id}` triggers need a connection: the engine registers their webhook with its credentials")]
    ConnectionRequired { provider_id: String },
    /// The named connection cannot serve this trigger: not one of the organisation's, of
    /// another provider, or without the credential the provider needs.
    #[error("{0}")]
    UnusableConnection(String),
    /// The trigger's config lacks a field registration needs (`field` names it).
    #[error("`{field}` is required to register the webhook")]
    MissingConfig { field: &'static str },
    /// The provider refused the call or could not be reached; nothing was recorded.
    #[error("{action} the webhook at Typeform failed: {error}")]
    Provider {
        action: &'static str,
        error: TypeformError,
    },
}

/// Whether the engine registers this trigger's webhook at the provider itself.
pub fn registers_webhook(provider_id: &str, trigger_id: &str) -> bool {
    (provider_id, trigger_id) == ("typeform", "on_form_response")
}

/// The tag of the trigger's webhook at Typeform: derived from the trigger id, so registering twice
/// updates one webhook and every engine process names it alike.
pub fn webhook_tag(project_trigger_id: Uuid) -> String {
    format!("trigger-engine-{project_trigger_id}")
}

/// The trigger commands whose webhooks this module keeps in step. Cheap to clone.
#[derive(Clone)]
pub struct Registration {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    commands: Commands,
    connections: Connections,
    typeform: typeform::Client,
    public_url: Option<Url>,
}

impl Registration {
    /// Fails when a URL cannot take a path (`mailto:...`), so a bad option stops the engine at
    /// start-up rather than failing requests.
    pub fn new(
        store: Arc<Store>,
        commands: Commands,
        connections: Connections,
        typeform_api_url: Url,
        public_url: Option<Url>,
    ) -> anyhow::Result<Self> {
        for url in std::iter::once(&typeform_api_url).chain(&public_url) {
            anyhow::ensure!(
                matches!(url.scheme(), "http" | "https") && !url.cannot_be_a_base(),
                "`{url}` is not an http(s) base URL"
            );
        }
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                commands,
                connections,
                typeform: typeform::Client::new(typeform_api_url),
                public_url,
            }),
        })
    }

    /// Checks the connection a new trigger names: one of the organisation's, for the trigger's
    /// provider; and present when the engine registers the trigger's webhook with it.
    pub async fn validate_new_trigger(
        &self,
        org_id: Uuid,
        provider_id: &str,
        trigger_id: &str,
        connection_id: Option<Uuid>,
    ) -> Result<(), RegistrationError> {
        let Some(connection_id) = connection_id else {
            if registers_webhook(provider_id, trigger_id) {
                return Err(RegistrationError::ConnectionRequired {
                    provider_id: provider_id.to_owned(),
                });
            }
            return Ok(());
        };
        let connection = match self.inner.connections.find(org_id, connection_id).await {
            Err(ConnectionError::NotFound) => {
                return Err(RegistrationError::UnusableConnection(format!(
                    "no connection {connection_id} in your organisation"
                )))
            }
            found => found?,
        };
        if connection.provider_id != provider_id {
            return Err(RegistrationError::UnusableConnection(format!(
                "connection {connection_id} is a `{}` connection; this trigger needs a `{provider_id}` one",
                connection.provider_id
            )));
        }
        Ok(())
    }

    /// Enables the trigger, registering its webhook at the provider first where the engine does.
    #[tracing::instrument(skip_all, fields(trigger_id = %id))]
    pub async fn enable(
        &self,
        caller: &Principal,
        id: Uuid,
        request_id: &str,
    ) -> Result<Executed, RegistrationError> {
        let enable = command(caller, TriggerAction::EnableTrigger);
        let record = self.live_record(caller.org_id, id).await?;
        if let Some(record) = record.as_ref().filter(|record| is_schedule(record)) {
            if record.status == TriggerStatus::Enabled {
                return Ok(Executed { position: None });
            }
            // The job is the scheduler's plan for this trigger: recorded with the enable so the
            // trigger shows it has one, and when it first fires.
            let job = json!({
                "job_id": schedule_job_id(id),
                "next_fire_at": next_fire_at(record, Utc::now()),
            });
            let record_job = command(caller, TriggerAction::RecordWebhook { webhook_data: job });
            return self
                .execute(caller, id, &[enable, record_job], request_id)
                .await;
        }
        let Some(record) = record.filter(registers) else {
            return self.execute(caller, id, &[enable], request_id).await;
        };
        let webhook = FormWebhook {
            form_id: config_text(&record, "form_id", "trigger_config.form_id")?,
            tag: webhook_tag(id),
        };
        let webhook_data = json!({"form_id": webhook.form_id, "webhook_tag": webhook.tag});
        if record.status == TriggerStatus::Enabled
            && record.webhook_data.as_ref() == Some(&webhook_data)
        {
            return Ok(Executed { position: None });
        }
        let secret = Secret::new(config_text(
            &record,
            "signing_secret",
            "trigger_config.signing_secret",
        )?);
        let url = self.delivery_url(id)?;
        let token = self.access_token(caller.org_id, &record).await?;
        self.inner
            .typeform
            .put_webhook(&token, &webhook, &url, &secret)
            .await
            .map_err(|error| RegistrationError::Provider {
                action: "registering",
                error,
            })?;
        let record_it = command(caller, TriggerAction::RecordWebhook { webhook_data });
        let recorded = self
            .execute(caller, id, &[record_it, enable], request_id)
            .await;
        if recorded.is_err() {
            // The trigger did not change: take the webhook down so Typeform does not deliver for
            // a trigger that is not enabled.
            if let Err(error) = self.inner.typeform.delete_webhook(&token, &webhook).await {
                tracing::warn!(%error, "could not remove a webhook whose trigger was not enabled");
            }
        }
        recorded
    }

    /// Disables the trigger, removing its webhook at the provider first if it has one.
    #[tracing::instrument(skip_all, fields(trigger_id = %id))]
    pub async fn disable(
        &self,
        caller: &Principal,
        id: Uuid,
        request_id: &str,
    ) -> Result<Executed, RegistrationError> {
        self.unregister_then(caller, id, TriggerAction::DisableTrigger, request_id)
            .await
    }

    /// Deletes the trigger, removing its webhook at the provider first if it has one.
    #[tracing::instrument(skip_all, fields(trigger_id = %id))]
    pub async fn delete(
        &self,
        caller: &Principal,
        id: Uuid,
        request_id: &str,
    ) -> Result<Executed, RegistrationError> {
        self.unregister_then(caller, id, TriggerAction::DeleteTrigger, request_id)
            .await
    }

    async fn unregister_then(
        &self,
        caller: &Principal,
        id: Uuid,
        action: TriggerAction,
        request_id: &str,
    ) -> Result<Executed, RegistrationError> {
        let then = command(caller, action);
        let record = self.live_record(caller.org_id, id).await?;
        if record
            .as_ref()
            .is_some_and(|record| is_schedule(record) && record.webhook_data.is_some())
        {
            let clear = command(caller, TriggerAction::ClearWebhook);
            return self.execute(caller, id, &[clear, then], request_id).await;
        }
        let registered = record
            .filter(registers)
            .and_then(|record| Some((recorded_webhook(&record, id)?, record)));
        let Some((webhook, record)) = registered else {
            return self.execute(caller, id, &[then], request_id).await;
        };
        match self.access_token(caller.org_id, &record).await {
            Ok(token) => self
                .inner
                .typeform
                .delete_webhook(&token, &webhook)
                .await
                .map_err(|error| RegistrationError::Provider {
                    action: "removing",
                    error,
                })?,
            // Without its connection the engine cannot reach the webhook at all; refusing would
            // leave the trigger enabled for good. The form's owner can delete the webhook in
            // Typeform, and deliveries for a trigger that is not enabled are not to fire it.
            Err(
                error @ (RegistrationError::UnusableConnection(_)
                | RegistrationError::ConnectionRequired { .. }),
            ) => tracing::warn!(
                %error,
                form_id = %webhook.form_id,
                tag = %webhook.tag,
                "cannot remove the webhook at Typeform; clearing it here only"
            ),
            Err(other) => return Err(other),
        }
        let clear = command(caller, TriggerAction::ClearWebhook);
        self.execute(caller, id, &[clear, then], request_id).await
    }

    async fn execute(
        &self,
        caller: &Principal,
        id: Uuid,
        commands: &[TriggerCommand],
        request_id: &str,
    ) -> Result<Executed, RegistrationError> {
        Ok(self
            .inner
            .commands
            .execute_all_in_org(caller.org_id, id, commands, request_id)
            .await?)
    }

    /// The trigger, when it is a live trigger of the organisation. Read from its stream, not the
    /// read model, so the decision sees every write so far. Anything else is `None`, and the
    /// plain command then answers as it always does (not found, deleted...).
    async fn live_record(
        &self,
        org_id: Uuid,
        id: Uuid,
    ) -> Result<Option<TriggerRecord>, RegistrationError> {
        let loaded = self
            .inner
            .store
            .load::<aggregates::Trigger>(id)
            .await
            .map_err(CommandError::from)?;
        Ok(loaded
            .state
            .record()
            .cloned()
            .filter(|record| record.org_id == org_id && !record.is_deleted()))
    }

    /// Where the provider delivers the trigger's events: `{public_url}/v1/webhooks/{id}`.
    fn delivery_url(&self, id: Uuid) -> Result<Url, RegistrationError> {
        let mut url = self
            .inner
            .public_url
            .clone()
            .ok_or(RegistrationError::NeedsPublicUrl)?;
        url.path_segments_mut()
            .expect("checked to be a base URL when built")
            .pop_if_empty()
            .extend(["v1", "webhooks", &id.to_string()]);
        Ok(url)
    }

    /// The access token of the trigger's connection.
    async fn access_token(
        &self,
        org_id: Uuid,
        record: &TriggerRecord,
    ) -> Result<Secret, RegistrationError> {
        let connection_id =
            record
                .connection_id
                .ok_or_else(|| RegistrationError::ConnectionRequired {
                    provider_id: record.provider_id.clone(),
                })?;
        let credentials = match self
            .inner
            .connections
            .with_credentials(org_id, connection_id)
            .await
        {
            Ok((_, credentials)) => credentials,
            Err(ConnectionError::NotFound) => {
                return Err(RegistrationError::UnusableConnection(format!(
                    "connection {connection_id} no longer exists"
                )))
            }
            Err(other) => return Err(other.into()),
        };
        credentials
            .get_str("access_token")
            .filter(|token| !token.is_empty())
            .map(Secret::new)
            .ok_or_else(|| {
                RegistrationError::UnusableConnection(format!(
                    "connection {connection_id} holds no `access_token`"
                ))
            })
    }
}

fn registers(record: &TriggerRecord) -> bool {
    registers_webhook(&record.provider_id, &record.trigger_id)
}

fn is_schedule(record: &TriggerRecord) -> bool {
    record.provider_id == crate::scheduler::PROVIDER.as_str()
}

/// The id of a schedule trigger's job, recorded in its `webhook_data` while it is enabled.
pub fn schedule_job_id(project_trigger_id: Uuid) -> String {
    format!("schedule-{project_trigger_id}")
}

/// When a schedule enabled at `now` first fires; `null` when it never will (a past one-off).
fn next_fire_at(record: &TriggerRecord, now: chrono::DateTime<Utc>) -> Value {
    let config = record.trigger_config.clone().unwrap_or(Value::Null);
    aggregates::schedule::Schedule::from_config(&config)
        .ok()
        .and_then(|schedule| schedule.next_after(now, now))
        .map_or(Value::Null, |slot| json!(slot.at))
}

fn command(caller: &Principal, action: TriggerAction) -> TriggerCommand {
    TriggerCommand::new(Utc::now(), Actor::User(caller.user_id), action)
}

/// A non-empty string of the trigger's config.
fn config_text(
    record: &TriggerRecord,
    name: &str,
    field: &'static str,
) -> Result<String, RegistrationError> {
    record
        .trigger_config
        .as_ref()
        .and_then(|config| config.get(name))
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
        .ok_or(RegistrationError::MissingConfig { field })
}

/// The webhook the trigger's `webhook_data` records, if it records one. A `webhook_data` without
/// a tag (recorded by hand, say) falls back on the derived one.
fn recorded_webhook(record: &TriggerRecord, id: Uuid) -> Option<FormWebhook> {
    let data = record.webhook_data.as_ref()?;
    Some(FormWebhook {
        form_id: data.get("form_id")?.as_str()?.to_owned(),
        tag: data
            .get("webhook_tag")
            .and_then(Value::as_str)
            .map_or_else(|| webhook_tag(id), str::to_owned),
    })
}
