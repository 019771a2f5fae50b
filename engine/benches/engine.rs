//! Engine benchmarks: ingest per core at several key counts, add_and_check-style decision
//! evaluation, window reads of different lengths, memory per key-bucket, and the bare
//! hash-map update as the floor. Numbers go to docs/benchmarks.md.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::json;
use weir_core::Event;
use weir_engine::{Engine, EngineConfig, ReadRequest};
use weir_query_lang::ast::*;

#[path = "support.rs"]
mod support;
use support::*;

fn ingest(c: &mut Criterion) {
    let mut group = c.benchmark_group("ingest_count_sum_10s_60min");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_millis(500));
    for keys in [1_000u64, 100_000, 1_000_000] {
        let engine = Engine::new(EngineConfig::default());
        engine
            .create_query("q", &count_sum(10_000, 3_600_000))
            .unwrap();
        for k in 0..keys {
            engine.apply(&ev(k, T0), || 0);
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        let events: Vec<Event> = (0..200_000)
            .map(|i| ev(rng(&mut seed) % keys, T0 + i / 20))
            .collect();
        group.throughput(Throughput::Elements(events.len() as u64));
        group.bench_function(format!("{keys}_keys"), |b| {
            b.iter(|| {
                for e in &events {
                    black_box(engine.apply(e, || 0));
                }
            })
        });
        let floor_keys: Vec<u64> = events
            .iter()
            .map(|e| e.fields["k"].as_u64().unwrap())
            .collect();
        let mut map: HashMap<u64, (f64, f64)> = (0..keys).map(|k| (k, (0.0, 0.0))).collect();
        group.bench_function(format!("{keys}_keys_hashmap_floor"), |b| {
            b.iter(|| {
                for k in &floor_keys {
                    let e = map.entry(*k).or_default();
                    e.0 += 1.0;
                    e.1 += 3.0;
                }
            })
        });
    }
    group.finish();
}

fn decisions(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    let engine = Engine::new(EngineConfig::default());
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
    let mut seed = 7u64;
    let events: Vec<Event> = (0..100_000)
        .map(|i| ev(rng(&mut seed) % 1000, T0 + i))
        .collect();
    group.throughput(Throughput::Elements(events.len() as u64));
    // What add_and_check does per call: lock, evaluate including the event, apply.
    group.bench_function("evaluate_and_apply_1k_keys", |b| {
        b.iter(|| {
            for e in &events {
                engine.locked(e, |lk| {
                    let ev = lk.evaluate("q", &cond, true).unwrap().unwrap();
                    if !ev.check.holds {
                        lk.apply();
                    }
                })
            }
        })
    });
    // What add_and_check does per call since the rule path skips the row maps: lock,
    // check including the event, build the key map for the decision, apply.
    group.bench_function("check_and_apply_1k_keys", |b| {
        b.iter(|| {
            for e in &events {
                engine.locked(e, |lk| {
                    let ev = lk.check("q", &cond, true).unwrap().unwrap();
                    black_box(lk.key("q"));
                    if !ev.holds {
                        lk.apply();
                    }
                })
            }
        })
    });
    group.finish();
}

fn reads(c: &mut Criterion) {
    let mut group = c.benchmark_group("window_read_1s_buckets");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(2));
    for (name, w) in [("1min", 60_000i64), ("24h", 86_400_000)] {
        let engine = Engine::new(EngineConfig {
            shards: 1,
            ..EngineConfig::default()
        });
        engine.create_query("q", &count_sum(1000, w)).unwrap();
        // One key with an event in every second of a day: 86 400 buckets.
        for s in 0..86_400 {
            engine.apply(&ev(1, T0 + s * 1000), || 0);
        }
        let req = ReadRequest::default();
        group.bench_function(name, |b| {
            b.iter_batched(
                || req.clone(),
                |r| black_box(engine.result("q", &r).unwrap()),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// `min, max, first, last` (or `percentile(amount, 0.99)`) per k over
/// `timeseries(time, g, w)`.
fn non_invertible(g: i64, w: i64, pct: bool) -> Select {
    let mut s = count_sum(g, w);
    let a = || Some(field("amount"));
    s.items = if pct {
        vec![agg(AggFunc::Percentile(0.99), a(), "p99")]
    } else {
        vec![
            agg(AggFunc::Min, a(), "min"),
            agg(AggFunc::Max, a(), "max"),
            agg(AggFunc::First, a(), "first"),
            agg(AggFunc::Last, a(), "last"),
        ]
    };
    s
}

fn reads_non_invertible(c: &mut Criterion) {
    let mut group = c.benchmark_group("window_read_1s_buckets_non_invertible");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(2));
    for (name, w, pct) in [
        ("min_max_first_last_1min", 60_000i64, false),
        ("min_max_first_last_24h", 86_400_000, false),
        ("p99_1min", 60_000i64, true),
        ("p99_24h", 86_400_000, true),
    ] {
        let engine = Engine::new(EngineConfig {
            shards: 1,
            ..EngineConfig::default()
        });
        engine
            .create_query("q", &non_invertible(1000, w, pct))
            .unwrap();
        for s in 0..86_400 {
            let mut e = ev(1, T0 + s * 1000);
            e.fields.insert("amount".into(), json!((s * 7919) % 1000));
            engine.apply(&e, || 0);
        }
        let req = ReadRequest::default();
        group.bench_function(name, |b| {
            b.iter_batched(
                || req.clone(),
                |r| black_box(engine.result("q", &r).unwrap()),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn memory(_: &mut Criterion) {
    let engine = Engine::new(EngineConfig::default());
    engine
        .create_query("q", &count_sum(10_000, 3_600_000))
        .unwrap();
    let keys = 100_000u64;
    for b in 0..20 {
        for k in 0..keys {
            engine.apply(&ev(k, T0 + b * 10_000), || 0);
        }
    }
    let (bytes, buckets) = engine.memory("q").unwrap();
    println!(
        "memory: {keys} keys, {buckets} non-empty key-buckets, {bytes} bytes, {:.1} bytes per key-bucket",
        bytes as f64 / buckets as f64
    );
}

criterion_group!(
    benches,
    memory,
    ingest,
    decisions,
    reads,
    reads_non_invertible
);
criterion_main!(benches);
