//! Stripe: events delivered to a webhook endpoint, signed with the endpoint's `whsec_` secret.

use serde_json::{json, Value};

use crate::catalogue::{TriggerKind, TriggerSpec};
use crate::providers::schema::{config_schema, whsec_secret};

pub(super) fn triggers() -> Vec<TriggerSpec> {
    vec![
        on_event(
            "on_customer_created",
            "On customer created",
            "Fires when a customer is created in Stripe.",
            "customer.created",
            customer(),
        ),
        on_event(
            "on_payment_intent_succeeded",
            "On payment succeeded",
            "Fires when a payment intent succeeds, i.e. the customer has been charged.",
            "payment_intent.succeeded",
            payment_intent(),
        ),
        on_event(
            "on_invoice_paid",
            "On invoice paid",
            "Fires when an invoice is paid, whether charged automatically or paid out of band.",
            "invoice.paid",
            invoice(),
        ),
        on_event(
            "on_checkout_session_completed",
            "On checkout completed",
            "Fires when a customer completes a Checkout session.",
            "checkout.session.completed",
            checkout_session(),
        ),
    ]
}

/// Every Stripe trigger is one event type on the same signed endpoint, so only the event and
/// its sample object differ.
fn on_event(
    id: &'static str,
    name: &'static str,
    description: &'static str,
    event_type: &'static str,
    object: Value,
) -> TriggerSpec {
    TriggerSpec {
        id,
        name,
        description,
        kind: TriggerKind::Webhook,
        event_type: Some(event_type),
        event_action: None,
        config_schema: config_schema(json!({
            "properties": {
                "signing_secret": whsec_secret(
                    "Only for an endpoint you created in Stripe yourself: its signing secret \
                     (whsec_...), or a list while rolling it, since Stripe signs with both until \
                     the old one expires. Without it the trigger needs a Stripe connection \
                     (`api_key`), and enabling it creates the endpoint at Stripe."
                ),
            },
        })),
        sample_payload: event(event_type, object),
    }
}

/// The envelope Stripe posts: an Event whose `data.object` is the resource it is about.
fn event(event_type: &str, object: Value) -> Value {
    json!({
        "id": "evt_1QxYz2LkdIwHu7ixK3cT9bPq",
        "object": "event",
        "api_version": "2024-06-20",
        "created": 1740911409,
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": "req_Nq4xv8WcUQ2aLm", "idempotency_key": "b7c0e8b4-6a2f-4d0e-9a55-3f1c2d7e9a10" },
        "type": event_type
    })
}

fn customer() -> Value {
    json!({
        "id": "cus_RqT3hF8bWm2xYz",
        "object": "customer",
        "address": null,
        "balance": 0,
        "created": 1740911408,
        "currency": null,
        "default_source": null,
        "delinquent": false,
        "description": null,
        "email": "ada@example.com",
        "invoice_prefix": "7C1A2B3D",
        "invoice_settings": {
            "custom_fields": null,
            "default_payment_method": null,
            "footer": null,
            "rendering_options": null
        },
        "livemode": false,
        "metadata": { "signup_source": "website" },
        "name": "Ada Lovelace",
        "phone": null,
        "preferred_locales": ["en"],
        "shipping": null,
        "tax_exempt": "none",
        "test_clock": null
    })
}

fn payment_intent() -> Value {
    json!({
        "id": "pi_3QxYz1LkdIwHu7ix0aBcDeFg",
        "object": "payment_intent",
        "amount": 4900,
        "amount_capturable": 0,
        "amount_received": 4900,
        "application": null,
        "capture_method": "automatic",
        "confirmation_method": "automatic",
        "created": 1740911405,
        "currency": "usd",
        "customer": "cus_RqT3hF8bWm2xYz",
        "description": "Pro plan, March",
        "last_payment_error": null,
        "latest_charge": "ch_3QxYz1LkdIwHu7ix0kLmNoPq",
        "livemode": false,
        "metadata": { "order_id": "6735" },
        "payment_method": "pm_1QxYz0LkdIwHu7ixA1b2C3d4",
        "payment_method_types": ["card"],
        "receipt_email": "ada@example.com",
        "status": "succeeded"
    })
}

fn invoice() -> Value {
    json!({
        "id": "in_1QxYz3LkdIwHu7ixQ9rStUvW",
        "object": "invoice",
        "account_country": "US",
        "amount_due": 4900,
        "amount_paid": 4900,
        "amount_remaining": 0,
        "attempt_count": 1,
        "billing_reason": "subscription_cycle",
        "collection_method": "charge_automatically",
        "created": 1740907800,
        "currency": "usd",
        "customer": "cus_RqT3hF8bWm2xYz",
        "customer_email": "ada@example.com",
        "customer_name": "Ada Lovelace",
        "hosted_invoice_url": "https://invoice.stripe.com/i/acct_1Nv0FGQ9RKHgCVdK/test_YWNjdF8xTnYw",
        "invoice_pdf": "https://pay.stripe.com/invoice/acct_1Nv0FGQ9RKHgCVdK/test_YWNjdF8xTnYw/pdf",
        "lines": {
            "object": "list",
            "data": [{
                "id": "il_1QxYz3LkdIwHu7ixAbCdEfGh",
                "object": "line_item",
                "amount": 4900,
                "currency": "usd",
                "description": "1 × Pro (at $49.00 / month)",
                "period": { "start": 1740907800, "end": 1743586200 },
                "quantity": 1
            }],
            "has_more": false,
            "total_count": 1,
            "url": "/v1/invoices/in_1QxYz3LkdIwHu7ixQ9rStUvW/lines"
        },
        "livemode": false,
        "metadata": {},
        "number": "7C1A2B3D-0003",
        "period_end": 1740907800,
        "period_start": 1738488600,
        "status": "paid",
        "status_transitions": {
            "finalized_at": 1740911400,
            "marked_uncollectible_at": null,
            "paid_at": 1740911406,
            "voided_at": null
        },
        "subscription": "sub_1Qa2b3LkdIwHu7ixZyXwVuTs",
        "subtotal": 4900,
        "total": 4900
    })
}

fn checkout_session() -> Value {
    json!({
        "id": "cs_test_a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ",
        "object": "checkout.session",
        "amount_subtotal": 4900,
        "amount_total": 4900,
        "cancel_url": "https://example.com/pricing",
        "client_reference_id": "user_42",
        "created": 1740911300,
        "currency": "usd",
        "customer": "cus_RqT3hF8bWm2xYz",
        "customer_details": {
            "address": {
                "city": "London",
                "country": "GB",
                "line1": "12 St James's Square",
                "line2": null,
                "postal_code": "SW1Y 4JH",
                "state": null
            },
            "email": "ada@example.com",
            "name": "Ada Lovelace",
            "phone": null,
            "tax_exempt": "none"
        },
        "expires_at": 1740997700,
        "livemode": false,
        "metadata": { "plan": "pro" },
        "mode": "payment",
        "payment_intent": "pi_3QxYz1LkdIwHu7ix0aBcDeFg",
        "payment_method_types": ["card"],
        "payment_status": "paid",
        "status": "complete",
        "subscription": null,
        "success_url": "https://example.com/welcome?session_id={CHECKOUT_SESSION_ID}",
        "url": null
    })
}
