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

/// The rows a read must return for `windows` (all complete): per window and key with an
/// event, a recount of **every** event sent in it — late ones included, since a complete
/// window holds no bucket an event was ever dropped from.
fn expected_rows(sent: &[Ev], windows: &[(i64, i64)], keys: u8) -> Vec<Expected> {
    let mut out = Vec::new();
    for &(lo, hi) in windows {
        for key in 0..keys {
            let evs: Vec<&Ev> = sent
                .iter()
                .filter(|e| {
                    let b = e.ts.div_euclid(G) * G;
                    e.key == key && b >= lo && b < hi
                })
                .collect();
            if !evs.is_empty() {
                out.push((lo, hi, format!("k{key}"), recount(&evs)));
            }
        }
    }
    out.sort_by_cached_key(|(lo, hi, key, _)| (*hi, *lo, json!({ "k": key }).to_string()));
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
        let answer = e.answer("q", &ReadRequest { at: Some(at), ..Default::default() }).unwrap();
        prop_assert_eq!(answer.complete_from, Some(keep + w));
        // A window reaching below the retained buckets is not returned.
        let windows: Vec<(i64, i64)> = Some((b + G - w, b + G)).filter(|win| win.0 >= keep).into_iter().collect();
        let exp = expected_rows(&evs, &windows, 4);
        let rows = &answer.rows;
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
        let (_, wm) = kept(&evs, w + GRACE);
        let keep = wm.unwrap().div_euclid(G) * G + G - (w + GRACE);
        let step = step_b * G;
        let req = ReadRequest { from: Some(from), to: Some(from + len), step: Some(step), ..Default::default() };
        let answer = e.answer("q", &req).unwrap();
        prop_assert_eq!(answer.complete_from, Some(keep + w));
        let mut windows = Vec::new();
        let mut b = from.div_euclid(step) * step;
        if b < from { b += step; }
        while b < from + len {
            // Only a window whose buckets are all retained is reported.
            if b + G - w >= keep { windows.push((b + G - w, b + G)); }
            b += step;
        }
        let exp = expected_rows(&evs, &windows, 4);
        let rows = &answer.rows;
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
        let (_, wm) = kept(&evs, RETENTION);
        let keep = wm.unwrap().div_euclid(G) * G + G - RETENTION;
        let answer = e.answer("q", &ReadRequest { from: Some(from), to: Some(from + len), ..Default::default() }).unwrap();
        prop_assert_eq!(answer.complete_from, Some(keep + G));
        let rows = &answer.rows;
        let mut windows = Vec::new();
        let mut b = from.div_euclid(G) * G;
        if b < from { b += G; }
        while b < from + len {
            if b >= keep { windows.push((b, b + G)); }
            b += G;
        }
        let exp = expected_rows(&evs, &windows, 4);
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

/// Long streams over several shards: mostly in order, with out-of-order and late events.
fn arb_long_stream() -> impl Strategy<Value = Vec<Ev>> {
    prop::collection::vec(
        (
            0i64..1_000,
            0u8..12,
            prop::option::weighted(0.9, -500i64..500),
            prop::sample::select(vec![1.0, 1.0, 1.0, 3.0]),
            0u8..20,
            0i64..30_000,
        ),
        200..900,
    )
    .prop_map(|v| {
        let mut t = 0;
        v.into_iter()
            .map(|(dt, key, v, w, kind, back)| {
                t += dt % 400;
                // One in ten a little out of order, one in twenty far behind (often late).
                let ts = match kind {
                    0 | 1 => (t - back % 3_000).max(0),
                    2 => (t - back).max(0),
                    _ => t,
                };
                Ev { ts, key, v, w }
            })
            .collect()
    })
}

const SHARDS: usize = 4;

/// The retention line of every shard after `evs` (the brute-force version of the engine's
/// per-shard watermark), given the shard each key lives in.
fn shard_lines(evs: &[Ev], shard: &dyn Fn(u8) -> usize, span: i64) -> Vec<Option<i64>> {
    let mut wm: Vec<Option<i64>> = vec![None; SHARDS];
    let line = |w: i64| w.div_euclid(G) * G + G - span;
    for e in evs {
        let s = shard(e.key);
        if wm[s].is_some_and(|w| e.ts.div_euclid(G) * G < line(w)) {
            continue; // late: dropped
        }
        wm[s] = Some(wm[s].map_or(e.ts, |w| w.max(e.ts)));
    }
    wm.into_iter().map(|w| w.map(line)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Read as a series long after the watermark has passed the first windows: every row
    /// returned equals a recount of the raw events, no complete window is missing, and
    /// `complete_from` is the highest retention line over the shards plus the window.
    #[test]
    fn long_series_return_only_exact_windows(evs in arb_long_stream(), w_buckets in 1i64..9, step_b in 1i64..4, sliding in any::<bool>()) {
        let w = w_buckets * G;
        let e = Engine::new(EngineConfig { shards: SHARDS, default_grace_ms: GRACE, default_retention_ms: RETENTION });
        e.create_query("q", &all_aggs(sliding.then_some(w))).unwrap();
        let q = e.query("q").unwrap();
        let shard = |k: u8| {
            let ev = to_event(&Ev { ts: 0, key: k, v: None, w: 1.0 });
            weir_engine::shard::shard_of(weir_engine::shard::key_hash(&q.plan, &ev), SHARDS)
        };
        for ev in &evs { e.apply(&to_event(ev), || 0); }
        let span = if sliding { w + GRACE } else { RETENTION };
        let line = shard_lines(&evs, &shard, span).into_iter().flatten().max().unwrap();
        let (g_or_w, step) = if sliding { (w, step_b * G) } else { (G, G) };
        let end = evs.iter().map(|e| e.ts).max().unwrap() + 2 * w;
        let req = ReadRequest { from: Some(0), to: Some(end), step: Some(step), ..Default::default() };
        let answer = e.answer("q", &req).unwrap();
        prop_assert_eq!(answer.complete_from, Some(line + g_or_w));
        let mut windows = Vec::new();
        let mut b = 0;
        while b < end {
            let lo = if sliding { b + G - w } else { b };
            if lo >= line { windows.push((lo, b + G)); }
            b += step;
        }
        let exp = expected_rows(&evs, &windows, 12);
        prop_assert!(!exp.is_empty());
        let rows = &answer.rows;
        prop_assert_eq!(rows.len(), exp.len());
        for (row, (lo, hi, key, vals)) in rows.iter().zip(&exp) {
            if sliding {
                prop_assert_eq!((row.window_start, row.window_end), (Some(*lo), Some(*hi)));
            } else {
                prop_assert_eq!(row.bucket_start, Some(*lo));
            }
            prop_assert_eq!(&row.key["k"], &json!(key));
            check_row(row, vals);
        }
        // An `at` read of a window below the line answers nothing, one above it the recount.
        if sliding {
            let old = e.answer("q", &ReadRequest { at: Some(line - G), ..Default::default() }).unwrap();
            prop_assert!(old.rows.is_empty(), "{:?}", old.rows);
        }
    }
}

#[test]
fn restore_names_a_query_of_another_shape() {
    let a = engine(&all_aggs(Some(2000)));
    let b = engine(&all_aggs(Some(3000)));
    assert_eq!(b.restore(a.checkpoint()).unwrap(), vec!["q".to_string()]);
}
