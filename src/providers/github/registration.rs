//! GitHub repository hooks, one per trigger: created (or, when one already delivers to the
//! trigger's URL, updated) on enable, with a secret the engine draws; deleted on disable and delete.

use serde_json::{json, Value};

use super::api::Repository;
use super::GitHubConfig;
use crate::identity::secret::random_bytes;
use crate::identity::Secret;
use crate::providers::config::decode;
use crate::registration::{
    Call, ProviderApis, Registered, Registering, RegistrationError, Unregistering,
    WebhookRegistration,
};

pub(super) struct Registrar;

fn failed(action: &'static str, error: impl ToString) -> RegistrationError {
    RegistrationError::Provider {
        provider: "GitHub",
        action,
        error: error.to_string(),
    }
}

/// The repository a registered trigger's hook lives on: its config's, which registration needs.
fn repository_of(config: Option<&Value>) -> Result<Repository, RegistrationError> {
    const FIELD: &str = "trigger_config.repository";
    let config: GitHubConfig =
        decode(config).map_err(|_| RegistrationError::MissingConfig { field: FIELD })?;
    config
        .repository
        .and_then(|repository| repository.parse().ok())
        .ok_or(RegistrationError::MissingConfig { field: FIELD })
}

impl WebhookRegistration for Registrar {
    /// A trigger given the hook's `signing_secret` was wired by the user on GitHub (or is a
    /// GitHub App's, delivered to the app URL): the engine leaves it alone.
    fn registers(&self, config: Option<&Value>) -> bool {
        decode::<GitHubConfig>(config).is_ok_and(|config| config.signing_secret.is_none())
    }

    /// A token allowed to administer the repository's hooks (`admin:repo_hook`, or a
    /// fine-grained token with "Webhooks: write").
    fn credential(&self) -> &'static str {
        "access_token"
    }

    fn alternative(&self) -> Option<&'static str> {
        Some("or a `trigger_config.signing_secret`, for a hook you created on GitHub yourself")
    }

    fn check_new(&self, config: Option<&Value>) -> Result<(), RegistrationError> {
        repository_of(config).map(drop)
    }

    fn register<'a>(&'a self, apis: &'a ProviderApis, call: Registering<'a>) -> Call<'a, Registered> {
        Box::pin(async move {
            let repository = repository_of(call.record.trigger_config.as_ref())?;
            let event = call.event_type.ok_or(RegistrationError::MissingConfig {
                field: "trigger_id",
            })?;
            let secret = Secret::new(hex::encode(random_bytes::<32>()));
            let hook_id = apis
                .github
                .put_hook(call.credential, &repository, call.delivery_url, event, &secret)
                .await
                .map_err(|error| failed("registering", error))?;
            Ok(Registered {
                webhook_data: json!({"hook_id": hook_id, "repository": repository.to_string()}),
                secret: Some(secret),
            })
        })
    }

    fn unregister<'a>(&'a self, apis: &'a ProviderApis, call: Unregistering<'a>) -> Call<'a, ()> {
        Box::pin(async move {
            let data = call.webhook_data;
            let hook_id = data.get("hook_id").and_then(Value::as_u64);
            let repository = data
                .get("repository")
                .and_then(Value::as_str)
                .and_then(|repository| repository.parse::<Repository>().ok());
            let (Some(hook_id), Some(repository)) = (hook_id, repository) else {
                tracing::warn!("webhook_data names no hook; nothing to remove at GitHub");
                return Ok(());
            };
            apis.github
                .delete_hook(call.credential, &repository, hook_id)
                .await
                .map_err(|error| failed("removing", error))
        })
    }
}
