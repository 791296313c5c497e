use std::sync::Arc;

use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::meter::{self, Limits, Overspent};
use super::*;

/// A Stripe `checkout.session.completed` event, trimmed to what the tests read.
fn checkout(email: &str) -> Json {
    json!({
        "id": "evt_1",
        "type": "checkout.session.completed",
        "livemode": false,
        "data": {"object": {
            "id": "cs_1",
            "amount_total": 4200,
            "currency": "eur",
            "customer_details": {"email": email, "name": "Ada"},
            "line_items": [
                {"price": 1200, "sku": "book"},
                {"price": 3000, "sku": "lamp"}
            ]
        }}
    })
}

async fn compiled(source: &str) -> Arc<Filter> {
    Arc::new(
        Filter::compile(source)
            .await
            .unwrap_or_else(|error| panic!("{source:?} {error}")),
    )
}

async fn outcome(source: &str, payload: &Json) -> Outcome {
    compiled(source).await.evaluate(payload, None).await
}

fn failed(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Failed(reason) => reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}

// --- evaluating ---

#[tokio::test]
async fn it_should_fire_when_the_expression_is_true_and_not_when_false() {
    let filter =
        compiled(r#"payload.data.object.customer_details.email.endsWith("@acme.com")"#).await;
    assert_eq!(
        filter.evaluate(&checkout("ada@acme.com"), None).await,
        Outcome::Fire
    );
    assert_eq!(
        filter.evaluate(&checkout("ada@example.com"), None).await,
        Outcome::Filtered
    );
}

#[tokio::test]
async fn it_should_read_numbers_lists_and_macros_as_written() {
    let payload = checkout("ada@acme.com");
    for source in [
        "payload.data.object.amount_total > 1000",
        "payload.data.object.amount_total % 2 == 0",
        "payload.data.object.amount_total == 4200.0",
        r#"payload.data.object.line_items.exists(item, item.sku == "lamp")"#,
        "payload.data.object.line_items.all(item, item.price >= 1200)",
        "payload.data.object.line_items.map(item, item.price).exists(p, p == 3000)",
        "size(payload.data.object.line_items.filter(item, item.price > 2000)) == 1",
        r#"has(payload.data.object.currency) && !has(payload.data.object.refund)"#,
        r#"payload.type in ["checkout.session.completed", "invoice.paid"]"#,
        r#"payload.data.object.customer_details.email.matches("^[a-z]+@acme[.]com$")"#,
        r#"!payload.livemode && payload.id.startsWith("evt_")"#,
    ] {
        assert_eq!(outcome(source, &payload).await, Outcome::Fire, "{source}");
    }
}

#[tokio::test]
async fn it_should_give_event_type_as_the_trigger_s_or_null() {
    let filter = compiled(r#"event_type == "customer.created""#).await;
    assert_eq!(
        filter.evaluate(&json!({}), Some("customer.created")).await,
        Outcome::Fire
    );
    assert_eq!(
        filter.evaluate(&json!({}), Some("customer.deleted")).await,
        Outcome::Filtered
    );
    let null = compiled("event_type == null").await;
    assert_eq!(null.evaluate(&json!({}), None).await, Outcome::Fire);
}

#[tokio::test]
async fn it_should_fail_on_a_missing_field_or_a_type_mismatch_without_quoting_the_payload() {
    let payload = checkout("secret-person@acme.com");
    let missing = outcome("payload.data.object.refund.amount > 0", &payload).await;
    assert_eq!(failed(&missing), "no such key: refund");
    let mismatch = outcome("payload.data.object.customer_details > 1", &payload).await;
    assert_eq!(failed(&mismatch), "a map cannot be compared with a int");
    let wrong_method = outcome("payload.data.object.amount_total.endsWith(\"0\")", &payload).await;
    assert_eq!(failed(&wrong_method), "a value is not a string");
    for outcome in [missing, mismatch, wrong_method] {
        assert!(!failed(&outcome).contains("secret-person"), "{outcome:?}");
    }
}

#[tokio::test]
async fn it_should_fail_when_the_expression_is_not_a_bool() {
    let payload = checkout("ada@acme.com");
    let number = outcome("payload.data.object.amount_total", &payload).await;
    assert_eq!(failed(&number), "it evaluates to a int, not a bool");
    let text = outcome("payload.id", &payload).await;
    assert_eq!(failed(&text), "it evaluates to a string, not a bool");
}

#[tokio::test]
async fn it_should_fail_rather_than_panic_on_a_macro_over_a_string() {
    // The interpreter has `todo!()` for this; the meter's guard answers first.
    let result = outcome(
        r#"payload.data.object.currency.exists(c, c == "e")"#,
        &checkout("ada@acme.com"),
    )
    .await;
    assert_eq!(failed(&result), "a macro cannot iterate over a string");
}

#[tokio::test]
async fn it_should_evaluate_the_same_with_the_meter_as_without() {
    pool::run(evaluate_with_and_without_the_meter)
        .await
        .unwrap();
}

fn evaluate_with_and_without_the_meter() {
    let payload = to_cel(&checkout("ada@acme.com"));
    for source in [
        "payload.data.object.amount_total + 1 == 4201",
        "payload.data.object.line_items.map(i, i.price * 2)",
        "payload.data.object.line_items.filter(i, i.price > 2000)",
        "payload.data.object.line_items.exists_one(i, i.price > 2000)",
        r#"{"a": [1, 2, payload.id]}"#,
        r#"payload.data.object.customer_details.name + "!""#,
        "true ? payload.data.object.currency : 1",
        "size(payload.data) > 0 || payload.missing",
        "int(\"42\") + uint(1) == 43",
        "optional.of(1).hasValue()",
        "timestamp(\"2025-01-02T03:04:05Z\").getFullYear()",
        "payload.nothing.here",
    ] {
        let parsed = cel::parser::Parser::new().parse(source).unwrap();
        let mut scope = ROOT.new_inner_scope();
        scope.add_variable_from_value("payload", payload.clone());
        let plain = Value::resolve(&parsed, &scope);
        let instrumented = meter::instrument(parsed);
        let (metered, overspent) = meter::metered(|| Value::resolve(&instrumented, &scope));
        assert_eq!(overspent, None, "{source}");
        assert_eq!(metered, plain, "{source}");
    }
}

// --- bounds ---

/// `source` compiled and evaluated on `payload` under `limits`, on a pool thread (a test
/// thread's stack is as shallow as a tokio worker's).
async fn metered(source: &str, payload: Json, limits: Limits) -> Option<Overspent> {
    let filter = compiled(source).await;
    pool::run(move || {
        let mut scope = ROOT.new_inner_scope();
        scope.add_variable_from_value("payload", to_cel(&payload));
        meter::metered_with(limits, || Value::resolve(&filter.expression, &scope)).1
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn it_should_stop_an_evaluation_that_makes_too_many_calls() {
    let quadratic = "payload.items.all(x, payload.items.exists(y, y == x))";
    let few_steps = Limits {
        steps: 10_000,
        time: std::time::Duration::from_secs(3600),
        ..Limits::FILTER
    };
    // 200 items make about 200 x 200 x 4 calls.
    let items: Vec<i64> = (0..200).collect();
    assert_eq!(
        metered(quadratic, json!({ "items": items }), few_steps).await,
        Some(Overspent::Steps(10_000))
    );
    assert_eq!(
        metered(quadratic, json!({ "items": [1, 2, 3] }), few_steps).await,
        None
    );
    // With the real limits, 5,000 items (a 30 KB payload) run into one of them: steps, or time
    // first in a debug build.
    let items: Vec<i64> = (0..5_000).collect();
    let result = outcome(quadratic, &json!({ "items": items })).await;
    assert!(
        [
            "it made more than 1000000 calls",
            "it ran longer than 100 ms"
        ]
        .contains(&failed(&result)),
        "{result:?}"
    );
}

#[tokio::test]
async fn it_should_stop_an_evaluation_that_builds_too_much() {
    // Each `+` doubles the string: 1 MiB becomes 128 MiB in seven steps.
    let payload = json!({ "s": "x".repeat(1 << 20) });
    let mut doubling = "payload.s".to_owned();
    for _ in 0..7 {
        doubling = format!("({doubling} + {doubling})");
    }
    // Time is not what is tested here, and a busy machine can spend 100 ms on the first few
    // doublings: give it all the time it wants, so only the byte bound can stop it.
    let patient = Limits {
        time: std::time::Duration::from_secs(60),
        ..Limits::FILTER
    };
    let overspent = metered(&format!("size({doubling}) > 0"), payload, patient).await;
    assert!(
        matches!(overspent, Some(Overspent::Bytes(_))),
        "{overspent:?}"
    );
    assert_eq!(
        overspent.unwrap().to_string(),
        "it built more than 64 MiB of values"
    );
}

#[tokio::test]
async fn it_should_stop_an_evaluation_past_its_time() {
    let no_time = Limits {
        time: std::time::Duration::ZERO,
        ..Limits::FILTER
    };
    let overspent = metered("1 + 1 == 2", json!({}), no_time).await;
    assert_eq!(overspent, Some(Overspent::Time(std::time::Duration::ZERO)));
    assert_eq!(overspent.unwrap().to_string(), "it ran longer than 0 ms");
}

#[tokio::test]
async fn it_should_refuse_every_call_made_outside_a_metered_evaluation() {
    let filter = compiled("1 + 1 == 2").await;
    let unmetered = pool::run(move || Value::resolve(&filter.expression, &ROOT.new_inner_scope()));
    assert!(unmetered.await.unwrap().is_err());
}

/// Expressions of the longest length allowed, in each shape that nests: each must be compiled
/// or refused, and each accepted one evaluated, without overflowing a pool thread's stack. An
/// overflow aborts the test binary, so this test cannot pass by accident; it is the evidence
/// for [`pool::STACK_BYTES`] (run it in a debug build, whose frames are the largest).
#[tokio::test]
async fn it_should_parse_and_run_the_deepest_expressions_within_the_pool_s_stack() {
    let fill = |open: &str, middle: &str, close: &str| {
        let levels = (MAX_LENGTH - middle.len()) / (open.len() + close.len());
        format!("{}{middle}{}", open.repeat(levels), close.repeat(levels))
    };
    let chain = |first: &str, link: &str| {
        let links = (MAX_LENGTH - first.len()) / link.len();
        format!("{first}{}", link.repeat(links))
    };
    let longest = [
        fill("(", "true", ")"),
        fill("[", "1", "]"),
        fill("{1: ", "1", "}"),
        fill("size(", "1", ")"),
        fill("[1].exists(x, ", "true", ")"),
        fill("true ? ", "true", " : false"),
        chain("1", " + 1"),
        chain("true", " && true"),
        chain("payload", ".a"),
        chain("payload", "[0]"),
        chain("!", "!").replace("!!", "!") + "true",
        format!("{}1 == 1", "-".repeat(MAX_LENGTH - 6)),
        format!("{}true", "!".repeat(MAX_LENGTH - 4)),
    ];
    for source in &longest {
        assert!(source.len() <= MAX_LENGTH, "{}", source.len());
        if let Ok(filter) = Filter::compile(source).await {
            Arc::new(filter).evaluate(&json!({}), None).await;
        }
    }
    // And the deepest each shape may be: accepted, and evaluated.
    let depth = MAX_DEPTH - 2;
    let deepest = [
        format!("{}true{}", "[".repeat(depth), "]".repeat(depth)) + " == []",
        format!(
            "{}1{} > 0",
            "size(string(".repeat(depth / 2 - 1),
            "))".repeat(depth / 2 - 1)
        ),
        format!("1{} > 0", " + 1".repeat(depth - 2)),
        format!("true{}", " && true".repeat(depth - 1)),
        format!(
            "{}true{}",
            "[1].exists(x, ".repeat(depth / 3),
            ")".repeat(depth / 3)
        ),
    ];
    for source in &deepest {
        let filter = Arc::new(
            Filter::compile(source)
                .await
                .unwrap_or_else(|error| panic!("{source}: {error}")),
        );
        filter.evaluate(&json!({}), None).await;
    }
}

// --- compiling ---

#[tokio::test]
async fn it_should_refuse_a_syntax_error_with_the_parser_s_message_and_position() {
    let error = Filter::compile("payload.id ==").await.unwrap_err();
    let FilterError::Syntax(message) = &error else {
        panic!("{error:?}");
    };
    assert!(message.starts_with("1:"), "{message}");
    assert!(message.contains("Syntax error"), "{message}");
    assert!(error.to_string().starts_with("is not valid CEL: 1:"));
    // The crate's rendering repeats the line under a marker; ours does not.
    let long = format!("payload.id == \"{}\" &&", "x".repeat(3000));
    let FilterError::Syntax(message) = Filter::compile(&long).await.unwrap_err() else {
        panic!("a syntax error");
    };
    assert!(message.len() < 400, "{}", message.len());
}

#[tokio::test]
async fn it_should_refuse_a_variable_other_than_payload_event_type_and_macro_bindings() {
    assert_eq!(
        Filter::compile("data.object.email == \"a\"")
            .await
            .unwrap_err(),
        FilterError::UnknownVariable("data".into())
    );
    assert_eq!(
        Filter::compile("payload.items.exists(i, i > 1) && i > 1")
            .await
            .unwrap_err(),
        FilterError::UnknownVariable("i".into()),
        "a macro's variable is bound inside it only"
    );
    Filter::compile("payload.items.exists(i, i.tags.exists(t, t == i.name))")
        .await
        .expect("nested macros see their own and the enclosing variables");
    Filter::compile("payload.m.all(key, payload.m[key] > 0)")
        .await
        .expect("a macro over a map binds its keys");
}

#[tokio::test]
async fn it_should_refuse_a_function_the_engine_does_not_have() {
    assert_eq!(
        Filter::compile("payload.email.endswith(\"@acme.com\")")
            .await
            .unwrap_err(),
        FilterError::UnknownFunction("endswith".into())
    );
    assert_eq!(
        Filter::compile("type(payload) == map").await.unwrap_err(),
        FilterError::UnknownFunction("type".into())
    );
}

#[tokio::test]
async fn it_should_know_every_function_the_engine_s_context_has() {
    // Each listed name, called with nothing, must be found (and fail for want of arguments, or
    // answer as `max()` does), not be an undeclared reference.
    for name in check::FUNCTIONS {
        let parsed = cel::parser::Parser::new()
            .parse(&format!("{name}()"))
            .unwrap();
        let result = Value::resolve(&parsed, &ROOT.new_inner_scope());
        assert!(
            !matches!(result, Err(cel::ExecutionError::UndeclaredReference(_))),
            "{name}: {result:?}"
        );
    }
    for name in check::NAMESPACED {
        let (namespace, function) = name.split_once('.').unwrap();
        let source = format!("{namespace}.{function}(1)");
        Filter::compile(&source)
            .await
            .unwrap_or_else(|error| panic!("{source}: {error}"));
    }
}

#[tokio::test]
async fn it_should_refuse_an_expression_too_long_or_too_deep() {
    let longest = format!("payload.s == \"{}\"", "x".repeat(MAX_LENGTH - 15));
    assert_eq!(longest.chars().count(), MAX_LENGTH);
    Filter::compile(&longest).await.expect("at the limit");
    assert_eq!(
        Filter::compile(&format!("{longest} ")).await.unwrap_err(),
        FilterError::TooLong
    );
    // Characters, not bytes, as JSON Schema's `maxLength` counts.
    let wide = format!("payload.s == \"{}\"", "é".repeat(MAX_LENGTH - 15));
    Filter::compile(&wide).await.expect("4096 characters");

    let deep = format!("1{} > 0", " + 1".repeat(MAX_DEPTH));
    assert_eq!(
        Filter::compile(&deep).await.unwrap_err(),
        FilterError::TooDeep
    );
}

#[tokio::test]
async fn it_should_refuse_message_literals_which_the_interpreter_cannot_run() {
    assert_eq!(
        Filter::compile("Event{id: 1} == payload")
            .await
            .unwrap_err(),
        FilterError::Unsupported("a message literal")
    );
}

// --- the pool ---

#[tokio::test]
async fn it_should_turn_a_panic_on_a_pool_thread_into_an_error() {
    let panicked = pool::run(|| -> u8 { panic!("deliberately") }).await;
    assert_eq!(panicked, Err(pool::Panicked("deliberately".into())));
    assert_eq!(pool::run(|| 7).await, Ok(7), "the pool still works");
}

// --- the cache ---

#[tokio::test]
async fn it_should_compile_a_trigger_s_filter_once_and_again_when_its_text_changes() {
    let filters = Filters::default();
    let trigger = Uuid::new_v4();
    let first = filters.compiled(trigger, "payload.a == 1").await.unwrap();
    let again = filters.compiled(trigger, "payload.a == 1").await.unwrap();
    assert!(Arc::ptr_eq(&first, &again), "compiled once");
    let changed = filters.compiled(trigger, "payload.a == 2").await.unwrap();
    assert_eq!(changed.source(), "payload.a == 2");
    assert_eq!(filters.len(), 1, "one entry per trigger");
}

#[tokio::test]
async fn it_should_keep_at_most_its_capacity_dropping_the_least_recently_used() {
    let filters = Filters::default();
    let first = Uuid::new_v4();
    let second = Uuid::new_v4();
    let kept = filters.compiled(first, "true").await.unwrap();
    filters.compiled(second, "true").await.unwrap();
    for _ in 2..cache::CAPACITY {
        filters.compiled(Uuid::new_v4(), "true").await.unwrap();
    }
    assert_eq!(filters.len(), cache::CAPACITY);
    // `first` is used again, so `second` is now the least recently used: the next one in
    // takes its place.
    assert!(Arc::ptr_eq(
        &kept,
        &filters.compiled(first, "true").await.unwrap()
    ));
    filters.compiled(Uuid::new_v4(), "true").await.unwrap();
    assert_eq!(filters.len(), cache::CAPACITY);
    assert!(Arc::ptr_eq(
        &kept,
        &filters.compiled(first, "true").await.unwrap()
    ));
    let before = filters.compiled(second, "true").await.unwrap();
    let after = filters.compiled(second, "true").await.unwrap();
    assert!(Arc::ptr_eq(&before, &after), "compiled again, and kept");
}

#[tokio::test]
async fn it_should_keep_at_most_its_bytes_of_filter_text() {
    let filters = Filters::default();
    // As long a filter as there is: 256 of them fill the cache's bytes.
    let long = format!("payload.s == \"{}\"", "x".repeat(MAX_LENGTH - 15));
    let whole = cache::CAPACITY_BYTES / long.len();
    let triggers: Vec<Uuid> = (0..=whole).map(|_| Uuid::new_v4()).collect();
    for trigger in &triggers {
        filters.compiled(*trigger, &long).await.unwrap();
    }
    assert_eq!(filters.len(), whole, "the oldest made room for the last");
    // Replacing a trigger's filter frees its bytes: nothing else is dropped for it.
    let last = *triggers.last().unwrap();
    filters.compiled(last, "true").await.unwrap();
    assert_eq!(filters.len(), whole);
}

#[tokio::test]
async fn it_should_fire_without_compiling_anything_when_a_trigger_has_no_filter() {
    let filters = Filters::default();
    for config in [
        None,
        Some(json!({})),
        Some(json!({"signing_secret": "whsec_x"})),
    ] {
        let outcome = filters
            .judge(Uuid::new_v4(), config.as_ref(), &json!({}), None)
            .await;
        assert_eq!(outcome, Outcome::Fire);
    }
    assert!(filters.is_empty());
}

#[tokio::test]
async fn it_should_judge_a_trigger_by_its_filter_and_fail_on_one_that_does_not_compile() {
    let filters = Filters::default();
    let (trigger, config) = (Uuid::new_v4(), json!({"filter": "payload.n > 1"}));
    let judge = |payload: Json| {
        let filters = filters.clone();
        let config = config.clone();
        async move { filters.judge(trigger, Some(&config), &payload, None).await }
    };
    assert_eq!(judge(json!({"n": 2})).await, Outcome::Fire);
    assert_eq!(judge(json!({"n": 0})).await, Outcome::Filtered);
    let broken = json!({"filter": "payload.n >"});
    let outcome = filters
        .judge(Uuid::new_v4(), Some(&broken), &json!({"n": 2}), None)
        .await;
    assert!(
        failed(&outcome).starts_with("the stored filter is not valid CEL"),
        "{outcome:?}"
    );
    assert_eq!(outcome.metric_label(), "filter_error");
}

// --- values ---

#[test]
fn it_should_convert_json_to_cel_keeping_integers_integral() {
    assert_eq!(to_cel(&json!(1)), Value::Int(1));
    assert_eq!(to_cel(&json!(u64::MAX)), Value::UInt(u64::MAX));
    assert_eq!(to_cel(&json!(1.5)), Value::Float(1.5));
    assert_eq!(to_cel(&json!(null)), Value::Null);
    assert_eq!(to_cel(&json!("a")), Value::String(Arc::new("a".into())));
    let Value::Map(map) = to_cel(&json!({"a": [true]})) else {
        panic!("an object is a map");
    };
    assert_eq!(
        map.map
            .get(&cel::objects::Key::String(Arc::new("a".into()))),
        Some(&Value::List(Arc::new(vec![Value::Bool(true)])))
    );
}

#[test]
fn it_should_name_each_outcome_as_the_metrics_count_it() {
    assert_eq!(Outcome::Filtered.metric_label(), "filtered");
    assert_eq!(Outcome::Failed("x".into()).metric_label(), "filter_error");
    assert_eq!(Outcome::Fire.metric_label(), "fired");
}
