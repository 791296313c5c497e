//! Typeform delivers a form's responses only to webhooks created on the form through its API,
//! with the form owner's token: the engine creates one per trigger, tagged with the trigger id.

use serde_json::{json, Value};
use uuid::Uuid;

use super::api::FormWebhook;
use super::TypeformConfig;
use crate::identity::Secret;
use crate::providers::config::decode;
use crate::registration::{
    Call, ProviderApis, Registered, Registering, RegistrationError, Unregistering,
    WebhookRegistration,
};

pub(super) struct Registrar;

/// The tag of the trigger's webhook at Typeform: derived from the trigger id, so registering twice
/// updates one webhook (a retried `PUT` converges) and every engine process names it alike.
pub fn webhook_tag(project_trigger_id: Uuid) -> String {
    format!("trigger-engine-{project_trigger_id}")
}

fn failed(action: &'static str, error: impl ToString) -> RegistrationError {
    RegistrationError::Provider {
        provider: "Typeform",
        action,
        error: error.to_string(),
    }
}

/// The webhook the trigger's `webhook_data` records. A `webhook_data` without a tag (recorded by
/// hand, say) falls back on the derived one.
fn recorded_webhook(data: &Value, id: Uuid) -> Option<FormWebhook> {
    Some(FormWebhook {
        form_id: data.get("form_id")?.as_str()?.to_owned(),
        tag: data
            .get("webhook_tag")
            .and_then(Value::as_str)
            .map_or_else(|| webhook_tag(id), str::to_owned),
    })
}

impl WebhookRegistration for Registrar {
    fn registers(&self, _config: Option<&Value>) -> bool {
        true
    }

    /// The personal or OAuth access token the Create/Delete webhook calls send as a bearer.
    fn credential(&self) -> &'static str {
        "access_token"
    }

    fn alternative(&self) -> Option<&'static str> {
        None
    }

    /// The schema requires `form_id` and `signing_secret`.
    fn check_new(&self, _config: Option<&Value>) -> Result<(), RegistrationError> {
        Ok(())
    }

    fn register<'a>(&'a self, apis: &'a ProviderApis, call: Registering<'a>) -> Call<'a, Registered> {
        Box::pin(async move {
            let config: TypeformConfig = decode(call.record.trigger_config.as_ref())
                .map_err(|_| RegistrationError::MissingConfig {
                    field: "trigger_config",
                })?;
            let form_id = config.form_id.filter(|id| !id.is_empty()).ok_or(
                RegistrationError::MissingConfig {
                    field: "trigger_config.form_id",
                },
            )?;
            let secret = config
                .signing_secret
                .as_ref()
                .and_then(|secrets| secrets.first())
                .filter(|secret| !secret.is_empty())
                .map(Secret::new)
                .ok_or(RegistrationError::MissingConfig {
                    field: "trigger_config.signing_secret",
                })?;
            let webhook = FormWebhook {
                form_id,
                tag: webhook_tag(call.trigger_id),
            };
            apis.typeform
                .put_webhook(call.credential, &webhook, call.delivery_url, &secret)
                .await
                .map_err(|error| failed("registering", error))?;
            Ok(Registered {
                webhook_data: json!({"form_id": webhook.form_id, "webhook_tag": webhook.tag}),
                // The trigger's own secret, which its config already holds.
                secret: None,
            })
        })
    }

    fn unregister<'a>(&'a self, apis: &'a ProviderApis, call: Unregistering<'a>) -> Call<'a, ()> {
        Box::pin(async move {
            let Some(webhook) = recorded_webhook(call.webhook_data, call.trigger_id) else {
                tracing::warn!("webhook_data names no form; nothing to remove at Typeform");
                return Ok(());
            };
            apis.typeform
                .delete_webhook(call.credential, &webhook)
                .await
                .map_err(|error| failed("removing", error))
        })
    }
}
