//! Expressions and conditions.
//!
//! Precedence, loosest first: `OR`; `AND`; `NOT`; comparisons, `=~`, `IN`, `IS NULL` (which do
//! not chain); `+ -`; `* /`; unary `-`; atoms. This matches the printer in `display.rs`.

use super::lexical::{ident, kw, number, peek_kw, peek_word, string, sym};
use super::{attempt, count_operator, expect, failure, nested, span_of, Input, PResult};
use crate::ast::{AggFunc, Aggregate, BinaryOp, Expr, ExprKind, FieldRef, Literal, UnaryOp};

/// Any expression or condition.
pub fn expr(i: Input<'_>) -> PResult<'_, Expr> {
    nested(i, or_expr)
}

fn binary(op: BinaryOp, left: Expr, right: Expr) -> Expr {
    Expr {
        span: left.span,
        kind: ExprKind::Binary {
            op,
            left: Box::new(left),
            right: Box::new(right),
        },
    }
}

fn or_expr(i: Input<'_>) -> PResult<'_, Expr> {
    let (mut i, mut left) = and_expr(i)?;
    while let Ok((rest, _)) = kw("or")(i) {
        count_operator(i)?;
        let (rest, right) = expect("expected a condition after OR", and_expr)(rest)?;
        left = binary(BinaryOp::Or, left, right);
        i = rest;
    }
    Ok((i, left))
}

fn and_expr(i: Input<'_>) -> PResult<'_, Expr> {
    let (mut i, mut left) = not_expr(i)?;
    while let Ok((rest, _)) = kw("and")(i) {
        count_operator(i)?;
        let (rest, right) = expect("expected a condition after AND", not_expr)(rest)?;
        left = binary(BinaryOp::And, left, right);
        i = rest;
    }
    Ok((i, left))
}

fn not_expr(i: Input<'_>) -> PResult<'_, Expr> {
    if let Ok((rest, _)) = kw("not")(i) {
        count_operator(i)?;
        let (rest, inner) = nested(rest, expect("expected a condition after NOT", not_expr))?;
        return Ok((
            rest,
            Expr {
                span: span_of(&i),
                kind: ExprKind::Unary {
                    op: UnaryOp::Not,
                    expr: Box::new(inner),
                },
            },
        ));
    }
    predicate(i)
}

/// The comparison operators, longest spelling first.
const COMPARISONS: &[(&str, BinaryOp)] = &[
    ("<=", BinaryOp::LtEq),
    (">=", BinaryOp::GtEq),
    ("<>", BinaryOp::NotEq),
    ("!=", BinaryOp::NotEq),
    ("<", BinaryOp::Lt),
    (">", BinaryOp::Gt),
    ("=", BinaryOp::Eq),
];

/// Whether `i` starts a comparison-level operator (used to refuse chains like `a < b < c`).
fn starts_predicate_op(i: &Input<'_>) -> bool {
    let s = i.fragment();
    COMPARISONS.iter().any(|(t, _)| s.starts_with(t))
        || peek_kw(i, "in")
        || peek_kw(i, "is")
        || (peek_kw(i, "not") && {
            let after = s[3..].trim_start();
            // `get`, not indexing: the text after `not` may start with any character.
            after.get(..2).is_some_and(|w| w.eq_ignore_ascii_case("in"))
                && !after[2..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        })
}

fn predicate(i: Input<'_>) -> PResult<'_, Expr> {
    let (i, left) = additive(i)?;
    let span = left.span;
    if starts_predicate_op(&i) {
        count_operator(i)?;
    }
    if let Ok((rest, _)) = sym("=~")(i) {
        let (rest, pattern) =
            expect("expected a quoted regular expression after =~", string)(rest)?;
        let kind = ExprKind::Regex {
            expr: Box::new(left),
            pattern,
        };
        return no_chain(rest, Expr { kind, span });
    }
    if let Ok((rest, _)) = kw("is")(i) {
        let (rest, negated) = match kw("not")(rest) {
            Ok((r, _)) => (r, true),
            Err(_) => (rest, false),
        };
        let (rest, _) = expect("expected NULL after IS", kw("null"))(rest)?;
        let kind = ExprKind::IsNull {
            expr: Box::new(left),
            negated,
        };
        return no_chain(rest, Expr { kind, span });
    }
    if let Some((rest, negated)) = in_keyword(i)? {
        let (rest, list) = in_list(rest)?;
        let kind = ExprKind::In {
            expr: Box::new(left),
            list,
            negated,
        };
        return no_chain(rest, Expr { kind, span });
    }
    for (t, op) in COMPARISONS {
        if let Ok((rest, _)) = sym(t)(i) {
            let (rest, right) =
                expect("expected an expression after the comparison", additive)(rest)?;
            return no_chain(rest, binary(*op, left, right));
        }
    }
    Ok((i, left))
}

/// After a comparison, another one is an error (write `a < b AND b < c`).
fn no_chain(i: Input<'_>, e: Expr) -> PResult<'_, Expr> {
    if starts_predicate_op(&i) {
        return Err(failure(
            i,
            "comparisons do not chain; combine them with AND, or add parentheses",
        ));
    }
    Ok((i, e))
}

/// `IN` or `NOT IN`; `None` if neither is next.
fn in_keyword(i: Input<'_>) -> Result<Option<(Input<'_>, bool)>, nom::Err<super::PError<'_>>> {
    if let Ok((rest, _)) = kw("in")(i) {
        return Ok(Some((rest, false)));
    }
    if let Ok((rest, _)) = kw("not")(i) {
        let (rest, _) = expect("expected IN after NOT", kw("in"))(rest)?;
        return Ok(Some((rest, true)));
    }
    Ok(None)
}

fn in_list(i: Input<'_>) -> PResult<'_, Vec<Expr>> {
    let (mut i, _) = expect("expected '(' after IN", sym("("))(i)?;
    let mut list = Vec::new();
    loop {
        let (rest, e) = expect("expected a value in the IN list", expr)(i)?;
        list.push(e);
        if let Ok((rest, _)) = sym(",")(rest) {
            i = rest;
            continue;
        }
        let (rest, _) = expect("expected ',' or ')' in the IN list", sym(")"))(rest)?;
        return Ok((rest, list));
    }
}

fn additive(i: Input<'_>) -> PResult<'_, Expr> {
    let (mut i, mut left) = term(i)?;
    loop {
        let op = if let Ok((rest, _)) = sym("+")(i) {
            (rest, BinaryOp::Add)
        } else if let Ok((rest, _)) = sym("-")(i) {
            (rest, BinaryOp::Sub)
        } else {
            return Ok((i, left));
        };
        count_operator(i)?;
        let (rest, right) = expect("expected an expression after the operator", term)(op.0)?;
        left = binary(op.1, left, right);
        i = rest;
    }
}

fn term(i: Input<'_>) -> PResult<'_, Expr> {
    let (mut i, mut left) = unary(i)?;
    loop {
        let op = if let Ok((rest, _)) = sym("*")(i) {
            (rest, BinaryOp::Mul)
        } else if let Ok((rest, _)) = sym("/")(i) {
            (rest, BinaryOp::Div)
        } else {
            return Ok((i, left));
        };
        count_operator(i)?;
        let (rest, right) = expect("expected an expression after the operator", unary)(op.0)?;
        left = binary(op.1, left, right);
        i = rest;
    }
}

fn unary(i: Input<'_>) -> PResult<'_, Expr> {
    let s = i.fragment();
    if s.starts_with('-') && !s[1..].starts_with(|c: char| c.is_ascii_digit()) {
        let (rest, _) = sym("-")(i)?;
        count_operator(i)?;
        let (rest, inner) = nested(rest, expect("expected an expression after '-'", unary))?;
        return Ok((
            rest,
            Expr {
                span: span_of(&i),
                kind: ExprKind::Unary {
                    op: UnaryOp::Neg,
                    expr: Box::new(inner),
                },
            },
        ));
    }
    primary(i)
}

fn lit(i: &Input<'_>, l: Literal) -> Expr {
    Expr {
        span: span_of(i),
        kind: ExprKind::Literal(l),
    }
}

fn primary(i: Input<'_>) -> PResult<'_, Expr> {
    let span = span_of(&i);
    if let Ok((rest, _)) = sym("(")(i) {
        let (rest, mut e) = expect("expected an expression after '('", expr)(rest)?;
        let (rest, _) = expect("expected ')' to close '('", sym(")"))(rest)?;
        e.span = span;
        return Ok((rest, e));
    }
    if let Some((rest, n)) = attempt(number, i)? {
        return Ok((rest, lit(&i, Literal::Number(n))));
    }
    if let Some((rest, s)) = attempt(string, i)? {
        return Ok((rest, lit(&i, Literal::String(s))));
    }
    for (word, l) in [
        ("true", Literal::Bool(true)),
        ("false", Literal::Bool(false)),
        ("null", Literal::Null),
    ] {
        if let Ok((rest, _)) = kw(word)(i) {
            return Ok((rest, lit(&i, l)));
        }
    }
    let plain = !i.fragment().starts_with('"');
    let (rest, first) = ident(i)?;
    if plain {
        if let Ok((args, _)) = sym("(")(rest) {
            return call(i, &first.name, args);
        }
    }
    field_path(first, rest)
}

/// The rest of a dotted field path after its first segment.
fn field_path<'a>(first: crate::ast::Ident, mut i: Input<'a>) -> PResult<'a, Expr> {
    let span = first.span;
    let mut path = vec![first.name];
    while i.fragment().starts_with('.') {
        let (rest, _) = sym(".")(i)?;
        let (rest, seg) = expect("expected a field name after '.'", ident)(rest)?;
        path.push(seg.name);
        i = rest;
    }
    Ok((
        i,
        Expr {
            span,
            kind: ExprKind::Field(FieldRef { path, span }),
        },
    ))
}

/// A call `name(…)`; `at` is where the name starts, `i` is just after the `(`.
fn call<'a>(at: Input<'a>, name: &str, i: Input<'a>) -> PResult<'a, Expr> {
    count_operator(at)?;
    let span = span_of(&at);
    let lower = name.to_ascii_lowercase();
    let mk = |kind| Expr { kind, span };
    let agg = |func, arg: Option<Expr>| {
        mk(ExprKind::Aggregate(Aggregate {
            func,
            arg: arg.map(Box::new),
        }))
    };
    let close = |msg: &'static str, i| expect(msg, sym(")"))(i);
    match lower.as_str() {
        "start" | "end" => {
            if !peek_word(&i).eq_ignore_ascii_case("time") {
                return Err(failure(i, format!("expected 'time' in {lower}(time)")));
            }
            let (rest, _) = ident(i)?;
            let (rest, _) = close(
                if lower == "start" {
                    "expected ')' after start(time"
                } else {
                    "expected ')' after end(time"
                },
                rest,
            )?;
            Ok((
                rest,
                mk(if lower == "start" {
                    ExprKind::Start
                } else {
                    ExprKind::End
                }),
            ))
        }
        "count" => {
            if let Ok((rest, _)) = sym("*")(i) {
                let (rest, _) = close("expected ')' after count(*", rest)?;
                return Ok((rest, agg(AggFunc::Count, None)));
            }
            let (i, func) = match kw("distinct")(i) {
                Ok((rest, _)) => (rest, AggFunc::CountDistinct),
                Err(_) => (i, AggFunc::Count),
            };
            let (rest, arg) =
                expect("expected '*', DISTINCT or an expression in count(…)", expr)(i)?;
            let (rest, _) = close("expected ')' to close count(…)", rest)?;
            Ok((rest, agg(func, Some(arg))))
        }
        "percentile" => {
            let (rest, arg) = expect("expected an expression in percentile(e, q)", expr)(i)?;
            let (rest, _) = expect(
                "expected ',' and a quantile between 0 and 1 in percentile(e, q)",
                sym(","),
            )(rest)?;
            let (rest, q) =
                expect("expected a number between 0 and 1 for the quantile", number)(rest)?;
            let (rest, _) = close("expected ')' to close percentile(e, q)", rest)?;
            Ok((rest, agg(AggFunc::Percentile(q), Some(arg))))
        }
        _ => {
            let func = match lower.as_str() {
                "approx_count_distinct" => AggFunc::ApproxCountDistinct,
                "sum" => AggFunc::Sum,
                "avg" => AggFunc::Avg,
                "min" => AggFunc::Min,
                "max" => AggFunc::Max,
                "first" => AggFunc::First,
                "last" => AggFunc::Last,
                _ => {
                    return Err(failure(
                        at,
                        format!(
                            "unknown function '{name}' (expected count, approx_count_distinct, \
                             sum, avg, min, max, first, last, percentile, start or end)"
                        ),
                    ))
                }
            };
            let (rest, arg) = expect("expected an expression as the argument", expr)(i)?;
            let (rest, _) = close("expected ')' to close the call", rest)?;
            Ok((rest, agg(func, Some(arg))))
        }
    }
}
