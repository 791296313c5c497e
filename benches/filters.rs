//! Trigger filter benchmark for issue 11, printed as Markdown (copy into docs/benchmarks.md).
//!
//! `cargo bench --bench filters` measures what `trigger_config.filter` costs a delivery, with
//! no store or HTTP around it: compiling an expression (once per trigger config), converting a
//! payload to CEL values (once per delivery), evaluating the compiled expression on this thread,
//! and the whole of what a delivery awaits (`Filters::judge`: the cache lookup, the conversion,
//! the hop to a filter thread and back, the evaluation). Payloads are the catalogue's Stripe
//! `checkout.session.completed` sample, and the same with 100 line items for a macro.
//! `BENCH_ROUNDS` (default 3) repeats each measurement; the best round is printed, as the least
//! disturbed by the machine's other work.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use trigger_engine::catalogue::Catalogue;
use trigger_engine::filter::{pool, to_cel, Filter, Filters, Outcome};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// The mean time of one call of `work`, over `count` calls, in the best of the rounds.
fn per_call(rounds: usize, count: usize, mut work: impl FnMut()) -> Duration {
    (0..rounds)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..count {
                work();
            }
            started.elapsed() / count as u32
        })
        .min()
        .expect("at least one round")
}

fn micros(duration: Duration) -> String {
    format!("{:.2} µs", duration.as_secs_f64() * 1e6)
}

struct Case {
    name: &'static str,
    source: &'static str,
    payload: Value,
    /// Evaluations per round: fewer for the macro, which walks a list.
    count: usize,
}

fn cases() -> Vec<Case> {
    let sample = Catalogue::builtin()
        .find("stripe", "on_checkout_session_completed")
        .expect("the catalogue has Stripe checkouts")
        .sample_payload
        .clone();
    let mut with_items = sample.clone();
    let items: Vec<Value> = (0..100)
        .map(|n| {
            json!({"id": format!("li_{n}"), "object": "item", "quantity": 1,
                   "description": format!("Item {n}"), "amount_total": 100 * n,
                   "price": {"id": format!("price_{n}"), "unit_amount": 100 * n, "currency": "usd"}})
        })
        .collect();
    with_items["data"]["object"]["line_items"] = json!({"object": "list", "data": items});
    vec![
        Case {
            name: "one field (the issue's example)",
            source: r#"payload.data.object.customer_details.email.endsWith("@acme.com")"#,
            payload: sample.clone(),
            count: 100_000,
        },
        Case {
            name: "three clauses",
            source: r#"payload.type == "checkout.session.completed" && payload.data.object.amount_total > 1000 && payload.data.object.currency in ["usd", "eur"]"#,
            payload: sample,
            count: 100_000,
        },
        Case {
            name: "`exists` over 100 line items",
            source:
                "payload.data.object.line_items.data.exists(item, item.price.unit_amount > 9800)",
            payload: with_items,
            count: 10_000,
        },
    ]
}

fn main() -> anyhow::Result<()> {
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    println!(
        "machine: {} cores; best of {rounds} rounds; release build\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    // The on-this-thread figures need the filter threads' deep stack (a debug build's frames are
    // large; a release build's are not, but the bench should not depend on it).
    let local = std::thread::Builder::new()
        .stack_size(pool::STACK_BYTES)
        .spawn(move || on_this_thread(rounds))?
        .join()
        .expect("the bench thread");
    let delivered = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(per_delivery(rounds));
    println!("| filter | payload | compile (once per config) | payload to CEL | evaluate | per delivery (`Filters::judge`) |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for ((case, (compile, convert, evaluate)), judge) in cases().iter().zip(local).zip(&delivered.1)
    {
        println!(
            "| {} | {:.1} KB | {} | {} | {} | {} |",
            case.name,
            case.payload.to_string().len() as f64 / 1000.0,
            micros(compile),
            micros(convert),
            micros(evaluate),
            micros(*judge),
        );
    }
    println!(
        "\nthe hop to a filter thread and back alone: {}",
        micros(delivered.0)
    );
    Ok(())
}

/// Compile, convert and evaluate for each case, on this thread.
fn on_this_thread(rounds: usize) -> Vec<(Duration, Duration, Duration)> {
    cases()
        .into_iter()
        .map(|case| {
            let compile = per_call(rounds, 2_000, || {
                Filter::compile_on_this_thread(case.source.to_owned()).expect("compiles");
            });
            let convert = per_call(rounds, case.count / 5, || {
                std::hint::black_box(to_cel(&case.payload));
            });
            let filter = Filter::compile_on_this_thread(case.source.to_owned()).expect("compiles");
            let payload = to_cel(&case.payload);
            let outcome = filter.evaluate_on_this_thread(payload.clone(), None);
            assert!(
                matches!(outcome, Outcome::Fire | Outcome::Filtered),
                "{}: {outcome}",
                case.name
            );
            let evaluate = per_call(rounds, case.count, || {
                std::hint::black_box(filter.evaluate_on_this_thread(payload.clone(), None));
            });
            (compile, convert, evaluate)
        })
        .collect()
}

/// The pool's round trip alone, and `Filters::judge` for each case, awaited one after another.
async fn per_delivery(rounds: usize) -> (Duration, Vec<Duration>) {
    let count = 20_000;
    let mut hop = Duration::MAX;
    for _ in 0..rounds {
        let started = Instant::now();
        for _ in 0..count {
            pool::run(|| ()).await.expect("no panic");
        }
        hop = hop.min(started.elapsed() / count);
    }
    let filters = Filters::default();
    let mut judged = Vec::new();
    for case in cases() {
        let trigger = uuid::Uuid::new_v4();
        let config = json!({ "filter": case.source });
        let count = (case.count / 5) as u32;
        let mut best = Duration::MAX;
        for _ in 0..rounds {
            let started = Instant::now();
            for _ in 0..count {
                let outcome = filters
                    .judge(
                        trigger,
                        Some(&config),
                        &case.payload,
                        Some("checkout.session.completed"),
                    )
                    .await;
                std::hint::black_box(outcome);
            }
            best = best.min(started.elapsed() / count);
        }
        judged.push(best);
    }
    (hop, judged)
}
