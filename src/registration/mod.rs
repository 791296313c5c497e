//! Webhooks the engine registers at a provider on a trigger's behalf, kept in step with the
//! trigger's own state: Typeform's form webhooks, Stripe's webhook endpoints and GitHub's
//! repository hooks. Each provider's own calls are its [`WebhookRegistration`] (in its folder
//! under `crate::providers`); the order of calls and events is this module's, the same for all.
//!
//! # Order of the provider call and the events
//! The provider call comes first, and the trigger's events are recorded only once it succeeded,
//! in one append (`Commands::execute_all_in_org`):
//! - **enable**: register the webhook (a secret the provider returns, or the engine chose, is
//!   sealed and kept first), then record `WebhookRecorded` + `TriggerEnabled` together. If the
//!   provider refuses or cannot be reached, nothing is recorded: the answer is 502 and the
//!   trigger is as it was. If the events then fail to land (the trigger was deleted meanwhile,
//!   say), the webhook is taken down again, best effort, and the command's own error answers.
//! - **disable** and **delete**: remove the webhook (404: already gone), then record
//!   `WebhookCleared` + `TriggerDisabled` (or `TriggerDeleted`) together, then forget its
//!   secret. If the provider refuses, the answer is 502 and the trigger stays enabled with its
//!   webhook: still consistent, and a retry finishes the job. A disabled trigger the provider can
//!   still deliver to would be the half-done state this order avoids.
//!
//! **Retries converge**: each provider's registration finds what an earlier, unfinished attempt
//! left for the same trigger (Typeform's tag derived from the trigger id, Stripe's endpoint
//! metadata, GitHub's hook URL) and replaces or reuses it, so one trigger never has two webhooks.
//!
//! Removal never depends on anything but the recorded `webhook_data`.
//!
//! Two requests racing on one trigger (an enable and a disable at once) each keep the provider
//! and the trigger consistent on their own, but their provider calls are not ordered with each
//! other's events: the later call wins at the provider. Retrying the last wish settles it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use aggregates::{Actor, TriggerAction, TriggerCommand, TriggerRecord, TriggerStatus};
use chrono::Utc;
use reqwest::Url;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::catalogue::Catalogue;
use crate::commands::{CommandError, Commands, Executed};
use crate::connections::{ConnectionError, Connections};
use crate::identity::{Principal, Secret};
use crate::providers::{github, stripe, typeform, ProviderId};
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
    #[error("`{provider}` triggers need a connection: the engine registers their webhook with its credentials{}", .alternative.map(|a| format!(" ({a})")).unwrap_or_default())]
    ConnectionRequired {
        provider: ProviderId,
        /// What the user may do instead, when there is another way.
        alternative: Option<&'static str>,
    },
    /// The named connection cannot serve this trigger: not one of the organisation's, of
    /// another provider, or without the credential the provider needs.
    #[error("{0}")]
    UnusableConnection(String),
    /// The trigger's config lacks a field registration needs (`field` names it).
    #[error("`{field}` is required to register the webhook")]
    MissingConfig { field: &'static str },
    /// The provider refused the call or could not be reached; nothing was recorded. `error`
    /// says what the provider answered, never the credential.
    #[error("{action} the webhook at {provider} failed: {error}")]
    Provider {
        provider: &'static str,
        action: &'static str,
        error: String,
    },
}

/// The clients of the providers' APIs, at the base URLs the operator configured.
#[derive(Clone)]
pub struct ProviderApis {
    pub typeform: typeform::api::Client,
    pub stripe: stripe::api::Client,
    pub github: github::api::Client,
}

/// What a registration is asked to set up.
pub struct Registering<'a> {
    pub trigger_id: Uuid,
    pub record: &'a TriggerRecord,
    /// The provider's name for the event the trigger fires on (`customer.created`, `push`).
    pub event_type: Option<&'a str>,
    /// The credential of the trigger's connection the provider's calls are made with.
    pub credential: &'a Secret,
    /// Where the provider is to deliver: `{public_url}/v1/webhooks/{trigger_id}`.
    pub delivery_url: &'a Url,
}

/// What a registration set up.
pub struct Registered {
    /// What the trigger records and shows (`webhook_data`): enough to remove the webhook later.
    pub webhook_data: Value,
    /// The secret deliveries will be signed with, when the provider returned it or the
    /// registration chose it; kept sealed, never shown.
    pub secret: Option<Secret>,
}

/// What a removal is asked to take down.
pub struct Unregistering<'a> {
    pub trigger_id: Uuid,
    /// The trigger's recorded `webhook_data`.
    pub webhook_data: &'a Value,
    pub credential: &'a Secret,
}

/// A boxed future: the registrations are called through `dyn`, one per provider.
pub type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T, RegistrationError>> + Send + 'a>>;

/// A provider's part of keeping a webhook in step with a trigger.
pub trait WebhookRegistration: Sync {
    /// Whether the engine registers this trigger's webhook, or the user wired it themselves
    /// (a Stripe trigger given its endpoint's `signing_secret`).
    fn registers(&self, config: Option<&Value>) -> bool;

    /// The connection credential the calls are made with (`api_key`, `access_token`).
    fn credential(&self) -> &'static str;

    /// What the user may do instead of naming a connection, if anything.
    fn alternative(&self) -> Option<&'static str>;

    /// Refuses, when the trigger is created, a config registration could not work with.
    fn check_new(&self, config: Option<&Value>) -> Result<(), RegistrationError>;

    fn register<'a>(
        &'a self,
        apis: &'a ProviderApis,
        call: Registering<'a>,
    ) -> Call<'a, Registered>;

    /// Removes the webhook; one already gone counts as removed.
    fn unregister<'a>(&'a self, apis: &'a ProviderApis, call: Unregistering<'a>) -> Call<'a, ()>;
}

/// Whether the engine registered (or is to register) the trigger's webhook, and so keeps the
/// secret its deliveries are signed with.
pub fn is_registered(record: &TriggerRecord) -> bool {
    registration_of(record).is_some()
}

/// The registration of a trigger's webhook, when the engine does it.
fn registration_of(record: &TriggerRecord) -> Option<&'static dyn WebhookRegistration> {
    ProviderId::of(&record.provider_id)?
        .provider()
        .registration()
        .filter(|registration| registration.registers(record.trigger_config.as_ref()))
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
    apis: ProviderApis,
    public_url: Option<Url>,
}

/// The providers' API base URLs.
pub struct ApiUrls {
    pub typeform: Url,
    pub stripe: Url,
    pub github: Url,
}

impl Registration {
    /// Fails when a URL cannot take a path (`mailto:...`), so a bad option stops the engine at
    /// start-up rather than failing requests.
    pub fn new(
        store: Arc<Store>,
        commands: Commands,
        connections: Connections,
        api_urls: ApiUrls,
        public_url: Option<Url>,
    ) -> anyhow::Result<Self> {
        for url in [&api_urls.typeform, &api_urls.stripe, &api_urls.github]
            .into_iter()
            .chain(&public_url)
        {
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
                apis: ProviderApis {
                    typeform: typeform::api::Client::new(api_urls.typeform),
                    stripe: stripe::api::Client::new(api_urls.stripe),
                    github: github::api::Client::new(api_urls.github),
                },
                public_url,
            }),
        })
    }

    /// Checks the connection a new trigger names: one of the organisation's, for the trigger's
    /// provider; and present, with the config registration needs, when the engine registers the
    /// trigger's webhook.
    pub async fn validate_new_trigger(
        &self,
        org_id: Uuid,
        provider: ProviderId,
        config: Option<&Value>,
        connection_id: Option<Uuid>,
    ) -> Result<(), RegistrationError> {
        let registration = provider
            .provider()
            .registration()
            .filter(|registration| registration.registers(config));
        if let (Some(registration), None) = (registration, connection_id) {
            return Err(RegistrationError::ConnectionRequired {
                provider,
                alternative: registration.alternative(),
            });
        }
        if let Some(registration) = registration {
            registration.check_new(config)?;
        }
        let Some(connection_id) = connection_id else {
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
        if connection.provider_id != provider.as_str() {
            return Err(RegistrationError::UnusableConnection(format!(
                "connection {connection_id} is a `{}` connection; this trigger needs a `{provider}` one",
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
        let registered = record
            .and_then(|record| registration_of(&record).map(|registration| (record, registration)));
        let Some((record, registration)) = registered else {
            return self.execute(caller, id, &[enable], request_id).await;
        };
        if record.status == TriggerStatus::Enabled && record.webhook_data.is_some() {
            return Ok(Executed { position: None });
        }
        let event_type = Catalogue::builtin()
            .find(&record.provider_id, &record.trigger_id)
            .and_then(|definition| definition.event_type.as_deref());
        let url = self.delivery_url(id)?;
        let credential = self
            .credential(caller.org_id, &record, registration)
            .await?;
        let apis = &self.inner.apis;
        let registered = registration
            .register(
                apis,
                Registering {
                    trigger_id: id,
                    record: &record,
                    event_type,
                    credential: &credential,
                    delivery_url: &url,
                },
            )
            .await?;
        let take_down = || async {
            let call = Unregistering {
                trigger_id: id,
                webhook_data: &registered.webhook_data,
                credential: &credential,
            };
            if let Err(error) = registration.unregister(apis, call).await {
                tracing::warn!(%error, "could not remove a webhook whose trigger was not enabled");
            }
        };
        if let Some(secret) = &registered.secret {
            let kept = self
                .inner
                .connections
                .keep_webhook_secret(caller.org_id, id, &record.provider_id, secret)
                .await;
            if let Err(error) = kept {
                take_down().await;
                return Err(error.into());
            }
        }
        let record_it = command(
            caller,
            TriggerAction::RecordWebhook {
                webhook_data: registered.webhook_data.clone(),
            },
        );
        let recorded = self
            .execute(caller, id, &[record_it, enable], request_id)
            .await;
        if recorded.is_err() {
            // The trigger did not change: take the webhook down so the provider does not
            // deliver for a trigger that is not enabled.
            take_down().await;
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
        let registered = record.and_then(|record| {
            let registration = registration_of(&record)?;
            record
                .webhook_data
                .is_some()
                .then_some((record, registration))
        });
        let Some((record, registration)) = registered else {
            return self.execute(caller, id, &[then], request_id).await;
        };
        let webhook_data = record.webhook_data.clone().unwrap_or(Value::Null);
        match self.credential(caller.org_id, &record, registration).await {
            Ok(credential) => {
                let call = Unregistering {
                    trigger_id: id,
                    webhook_data: &webhook_data,
                    credential: &credential,
                };
                registration.unregister(&self.inner.apis, call).await?
            }
            // Without its connection the engine cannot reach the webhook at all; refusing would
            // leave the trigger enabled for good. The owner can delete the webhook at the
            // provider, and deliveries for a trigger that is not enabled are not to fire it.
            Err(
                error @ (RegistrationError::UnusableConnection(_)
                | RegistrationError::ConnectionRequired { .. }),
            ) => tracing::warn!(
                %error,
                %webhook_data,
                "cannot remove the webhook at the provider; clearing it here only"
            ),
            Err(other) => return Err(other),
        }
        let clear = command(caller, TriggerAction::ClearWebhook);
        let executed = self.execute(caller, id, &[clear, then], request_id).await?;
        // After the events: a secret forgotten before them would fail the deliveries of a
        // trigger that is, if the append failed, still enabled. A secret left behind by a
        // failure here is harmless (the trigger no longer fires) and replaced on enable.
        if let Err(error) = self.inner.connections.forget_webhook_secret(id).await {
            tracing::warn!(%error, "could not forget the secret of a removed webhook");
        }
        Ok(executed)
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

    /// The credential the registration calls with, from the trigger's connection.
    async fn credential(
        &self,
        org_id: Uuid,
        record: &TriggerRecord,
        registration: &dyn WebhookRegistration,
    ) -> Result<Secret, RegistrationError> {
        let name = registration.credential();
        let connection_id =
            record
                .connection_id
                .ok_or_else(|| RegistrationError::UnusableConnection(format!(
                    "the trigger has no connection to remove its webhook with; `{name}` of a `{}` connection is needed",
                    record.provider_id
                )))?;
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
            .get_str(name)
            .filter(|credential| !credential.is_empty())
            .map(Secret::new)
            .ok_or_else(|| {
                RegistrationError::UnusableConnection(format!(
                    "connection {connection_id} holds no `{name}`"
                ))
            })
    }
}

fn is_schedule(record: &TriggerRecord) -> bool {
    ProviderId::of(&record.provider_id) == Some(crate::scheduler::PROVIDER)
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
