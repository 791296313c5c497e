//! Typeform's webhook API: create-or-update and delete a form's webhook.
//!
//! - `PUT {api}/forms/{form_id}/webhooks/{tag}` with `{"url", "enabled", "secret", "verify_ssl"}`
//!   creates the webhook named `tag` on the form, or updates it: calling it twice is harmless.
//! - `DELETE {api}/forms/{form_id}/webhooks/{tag}` removes it; a 404 means it is already gone.
//!
//! Both authenticate with the connection's access token as a bearer. The token and the signing
//! secret are never logged; failures carry Typeform's status and error code only.


use reqwest::{Method, StatusCode, Url};
use serde::Serialize;

use crate::identity::Secret;
use crate::providers::api_client::{self, cut};

/// Why a call to Typeform failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeformError {
    /// Typeform answered, and not with success.
    #[error("Typeform answered {status}{}", api_client::describe(.code.as_deref(), .description.as_deref()))]
    Refused {
        status: u16,
        /// Typeform's error code (`code` in its error body), e.g. `AUTHENTICATION_FAILED`.
        code: Option<String>,
        description: Option<String>,
    },
    /// No answer: the connection failed or timed out.
    #[error("Typeform could not be reached: {0}")]
    Unreachable(String),
}


/// The webhook the engine keeps on one form for one trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormWebhook {
    pub form_id: String,
    pub tag: String,
}

#[derive(Serialize)]
struct WebhookBody<'a> {
    url: &'a str,
    enabled: bool,
    secret: &'a str,
    verify_ssl: bool,
}

/// A client of one Typeform API base URL. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
}

impl Client {
    pub fn new(base: Url) -> Self {
        let http = api_client::builder()
            .build()
            .expect("a reqwest client with rustls builds");
        Self { http, base }
    }

    /// Creates or updates the webhook `webhook.tag` on the form, delivering to `url` and signing
    /// each delivery with `secret`.
    #[tracing::instrument(skip_all, fields(form_id = %webhook.form_id, tag = %webhook.tag))]
    pub async fn put_webhook(
        &self,
        token: &Secret,
        webhook: &FormWebhook,
        url: &Url,
        secret: &Secret,
    ) -> Result<(), TypeformError> {
        let body = WebhookBody {
            url: url.as_str(),
            enabled: true,
            secret: secret.expose(),
            // Typeform checks our certificate before delivering: the engine's public URL is
            // served over TLS in production, and deliveries carry form answers.
            verify_ssl: true,
        };
        let response = self
            .request(Method::PUT, token, webhook)
            .json(&body)
            .send()
            .await
            .map_err(unreachable)?;
        if response.status().is_success() {
            tracing::info!("Typeform webhook registered");
            return Ok(());
        }
        Err(refused(response).await)
    }

    /// Deletes the webhook; one that is already gone (404) counts as deleted.
    #[tracing::instrument(skip_all, fields(form_id = %webhook.form_id, tag = %webhook.tag))]
    pub async fn delete_webhook(
        &self,
        token: &Secret,
        webhook: &FormWebhook,
    ) -> Result<(), TypeformError> {
        let response = self
            .request(Method::DELETE, token, webhook)
            .send()
            .await
            .map_err(unreachable)?;
        if response.status().is_success() || response.status() == StatusCode::NOT_FOUND {
            tracing::info!(status = %response.status(), "Typeform webhook removed");
            return Ok(());
        }
        Err(refused(response).await)
    }

    fn request(
        &self,
        method: Method,
        token: &Secret,
        webhook: &FormWebhook,
    ) -> reqwest::RequestBuilder {
        let mut url = self.base.clone();
        // Each part is pushed as one path segment, percent-encoded: a form id cannot add segments.
        url.path_segments_mut()
            .expect("an http(s) URL has path segments")
            .pop_if_empty()
            .extend(["forms", &webhook.form_id, "webhooks", &webhook.tag]);
        self.http.request(method, url).bearer_auth(token.expose())
    }
}

fn unreachable(error: reqwest::Error) -> TypeformError {
    TypeformError::Unreachable(api_client::unreachable(error))
}

/// Typeform's error body is `{"code": "...", "description": "..."}`; anything else is reported
/// by its status alone.
async fn refused(response: reqwest::Response) -> TypeformError {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        code: Option<String>,
        description: Option<String>,
    }
    let status = response.status().as_u16();
    let body = response.json::<ErrorBody>().await.ok();
    let (code, description) = body.map_or((None, None), |body| (body.code, body.description));
    let error = TypeformError::Refused {
        status,
        code,
        description: description.as_deref().map(cut),
    };
    tracing::warn!(%error, "Typeform refused a webhook call");
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_should_keep_each_part_of_the_webhook_path_one_segment() {
        let client = Client::new("http://127.0.0.1:9/api/".parse().unwrap());
        let webhook = FormWebhook {
            form_id: "a/../b".into(),
            tag: "trigger-engine-1".into(),
        };
        let request = client
            .request(Method::PUT, &Secret::new("t"), &webhook)
            .build()
            .unwrap();
        assert_eq!(
            request.url().as_str(),
            "http://127.0.0.1:9/api/forms/a%2F..%2Fb/webhooks/trigger-engine-1"
        );
        assert_eq!(request.headers()["authorization"], "Bearer t");
    }

    #[test]
    fn it_should_say_what_typeform_answered() {
        let error = TypeformError::Refused {
            status: 401,
            code: Some("AUTHENTICATION_FAILED".into()),
            description: Some("Authentication credentials not found on the Request Headers".into()),
        };
        assert_eq!(
            error.to_string(),
            "Typeform answered 401 (AUTHENTICATION_FAILED: Authentication credentials not found on the Request Headers)"
        );
    }
}
