//! Stripe's webhook endpoints API: create the endpoint a trigger receives its events at, find the
//! endpoints a trigger left behind, and delete one.
//!
//! - `POST {api}/v1/webhook_endpoints`, form-encoded (`url`, `enabled_events[]`,
//!   `metadata[trigger_engine_trigger_id]`, `description`), answers the endpoint with its signing
//!   secret: the only answer that ever carries it.
//! - `GET {api}/v1/webhook_endpoints?limit=100` pages with `has_more` and `starting_after`.
//! - `DELETE {api}/v1/webhook_endpoints/{id}` removes one; a 404 means it is already gone.
//!
//! Stripe has no create-or-update by a name of ours, so each endpoint carries the trigger's id in
//! its metadata: a retried enable lists the trigger's endpoints and deletes them before creating
//! one, and a trigger converges on one endpoint.
//!
//! Every call authenticates with the connection's API key as a bearer. The key and the signing
//! secret are never logged; failures carry Stripe's status, error code and (bounded) message.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use uuid::Uuid;

use crate::identity::Secret;
use crate::providers::api_client::{self, cut, BODY_BYTES};

/// Stripe's largest page (`limit` is 1 to 100).
const PAGE_SIZE: u32 = 100;

/// Stripe allows 16 webhook endpoints per account, so one page holds them all. 50 pages (5,000
/// endpoints) is far past any real account, and stops a server that keeps answering `has_more`
/// from holding an enable forever.
const MAX_PAGES: usize = 50;

/// The metadata key that names the trigger an endpoint delivers to.
pub const TRIGGER_ID_METADATA: &str = "trigger_engine_trigger_id";

/// Why a call to Stripe failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripeError {
    /// Stripe answered, and not with success.
    #[error("Stripe answered {status}{}", api_client::describe(.code.as_deref(), .message.as_deref()))]
    Refused {
        status: u16,
        /// Stripe's error code (`error.code` in its error body), e.g. `api_key_invalid`.
        code: Option<String>,
        /// Stripe's message, cut at [`MESSAGE_CHARS`]. Stripe masks keys it quotes.
        message: Option<String>,
    },
    /// No answer: the connection failed or timed out.
    #[error("Stripe could not be reached: {0}")]
    Unreachable(String),
    /// Stripe answered with success, but not with what its API documents.
    #[error("Stripe's answer is not what its API documents: {0}")]
    Malformed(String),
    /// Not an id Stripe gives (`we_` and letters, digits and `_`). Checked before the call: an id
    /// of `..` would vanish from the path, and the call would reach another resource.
    #[error("{0:?} is not a Stripe webhook endpoint id")]
    NotAnEndpointId(String),
}


/// An endpoint Stripe created for a trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedEndpoint {
    /// `we_...`: what [`Client::delete_endpoint`] takes.
    pub id: String,
    /// `whsec_...`: signs each delivery to the endpoint. Stripe shows it only in this answer.
    pub secret: Secret,
}

/// A webhook endpoint as Stripe answers it; only the fields the engine reads.
#[derive(Deserialize)]
struct Endpoint {
    id: String,
    /// Present only in the answer to the create call.
    secret: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

/// One page of `GET /v1/webhook_endpoints`.
#[derive(Deserialize)]
struct Page {
    data: Vec<Endpoint>,
    has_more: bool,
}

/// A client of one Stripe API base URL. Cheap to clone.
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

    /// Creates an endpoint delivering `event_type` to `url`, marked as the trigger's.
    #[tracing::instrument(skip_all, fields(trigger_id = %project_trigger_id, event_type = %event_type))]
    pub async fn create_endpoint(
        &self,
        api_key: &Secret,
        url: &Url,
        event_type: &str,
        project_trigger_id: Uuid,
    ) -> Result<CreatedEndpoint, StripeError> {
        let request = self
            .request(Method::POST, api_key, &[])
            .form(&endpoint_form(url, event_type, project_trigger_id));
        let endpoint: Endpoint = answer(request, "the created webhook endpoint").await?;
        let secret = endpoint.secret.ok_or_else(|| {
            StripeError::Malformed("the created webhook endpoint has no secret".into())
        })?;
        let id = checked_id(endpoint.id)?;
        tracing::info!(endpoint_id = %id, "Stripe webhook endpoint created");
        Ok(CreatedEndpoint {
            id,
            secret: Secret::new(secret),
        })
    }

    /// Deletes the endpoint; one that is already gone (404) counts as deleted.
    #[tracing::instrument(skip_all, fields(endpoint_id = %id))]
    pub async fn delete_endpoint(&self, api_key: &Secret, id: &str) -> Result<(), StripeError> {
        if !is_endpoint_id(id) {
            return Err(StripeError::NotAnEndpointId(id.to_owned()));
        }
        let response = self
            .request(Method::DELETE, api_key, &[id])
            .send()
            .await
            .map_err(unreachable)?;
        if response.status().is_success() || response.status() == StatusCode::NOT_FOUND {
            tracing::info!(status = %response.status(), "Stripe webhook endpoint removed");
            return Ok(());
        }
        Err(refused(response).await)
    }

    /// The ids of the endpoints whose metadata names this trigger, from every page of the
    /// account's endpoints.
    #[tracing::instrument(skip_all, fields(trigger_id = %project_trigger_id))]
    pub async fn endpoints_of(
        &self,
        api_key: &Secret,
        project_trigger_id: Uuid,
    ) -> Result<Vec<String>, StripeError> {
        let trigger_id = project_trigger_id.to_string();
        let mut ids = Vec::new();
        let mut starting_after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut request = self
                .request(Method::GET, api_key, &[])
                .query(&[("limit", PAGE_SIZE)]);
            if let Some(after) = &starting_after {
                request = request.query(&[("starting_after", after)]);
            }
            let page: Page = answer(request, "a page of webhook endpoints").await?;
            let last = page.data.last().map(|endpoint| endpoint.id.clone());
            for endpoint in page.data {
                if endpoint.metadata.get(TRIGGER_ID_METADATA) == Some(&trigger_id) {
                    ids.push(checked_id(endpoint.id)?);
                }
            }
            if !page.has_more {
                return Ok(ids);
            }
            match last {
                Some(last) if starting_after.as_ref() != Some(&last) => starting_after = Some(last),
                Some(_) => {
                    return Err(StripeError::Malformed(
                        "a page of webhook endpoints repeats the one before".into(),
                    ))
                }
                None => {
                    return Err(StripeError::Malformed(
                        "an empty page of webhook endpoints says it has more".into(),
                    ))
                }
            }
        }
        Err(StripeError::Malformed(format!(
            "the webhook endpoints go on past {MAX_PAGES} pages"
        )))
    }

    /// A request to `{base}/v1/webhook_endpoints/{segments}`.
    fn request(
        &self,
        method: Method,
        api_key: &Secret,
        segments: &[&str],
    ) -> reqwest::RequestBuilder {
        let mut url = self.base.clone();
        // Each part is pushed as one path segment, percent-encoded: an id cannot add segments.
        url.path_segments_mut()
            .expect("an http(s) URL has path segments")
            .pop_if_empty()
            .extend(["v1", "webhook_endpoints"])
            .extend(segments);
        self.http.request(method, url).bearer_auth(api_key.expose())
    }
}

/// The create call's form, in Stripe's encoding of lists (`key[]`) and maps (`key[name]`).
fn endpoint_form(url: &Url, event_type: &str, project_trigger_id: Uuid) -> [(String, String); 4] {
    [
        ("url".into(), url.to_string()),
        ("enabled_events[]".into(), event_type.to_owned()),
        (
            format!("metadata[{TRIGGER_ID_METADATA}]"),
            project_trigger_id.to_string(),
        ),
        (
            "description".into(),
            format!("trigger-engine trigger {project_trigger_id}"),
        ),
    ]
}

/// Stripe's endpoint ids are `we_` and then letters and digits.
fn is_endpoint_id(id: &str) -> bool {
    id.starts_with("we_") && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An id from Stripe's answer, refused if [`Client::delete_endpoint`] would refuse it later.
fn checked_id(id: String) -> Result<String, StripeError> {
    if is_endpoint_id(&id) {
        Ok(id)
    } else {
        Err(StripeError::Malformed(format!(
            "{:?} is not a webhook endpoint id",
            cut(&id)
        )))
    }
}

/// Sends the request and reads a success answer as `T`, or Stripe's refusal.
async fn answer<T: DeserializeOwned>(
    request: reqwest::RequestBuilder,
    what: &str,
) -> Result<T, StripeError> {
    let response = request.send().await.map_err(unreachable)?;
    if !response.status().is_success() {
        return Err(refused(response).await);
    }
    let body = read_body(response)
        .await?
        .ok_or_else(|| StripeError::Malformed(format!("{what} is over {BODY_BYTES} bytes")))?;
    // serde's message names the field or type it expected, and quotes a value only where our
    // types wanted something else: never the secret, which we read as the string it is.
    serde_json::from_slice(&body).map_err(|e| StripeError::Malformed(cut(&format!("{what}: {e}"))))
}

/// The body, or `None` past [`BODY_BYTES`].
async fn read_body(response: reqwest::Response) -> Result<Option<Vec<u8>>, StripeError> {
    api_client::read_body(response).await.map_err(unreachable)
}

fn unreachable(error: reqwest::Error) -> StripeError {
    StripeError::Unreachable(api_client::unreachable(error))
}

/// Stripe's error body is `{"error": {"type", "code", "message", ...}}`; anything else is
/// reported by its status alone.
async fn refused(response: reqwest::Response) -> StripeError {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: ErrorDetail,
    }
    #[derive(Deserialize)]
    struct ErrorDetail {
        code: Option<String>,
        message: Option<String>,
    }
    let status = response.status().as_u16();
    let detail = match read_body(response).await {
        Ok(Some(body)) => serde_json::from_slice::<ErrorBody>(&body)
            .ok()
            .map(|body| body.error),
        _ => None,
    };
    let (code, message) = detail.map_or((None, None), |detail| (detail.code, detail.message));
    let error = StripeError::Refused {
        status,
        code: code.map(|code| cut(&code)),
        message: message.map(|message| cut(&message)),
    };
    tracing::warn!(%error, "Stripe refused a webhook endpoint call");
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client::new("http://127.0.0.1:9/stripe/".parse().unwrap())
    }

    #[test]
    fn it_should_encode_the_endpoint_as_stripe_reads_lists_and_maps() {
        let id: Uuid = "6f1c1b8e-4b7e-4c52-9d7a-1d0c2f3e4a5b".parse().unwrap();
        let request = client()
            .request(Method::POST, &Secret::new("sk_test_k"), &[])
            .form(&endpoint_form(
                &"https://engine.example.com/webhooks/stripe?x=1&y=2"
                    .parse()
                    .unwrap(),
                "customer.created",
                id,
            ))
            .build()
            .unwrap();
        assert_eq!(
            request.headers()["content-type"],
            "application/x-www-form-urlencoded"
        );
        let body = std::str::from_utf8(request.body().unwrap().as_bytes().unwrap()).unwrap();
        assert_eq!(
            body,
            "url=https%3A%2F%2Fengine.example.com%2Fwebhooks%2Fstripe%3Fx%3D1%26y%3D2\
             &enabled_events%5B%5D=customer.created\
             &metadata%5Btrigger_engine_trigger_id%5D=6f1c1b8e-4b7e-4c52-9d7a-1d0c2f3e4a5b\
             &description=trigger-engine+trigger+6f1c1b8e-4b7e-4c52-9d7a-1d0c2f3e4a5b"
        );
        assert_eq!(request.headers()["authorization"], "Bearer sk_test_k");
        assert_eq!(
            request.url().as_str(),
            "http://127.0.0.1:9/stripe/v1/webhook_endpoints"
        );
    }

    #[test]
    fn it_should_keep_an_endpoint_id_one_path_segment() {
        let request = client()
            .request(Method::DELETE, &Secret::new("sk_test_k"), &["we_1/../x"])
            .build()
            .unwrap();
        assert_eq!(
            request.url().as_str(),
            "http://127.0.0.1:9/stripe/v1/webhook_endpoints/we_1%2F..%2Fx"
        );
    }

    #[tokio::test]
    async fn it_should_refuse_to_delete_what_is_not_an_endpoint_id() {
        for id in ["", ".", "..", "we_1/../x", "cus_123", "we_ 1"] {
            assert_eq!(
                client()
                    .delete_endpoint(&Secret::new("sk_test_k"), id)
                    .await,
                Err(StripeError::NotAnEndpointId(id.to_owned())),
                "{id:?}"
            );
        }
    }

    #[test]
    fn it_should_take_the_ids_stripe_gives() {
        assert!(is_endpoint_id("we_1Mr5jULkdIwHu7ix1ibLTM0x"));
        assert!(checked_id("we_../x".into()).is_err());
    }

    #[test]
    fn it_should_say_what_stripe_answered() {
        let error = StripeError::Refused {
            status: 401,
            code: Some("api_key_invalid".into()),
            message: Some("Invalid API Key provided: sk_test_****".into()),
        };
        assert_eq!(
            error.to_string(),
            "Stripe answered 401 (api_key_invalid: Invalid API Key provided: sk_test_****)"
        );
        let error = StripeError::Refused {
            status: 500,
            code: None,
            message: None,
        };
        assert_eq!(error.to_string(), "Stripe answered 500");
    }

    #[test]
    fn it_should_not_show_the_signing_secret_of_a_created_endpoint() {
        let created = CreatedEndpoint {
            id: "we_1".into(),
            secret: Secret::new("whsec_abc"),
        };
        assert!(!format!("{created:?}").contains("whsec_abc"));
    }
}
