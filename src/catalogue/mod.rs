//! The catalogue of native triggers: which providers the engine can listen to, which triggers each
//! offers, and what a trigger's `trigger_config` must look like.
//!
//! It exists so that one piece of data answers three questions the same way: what
//! `GET /providers/{provider_id}/triggers` shows, whether a `trigger_config` sent on create or update
//! is acceptable (a 422 naming the offending field when it is not), and which parts of a stored
//! config no read may ever show (the schema's `writeOnly` fields, such as signing secrets).
//! A config schema is a JSON Schema (draft 2020-12) so that a client can build its form from the
//! very document the engine validates with.
//!
//! The definitions are data compiled into the engine; each provider writes its own in its folder
//! under `crate::providers` (its `catalogue.rs`), as [`TriggerSpec`]s.
//!
//! # Layout
//! - `validation`: compiles the schemas and turns a schema violation into a [`ConfigError`].
//! - `redaction`: removes `writeOnly` fields from a config, following the schema.

mod redaction;
mod validation;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::providers::ProviderId;
pub use validation::IANA_TIME_ZONE;

/// How a trigger learns that something happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TriggerKind {
    /// The provider calls us.
    Webhook,
    /// We ask the provider, on a timer, what is new since the cursor.
    Polling,
    /// The engine's clock fires it; no provider involved.
    Scheduled,
}

/// A trigger as its provider writes it; the catalogue adds the provider id and compiles the
/// schema.
pub struct TriggerSpec {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub kind: TriggerKind,
    pub event_type: Option<&'static str>,
    pub event_action: Option<&'static str>,
    pub config_schema: Value,
    pub sample_payload: Value,
}

/// One native trigger, as `GET /providers/{provider_id}/triggers/{trigger_id}` shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TriggerDefinition {
    /// The provider, e.g. `stripe`.
    pub provider_id: String,
    /// The same, typed, for finding what the provider supplies.
    #[serde(skip)]
    pub provider: ProviderId,
    /// The trigger, unique within its provider, e.g. `on_customer_created`.
    pub trigger_id: String,
    /// A short name for people.
    pub name: String,
    /// What makes the trigger fire.
    pub description: String,
    pub kind: TriggerKind,
    /// The provider's own name for the event this trigger fires on (Stripe's `type`, GitHub's
    /// `X-GitHub-Event`, Slack's `event.type`, Typeform's `event_type`), for routing an inbound
    /// event to the triggers that want it. `null` where the provider has no event names.
    #[schema(required = true)]
    pub event_type: Option<String>,
    /// Narrows `event_type` to one action where the provider sends several under one event
    /// (GitHub's payload `action`, e.g. `issues` + `opened`). `null`: every action matches.
    #[schema(required = true)]
    pub event_action: Option<String>,
    /// JSON Schema (draft 2020-12) of the trigger's `trigger_config`; secrets are `writeOnly`.
    #[schema(value_type = Object)]
    pub config_schema: Value,
    /// A payload of the shape this trigger fires with, for building and testing a flow.
    #[schema(value_type = Object)]
    pub sample_payload: Value,
    /// Compiled once with the catalogue: a request never pays for compiling a schema, and a
    /// schema that does not compile stops the engine at start-up rather than failing a request.
    #[serde(skip)]
    validator: Arc<jsonschema::Validator>,
}

impl TriggerDefinition {
    /// Validates a `trigger_config`. `None` and JSON `null` mean "no config", which is valid only
    /// when the schema requires nothing (it is checked as the empty object, so the error names
    /// the first field that is missing).
    ///
    /// The config is then read as its provider will read it ([`Provider::check_config`]), which
    /// refuses what a schema cannot say (a cron expression's values, say).
    ///
    /// [`Provider::check_config`]: crate::providers::Provider::check_config
    pub fn validate_config(&self, config: Option<&Value>) -> Result<(), ConfigError> {
        static EMPTY: LazyLock<Value> = LazyLock::new(|| Value::Object(Default::default()));
        let config = match config {
            None | Some(Value::Null) => &*EMPTY,
            Some(config) => config,
        };
        validation::validate(&self.validator, &self.config_schema, config)?;
        self.provider
            .provider()
            .check_config(&self.trigger_id, config)
    }

    /// The config schema as tools that know only standard JSON Schema read it: embeddable (no
    /// `$schema`), and with the engine's own formats spelled as the values they accept.
    pub fn portable_config_schema(&self) -> Value {
        validation::portable(&self.config_schema)
    }

    /// Whether the trigger can be created with no `trigger_config` at all.
    pub fn config_is_optional(&self) -> bool {
        self.validate_config(None).is_ok()
    }

    /// The config with every `writeOnly` field removed (recursively, following the schema):
    /// what any read may show. Fields the schema does not describe are kept; validation refuses
    /// them, so they can only come from configs stored before the schema knew them.
    pub fn redact(&self, config: &Value) -> Value {
        redaction::redact(&self.config_schema, config)
    }
}

/// Why a `trigger_config` was refused. `field` always names the offending field
/// (`trigger_config.signing_secret`, `trigger_config.signing_secret[1]`, or `trigger_config`
/// itself when the fault is in how fields combine), so the HTTP layer can answer a 422 that
/// names it. `reason` never quotes the value, so a rejected secret is never echoed back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} {reason}")]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

/// `trigger_config.filter`, which every trigger whose firings come from outside (a delivery, a
/// polled item) offers: added here rather than in each provider's file, so that every such
/// trigger spells it the same way. The expression itself is checked by [`crate::filter`] on
/// create; the schema can only say it is a string of bounded length.
fn filter_property() -> Value {
    serde_json::json!({
        "description": "A CEL expression over `payload` (what the run receives: the delivery's \
            JSON body, or the polled item) and `event_type` (the trigger's event type, `null` \
            where it has none). Only a delivery or item that makes it `true` fires; one that \
            makes it `false`, or on which it fails (a missing field, a type mismatch), is \
            acknowledged and fires nothing. Checked on create: a syntax error, a variable \
            other than `payload`, `event_type` and those its macros bind, or an unknown \
            function is refused.",
        "type": "string",
        "minLength": 1,
        "maxLength": crate::filter::MAX_LENGTH,
        "examples": [
            "payload.data.object.email.endsWith(\"@acme.com\")",
            "payload.data.object.amount_total > 1000 && !payload.livemode",
        ],
    })
}

/// Every native trigger the engine offers, grouped by provider.
#[derive(Debug)]
pub struct Catalogue {
    /// Ordered by provider id so that listings are stable; each provider's triggers keep the
    /// order its file declares them in.
    providers: BTreeMap<String, Vec<TriggerDefinition>>,
}

impl Catalogue {
    /// The catalogue compiled into this engine, built on first use.
    pub fn builtin() -> &'static Catalogue {
        static BUILTIN: LazyLock<Catalogue> =
            LazyLock::new(|| Catalogue::from_providers(ProviderId::ALL));
        &BUILTIN
    }

    /// Builds a catalogue from providers' data. The data is compiled in and checked by the tests,
    /// so a duplicate id or a schema that does not compile is a bug in this crate: it panics.
    fn from_providers(all: &[ProviderId]) -> Catalogue {
        let mut catalogue = BTreeMap::new();
        for &provider in all {
            let specs = provider.provider().triggers();
            let mut triggers: Vec<TriggerDefinition> = Vec::with_capacity(specs.len());
            for trigger in specs {
                assert!(
                    triggers.iter().all(|t| t.trigger_id != trigger.id),
                    "compiled-in catalogue declares {}/{} twice",
                    provider,
                    trigger.id
                );
                let mut config_schema = trigger.config_schema;
                if matches!(trigger.kind, TriggerKind::Webhook | TriggerKind::Polling) {
                    config_schema["properties"][crate::filter::FIELD] = filter_property();
                }
                let validator = validation::compile(&config_schema).unwrap_or_else(|e| {
                    panic!(
                        "compiled-in config schema of {}/{} does not compile: {e}",
                        provider, trigger.id
                    )
                });
                triggers.push(TriggerDefinition {
                    provider_id: provider.as_str().to_owned(),
                    provider,
                    trigger_id: trigger.id.to_owned(),
                    name: trigger.name.to_owned(),
                    description: trigger.description.to_owned(),
                    kind: trigger.kind,
                    event_type: trigger.event_type.map(str::to_owned),
                    event_action: trigger.event_action.map(str::to_owned),
                    config_schema,
                    sample_payload: trigger.sample_payload,
                    validator: Arc::new(validator),
                });
            }
            let previous = catalogue.insert(provider.as_str().to_owned(), triggers);
            assert!(
                previous.is_none(),
                "compiled-in catalogue declares provider {provider} twice",
            );
        }
        Catalogue {
            providers: catalogue,
        }
    }

    /// Provider ids, in order.
    pub fn providers(&self) -> impl Iterator<Item = &str> {
        self.providers.keys().map(String::as_str)
    }

    /// Every trigger of every provider, in the order of [`Catalogue::providers`].
    pub fn definitions(&self) -> impl Iterator<Item = &TriggerDefinition> {
        self.providers.values().flatten()
    }

    /// A provider's triggers; `None` when the provider is unknown (an empty slice never occurs).
    pub fn triggers_of(&self, provider_id: &str) -> Option<&[TriggerDefinition]> {
        self.providers.get(provider_id).map(Vec::as_slice)
    }

    /// One trigger; `None` when either the provider or the trigger is unknown.
    pub fn find(&self, provider_id: &str, trigger_id: &str) -> Option<&TriggerDefinition> {
        self.triggers_of(provider_id)?
            .iter()
            .find(|t| t.trigger_id == trigger_id)
    }
}
