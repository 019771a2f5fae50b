//! Query and event builders shared by the engine benchmark and the profiling driver
//! (`examples/hotpath.rs`).
#![allow(dead_code)]

use serde_json::{json, Map, Value};
use weir_core::Event;
use weir_query_lang::ast::*;

/// A field reference expression.
pub fn field(p: &str) -> Expr {
    Expr {
        kind: ExprKind::Field(FieldRef {
            path: vec![p.into()],
            span: Span::default(),
        }),
        span: Span::default(),
    }
}

/// An aggregate select item with an alias.
pub fn agg(func: AggFunc, arg: Option<Expr>, alias: &str) -> SelectItem {
    SelectItem::Expr {
        expr: Expr {
            kind: ExprKind::Aggregate(Aggregate {
                func,
                arg: arg.map(Box::new),
            }),
            span: Span::default(),
        },
        alias: Some(Ident::new(alias)),
    }
}

/// `count(*), sum(amount) … GROUP BY k, timeseries(time, g, w)` over type `t`.
pub fn count_sum(g: i64, w: i64) -> Select {
    Select {
        span: Span::default(),
        items: vec![
            agg(AggFunc::Count, None, "n"),
            agg(AggFunc::Sum, Some(field("amount")), "s"),
        ],
        from: Source::Named {
            name: Ident::new("t"),
            window: None,
        },
        where_clause: None,
        group_by: vec![
            GroupItem::Field(FieldRef {
                path: vec!["k".into()],
                span: Span::default(),
            }),
            GroupItem::Timeseries {
                span: Span::default(),
                time_field: Ident::new("time"),
                granularity: g,
                window: Some(w),
            },
        ],
        having: None,
        limit: None,
    }
}

/// An event of type `t` with key `k` and amount 3.
pub fn ev(key: u64, ts: i64) -> Event {
    let mut f = Map::new();
    f.insert("k".into(), Value::from(key));
    f.insert("amount".into(), json!(3));
    Event::new("t", ts, f)
}

/// A small deterministic random sequence.
pub fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// A fixed base time.
pub const T0: i64 = 1_700_000_000_000;
