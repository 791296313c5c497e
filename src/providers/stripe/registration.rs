//! Stripe webhook endpoints, one per trigger: created on enable with the trigger's event type,
//! deleted on disable and delete. Stripe returns the endpoint's signing secret once, at creation;
//! the engine keeps it sealed and verifies deliveries with it.

use serde_json::{json, Value};

use super::StripeConfig;
use crate::providers::config::decode;
use crate::registration::{
    Call, ProviderApis, Registered, Registering, RegistrationError, Unregistering,
    WebhookRegistration,
};

pub(super) struct Registrar;

fn failed(action: &'static str, error: impl ToString) -> RegistrationError {
    RegistrationError::Provider {
        provider: "Stripe",
        action,
        error: error.to_string(),
    }
}

impl WebhookRegistration for Registrar {
    /// A trigger given its endpoint's `signing_secret` was wired by the user in Stripe's
    /// dashboard: the engine leaves it alone.
    fn registers(&self, config: Option<&Value>) -> bool {
        decode::<StripeConfig>(config).is_ok_and(|config| config.signing_secret.is_none())
    }

    /// The secret key (`sk_...`) or a restricted key allowed to write webhook endpoints.
    fn credential(&self) -> &'static str {
        "api_key"
    }

    fn alternative(&self) -> Option<&'static str> {
        Some("or a `trigger_config.signing_secret`, for an endpoint you created in Stripe yourself")
    }

    fn check_new(&self, _config: Option<&Value>) -> Result<(), RegistrationError> {
        Ok(())
    }

    fn register<'a>(&'a self, apis: &'a ProviderApis, call: Registering<'a>) -> Call<'a, Registered> {
        Box::pin(async move {
            let event_type = call.event_type.ok_or(RegistrationError::MissingConfig {
                field: "trigger_id",
            })?;
            // An earlier attempt may have created an endpoint and then failed to record it: its
            // secret was never kept, so it is removed rather than reused.
            let leftovers = apis
                .stripe
                .endpoints_of(call.credential, call.trigger_id)
                .await
                .map_err(|error| failed("listing", error))?;
            for id in leftovers {
                apis.stripe
                    .delete_endpoint(call.credential, &id)
                    .await
                    .map_err(|error| failed("replacing", error))?;
            }
            let created = apis
                .stripe
                .create_endpoint(call.credential, call.delivery_url, event_type, call.trigger_id)
                .await
                .map_err(|error| failed("registering", error))?;
            Ok(Registered {
                webhook_data: json!({"webhook_endpoint_id": created.id}),
                secret: Some(created.secret),
            })
        })
    }

    fn unregister<'a>(&'a self, apis: &'a ProviderApis, call: Unregistering<'a>) -> Call<'a, ()> {
        Box::pin(async move {
            let Some(id) = call
                .webhook_data
                .get("webhook_endpoint_id")
                .and_then(Value::as_str)
            else {
                tracing::warn!("webhook_data names no endpoint; nothing to remove at Stripe");
                return Ok(());
            };
            apis.stripe
                .delete_endpoint(call.credential, id)
                .await
                .map_err(|error| failed("removing", error))
        })
    }
}
