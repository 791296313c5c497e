//! Metering: a compiled filter is rewritten so that every call it makes (operators and macro
//! steps are calls too) first goes through [`STEP`], which spends one step of the evaluation's
//! budget, checks the clock, and counts the bytes of the value the call returns. Running out
//! fails the evaluation; nothing else can stop the interpreter mid-way.
//!
//! The rewrite also puts [`ITERABLE`] around what each macro iterates over: the interpreter has
//! a `todo!()` for anything but a list or a map, so `payload.email.exists(c, c == "@")` would
//! panic where it should fail.
//!
//! Both functions are named with `@`, which CEL identifiers cannot contain: no expression can
//! call them itself.

use std::cell::Cell;
use std::fmt;
use std::time::{Duration, Instant};

use cel::common::ast::{CallExpr, EntryExpr, Expr, IdedExpr};
use cel::objects::Key;
use cel::{Context, ExecutionError, FunctionContext, ResolveResult, Value};

use super::{MAX_BUILT_BYTES, MAX_STEPS, MAX_TIME};

/// Wraps every call: spends a step, then evaluates the call.
const STEP: &str = "@step";
/// Wraps every range a macro iterates over: lets lists and maps through, fails on anything else.
const ITERABLE: &str = "@iterable";

/// What one evaluation may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Limits {
    pub steps: u32,
    pub bytes: usize,
    pub time: Duration,
}

impl Limits {
    pub const FILTER: Limits = Limits {
        steps: MAX_STEPS,
        bytes: MAX_BUILT_BYTES,
        time: MAX_TIME,
    };
}

/// The limit an evaluation ran past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Overspent {
    Steps(u32),
    Bytes(usize),
    Time(Duration),
}

impl fmt::Display for Overspent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Overspent::Steps(steps) => write!(f, "it made more than {steps} calls"),
            Overspent::Bytes(bytes) => {
                write!(f, "it built more than {} MiB of values", bytes >> 20)
            }
            Overspent::Time(time) => write!(f, "it ran longer than {} ms", time.as_millis()),
        }
    }
}

/// What the evaluation running on this thread has left. Outside [`metered`] it is nothing, so a
/// call evaluated unmetered by mistake fails instead of running without bounds.
#[derive(Debug, Clone, Copy)]
struct Budget {
    limits: Limits,
    steps_left: u32,
    bytes_left: usize,
    deadline: Option<Instant>,
    overspent: Option<Overspent>,
}

impl Budget {
    const NONE: Budget = Budget {
        limits: Limits {
            steps: 0,
            bytes: 0,
            time: Duration::ZERO,
        },
        steps_left: 0,
        bytes_left: 0,
        deadline: None,
        overspent: None,
    };
}

thread_local! {
    static BUDGET: Cell<Budget> = const { Cell::new(Budget::NONE) };
}

/// Runs `evaluation` with the filters' budget; says which limit stopped it, if one did.
pub(super) fn metered<T>(evaluation: impl FnOnce() -> T) -> (T, Option<Overspent>) {
    metered_with(Limits::FILTER, evaluation)
}

pub(super) fn metered_with<T>(
    limits: Limits,
    evaluation: impl FnOnce() -> T,
) -> (T, Option<Overspent>) {
    BUDGET.set(Budget {
        limits,
        steps_left: limits.steps,
        bytes_left: limits.bytes,
        deadline: Some(Instant::now() + limits.time),
        overspent: None,
    });
    let result = evaluation();
    let overspent = BUDGET.get().overspent;
    BUDGET.set(Budget::NONE);
    (result, overspent)
}

/// Adds the meter's functions to `context`.
pub(super) fn register(context: &mut Context<'_>) {
    context.add_function(STEP, step);
    context.add_function(ITERABLE, iterable);
}

/// `expression` with every call wrapped in [`STEP`] and every macro range in [`ITERABLE`].
/// Recursive: it runs on a pool thread, on an expression [`super::check`] has bounded in depth.
pub(super) fn instrument(expression: IdedExpr) -> IdedExpr {
    let IdedExpr { id, expr } = expression;
    let expr = match expr {
        Expr::Call(mut call) => {
            call.target = call.target.map(|target| Box::new(instrument(*target)));
            call.args = call.args.into_iter().map(instrument).collect();
            return wrap(
                STEP,
                IdedExpr {
                    id,
                    expr: Expr::Call(call),
                },
            );
        }
        Expr::Comprehension(mut comprehension) => {
            let range = std::mem::take(&mut comprehension.iter_range);
            comprehension.iter_range = wrap(ITERABLE, instrument(range));
            for part in [
                &mut comprehension.accu_init,
                &mut comprehension.loop_cond,
                &mut comprehension.loop_step,
                &mut comprehension.result,
            ] {
                *part = instrument(std::mem::take(part));
            }
            Expr::Comprehension(comprehension)
        }
        Expr::Select(mut select) => {
            select.operand = Box::new(instrument(*select.operand));
            Expr::Select(select)
        }
        Expr::List(mut list) => {
            list.elements = list.elements.into_iter().map(instrument).collect();
            Expr::List(list)
        }
        Expr::Map(mut map) => {
            for entry in &mut map.entries {
                if let EntryExpr::MapEntry(entry) = &mut entry.expr {
                    entry.key = instrument(std::mem::take(&mut entry.key));
                    entry.value = instrument(std::mem::take(&mut entry.value));
                }
            }
            Expr::Map(map)
        }
        other => other,
    };
    IdedExpr { id, expr }
}

fn wrap(function: &str, inner: IdedExpr) -> IdedExpr {
    IdedExpr {
        // Ids only place parse errors in the source; these nodes come after parsing.
        id: 0,
        expr: Expr::Call(CallExpr {
            func_name: function.to_owned(),
            target: None,
            args: vec![inner],
        }),
    }
}

fn step(ftx: &FunctionContext) -> ResolveResult {
    spend(|budget| {
        if budget.steps_left == 0 {
            return Err(Overspent::Steps(budget.limits.steps));
        }
        budget.steps_left -= 1;
        match budget.deadline {
            Some(deadline) if Instant::now() <= deadline => Ok(()),
            _ => Err(Overspent::Time(budget.limits.time)),
        }
    })?;
    let value = Value::resolve(&ftx.args[0], ftx.ptx)?;
    let built = built_bytes(&value);
    spend(|budget| match budget.bytes_left.checked_sub(built) {
        Some(left) => {
            budget.bytes_left = left;
            Ok(())
        }
        None => Err(Overspent::Bytes(budget.limits.bytes)),
    })?;
    Ok(value)
}

/// Applies `charge` to this thread's budget; a refusal is recorded (for [`metered`] to report)
/// and becomes the error that unwinds the interpreter.
fn spend(charge: impl FnOnce(&mut Budget) -> Result<(), Overspent>) -> Result<(), ExecutionError> {
    let mut budget = BUDGET.get();
    let charged = charge(&mut budget);
    if let Err(overspent) = charged {
        budget.overspent.get_or_insert(overspent);
    }
    BUDGET.set(budget);
    charged.map_err(|overspent| ExecutionError::function_error(STEP, overspent))
}

/// The bytes a value holds at its top level. A list's or map's elements are shared with the
/// values they came from (the crate's values are reference-counted), so only the slots count;
/// a value a call returns counts as built even when it was shared, which errs on the safe side.
fn built_bytes(value: &Value) -> usize {
    match value {
        Value::String(text) => text.len(),
        Value::Bytes(bytes) => bytes.len(),
        Value::List(items) => items.len() * size_of::<Value>(),
        Value::Map(map) => map.map.len() * (size_of::<Key>() + size_of::<Value>()),
        _ => 0,
    }
}

fn iterable(value: Value) -> ResolveResult {
    match value {
        Value::List(_) | Value::Map(_) => Ok(value),
        other => Err(ExecutionError::function_error(
            ITERABLE,
            format!("a macro cannot iterate over a {}", other.type_of()),
        )),
    }
}

/// Whether `function` is one of the meter's, whose errors speak for themselves.
pub(super) fn is_own(function: &str) -> bool {
    function == STEP || function == ITERABLE
}
