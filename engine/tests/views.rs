//! Queries over queries (SPEC section 3, last bullet): `select * from series(5s)` is a 5 s
//! sliding window over the 1 s series, advancing every 1 s — the same rows as the sliding
//! query written directly, and equal to a brute-force recount from the raw events, read at
//! any retained `at` and as a series, long after the watermark has moved on.

use proptest::prelude::*;
use serde_json::{json, Value};
use weir_core::Event;
use weir_engine::{Engine, EngineConfig, ReadRequest, Row};
use weir_query_lang::ast::Statement;

const G: i64 = 1000;
const W: i64 = 5000;
const GRACE: i64 = 3000;

fn engine() -> Engine {
    Engine::new(EngineConfig {
        shards: 1,
        default_grace_ms: GRACE,
        default_retention_ms: 12_000,
    })
}

/// Create every `CREATE QUERY` of `text` in order.
fn create(e: &Engine, text: &str) {
    for stmt in weir_query_lang::parse(text).unwrap() {
        let Statement::CreateQuery(q) = stmt else {
            panic!("not a query: {stmt}")
        };
        e.create_query(&q.name.name, &q.select).unwrap();
    }
}

const UPSTREAM: &str = "series = SELECT start(time), k, count(*) AS n, sum(v) AS s, \
    min(v) AS lo, max(v) AS hi, v FROM t GROUP BY timeseries(time, 1s), k";
const VIEW: &str = "view = SELECT * FROM series(5s)";
const DIRECT: &str = "direct = SELECT start(time), k, count(*) AS n, sum(v) AS s, \
    min(v) AS lo, max(v) AS hi, v FROM t GROUP BY timeseries(time, 1s, 5s), k";

#[derive(Debug, Clone)]
struct Ev {
    ts: i64,
    key: u8,
    v: i64,
}

fn to_event(e: &Ev) -> Event {
    let fields = json!({ "k": format!("k{}", e.key), "v": e.v });
    Event::new("t", e.ts, fields.as_object().unwrap().clone())
}

/// The events a sliding query of window W keeps (it drops those below its retention line).
fn kept(evs: &[Ev]) -> (Vec<Ev>, Option<i64>) {
    let span = W + GRACE;
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

/// Recount one key's window [lo, hi) from the raw events.
fn recount(kept: &[Ev], key: u8, lo: i64, hi: i64) -> Option<Value> {
    let evs: Vec<&Ev> = kept
        .iter()
        .filter(|e| e.key == key && e.ts.div_euclid(G) * G >= lo && e.ts < hi)
        .collect();
    if evs.is_empty() {
        return None;
    }
    let mut last: Option<&Ev> = None;
    for e in &evs {
        if last.is_none_or(|l| e.ts >= l.ts) {
            last = Some(e);
        }
    }
    Some(json!({
        "start(time)": lo,
        "k": format!("k{key}"),
        "n": evs.len(),
        "s": evs.iter().map(|e| e.v).sum::<i64>(),
        "lo": evs.iter().map(|e| e.v).min(),
        "hi": evs.iter().map(|e| e.v).max(),
        "v": last.map(|e| e.v),
    }))
}

fn rows_json(rows: &[Row]) -> Vec<Value> {
    rows.iter()
        .map(
            |r| json!({"key": r.key, "values": r.values, "ws": r.window_start, "we": r.window_end}),
        )
        .collect()
}

fn arb_events() -> impl Strategy<Value = Vec<Ev>> {
    prop::collection::vec((0i64..2_000, 0u8..3, -50i64..50), 1..400).prop_map(|v| {
        // Mostly increasing time with jitter: some events are late, some dropped as too late.
        let mut t = 0;
        v.into_iter()
            .map(|(dt, key, v)| {
                t += dt % 600;
                let ts = if dt % 7 == 0 {
                    (t - dt % 9_000).max(0)
                } else {
                    t
                };
                Ev { ts, key, v }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_window_over_a_series_is_the_sliding_query_and_the_recount(evs in arb_events()) {
        let e = engine();
        create(&e, &format!("{UPSTREAM}; {VIEW}; {DIRECT}"));
        for ev in &evs {
            e.apply(&to_event(ev), || 0);
        }
        let (kept, wm) = kept(&evs);
        let wm = wm.unwrap();
        // Reads at every retained bucket, long after the first windows left the watermark.
        let line = wm.div_euclid(G) * G + G - (W + GRACE);
        let mut at = line + W - G;
        while at <= wm + 2 * G {
            let req = ReadRequest { at: Some(at), ..Default::default() };
            let view = e.result("view", &req).unwrap();
            let direct = e.result("direct", &req).unwrap();
            prop_assert_eq!(rows_json(&view), rows_json(&direct));
            let hi = at.div_euclid(G) * G + G;
            let lo = hi - W;
            let mut want = Vec::new();
            for key in 0..3u8 {
                if let Some(v) = recount(&kept, key, lo, hi) {
                    want.push(v);
                }
            }
            let got: Vec<Value> = view.iter().map(|r| {
                prop_assert_eq!(r.window_start, Some(lo));
                prop_assert_eq!(r.window_end, Some(hi));
                Ok(Value::Object(r.values.clone()))
            }).collect::<Result<_, _>>()?;
            prop_assert_eq!(got, want, "at {}", at);
            at += G;
        }
        // As a series: the same HOP rows as the direct sliding query.
        let series = ReadRequest { from: Some(0), to: Some(wm + G), ..Default::default() };
        prop_assert_eq!(
            rows_json(&e.result("view", &series).unwrap()),
            rows_json(&e.result("direct", &series).unwrap())
        );
    }
}

#[test]
fn seed_example_one_has_window_bounds_and_reads_at_at() {
    let e = engine();
    create(
        &e,
        &format!("{UPSTREAM}; {VIEW}; big = SELECT k, s FROM series(5s) WHERE s > 6"),
    );
    for (ts, v) in [(0, 1), (1500, 2), (4200, 3), (6100, 4), (9000, 5)] {
        e.apply(&to_event(&Ev { ts, key: 0, v }), || 0);
    }
    // The window ending with the bucket of 6100: [2000, 7000).
    let rows = e
        .result(
            "view",
            &ReadRequest {
                at: Some(6100),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].window_start, rows[0].window_end),
        (Some(2000), Some(7000))
    );
    assert_eq!(rows[0].values["n"], json!(2));
    assert_eq!(rows[0].values["v"], json!(4));
    assert_eq!(rows[0].values["start(time)"], json!(2000));
    // A projection with WHERE on the source's columns keeps the window semantics.
    let rows = e.result("big", &ReadRequest::default()).unwrap();
    // At the watermark 9000: [5000, 10000) holds 4 and 5.
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].values["s"], json!(9));
    assert_eq!(rows[0].window_end, Some(10_000));
    let none = e
        .result(
            "big",
            &ReadRequest {
                at: Some(2500),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(none.is_empty(), "[0, 3000) sums to 3: {none:?}");
}
