//! Builders for query ASTs in tests (the parser lives elsewhere).
#![allow(dead_code)]

use serde_json::{json, Map, Value};
use weir_core::Event;
use weir_query_lang::ast::*;

/// A field reference.
pub fn field(p: &str) -> Expr {
    ex(ExprKind::Field(FieldRef {
        path: p.split('.').map(str::to_string).collect(),
        span: Span::default(),
    }))
}

/// An expression of a kind.
pub fn ex(kind: ExprKind) -> Expr {
    Expr {
        kind,
        span: Span::default(),
    }
}

/// A number literal.
pub fn num(x: f64) -> Expr {
    ex(ExprKind::Literal(Literal::Number(x)))
}

/// A string literal.
pub fn s(x: &str) -> Expr {
    ex(ExprKind::Literal(Literal::String(x.into())))
}

/// An aggregate.
pub fn agg(func: AggFunc, arg: Option<Expr>) -> Expr {
    ex(ExprKind::Aggregate(Aggregate {
        func,
        arg: arg.map(Box::new),
    }))
}

/// `l op r`.
pub fn bin(op: BinaryOp, l: Expr, r: Expr) -> Expr {
    ex(ExprKind::Binary {
        op,
        left: Box::new(l),
        right: Box::new(r),
    })
}

/// A select item.
pub fn item(e: Expr, alias: Option<&str>) -> SelectItem {
    SelectItem::Expr {
        expr: e,
        alias: alias.map(Ident::new),
    }
}

/// `timeseries(time, g[, w])`.
pub fn ts(g: i64, w: Option<i64>) -> GroupItem {
    GroupItem::Timeseries {
        span: Span::default(),
        time_field: Ident::new("time"),
        granularity: g,
        window: w,
    }
}

/// A GROUP BY field.
pub fn gf(p: &str) -> GroupItem {
    GroupItem::Field(FieldRef {
        path: p.split('.').map(str::to_string).collect(),
        span: Span::default(),
    })
}

/// A select.
pub fn select(
    from: &str,
    items: Vec<SelectItem>,
    where_clause: Option<Expr>,
    group_by: Vec<GroupItem>,
) -> Select {
    Select {
        span: Span::default(),
        items,
        from: if from == "events" {
            Source::AllEvents(Span::default())
        } else {
            Source::Named {
                name: Ident::new(from),
                window: None,
            }
        },
        where_clause,
        group_by,
        having: None,
        limit: None,
    }
}

/// An event with fields from a JSON object.
pub fn event(kind: &str, ts: i64, fields: Value) -> Event {
    let f: Map<String, Value> = fields.as_object().cloned().unwrap_or_default();
    Event::new(kind, ts, f)
}

/// `{"k": v}` shorthand.
pub fn obj(k: &str, v: Value) -> Value {
    json!({ k: v })
}
