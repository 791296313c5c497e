//! What a parsed expression may contain, checked once when it is compiled, so that an expression
//! that would fail at every delivery is refused when the trigger is created instead.

use cel::common::ast::{EntryExpr, Expr, IdedExpr};

use super::{FilterError, MAX_DEPTH, VARIABLES};

/// The functions of `cel::Context::default()` in cel 0.12 with its default features (`regex`
/// for `matches`, `chrono` for timestamps and durations), by the name a call spells. A call to
/// another name would fail at every evaluation. `tests.rs` calls each through the engine's
/// context, so a name missing from the crate fails there.
pub(super) const FUNCTIONS: &[&str] = &[
    "contains",
    "size",
    "max",
    "min",
    "startsWith",
    "endsWith",
    "string",
    "bytes",
    "double",
    "int",
    "uint",
    "value",
    "hasValue",
    "or",
    "orValue",
    "matches",
    "duration",
    "timestamp",
    "getFullYear",
    "getMonth",
    "getDayOfYear",
    "getDayOfMonth",
    "getDate",
    "getDayOfWeek",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
];

/// Functions called by a qualified name (`optional.of(x)`), where the prefix is a namespace,
/// not a variable.
pub(super) const NAMESPACED: &[&str] = &["optional.none", "optional.of", "optional.ofNonZeroValue"];

pub(super) fn check(expression: &IdedExpr) -> Result<(), FilterError> {
    walk(expression, 1, &mut Vec::new())
}

/// Checks `expression`, `depth` levels down, where `bound` holds the variables the enclosing
/// macros bind (`x` in `payload.items.exists(x, x.price > 10)`).
fn walk<'e>(
    expression: &'e IdedExpr,
    depth: usize,
    bound: &mut Vec<&'e str>,
) -> Result<(), FilterError> {
    if depth > MAX_DEPTH {
        return Err(FilterError::TooDeep);
    }
    let below = depth + 1;
    match &expression.expr {
        Expr::Literal(_) => Ok(()),
        Expr::Ident(name) => {
            if VARIABLES.contains(&name.as_str()) || bound.contains(&name.as_str()) {
                Ok(())
            } else {
                Err(FilterError::UnknownVariable(name.clone()))
            }
        }
        Expr::Select(select) => walk(&select.operand, below, bound),
        Expr::Call(call) => {
            let namespaced = match call.target.as_deref() {
                Some(IdedExpr {
                    expr: Expr::Ident(prefix),
                    ..
                }) => NAMESPACED.contains(&format!("{prefix}.{}", call.func_name).as_str()),
                _ => false,
            };
            if !namespaced {
                // Operators are calls too (`_&&_`, `@in`); their names are no identifiers.
                if is_identifier(&call.func_name) && !FUNCTIONS.contains(&call.func_name.as_str()) {
                    return Err(FilterError::UnknownFunction(call.func_name.clone()));
                }
                if let Some(target) = &call.target {
                    walk(target, below, bound)?;
                }
            }
            call.args
                .iter()
                .try_for_each(|argument| walk(argument, below, bound))
        }
        Expr::List(list) => list
            .elements
            .iter()
            .try_for_each(|element| walk(element, below, bound)),
        Expr::Map(map) => map.entries.iter().try_for_each(|entry| match &entry.expr {
            EntryExpr::MapEntry(entry) => {
                walk(&entry.key, below, bound)?;
                walk(&entry.value, below, bound)
            }
            EntryExpr::StructField(_) => Err(FilterError::Unsupported("a message field")),
        }),
        Expr::Comprehension(comprehension) => {
            walk(&comprehension.iter_range, below, bound)?;
            walk(&comprehension.accu_init, below, bound)?;
            let outer = bound.len();
            bound.push(&comprehension.iter_var);
            if let Some(second) = &comprehension.iter_var2 {
                bound.push(second);
            }
            bound.push(&comprehension.accu_var);
            let inner = [
                &comprehension.loop_cond,
                &comprehension.loop_step,
                &comprehension.result,
            ]
            .into_iter()
            .try_for_each(|part| walk(part, below, bound));
            bound.truncate(outer);
            inner
        }
        // The interpreter has `todo!()` for both: it would panic at every evaluation.
        Expr::Struct(_) => Err(FilterError::Unsupported("a message literal")),
        Expr::Unspecified => Err(FilterError::Unsupported("an incomplete expression")),
    }
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}
