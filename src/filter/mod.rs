//! Trigger filters (issue 11): a CEL expression in `trigger_config.filter`, over `payload` (what
//! the run would receive) and `event_type` (the trigger's event type, `null` where it has none),
//! which a delivery or a polled item must make `true` to fire. `false` fires nothing; so does an
//! expression that fails on it (a missing field, a type mismatch), which is told apart.
//!
//! The `cel` crate parses and interprets. A tenant writes the expression, so this module puts
//! around it the bounds the crate does not have:
//! - **Stack.** The parser and the interpreter recurse once per level of nesting, with frames of
//!   tens of kilobytes in a debug build: ten nested parentheses overflow the 2 MiB stack of a
//!   tokio worker, and a stack overflow aborts the whole process. So every parse and evaluation
//!   runs on [`pool`]'s threads, whose stacks hold the deepest expression [`MAX_LENGTH`] and
//!   [`MAX_DEPTH`] allow (a test parses and runs the worst shapes).
//! - **Time and memory.** CEL has no loops, but its macros (`all`, `exists`, `map`...) nest, so
//!   `payload.a.all(x, payload.a.exists(y, x == y))` is quadratic in the list, and `+` copies
//!   strings and lists. Cost is polynomial in the payload, not linear, so every call an
//!   evaluation makes is metered ([`meter`]): past [`MAX_STEPS`] calls, [`MAX_BUILT_BYTES`] of
//!   values built, or [`MAX_TIME`], it fails.
//! - **Panics.** The crate panics on a few inputs (a macro over a string, a message literal).
//!   [`check`] refuses what can be seen in the expression, [`meter`] guards what only shows at
//!   evaluation, and the pool turns any other panic into a failed evaluation.
//!
//! An expression is compiled once per trigger config ([`Filters`]), never per delivery.
//!
//! # Layout
//! - [`check`]: what an expression may contain: only `payload`, `event_type` and the variables
//!   its macros bind; only functions the engine has; no deeper than [`MAX_DEPTH`].
//! - [`meter`]: the rewrite that meters every call, and the budget it spends.
//! - [`value`]: JSON into CEL values.
//! - [`pool`]: the deep-stack threads.
//! - [`cache`]: compiled filters per trigger, bounded in number and in bytes.

mod cache;
mod check;
mod meter;
pub mod pool;
mod value;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use cel::{Context, ExecutionError, Value};

pub use cache::Filters;
pub use value::to_cel;

/// The field of `trigger_config` that holds a filter.
pub const FIELD: &str = "filter";

/// The longest expression, in characters. An expression's nesting, and so the stack its parse
/// needs, grows with its length; 4 KiB is far beyond any condition a person writes about a
/// payload, and keeps the deepest parse well inside [`pool::STACK_BYTES`].
pub const MAX_LENGTH: usize = 4096;

/// The deepest an expression may nest, in nodes of its syntax tree (`a.b.c` is three levels,
/// `a && b && c` one more per `&&`). The interpreter recurses once per level, and a debug build's
/// frames are large; 64 leaves a wide margin in [`pool::STACK_BYTES`], and is over three times
/// the 18 levels of a dozen clauses such as `payload.data.object.amount > 1000` joined by `&&`.
pub const MAX_DEPTH: usize = 64;

/// The most calls (operators, functions, macro steps) one evaluation may make. A filter on a
/// payload's fields makes tens; a macro makes about four per item plus its predicate's, so a
/// million lets one walk a list of 100,000 items. Past it, the expression is doing quadratic
/// work over a large list, which no filter needs. Unlike [`MAX_TIME`], the same on every machine.
pub const MAX_STEPS: u32 = 1_000_000;

/// The most bytes of values (strings, lists, maps) one evaluation may build: `payload.s + payload.s`
/// repeated doubles a string at each step. 64 MiB is 64 times the largest webhook body.
pub const MAX_BUILT_BYTES: usize = 64 << 20;

/// The longest one evaluation may take. Filters take microseconds (docs/benchmarks.md); this is
/// the bound for what steps cannot see (one comparison over a long list costs as much as many
/// small ones), set far enough above that a thread descheduled mid-evaluation on a busy machine
/// does not fail a sound filter.
pub const MAX_TIME: Duration = Duration::from_millis(100);

/// The variables a filter may name.
pub const VARIABLES: [&str; 2] = ["payload", "event_type"];

/// A filter as a trigger's config holds it: the text, when the config has one.
pub fn source_in(config: Option<&serde_json::Value>) -> Option<&str> {
    config?.get(FIELD)?.as_str()
}

/// Why an expression cannot be a filter. Each message reads after the field's name
/// (`trigger_config.filter is not valid CEL: ...`), as the API's 422 shows it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("must be at most {MAX_LENGTH} characters long")]
    TooLong,
    /// The parser's own message, with the line and column it points at.
    #[error("is not valid CEL: {0}")]
    Syntax(String),
    #[error("refers to `{0}`, which is not a variable here: a filter may use `payload` and `event_type`")]
    UnknownVariable(String),
    #[error("calls `{0}`, which is not a function the engine knows")]
    UnknownFunction(String),
    #[error("nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("uses {0}, which filters do not support")]
    Unsupported(&'static str),
    /// The parser panicked: a bug of the `cel` crate, met on this expression.
    #[error("could not be parsed (the CEL parser failed on it)")]
    ParserFailed,
}

/// What a filter says of one payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// True (or no filter): fire.
    Fire,
    /// False: acknowledge and fire nothing.
    Filtered,
    /// The expression failed on this payload (a missing field, a type mismatch, a budget spent)
    /// or is not a filter the engine can run: fire nothing. The reason names types and fields,
    /// never values from the payload, so it can be logged.
    Failed(String),
}

impl Outcome {
    /// The `outcome` label of `webhook_deliveries_total` for a delivery that stopped here.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Outcome::Fire => "fired",
            Outcome::Filtered => "filtered",
            Outcome::Failed(_) => "filter_error",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Fire => f.write_str("the filter lets it through"),
            Outcome::Filtered => f.write_str("the filter is false"),
            Outcome::Failed(reason) => write!(f, "the filter failed: {reason}"),
        }
    }
}

/// A compiled filter: its text and the metered expression. `Send` and `Sync` (the `cel` crate's
/// expressions hold no `Rc`), so one compiled filter serves every delivery at once.
#[derive(Debug)]
pub struct Filter {
    source: String,
    expression: cel::IdedExpr,
}

impl Filter {
    /// Parses and checks `source` on the pool's deep stacks.
    pub async fn compile(source: &str) -> Result<Filter, FilterError> {
        // Counted before a thread is taken: most refusals need none.
        if source.chars().count() > MAX_LENGTH {
            return Err(FilterError::TooLong);
        }
        let source = source.to_owned();
        pool::run(move || Filter::compile_on_this_thread(source))
            .await
            .unwrap_or(Err(FilterError::ParserFailed))
    }

    /// [`Filter::compile`] on the calling thread, whose stack must be as deep as
    /// [`pool::STACK_BYTES`]; a parser panic unwinds to the caller.
    pub fn compile_on_this_thread(source: String) -> Result<Filter, FilterError> {
        if source.chars().count() > MAX_LENGTH {
            return Err(FilterError::TooLong);
        }
        let parsed = cel::parser::Parser::new()
            .parse(&source)
            .map_err(|errors| FilterError::Syntax(syntax_message(&errors)))?;
        check::check(&parsed)?;
        Ok(Filter {
            expression: meter::instrument(parsed),
            source,
        })
    }

    /// The expression as the trigger's config spells it.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the filter on `payload`, on the pool's deep stacks.
    pub async fn evaluate(
        self: &Arc<Self>,
        payload: &serde_json::Value,
        event_type: Option<&str>,
    ) -> Outcome {
        let payload = to_cel(payload);
        let event_type = event_type.map(str::to_owned);
        let filter = Arc::clone(self);
        pool::run(move || filter.evaluate_on_this_thread(payload, event_type.as_deref()))
            .await
            // The panic's message may quote the payload; the panic hook has printed it already.
            .unwrap_or_else(|_| Outcome::Failed("the CEL interpreter panicked on it".to_owned()))
    }

    /// [`Filter::evaluate`] on the calling thread, whose stack must be as deep as
    /// [`pool::STACK_BYTES`], with the payload already converted ([`to_cel`]).
    pub fn evaluate_on_this_thread(&self, payload: Value, event_type: Option<&str>) -> Outcome {
        let mut scope = ROOT.new_inner_scope();
        scope.add_variable_from_value(VARIABLES[0], payload);
        scope.add_variable_from_value(
            VARIABLES[1],
            event_type.map_or(Value::Null, |name| Value::String(Arc::new(name.to_owned()))),
        );
        let (result, overspent) = meter::metered(|| Value::resolve(&self.expression, &scope));
        match (overspent, result) {
            (Some(limit), _) => Outcome::Failed(limit.to_string()),
            (None, Ok(Value::Bool(true))) => Outcome::Fire,
            (None, Ok(Value::Bool(false))) => Outcome::Filtered,
            (None, Ok(other)) => {
                Outcome::Failed(format!("it evaluates to a {}, not a bool", other.type_of()))
            }
            (None, Err(error)) => Outcome::Failed(describe(&error)),
        }
    }
}

/// The functions every evaluation sees: CEL's standard ones and the meter's. Built once; each
/// evaluation adds its variables in a scope of its own.
static ROOT: LazyLock<Context<'static>> = LazyLock::new(|| {
    let mut context = Context::default();
    meter::register(&mut context);
    context
});

/// The first of the parser's errors, as "line:column: message". The crate's own rendering
/// repeats the whole line with a marker under it, which for a 4 KiB expression is 8 KiB of dots.
fn syntax_message(errors: &cel::ParseErrors) -> String {
    let Some(first) = errors.errors.first() else {
        return "the parser gave no reason".to_owned();
    };
    let mut message = format!("{}:{}: {}", first.pos.0, first.pos.1, first.msg);
    truncate(&mut message, 300);
    if errors.errors.len() > 1 {
        message.push_str(&format!(" (and {} more errors)", errors.errors.len() - 1));
    }
    message
}

/// An evaluation error in words that name types, keys and functions but no value: the crate's
/// own messages print the values involved (`{:?}` of a whole payload, sometimes), and a
/// delivery's payload is the tenant's data, not something for the engine's logs.
fn describe(error: &ExecutionError) -> String {
    use ExecutionError as E;
    let mut described = match error {
        E::NoSuchKey(key) => format!("no such key: {key}"),
        E::UndeclaredReference(name) => format!("undeclared reference to `{name}`"),
        E::UnexpectedType { want, .. } => format!("a value is not {}", cel_type(want)),
        E::ValuesNotComparable(a, b) => {
            format!(
                "a {} cannot be compared with a {}",
                a.type_of(),
                b.type_of()
            )
        }
        E::UnsupportedBinaryOperator(op, a, b) => {
            format!(
                "`{op}` does not apply to a {} and a {}",
                a.type_of(),
                b.type_of()
            )
        }
        E::UnsupportedUnaryOperator(op, value) => {
            format!("`{op}` does not apply to a {}", value.type_of())
        }
        E::UnsupportedTargetType { target } => {
            format!("a function does not apply to a {}", target.type_of())
        }
        E::NotSupportedAsMethod { method, target } => {
            format!("`{method}` cannot be called on a {}", target.type_of())
        }
        E::UnsupportedKeyType(value) | E::UnsupportedMapIndex(value) => {
            format!("a {} cannot be a map key", value.type_of())
        }
        E::UnsupportedListIndex(index) => format!("a {} cannot index a list", index.type_of()),
        E::UnsupportedIndex(value, index) => {
            format!("a {} cannot index a {}", index.type_of(), value.type_of())
        }
        E::IndexOutOfBounds(_) => "a list index is out of bounds".to_owned(),
        E::DivisionByZero(_) => "division by zero".to_owned(),
        E::RemainderByZero(_) => "remainder by zero".to_owned(),
        E::Overflow(op, _, _) => format!("`{op}` overflows"),
        E::FunctionError { function, message } if meter::is_own(function) => message.clone(),
        E::FunctionError { function, message } => format!("`{function}` failed: {message}"),
        // The remaining variants carry no values (a function's message may quote its arguments,
        // hence the cut below).
        other => other.to_string(),
    };
    truncate(&mut described, 300);
    described
}

/// The CEL type a function wanted, from the Rust type the crate names (`Arc<String>`, `i64`).
fn cel_type(rust: &str) -> &'static str {
    let named = |part: &str| rust.contains(part);
    if named("String") {
        "a string"
    } else if named("u8") {
        "bytes"
    } else if named("i64") || named("i32") {
        "an int"
    } else if named("u64") || named("u32") {
        "a uint"
    } else if named("f64") {
        "a double"
    } else if named("bool") {
        "a bool"
    } else if named("DateTime") {
        "a timestamp"
    } else if named("Duration") {
        "a duration"
    } else {
        "of the type the function wants"
    }
}

/// Cuts `text` to at most `limit` bytes, on a character boundary, marking the cut.
fn truncate(text: &mut String, limit: usize) {
    if text.len() <= limit {
        return;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
}
