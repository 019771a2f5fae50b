//! Property tests: every aggregate, tumbling and sliding, against a brute-force recount.

mod support;

use proptest::prelude::*;
use serde_json::{json, Value};
use support::*;
use weir_engine::{Engine, EngineConfig, ReadRequest, Row};
use weir_query_lang::ast::{AggFunc, Select};

const G: i64 = 1000;
const GRACE: i64 = 3000;
const RETENTION: i64 = 12_000;

#[derive(Debug, Clone)]
struct Ev {
    ts: i64,
    key: u8,
    v: Option<i64>,
    w: f64,
}

fn to_event(e: &Ev) -> weir_core::Event {
    let mut f = json!({ "k": format!("k{}", e.key) });
    if let Some(v) = e.v {
        f["v"] = json!(v);
    }
    let mut ev = event("t", e.ts, f);
    ev.samplerate = e.w;
    ev
}

fn all_aggs(w: Option<i64>) -> Select {
    let v = || Some(field("v"));
    select(
        "t",
        vec![
            item(agg(AggFunc::Count, None), Some("n")),
            item(agg(AggFunc::Count, v()), Some("nv")),
            item(agg(AggFunc::Sum, v()), Some("sum")),
            item(agg(AggFunc::Avg, v()), Some("avg")),
            item(agg(AggFunc::Min, v()), Some("min")),
            item(agg(AggFunc::Max, v()), Some("max")),
            item(agg(AggFunc::First, v()), Some("first")),
            item(agg(AggFunc::Last, v()), Some("last")),
            item(agg(AggFunc::CountDistinct, v()), Some("distinct")),
            item(agg(AggFunc::ApproxCountDistinct, v()), Some("approx")),
            item(agg(AggFunc::Percentile(0.5), v()), Some("p50")),
        ],
        None,
        vec![gf("k"), ts(G, w)],
    )
}

fn engine(sel: &Select) -> Engine {
    let e = Engine::new(EngineConfig {
        shards: 1,
        default_grace_ms: GRACE,
        default_retention_ms: RETENTION,
    });
    e.create_query("q", sel).unwrap();
    e
}

/// The brute-force oracle: which events were kept, and the final watermark.
fn kept(evs: &[Ev], span: i64) -> (Vec<Ev>, Option<i64>) {
    let mut wm: Option<i64> = None;
    let mut out = Vec::new();
    for e in evs {
        let b = e.ts.div_euclid(G) * G;
        if let Some(w) = wm {
            if b < w.div_euclid(G) * G + G - span {
                continue;
            }
        }
        wm = Some(wm.map_or(e.ts, |w| w.max(e.ts)));
        out.push(e.clone());
    }
    (out, wm)
}

/// Recount the expected values over the events of one key in [lo, hi).
fn recount(evs: &[&Ev]) -> Vec<(&'static str, Value)> {
    let n: f64 = evs.iter().map(|e| e.w).sum();
    let with: Vec<&&Ev> = evs.iter().filter(|e| e.v.is_some()).collect();
    let nv: f64 = with.iter().map(|e| e.w).sum();
    let sum: f64 = with.iter().map(|e| e.w * e.v.unwrap() as f64).sum();
    let vals: Vec<i64> = with.iter().map(|e| e.v.unwrap()).collect();
    let mut first: Option<(i64, i64)> = None;
    let mut last: Option<(i64, i64)> = None;
    for e in &with {
        if first.is_none_or(|(t, _)| e.ts < t) {
            first = Some((e.ts, e.v.unwrap()));
        }
        if last.is_none_or(|(t, _)| e.ts >= t) {
            last = Some((e.ts, e.v.unwrap()));
        }
    }
    let mut d = vals.clone();
    d.sort();
    d.dedup();
    let opt = |x: Option<i64>| x.map(Value::from).unwrap_or(Value::Null);
    vec![
        ("n", json!(n as i64)),
        ("nv", json!(nv as i64)),
        ("sum", json!(sum as i64)),
        (
            "avg",
            if nv == 0.0 {
                Value::Null
            } else {
                json!(sum / nv)
            },
        ),
        ("min", opt(vals.iter().min().copied())),
        ("max", opt(vals.iter().max().copied())),
        ("first", opt(first.map(|x| x.1))),
        ("last", opt(last.map(|x| x.1))),
        ("distinct", json!(d.len())),
        ("approx", json!(d.len())),
        ("p50", {
            let mut w: Vec<i64> = Vec::new();
            for e in &with {
                for _ in 0..(e.w as usize) {
                    w.push(e.v.unwrap());
                }
            }
            w.sort();
            if w.is_empty() {
                Value::Null
            } else {
                json!(w[(0.5 * (w.len() - 1) as f64).floor() as usize])
            }
        }),
    ]
}

fn check_row(row: &Row, expected: &[(&str, Value)]) {
    for (name, want) in expected {
        let got = &row.values[*name];
        let ok = match (*name, got.as_f64(), want.as_f64()) {
            ("avg", Some(a), Some(b)) => (a - b).abs() < 1e-9,
            ("approx", Some(a), Some(b)) => (a - b).abs() <= (0.05 * b).max(1.0),
            ("p50", Some(a), Some(b)) => (a - b).abs() <= 0.01 * b.abs() + 1e-9,
            _ => got == want,
        };
        assert!(ok, "{name}: got {got}, want {want} in {row:?}");
    }
}

/// (window start, window end, key, expected values).
type Expected = (i64, i64, String, Vec<(&'static str, Value)>);

fn expected_rows(kept: &[Ev], keep_from: i64, windows: &[(i64, i64)]) -> Vec<Expected> {
    let mut out = Vec::new();
    for &(lo, hi) in windows {
        for key in 0..4u8 {
            let evs: Vec<&Ev> = kept
                .iter()
                .filter(|e| {
                    let b = e.ts.div_euclid(G) * G;
                    e.key == key && b >= lo.max(keep_from) && b < hi
                })
                .collect();
            if !evs.is_empty() {
                out.push((lo, hi, format!("k{key}"), recount(&evs)));
            }
        }
    }
    out
}

fn arb_events() -> impl Strategy<Value = Vec<Ev>> {
    prop::collection::vec(
        (
            0i64..40_000,
            0u8..4,
            prop::option::weighted(0.85, -50i64..50),
            prop::sample::select(vec![1.0, 1.0, 2.0]),
        ),
        1..120,
    )
    .prop_map(|v| {
        // Mostly increasing time with jitter, so some events are late and some dropped.
        let mut t = 0;
        v.into_iter()
            .map(|(dt, key, v, w)| {
                t += dt % 700;
                let ts = if dt % 5 == 0 {
                    (t - dt % 20_000).max(0)
                } else {
                    t
                };
                Ev { ts, key, v, w }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn sliding_windows_equal_a_recount(evs in arb_events(), w_buckets in 1i64..16, at in 0i64..45_000) {
        let w = w_buckets * G;
        let e = engine(&all_aggs(Some(w)));
        for ev in &evs { e.apply(&to_event(ev), || 0); }
        let (kept, wm) = kept(&evs, w + GRACE);
        let keep = wm.unwrap().div_euclid(G) * G + G - (w + GRACE);
        let b = at.div_euclid(G) * G;
        let rows = e.result("q", &ReadRequest { at: Some(at), ..Default::default() }).unwrap();
        let exp = expected_rows(&kept, keep, &[(b + G - w, b + G)]);
        prop_assert_eq!(rows.len(), exp.len());
        for (row, (lo, hi, key, vals)) in rows.iter().zip(&exp) {
            prop_assert_eq!(row.window_start, Some(*lo));
            prop_assert_eq!(row.window_end, Some(*hi));
            prop_assert_eq!(&row.key["k"], &json!(key));
            check_row(row, vals);
        }
        let late = e.metrics()[0].late_dropped as usize;
        prop_assert_eq!(late, evs.len() - kept.len());
    }

    #[test]
    fn hop_rows_equal_a_recount(evs in arb_events(), w_buckets in 1i64..5, from in 0i64..40_000, len in 0i64..10_000, step_b in 1i64..3) {
        let w = w_buckets * G;
        let e = engine(&all_aggs(Some(w)));
        for ev in &evs { e.apply(&to_event(ev), || 0); }
        let (kept, wm) = kept(&evs, w + GRACE);
        let keep = wm.unwrap().div_euclid(G) * G + G - (w + GRACE);
        let step = step_b * G;
        let req = ReadRequest { from: Some(from), to: Some(from + len), step: Some(step), ..Default::default() };
        let rows = e.result("q", &req).unwrap();
        let mut windows = Vec::new();
        let mut b = from.div_euclid(step) * step;
        if b < from { b += step; }
        while b < from + len {
            // A window is only reported while its end bucket is retained.
            if b >= keep { windows.push((b + G - w, b + G)); }
            b += step;
        }
        let exp = expected_rows(&kept, keep, &windows);
        prop_assert_eq!(rows.len(), exp.len());
        for (row, (lo, hi, key, vals)) in rows.iter().zip(&exp) {
            prop_assert_eq!((row.window_start, row.window_end), (Some(*lo), Some(*hi)));
            prop_assert_eq!(&row.key["k"], &json!(key));
            check_row(row, vals);
        }
    }

    #[test]
    fn tumbling_series_equal_a_recount(evs in arb_events(), from in 0i64..40_000, len in 0i64..20_000) {
        let e = engine(&all_aggs(None));
        for ev in &evs { e.apply(&to_event(ev), || 0); }
        let (kept, wm) = kept(&evs, RETENTION);
        let keep = wm.unwrap().div_euclid(G) * G + G - RETENTION;
        let rows = e.result("q", &ReadRequest { from: Some(from), to: Some(from + len), ..Default::default() }).unwrap();
        let mut windows = Vec::new();
        let mut b = from.div_euclid(G) * G;
        if b < from { b += G; }
        while b < from + len { windows.push((b, b + G)); b += G; }
        let exp = expected_rows(&kept, keep, &windows);
        prop_assert_eq!(rows.len(), exp.len());
        for (row, (lo, _, key, vals)) in rows.iter().zip(&exp) {
            prop_assert_eq!(row.bucket_start, Some(*lo));
            prop_assert_eq!(&row.key["k"], &json!(key));
            check_row(row, vals);
        }
    }

    #[test]
    fn restore_and_replay_equals_an_uninterrupted_run(evs in arb_events(), cut in 0usize..120, w_buckets in 1i64..5) {
        let sel = all_aggs(Some(w_buckets * G));
        let whole = engine(&sel);
        for ev in &evs { whole.apply(&to_event(ev), || 0); }
        let cut = cut.min(evs.len());
        let first = engine(&sel);
        for ev in &evs[..cut] { first.apply(&to_event(ev), || 0); }
        let text = serde_json::to_string(&first.checkpoint()).unwrap();
        let restored = engine(&sel);
        let missing = restored.restore(serde_json::from_str::<weir_engine::EngineCheckpoint>(&text).unwrap()).unwrap();
        prop_assert!(missing.is_empty(), "not restored: {:?}", missing);
        for ev in &evs[cut..] { restored.apply(&to_event(ev), || 0); }
        prop_assert!(whole.checkpoint() == restored.checkpoint(), "checkpoints differ");
        let req = ReadRequest { from: Some(0), to: Some(60_000), ..Default::default() };
        prop_assert!(whole.result("q", &req).unwrap() == restored.result("q", &req).unwrap(), "results differ");
    }
}

#[test]
fn restore_names_a_query_of_another_shape() {
    let a = engine(&all_aggs(Some(2000)));
    let b = engine(&all_aggs(Some(3000)));
    assert_eq!(b.restore(a.checkpoint()).unwrap(), vec!["q".to_string()]);
}
