//! The HTTP executor: each attempt is one JSON POST signed the Standard Webhooks way
//! (standardwebhooks.com), and the response's status decides the [`Outcome`].
//!
//! `webhook-id` and `Idempotency-Key` are the run id, the same on every attempt, so an executor that
//! saw an attempt through but whose answer was lost can tell the retry is the same run.

use std::fmt;
use std::time::{Duration, SystemTime};

use aggregates::run::RunCause;
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use reqwest::redirect::Policy;
use reqwest::{RequestBuilder, StatusCode};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::retry_after::parse_retry_after;
use super::template::UrlTemplate;
use super::{DeliveryError, DeliveryRequest, Outcome};
use crate::identity::secret::REDACTED;
use crate::identity::Secret;
use crate::webhooks::signatures::sign_standard;

/// So the executor's logs say which engine, and which version of it, called.
const USER_AGENT: &str = concat!("trigger-engine/", env!("CARGO_PKG_VERSION"));

/// The most of a transport error's cause kept in a run's history: enough for "Connection refused"
/// or a TLS complaint, not a screenful.
const MAX_CAUSE_CHARS: usize = 200;

/// Where and how to call the executor. The dispatcher fills this from configuration.
#[derive(Clone)]
pub struct HttpExecutorConfig {
    /// An absolute http or https URL. `{project_id}`, if present, is replaced by the run's project
    /// id, percent-encoded.
    pub url_template: String,
    /// The Standard Webhooks signing secret the executor verifies with: `whsec_` then base64.
    pub secret: String,
    /// The limit on a whole attempt: connecting, sending, and the response's status and headers.
    pub timeout: Duration,
}

impl fmt::Debug for HttpExecutorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The template may carry credentials too (`https://user:pass@...`, `?token=...`).
        f.debug_struct("HttpExecutorConfig")
            .field("url_template", &REDACTED)
            .field("secret", &REDACTED)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Delivers runs to one executor. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct HttpExecutor {
    client: reqwest::Client,
    url: UrlTemplate,
    secret: Secret,
    timeout: Duration,
}

impl fmt::Debug for HttpExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpExecutor")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The JSON the executor receives. It is a contract with the executor, so it names its fields
/// rather than flattening [`aggregates::run::Firing`], whose shape follows the domain.
#[derive(Serialize)]
struct Body<'a> {
    run_id: Uuid,
    attempt: u32,
    project_trigger_id: Uuid,
    org_id: Uuid,
    project_id: &'a str,
    provider_id: &'a str,
    trigger_id: &'a str,
    cause: &'a RunCause,
    payload: &'a Value,
    received_at: DateTime<Utc>,
    /// A bulk replay ran a succeeded run again: this is the new run, `replay_of` the original.
    is_replay: bool,
    replay_of: Option<Uuid>,
}

impl<'a> Body<'a> {
    fn of(request: &'a DeliveryRequest) -> Self {
        let firing = &request.firing;
        Self {
            run_id: request.run_id,
            attempt: request.attempt,
            project_trigger_id: firing.project_trigger_id,
            org_id: firing.org_id,
            project_id: &firing.project_id,
            provider_id: &firing.provider_id,
            trigger_id: &firing.trigger_id,
            cause: &firing.cause,
            payload: &firing.payload,
            received_at: firing.received_at,
            is_replay: matches!(firing.cause, RunCause::Replay { .. }),
            replay_of: match firing.cause {
                RunCause::Replay { of, .. } => Some(of),
                _ => None,
            },
        }
    }
}

impl HttpExecutor {
    /// Checks the configuration now, so a bad URL or secret stops the engine at start-up rather
    /// than dead-lettering every run.
    pub fn new(config: HttpExecutorConfig) -> Result<Self, DeliveryError> {
        let url = UrlTemplate::parse(&config.url_template)?;
        // Signing once with the secret proves every later delivery can be signed with it. An empty
        // key would sign, but would prove nothing to the executor.
        let has_key = config
            .secret
            .strip_prefix("whsec_")
            .is_some_and(|key| !key.is_empty());
        if !has_key || sign_standard(&config.secret, "", 0, b"").is_err() {
            return Err(DeliveryError::InvalidSecret);
        }
        if config.timeout.is_zero() {
            return Err(DeliveryError::ZeroTimeout);
        }
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(config.timeout)
            // A redirect would carry the signed run to a URL the operator never configured.
            .redirect(Policy::none())
            .build()
            .map_err(DeliveryError::Client)?;
        Ok(Self {
            client,
            url,
            secret: Secret::new(config.secret),
            timeout: config.timeout,
        })
    }

    /// The origin (scheme, host, port) a project's runs are sent to, which the executor's circuit
    /// breaker is keyed on; `None` when the project's URL cannot be made (its runs are rejected).
    pub fn origin_for(&self, project_id: &str) -> Option<String> {
        let url = self.url.url_for(project_id).ok()?;
        Some(url.origin().ascii_serialization())
    }

    /// Makes one attempt. Never fails: every way an attempt can go wrong is an [`Outcome`].
    #[tracing::instrument(skip_all, fields(run_id = %request.run_id, attempt = request.attempt))]
    pub async fn deliver(&self, request: &DeliveryRequest) -> Outcome {
        let outcome = match self.prepare(request) {
            Err(error) => Outcome::Rejected { error },
            Ok(post) => match post.send().await {
                Ok(response) => classify(response.status(), response.headers(), SystemTime::now()),
                Err(error) => Outcome::Retryable {
                    error: describe(&error, self.timeout),
                    retry_after: None,
                },
            },
        };
        tracing::debug!(?outcome, "delivered attempt");
        outcome
    }

    /// The signed POST for `request`, or why there can be none (which no retry would change).
    fn prepare(&self, request: &DeliveryRequest) -> Result<RequestBuilder, String> {
        let url = self
            .url
            .url_for(&request.firing.project_id)
            .map_err(|error| error.to_string())?;
        let body = serde_json::to_vec(&Body::of(request))
            .map_err(|error| format!("encoding the run as JSON: {error}"))?;
        let id = request.run_id.to_string();
        let timestamp = Utc::now().timestamp();
        let signature = sign_standard(self.secret.expose(), &id, timestamp, &body)
            .map_err(|error| format!("signing the run: {error}"))?;
        Ok(self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp)
            .header("webhook-signature", signature)
            .header("idempotency-key", id)
            .body(body))
    }
}

/// What the executor's answer means for the run. Only the status and `Retry-After` count: the body
/// is not read, so nothing the executor echoes back can end up in the run's history.
fn classify(status: StatusCode, headers: &HeaderMap, now: SystemTime) -> Outcome {
    if status.is_success() {
        return Outcome::Delivered;
    }
    let error = format!("HTTP {} from executor", status.as_u16());
    let transient = status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS;
    if transient {
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, now));
        Outcome::Retryable { error, retry_after }
    } else if status.is_redirection() {
        Outcome::Rejected {
            error: format!("{error} (redirects are not followed)"),
        }
    } else {
        Outcome::Rejected { error }
    }
}

/// A transport failure in a few words. reqwest's own message quotes the URL, which may carry
/// credentials, so only the innermost cause is kept: "Connection refused (os error 111)", a DNS or
/// a TLS complaint.
fn describe(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("timed out after {}", in_words(timeout));
    }
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    let cause: String = cause.to_string().chars().take(MAX_CAUSE_CHARS).collect();
    if error.is_connect() {
        format!("could not connect to executor: {cause}")
    } else {
        format!("request to executor failed: {cause}")
    }
}

/// `10 s`, or `200 ms` for a timeout that is not whole seconds.
fn in_words(duration: Duration) -> String {
    if duration.subsec_millis() == 0 && duration.as_secs() > 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} ms", duration.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use std::future::IntoFuture;
    use std::net::SocketAddr;

    use aggregates::run::Firing;
    use axum::body::Bytes;
    use axum::http::{HeaderName, HeaderValue, Uri};
    use axum::Router;
    use serde_json::json;
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    use super::*;
    use crate::webhooks::signatures::verify_standard;

    /// The reference secret from the Standard Webhooks specification.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    /// One request as the executor received it.
    struct Received {
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    }

    /// A run as the dispatcher would hand it over.
    fn request(attempt: u32) -> DeliveryRequest {
        DeliveryRequest {
            run_id: Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001),
            attempt,
            firing: Firing {
                project_trigger_id: Uuid::from_u128(2),
                org_id: Uuid::from_u128(3),
                project_id: "proj_1".into(),
                provider_id: "stripe".into(),
                trigger_id: "customer.created".into(),
                cause: RunCause::Delivery {
                    key: "evt_1".into(),
                },
                payload: json!({"id": "evt_1", "customer": {"email": "a@example.com"}}),
                received_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            },
        }
    }

    fn executor(url_template: String, timeout: Duration) -> HttpExecutor {
        HttpExecutor::new(HttpExecutorConfig {
            url_template,
            secret: SECRET.into(),
            timeout,
        })
        .unwrap()
    }

    /// Serves `app` on a free local port until the test's runtime ends.
    async fn serve(app: Router) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(axum::serve(listener, app).into_future());
        address
    }

    /// An executor at `http://{address}` that answers every request with `status` and `headers`,
    /// and hands each request it got to the test before answering.
    async fn receiver(
        status: StatusCode,
        headers: &'static [(&'static str, &'static str)],
    ) -> (String, mpsc::UnboundedReceiver<Received>) {
        let (sender, received) = mpsc::unbounded_channel();
        let app = Router::new().fallback(move |uri: Uri, request: HeaderMap, body: Bytes| {
            let sender = sender.clone();
            async move {
                sender
                    .send(Received {
                        uri,
                        headers: request,
                        body,
                    })
                    .unwrap();
                let answer: HeaderMap = headers
                    .iter()
                    .map(|(name, value)| {
                        (
                            HeaderName::from_static(name),
                            HeaderValue::from_static(value),
                        )
                    })
                    .collect();
                (status, answer)
            }
        });
        (format!("http://{}", serve(app).await), received)
    }

    /// The outcome of one attempt against an executor answering `status` and `headers`.
    async fn outcome_of(
        status: StatusCode,
        headers: &'static [(&'static str, &'static str)],
    ) -> Outcome {
        let (url, _received) = receiver(status, headers).await;
        executor(format!("{url}/runs"), Duration::from_secs(10))
            .deliver(&request(1))
            .await
    }

    fn header<'h>(received: &'h Received, name: &str) -> &'h str {
        received.headers[name].to_str().unwrap()
    }

    #[tokio::test]
    async fn it_should_post_the_run_as_signed_json() {
        let (url, mut received) = receiver(StatusCode::NO_CONTENT, &[]).await;
        let outcome = executor(format!("{url}/runs"), Duration::from_secs(10))
            .deliver(&request(1))
            .await;
        assert_eq!(outcome, Outcome::Delivered);

        let got = received.recv().await.unwrap();
        assert_eq!(got.uri.path(), "/runs");
        assert_eq!(header(&got, "content-type"), "application/json");
        assert_eq!(header(&got, "user-agent"), USER_AGENT);
        let body: Value = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(
            body,
            json!({
                "run_id": "01930000-0000-7000-8000-000000000001",
                "attempt": 1,
                "project_trigger_id": "00000000-0000-0000-0000-000000000002",
                "org_id": "00000000-0000-0000-0000-000000000003",
                "project_id": "proj_1",
                "provider_id": "stripe",
                "trigger_id": "customer.created",
                "cause": {"kind": "delivery", "key": "evt_1"},
                "payload": {"id": "evt_1", "customer": {"email": "a@example.com"}},
                "received_at": "2023-11-14T22:13:20Z",
                "is_replay": false,
                "replay_of": null,
            })
        );
        // The executor's view: the signature checks out over the exact bytes it received.
        assert_eq!(
            verify_standard(&got.headers, &got.body, &[SECRET], Utc::now()),
            Ok(())
        );
        let other = "whsec_dGhlIHdyb25nIGtleSwgMzIgYnl0ZXMgbG9uZyEh";
        assert!(verify_standard(&got.headers, &got.body, &[other], Utc::now()).is_err());
    }

    #[tokio::test]
    async fn it_should_name_every_attempt_of_a_run_by_the_run_id() {
        let (url, mut received) = receiver(StatusCode::OK, &[]).await;
        let executor = executor(format!("{url}/runs"), Duration::from_secs(10));
        for attempt in [1, 2] {
            assert_eq!(
                executor.deliver(&request(attempt)).await,
                Outcome::Delivered
            );
        }
        let run_id = request(1).run_id.to_string();
        for attempt in [1, 2] {
            let got = received.recv().await.unwrap();
            assert_eq!(header(&got, "webhook-id"), run_id);
            assert_eq!(header(&got, "idempotency-key"), run_id);
            let body: Value = serde_json::from_slice(&got.body).unwrap();
            assert_eq!(body["attempt"], attempt);
            assert_eq!(
                verify_standard(&got.headers, &got.body, &[SECRET], Utc::now()),
                Ok(())
            );
        }
    }

    #[tokio::test]
    async fn it_should_retry_a_server_error() {
        assert_eq!(
            outcome_of(StatusCode::SERVICE_UNAVAILABLE, &[]).await,
            Outcome::Retryable {
                error: "HTTP 503 from executor".into(),
                retry_after: None,
            }
        );
    }

    #[tokio::test]
    async fn it_should_retry_too_many_requests_no_sooner_than_asked() {
        assert_eq!(
            outcome_of(StatusCode::TOO_MANY_REQUESTS, &[("retry-after", "7")]).await,
            Outcome::Retryable {
                error: "HTTP 429 from executor".into(),
                retry_after: Some(Duration::from_secs(7)),
            }
        );
    }

    #[tokio::test]
    async fn it_should_retry_a_request_timeout() {
        assert_eq!(
            outcome_of(StatusCode::REQUEST_TIMEOUT, &[]).await,
            Outcome::Retryable {
                error: "HTTP 408 from executor".into(),
                retry_after: None,
            }
        );
    }

    #[tokio::test]
    async fn it_should_reject_other_client_errors() {
        for status in [StatusCode::BAD_REQUEST, StatusCode::NOT_FOUND] {
            assert_eq!(
                outcome_of(status, &[]).await,
                Outcome::Rejected {
                    error: format!("HTTP {} from executor", status.as_u16()),
                }
            );
        }
    }

    #[tokio::test]
    async fn it_should_reject_a_redirect_without_following_it() {
        let (url, mut received) = receiver(StatusCode::FOUND, &[("location", "/elsewhere")]).await;
        let outcome = executor(format!("{url}/runs"), Duration::from_secs(10))
            .deliver(&request(1))
            .await;
        assert_eq!(
            outcome,
            Outcome::Rejected {
                error: "HTTP 302 from executor (redirects are not followed)".into(),
            }
        );
        // The receiver reports each request before answering it, so a followed redirect would
        // already be queued here.
        assert_eq!(received.recv().await.unwrap().uri.path(), "/runs");
        assert!(received.try_recv().is_err());
    }

    #[tokio::test]
    async fn it_should_retry_when_the_connection_is_refused() {
        let address = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap()
        };
        let outcome = executor(format!("http://{address}/runs"), Duration::from_secs(10))
            .deliver(&request(1))
            .await;
        let Outcome::Retryable { error, retry_after } = outcome else {
            panic!("expected a retry, got {outcome:?}");
        };
        assert_eq!(retry_after, None);
        assert!(
            error.starts_with("could not connect to executor: ")
                && error.to_lowercase().contains("connection refused"),
            "{error}"
        );
        assert!(!error.contains(&address.to_string()), "{error}");
    }

    /// Guards the `rustls-tls` feature: without it reqwest refuses https URLs before connecting.
    #[tokio::test]
    async fn it_should_speak_tls_to_an_https_executor() {
        let (url, mut received) = receiver(StatusCode::OK, &[]).await;
        let https = url.replacen("http://", "https://", 1);
        let outcome = executor(format!("{https}/runs"), Duration::from_secs(10))
            .deliver(&request(1))
            .await;
        let Outcome::Retryable { error, .. } = outcome else {
            panic!("expected a retry, got {outcome:?}");
        };
        assert!(
            error.starts_with("could not connect to executor: "),
            "{error}"
        );
        assert!(received.try_recv().is_err());
    }

    #[tokio::test]
    async fn it_should_retry_when_the_executor_does_not_answer_in_time() {
        let app = Router::new().fallback(std::future::pending::<()>);
        let address = serve(app).await;
        let outcome = executor(format!("http://{address}/runs"), Duration::from_millis(200))
            .deliver(&request(1))
            .await;
        assert_eq!(
            outcome,
            Outcome::Retryable {
                error: "timed out after 200 ms".into(),
                retry_after: None,
            }
        );
    }

    #[tokio::test]
    async fn it_should_send_each_run_to_its_projects_url() {
        let (url, mut received) = receiver(StatusCode::ACCEPTED, &[]).await;
        let executor = executor(
            format!("{url}/projects/{{project_id}}/runs"),
            Duration::from_secs(10),
        );
        let mut run = request(1);
        run.firing.project_id = "acme/web app".into();
        assert_eq!(executor.deliver(&run).await, Outcome::Delivered);
        assert_eq!(
            received.recv().await.unwrap().uri.path(),
            "/projects/acme%2Fweb%20app/runs"
        );

        run.firing.project_id = "..".into();
        assert_eq!(
            executor.deliver(&run).await,
            Outcome::Rejected {
                error: DeliveryError::DotSegmentProjectId.to_string(),
            }
        );
        assert!(received.try_recv().is_err());
    }

    #[test]
    fn it_should_read_the_status_as_an_outcome() {
        let now = SystemTime::now();
        let none = HeaderMap::new();
        for status in [200, 201, 202, 204] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(classify(status, &none, now), Outcome::Delivered);
        }
        for status in [408, 429, 500, 502, 503, 504, 599] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(
                matches!(classify(status, &none, now), Outcome::Retryable { .. }),
                "{status}"
            );
        }
        for status in [301, 302, 303, 307, 308, 400, 401, 403, 404, 409, 410, 422] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(
                matches!(classify(status, &none, now), Outcome::Rejected { .. }),
                "{status}"
            );
        }
        let mut later = HeaderMap::new();
        let in_a_minute = now + Duration::from_secs(60);
        later.insert(
            RETRY_AFTER,
            httpdate::fmt_http_date(in_a_minute).parse().unwrap(),
        );
        let Outcome::Retryable { retry_after, .. } =
            classify(StatusCode::SERVICE_UNAVAILABLE, &later, now)
        else {
            panic!("503 is retryable");
        };
        // HTTP-dates have whole seconds, so the wait may come out up to a second short.
        let wait = retry_after.unwrap();
        assert!(wait > Duration::from_secs(58) && wait <= Duration::from_secs(60));
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, &later, now),
            Outcome::Rejected {
                error: "HTTP 400 from executor".into()
            }
        );
    }

    #[test]
    fn it_should_refuse_a_bad_configuration() {
        let config = |url: &str, secret: &str, timeout: Duration| HttpExecutorConfig {
            url_template: url.into(),
            secret: secret.into(),
            timeout,
        };
        let good_url = "https://exec.example/projects/{project_id}/runs";
        let second = Duration::from_secs(1);
        assert!(HttpExecutor::new(config(good_url, SECRET, second)).is_ok());
        let refused = [
            config("/projects/{project_id}/runs", SECRET, second),
            config("ftp://exec.example/runs", SECRET, second),
            config("https://exec.example/{projectId}", SECRET, second),
            config(good_url, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", second),
            config(good_url, "whsec_", second),
            config(good_url, "whsec_not base64!", second),
            config(good_url, SECRET, Duration::ZERO),
        ];
        let errors: Vec<String> = refused
            .into_iter()
            .map(|config| HttpExecutor::new(config).unwrap_err().to_string())
            .collect();
        assert!(errors[0].starts_with("executor URL is not an absolute URL"));
        assert_eq!(errors[1], "executor URL must be http or https, not `ftp`");
        assert!(errors[2].contains("placeholder"));
        for error in &errors[3..6] {
            assert!(error.starts_with("executor secret must"), "{error}");
        }
        assert_eq!(errors[6], "executor timeout must be more than zero");
        assert!(errors.iter().all(|error| !error.contains("MfKQ9r8G")));
    }

    #[test]
    fn it_should_keep_secrets_out_of_debug_output() {
        let config = HttpExecutorConfig {
            url_template: "https://user:hunter2@exec.example/runs".into(),
            secret: SECRET.into(),
            timeout: Duration::from_secs(10),
        };
        let shown = format!(
            "{config:?} {:?}",
            HttpExecutor::new(config.clone()).unwrap()
        );
        assert!(
            !shown.contains("hunter2") && !shown.contains("MfKQ9r8G"),
            "{shown}"
        );
    }
}
