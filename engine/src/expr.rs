//! Compiled expressions and their evaluation.
//!
//! Two kinds are compiled from the AST once, when a query is created:
//! - [`EventExpr`] is evaluated per event (WHERE, aggregate arguments, group keys). It returns
//!   a borrowed [`Val`], so the per-event path never allocates or formats strings.
//! - [`RowExpr`] is evaluated per result row (select columns, HAVING, DENY WHEN) over the
//!   finalised aggregate values, the group key and the bucket or window bounds.
//!
//! Comparisons follow the JSON types: numbers compare numerically, strings as strings,
//! booleans for (in)equality; any comparison with null, or between different types, is
//! false (except `!=` between different non-null types, which is true).

use regex::Regex;
use serde_json::Value;
use weir_query_lang::ast::{BinaryOp, Literal, UnaryOp};

/// A value during evaluation, borrowed from the event or the literal where possible.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Val<'a> {
    /// Missing or null.
    Null,
    /// A number.
    Num(f64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(&'a str),
    /// An array or object (only equality with itself is meaningful).
    Other(&'a Value),
}

impl<'a> Val<'a> {
    /// View a JSON value.
    pub fn of(v: &'a Value) -> Self {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => n.as_f64().map(Val::Num).unwrap_or(Val::Null),
            Value::String(s) => Val::Str(s),
            other => Val::Other(other),
        }
    }

    /// The number, if it is one.
    pub fn num(self) -> Option<f64> {
        match self {
            Val::Num(x) => Some(x),
            _ => None,
        }
    }

    /// Whether the value is true.
    pub fn truthy(self) -> bool {
        matches!(self, Val::Bool(true))
    }

    /// An owned JSON value (integral numbers become JSON integers).
    pub fn to_json(self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Num(x) => num_json(x),
            Val::Bool(b) => Value::Bool(b),
            Val::Str(s) => Value::String(s.to_string()),
            Val::Other(v) => v.clone(),
        }
    }
}

/// A number as JSON: an integer when integral and in range, else a float (NaN → null).
pub fn num_json(x: f64) -> Value {
    // `x as i64` truncates; for |x| < 9e15 it is exact, so this tests integrality without
    // a call to `trunc` (not inlined without SSE4.1).
    if x.abs() < 9.0e15 && (x as i64) as f64 == x {
        Value::from(x as i64)
    } else {
        serde_json::Number::from_f64(x)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

/// A literal, owned by the plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// `null`.
    Null,
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
    /// A boolean.
    Bool(bool),
}

impl Lit {
    /// From the AST.
    pub fn from_ast(l: &Literal) -> Self {
        match l {
            Literal::Null => Lit::Null,
            Literal::Number(x) => Lit::Num(*x),
            Literal::String(s) => Lit::Str(s.clone()),
            Literal::Bool(b) => Lit::Bool(*b),
        }
    }

    /// Borrow as a [`Val`].
    pub fn val(&self) -> Val<'_> {
        match self {
            Lit::Null => Val::Null,
            Lit::Num(x) => Val::Num(*x),
            Lit::Str(s) => Val::Str(s),
            Lit::Bool(b) => Val::Bool(*b),
        }
    }
}

/// Apply a binary operator.
pub fn binop<'a>(op: BinaryOp, a: Val<'a>, b: Val<'a>) -> Val<'a> {
    use BinaryOp::*;
    match op {
        And => Val::Bool(a.truthy() && b.truthy()),
        Or => Val::Bool(a.truthy() || b.truthy()),
        Add | Sub | Mul | Div => match (a, b) {
            (Val::Num(x), Val::Num(y)) => match op {
                Add => Val::Num(x + y),
                Sub => Val::Num(x - y),
                Mul => Val::Num(x * y),
                _ if y == 0.0 => Val::Null,
                _ => Val::Num(x / y),
            },
            _ => Val::Null,
        },
        Eq | NotEq | Lt | LtEq | Gt | GtEq => Val::Bool(compare(op, a, b)),
    }
}

fn compare(op: BinaryOp, a: Val<'_>, b: Val<'_>) -> bool {
    use std::cmp::Ordering;
    use BinaryOp::*;
    let ord: Option<Ordering> = match (a, b) {
        (Val::Null, _) | (_, Val::Null) => return false,
        (Val::Num(x), Val::Num(y)) => x.partial_cmp(&y),
        (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(&y)),
        (Val::Other(x), Val::Other(y)) => {
            return match op {
                Eq => x == y,
                NotEq => x != y,
                _ => false,
            }
        }
        _ => return op == NotEq,
    };
    let Some(o) = ord else { return false };
    match op {
        Eq => o == Ordering::Equal,
        NotEq => o != Ordering::Equal,
        Lt => o == Ordering::Less,
        LtEq => o != Ordering::Greater,
        Gt => o == Ordering::Greater,
        GtEq => o != Ordering::Less,
        _ => false,
    }
}

fn unop(op: UnaryOp, v: Val<'_>) -> Val<'_> {
    match op {
        UnaryOp::Not => Val::Bool(!v.truthy()),
        UnaryOp::Neg => v.num().map(|x| Val::Num(-x)).unwrap_or(Val::Null),
    }
}

/// The tests shared by both expression kinds (regex, IN, IS NULL) after evaluating the operand.
#[derive(Debug, Clone)]
pub enum Test {
    /// `=~ 'regex'`.
    Regex(Regex),
    /// `[NOT] IN (…)`.
    In(Vec<Lit>, bool),
    /// `IS [NOT] NULL`.
    IsNull(bool),
}

impl Test {
    fn apply(&self, v: Val<'_>) -> bool {
        match self {
            Test::Regex(re) => matches!(v, Val::Str(s) if re.is_match(s)),
            Test::In(list, negated) => {
                if v == Val::Null {
                    return false;
                }
                list.iter().any(|l| compare(BinaryOp::Eq, v, l.val())) != *negated
            }
            Test::IsNull(negated) => (v == Val::Null) != *negated,
        }
    }
}

/// An expression evaluated per event.
#[derive(Debug, Clone)]
pub enum EventExpr {
    /// A field by dotted path.
    Field(String),
    /// A literal.
    Lit(Lit),
    /// A binary operation.
    Bin(BinaryOp, Box<EventExpr>, Box<EventExpr>),
    /// A unary operation.
    Un(UnaryOp, Box<EventExpr>),
    /// A test.
    Test(Box<EventExpr>, Test),
}

impl EventExpr {
    /// Evaluate against an event.
    pub fn eval<'a>(&'a self, ev: &'a weir_core::Event) -> Val<'a> {
        match self {
            EventExpr::Field(path) => crate::shard::KeyPart::of(ev, path).val(),
            EventExpr::Lit(l) => l.val(),
            EventExpr::Bin(op, a, b) => {
                // Short-circuit the logic operators.
                match op {
                    BinaryOp::And if !a.eval(ev).truthy() => Val::Bool(false),
                    BinaryOp::Or if a.eval(ev).truthy() => Val::Bool(true),
                    _ => binop(*op, a.eval(ev), b.eval(ev)),
                }
            }
            EventExpr::Un(op, a) => unop(*op, a.eval(ev)),
            EventExpr::Test(a, t) => Val::Bool(t.apply(a.eval(ev))),
        }
    }
}

/// An expression evaluated per result row.
#[derive(Debug, Clone)]
pub enum RowExpr {
    /// The finalised value of aggregate slot i.
    Agg(usize),
    /// Group-key part i.
    Key(usize),
    /// An earlier select column (by alias), index i.
    Col(usize),
    /// Bucket or window start.
    Start,
    /// Bucket or window end.
    End,
    /// A literal.
    Lit(Lit),
    /// A binary operation.
    Bin(BinaryOp, Box<RowExpr>, Box<RowExpr>),
    /// A unary operation.
    Un(UnaryOp, Box<RowExpr>),
    /// A test.
    Test(Box<RowExpr>, Test),
}

/// What a [`RowExpr`] reads.
pub struct RowCtx<'a> {
    /// Finalised aggregate values.
    pub aggs: &'a [Value],
    /// Group-key parts.
    pub key: &'a [Value],
    /// Select columns computed so far.
    pub cols: &'a [Value],
    /// Start of the bucket or window, if any.
    pub start: Option<i64>,
    /// End of the bucket or window, if any.
    pub end: Option<i64>,
}

impl RowExpr {
    /// One more than the largest result column this expression reads (0 if none).
    pub fn cols_needed(&self) -> usize {
        match self {
            RowExpr::Col(i) => i + 1,
            RowExpr::Bin(_, a, b) => a.cols_needed().max(b.cols_needed()),
            RowExpr::Un(_, a) | RowExpr::Test(a, _) => a.cols_needed(),
            _ => 0,
        }
    }

    /// Evaluate over a row.
    pub fn eval<'a>(&'a self, cx: &RowCtx<'a>) -> Val<'a> {
        match self {
            RowExpr::Agg(i) => cx.aggs.get(*i).map(Val::of).unwrap_or(Val::Null),
            RowExpr::Key(i) => cx.key.get(*i).map(Val::of).unwrap_or(Val::Null),
            RowExpr::Col(i) => cx.cols.get(*i).map(Val::of).unwrap_or(Val::Null),
            RowExpr::Start => cx.start.map(|x| Val::Num(x as f64)).unwrap_or(Val::Null),
            RowExpr::End => cx.end.map(|x| Val::Num(x as f64)).unwrap_or(Val::Null),
            RowExpr::Lit(l) => l.val(),
            RowExpr::Bin(op, a, b) => binop(*op, a.eval(cx), b.eval(cx)),
            RowExpr::Un(op, a) => unop(*op, a.eval(cx)),
            RowExpr::Test(a, t) => Val::Bool(t.apply(a.eval(cx))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_follow_json_types() {
        assert!(binop(BinaryOp::Gt, Val::Num(2.0), Val::Num(10.0)) == Val::Bool(false));
        assert!(binop(BinaryOp::Gt, Val::Str("2"), Val::Str("10")) == Val::Bool(true));
        assert!(binop(BinaryOp::Eq, Val::Str("1"), Val::Num(1.0)) == Val::Bool(false));
        assert!(binop(BinaryOp::NotEq, Val::Str("1"), Val::Num(1.0)) == Val::Bool(true));
        assert!(binop(BinaryOp::Eq, Val::Null, Val::Null) == Val::Bool(false));
        assert!(binop(BinaryOp::Div, Val::Num(1.0), Val::Num(0.0)) == Val::Null);
    }

    #[test]
    fn numbers_become_integers_when_integral() {
        assert_eq!(num_json(3.0), Value::from(3));
        assert_eq!(num_json(2.5), serde_json::json!(2.5));
    }
}
