//! A driver for instruction-count profiling (callgrind) of the per-event paths:
//! `hotpath ingest KEYS EVENTS` applies events of random keys to a count+sum query;
//! `hotpath decide KEYS EVENTS` runs the add_and_check engine path (lock, evaluate the
//! window including the event, apply). Only `run` is meant to be measured:
//! `valgrind --tool=callgrind --toggle-collect='*hotpath::run*' target/release/examples/hotpath ingest 1000 200000`.
#![allow(missing_docs)]

use std::hint::black_box;

use weir_core::Event;
use weir_engine::{Condition, Engine, EngineConfig};
use weir_query_lang::ast::*;

#[path = "../benches/support.rs"]
mod support;
use support::*;

#[inline(never)]
fn run_ingest(engine: &Engine, events: &[Event]) {
    for e in events {
        black_box(engine.apply(e, || 0));
    }
}

#[inline(never)]
fn run_decide(engine: &Engine, cond: &Condition, events: &[Event]) {
    for e in events {
        engine.locked(e, |lk| {
            let ev = lk.check("q", cond, true).unwrap().unwrap();
            if !ev.holds {
                lk.apply();
            }
        })
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("ingest");
    let keys: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let n: i64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let engine = Engine::new(EngineConfig::default());
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    match mode {
        "decide" => {
            engine.create_query("q", &count_sum(1000, 60_000)).unwrap();
            let cond_expr = Expr {
                kind: ExprKind::Binary {
                    op: BinaryOp::Gt,
                    left: Box::new(field("n")),
                    right: Box::new(Expr {
                        kind: ExprKind::Literal(Literal::Number(1e12)),
                        span: Span::default(),
                    }),
                },
                span: Span::default(),
            };
            let cond = engine.condition("q", &cond_expr).unwrap();
            let events: Vec<Event> = (0..n).map(|i| ev(rng(&mut seed) % keys, T0 + i)).collect();
            run_decide(&engine, &cond, &events);
        }
        _ => {
            engine
                .create_query("q", &count_sum(10_000, 3_600_000))
                .unwrap();
            for k in 0..keys {
                engine.apply(&ev(k, T0), || 0);
            }
            let events: Vec<Event> = (0..n)
                .map(|i| ev(rng(&mut seed) % keys, T0 + i / 20))
                .collect();
            run_ingest(&engine, &events);
        }
    }
}
