//! `POST /v1/webhooks/{webhook_id}`: providers' deliveries, to one trigger's URL (a
//! project_trigger_id) or to an app's URL (`slack`, `github`).
//!
//! Every delivery is read raw (the signature covers the exact bytes), verified, judged against the
//! trigger (its event type, action, repository, channel...), and, when it fires, recorded as a run
//! whose id derives from the delivery key, so a repeated delivery fires once. The answer goes back
//! as soon as the run is committed: executing it is the executors' business, later.

use aggregates::event::Stamp;
use aggregates::{Actor, Firing, RunCause, TriggerRecord, TriggerStatus};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::responses::{
    BadSignature, Gone, InternalError, InvalidApiKey, InvalidField, NotFound, PayloadTooLarge,
    TooManyRequests, Unavailable,
};
use super::error::ApiError;
use super::extract::ApiPath;
use super::request_id::RequestId;
use super::AppState;
use crate::catalogue::{Catalogue, TriggerKind};
use crate::filter::Outcome as FilterOutcome;
use crate::identity::Secret;
use crate::outcomes::Outcome;
use crate::providers::{github, slack, ProviderId};
use crate::registration::is_registered;
use crate::runs::Fired;
use crate::webhooks::inbound::{self, idempotency_key, Refusal, Target, Verdict};

// The key URL is served on purpose: its handler is `#[deprecated]` so that utoipa marks the
// operation deprecated in the document.
#[allow(deprecated)]
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(receive))
        .routes(routes!(receive_with_api_key))
}

/// Webhook Handler
///
/// Handle webhook requests for all incoming webhook events. `webhook_id` is a project trigger
/// UUID (the trigger's own URL, verified with its `signing_secret` as its provider signs: Stripe,
/// GitHub, Typeform, Slack, or Standard Webhooks for `webhook/on_request`) or an app provider
/// (`slack`, `github`: verified with the app's secret from the engine's configuration, and routed
/// to every enabled trigger of that provider whose config matches). A delivery the provider
/// repeats (same event id, delivery id, response token, `webhook-id`, or `Idempotency-Key`) fires
/// once. A delivery of another event than the trigger's, and GitHub's `ping`, are acknowledged
/// without firing. The answer comes as soon as the run is recorded; the executor runs it later.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{webhook_id}",
    operation_id = "handle_webhook",
    tag = super::openapi::TRIGGERS,
    params(("webhook_id" = String, Path,
        description = "Webhook identifier - either an app webhook provider (e.g., 'slack', \
            'github') or a project trigger UUID", example = "slack")),
    request_body(content = Object, description = "The provider's delivery, exactly as it signed it.",
        content_type = "application/json"),
    responses(
        (status = 200, description = "Slack's `url_verification`: the challenge echoed back.",
            body = Object, example = json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})),
        (status = 204, description = "Received: fired once, or acknowledged without firing."),
        (status = 401, response = BadSignature),
        (status = 404, response = NotFound),
        (status = 410, response = Gone),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
#[tracing::instrument(skip_all, fields(webhook_id = %webhook_id))]
async fn receive(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    ApiPath(webhook_id): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = raw_body(body)?;
    let delivery = Delivery {
        state: &state,
        request_id: &request_id,
        headers: &headers,
        body: &body,
        now: Utc::now(),
    };
    match ProviderId::of(&webhook_id) {
        Some(ProviderId::Slack) => delivery.to_slack_app().await,
        Some(ProviderId::Github) => delivery.to_github_app().await,
        _ => {
            let id = Uuid::parse_str(&webhook_id).map_err(|_| ApiError::NotFound("webhook"))?;
            delivery.to_trigger(id).await
        }
    }
}

/// The legacy query of the deprecated key URL: when given, each must name the trigger's own.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LegacyTriggerQuery {
    /// The trigger's `trigger_id` (e.g. `on_request`); another one is refused.
    trigger_id: Option<String>,
    /// The trigger's `provider_id` (e.g. `webhook`); another one is refused.
    provider_id: Option<String>,
}

/// Webhook Trigger
///
/// Deprecated: use `POST /v1/webhooks/{webhook_id}`. Fires the trigger with the request body as
/// its payload (JSON, or text), authorised by an API key of the organisation in the path
/// (`trigger-engine admin create-api-key`). An `Idempotency-Key` header makes a repeated request
/// fire once. Answers carry `Deprecation: true` and a `Link` to the successor URL.
#[utoipa::path(
    post,
    path = "/organizations/{org_id}/triggers/{project_trigger_id}/webhook/key/{api_key}",
    operation_id = "webhook_trigger",
    tag = super::openapi::TRIGGERS,
    params(
        ("org_id" = Uuid, Path, description = "The trigger's organisation."),
        ("project_trigger_id" = Uuid, Path, description = "The trigger to fire."),
        ("api_key" = String, Path, description = "An API key of the organisation."),
        LegacyTriggerQuery,
    ),
    request_body(content = Object, description = "The payload to fire the trigger with.",
        content_type = "application/json"),
    responses(
        (status = 204, description = "Fired (once per `Idempotency-Key`).",
            headers(("Deprecation" = String, description = "`true`: this URL is deprecated"),
                ("Link" = String, description = "The successor: `</v1/webhooks/{project_trigger_id}>; rel=\"successor-version\"`"))),
        (status = 401, response = InvalidApiKey),
        (status = 404, response = NotFound),
        (status = 410, response = Gone),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = InvalidField),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    )
)]
#[deprecated = "use POST /v1/webhooks/{webhook_id}"]
#[tracing::instrument(skip_all, fields(trigger = %id))]
async fn receive_with_api_key(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    ApiPath((org_id, id, api_key)): ApiPath<(Uuid, Uuid, String)>,
    query: Result<Query<LegacyTriggerQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|rejection| ApiError::invalid("query", rejection.body_text()))?;
    let body = raw_body(body)?;
    let key_id = verify_org_key(&state, org_id, &api_key).await?;
    let delivery = Delivery {
        state: &state,
        request_id: &request_id,
        headers: &headers,
        body: &body,
        now: Utc::now(),
    };
    let record = delivery.live_trigger(id).await?;
    if record.org_id != org_id {
        return Err(ApiError::NotFound("trigger"));
    }
    for (field, given, actual) in [
        ("trigger_id", &query.trigger_id, &record.trigger_id),
        ("provider_id", &query.provider_id, &record.provider_id),
    ] {
        if given.as_ref().is_some_and(|given| given != actual) {
            return Err(ApiError::invalid(
                field,
                format!("the trigger's {field} is `{actual}`"),
            ));
        }
    }
    let payload =
        inbound::any_body(&body).map_err(|refusal| delivery.refused("api_key", refusal))?;
    let verdict = Verdict::Fire {
        key: idempotency_key(&headers),
        payload,
    };
    let mut response = delivery
        .act(&record, verdict, Actor::ApiKey(key_id))
        .await?;
    mark_deprecated(&mut response, &format!("/v1/webhooks/{id}"));
    Ok(response)
}

/// The id of `api_key` when it is one of `org_id`'s keys; 401 otherwise.
pub(super) async fn verify_org_key(
    state: &AppState,
    org_id: Uuid,
    api_key: &str,
) -> Result<Uuid, ApiError> {
    state
        .identity
        .verify_api_key(org_id, api_key)
        .await
        .map_err(|error| match error {
            crate::identity::IdentityError::InvalidApiKey => ApiError::InvalidApiKey,
            other => ApiError::from(other),
        })
}

/// Marks an answer of a deprecated URL as such (`Deprecation: true`), naming its successor.
pub(super) fn mark_deprecated(response: &mut Response, successor: &str) {
    let headers = response.headers_mut();
    headers.insert("deprecation", HeaderValue::from_static("true"));
    if let Ok(link) = HeaderValue::from_str(&format!("<{successor}>; rel=\"successor-version\"")) {
        headers.insert(header::LINK, link);
    }
}

fn raw_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(super::BODY_LIMIT),
        _ => ApiError::invalid("body", rejection.body_text()),
    })
}

/// One inbound request, while it is handled.
struct Delivery<'a> {
    state: &'a AppState,
    request_id: &'a str,
    headers: &'a HeaderMap,
    body: &'a [u8],
    now: DateTime<Utc>,
}

impl Delivery<'_> {
    async fn to_trigger(&self, id: Uuid) -> Result<Response, ApiError> {
        let record = self.live_trigger(id).await?;
        if let Err(limited) = self.state.rate_limits.check_webhook(id) {
            self.note(
                id,
                "rate_limited",
                Some("over the trigger's webhook rate".into()),
                None,
            );
            return Err(limited);
        }
        let definition = Catalogue::builtin()
            .find(&record.provider_id, &record.trigger_id)
            .filter(|definition| definition.kind == TriggerKind::Webhook)
            .ok_or(ApiError::NotFound("webhook trigger"))?;
        let config = record.trigger_config.clone().unwrap_or(Value::Null);
        let registered_secret = if record.webhook_data.is_some() && is_registered(&record) {
            let connections = &self.state.connections;
            connections.webhook_secret(record.org_id, id).await?
        } else {
            None
        };
        let target = Target {
            provider: definition.provider,
            event_type: definition.event_type.as_deref(),
            event_action: definition.event_action.as_deref(),
            config: &config,
            registered_secret: registered_secret.as_ref().map(Secret::expose),
        };
        let verdict = inbound::judge(&target, self.headers, self.body, self.now)
            .map_err(|refusal| {
                if let Refusal::Signature(error) = &refusal {
                    self.note(id, "rejected", Some(format!("signature: {error}")), None);
                }
                self.refused(&record.provider_id, refusal)
            })?
            .ok_or(ApiError::NotFound("webhook trigger"))?;
        self.act(&record, verdict, Actor::system("webhook")).await
    }

    /// The enabled trigger `id`. Deleted is final (410 tells a provider to stop); disabled may
    /// come back, so the provider should keep its delivery and retry (404).
    async fn live_trigger(&self, id: Uuid) -> Result<TriggerRecord, ApiError> {
        let view = self
            .state
            .triggers
            .get(id)
            .await?
            .ok_or(ApiError::NotFound("trigger"))?;
        let record = view.record.clone();
        if record.is_deleted() {
            return Err(ApiError::Gone("trigger"));
        }
        if record.status != TriggerStatus::Enabled {
            let reason =
                "the trigger is disabled: the sender should deliver again once it is enabled";
            self.note(id, "refused", Some(reason.into()), None);
            return Err(ApiError::NotFound("enabled trigger"));
        }
        Ok(record)
    }

    /// Leaves what came of this delivery for `explain`, where the log records nothing of it.
    fn note(
        &self,
        trigger: Uuid,
        outcome: &'static str,
        reason: Option<String>,
        run_id: Option<Uuid>,
    ) {
        self.state.outcomes.record(Outcome {
            project_trigger_id: trigger,
            at: self.now,
            source: "delivery",
            outcome,
            reason,
            run_id,
        });
    }

    /// Slack's Events API for the app: one signature with the app's secret, then every enabled
    /// Slack trigger whose config matches fires.
    async fn to_slack_app(&self) -> Result<Response, ApiError> {
        let secret = self.state.webhook_apps.slack.as_ref();
        let secret = secret.ok_or(ApiError::NotFound("Slack app"))?;
        slack::inbound::verify_slack(self.headers, self.body, &[secret.expose()], self.now)
            .map_err(|error| self.refused("slack", error.into()))?;
        let payload = inbound::json(self.body).map_err(|refusal| self.refused("slack", refusal))?;
        if payload.get("type").and_then(Value::as_str) == Some("url_verification") {
            let verdict = slack::inbound::judge_event(&any_target(ProviderId::Slack), payload)
                .map_err(|refusal| self.refused("slack", refusal))?;
            return self.answer(verdict);
        }
        self.route(ProviderId::Slack, |target| {
            slack::inbound::judge_event(target, payload.clone())
        })
        .await
    }

    /// A GitHub App's deliveries: verified with the app's secret, routed by repository.
    async fn to_github_app(&self) -> Result<Response, ApiError> {
        let secret = self.state.webhook_apps.github.as_ref();
        let secret = secret.ok_or(ApiError::NotFound("GitHub app"))?;
        github::inbound::verify_github(self.headers, self.body, &[secret.expose()])
            .map_err(|error| self.refused("github", error.into()))?;
        let payload =
            inbound::json(self.body).map_err(|refusal| self.refused("github", refusal))?;
        self.route(ProviderId::Github, |target| {
            github::inbound::judge_event(target, self.headers, payload.clone())
        })
        .await
    }

    /// Fires every enabled trigger of `provider` that `judge` accepts; 204 even when none does
    /// (the app's delivery was received; that nobody listens is not the sender's fault).
    async fn route(
        &self,
        provider: ProviderId,
        judge: impl Fn(&Target<'_>) -> Result<Verdict, Refusal>,
    ) -> Result<Response, ApiError> {
        let catalogue = Catalogue::builtin();
        let enabled = self.state.store.enabled_trigger_views_of(provider.as_str());
        for view in enabled.await? {
            let record = view.record;
            let Some(definition) = catalogue.find(&record.provider_id, &record.trigger_id) else {
                continue;
            };
            let config = record.trigger_config.clone().unwrap_or(Value::Null);
            let target = Target {
                provider,
                event_type: definition.event_type.as_deref(),
                event_action: definition.event_action.as_deref(),
                config: &config,
                // The app's secret verified the delivery already.
                registered_secret: None,
            };
            match judge(&target) {
                Ok(verdict @ Verdict::Fire { .. }) => {
                    if self
                        .state
                        .rate_limits
                        .check_webhook(record.project_trigger_id)
                        .is_ok()
                    {
                        self.act(&record, verdict, Actor::system("webhook")).await?;
                    } else {
                        let reason = "over the trigger's webhook rate (an app delivery)";
                        self.note(
                            record.project_trigger_id,
                            "rate_limited",
                            Some(reason.into()),
                            None,
                        );
                        tracing::warn!(trigger = %record.project_trigger_id,
                            "app delivery over the trigger's rate limit; not fired");
                    }
                }
                Ok(Verdict::Ignore(reason)) => {
                    self.note(record.project_trigger_id, "ignored", Some(reason), None);
                    self.state.metrics.webhook(provider.as_str(), "ignored");
                }
                Ok(_) => self.state.metrics.webhook(provider.as_str(), "ignored"),
                // One trigger's unreadable config is that trigger's problem: the others still
                // hear of the delivery.
                Err(Refusal::Unreadable(detail)) => tracing::error!(
                    trigger = %record.project_trigger_id, %detail,
                    "app delivery not judged: the trigger's config is unreadable"
                ),
                Err(refusal) => return Err(self.refused(provider.as_str(), refusal)),
            }
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    }

    async fn act(
        &self,
        record: &TriggerRecord,
        verdict: Verdict,
        actor: Actor,
    ) -> Result<Response, ApiError> {
        let Verdict::Fire { key, payload } = verdict else {
            if let Verdict::Ignore(reason) = &verdict {
                tracing::debug!(reason, "delivery acknowledged without firing");
                self.state.metrics.webhook(&record.provider_id, "ignored");
                self.note(
                    record.project_trigger_id,
                    "ignored",
                    Some(reason.clone()),
                    None,
                );
            }
            return self.answer(verdict);
        };
        // After judging: only an authentic delivery of the trigger's own event meets its filter.
        let event_type = Catalogue::builtin()
            .find(&record.provider_id, &record.trigger_id)
            .and_then(|definition| definition.event_type.as_deref());
        let (id, config) = (record.project_trigger_id, record.trigger_config.as_ref());
        let filtered = self
            .state
            .filters
            .judge(id, config, &payload, event_type)
            .await;
        if filtered != FilterOutcome::Fire {
            tracing::info!(outcome = %filtered, "delivery acknowledged without firing");
            let outcome = filtered.metric_label();
            self.state.metrics.webhook(&record.provider_id, outcome);
            let reason = match &filtered {
                FilterOutcome::Failed(error) => error.clone(),
                _ => "the filter was false".to_owned(),
            };
            self.note(id, outcome, Some(reason), None);
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        // A sender with no delivery id of its own may still name one; without either, every
        // request is its own firing.
        let key = key
            .or_else(|| idempotency_key(self.headers))
            .unwrap_or_else(|| Uuid::new_v4().to_string());
        let firing = Firing::of(record, RunCause::Delivery { key }, payload, self.now);
        let stamp = Stamp {
            at: self.now,
            by: actor,
        };
        let runs = &self.state.runs;
        let fired = runs
            .fire(firing, stamp, record.paused, self.request_id)
            .await?;
        let outcome = match fired {
            Fired::New { .. } => "fired",
            Fired::Duplicate { run_id } => {
                let reason = "the delivery key had fired already".to_owned();
                self.note(id, "duplicate", Some(reason), Some(run_id));
                "duplicate"
            }
        };
        tracing::info!(run_id = %fired.run_id(), outcome, "webhook received");
        self.state.metrics.webhook(&record.provider_id, outcome);
        Ok(StatusCode::NO_CONTENT.into_response())
    }

    fn answer(&self, verdict: Verdict) -> Result<Response, ApiError> {
        Ok(match verdict {
            Verdict::Challenge(challenge) => {
                Json(json!({ "challenge": challenge })).into_response()
            }
            _ => StatusCode::NO_CONTENT.into_response(),
        })
    }

    /// Counts and logs a refused delivery (never its secret or body), and says why to the sender.
    fn refused(&self, provider: &str, refusal: Refusal) -> ApiError {
        match refusal {
            Refusal::Signature(error) => {
                self.state.metrics.webhook(provider, "rejected");
                tracing::warn!(provider, reason = %error, "webhook delivery rejected");
                ApiError::BadSignature(format!("webhook delivery rejected: {error}"))
            }
            Refusal::Malformed(detail) => ApiError::invalid("body", detail),
            Refusal::Unreadable(detail) => {
                tracing::error!(provider, %detail, "webhook delivery not judged");
                ApiError::Internal(detail)
            }
        }
    }
}

/// A target that only answers Slack's URL check, which concerns the app, not a trigger.
fn any_target(provider: ProviderId) -> Target<'static> {
    Target {
        provider,
        event_type: None,
        event_action: None,
        config: &Value::Null,
        registered_secret: None,
    }
}
