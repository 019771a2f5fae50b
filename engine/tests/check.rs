//! `Locked::check` (the lean decision path rules use) agrees with `Locked::evaluate` and
//! with a naive recount of the window, with and without the event, for conditions that
//! read early, late or no result columns; `Locked::key` is the event's group key.

mod support;

use serde_json::{json, Map, Value};
use support::*;
use weir_engine::{Engine, EngineConfig};
use weir_query_lang::ast::{AggFunc, BinaryOp};

const G: i64 = 1000;
const W: i64 = 5000;
const GRACE: i64 = 3000;

#[test]
fn check_matches_evaluate_and_a_naive_window() {
    let engine = Engine::new(EngineConfig {
        shards: 1,
        default_grace_ms: GRACE,
        default_retention_ms: 20_000,
    });
    let v = || Some(field("v"));
    let q = select(
        "t",
        vec![
            item(agg(AggFunc::Count, None), Some("n")),
            item(agg(AggFunc::Sum, v()), Some("total")),
            item(agg(AggFunc::Max, v()), Some("top")),
            item(agg(AggFunc::Last, v()), Some("latest")),
        ],
        None,
        vec![gf("k"), ts(G, Some(W))],
    );
    engine.create_query("q", &q).unwrap();
    let conds = [
        // Reads column 0 only.
        bin(BinaryOp::Gt, field("n"), num(2.0)),
        // Reads column 1.
        bin(BinaryOp::Gt, field("total"), num(300.0)),
        // Reads an aggregate directly and the last column.
        bin(
            BinaryOp::And,
            bin(BinaryOp::GtEq, agg(AggFunc::Count, None), num(3.0)),
            bin(BinaryOp::Lt, field("latest"), num(50.0)),
        ),
    ]
    .map(|e| engine.condition("q", &e).unwrap());

    // Naive state: (ts, key, v) of every applied event, and the watermark.
    let mut applied: Vec<(i64, String, i64)> = Vec::new();
    let mut wm: Option<i64> = None;
    let bucket = |t: i64| t.div_euclid(G) * G;
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut denies = 0;
    for i in 0..3000i64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let late = if x.is_multiple_of(5) {
            (x % 9000) as i64
        } else {
            0
        };
        let t = 100_000 + i * 37 - late;
        let k = format!("k{}", x % 4);
        let val = ((x >> 8) % 100) as i64;
        let ev = event("t", t, json!({ "k": k, "v": val }));
        let keep = wm.map_or(i64::MIN, |w| bucket(w) + G - (W + GRACE));
        let is_late = bucket(t) < keep;
        // The window of the event, above the retention line.
        let lo = (bucket(t) + G - W).max(keep);
        let hi = bucket(t) + G;
        let mut n = 0i64;
        let mut total = 0i64;
        for (et, ek, ev) in &applied {
            if *ek == k && bucket(*et) >= lo && bucket(*et) < hi {
                n += 1;
                total += ev;
            }
        }
        engine.locked(&ev, |lk| {
            let mut expect_key = Map::new();
            expect_key.insert("k".into(), Value::from(k.clone()));
            assert_eq!(lk.key("q"), Some(expect_key.clone()));
            assert_eq!(lk.key("nope"), None);
            for include in [false, true] {
                let (n, total) = if include && !is_late {
                    (n + 1, total + val)
                } else {
                    (n, total)
                };
                for (ci, c) in conds.iter().enumerate() {
                    let full = lk.evaluate("q", c, include).unwrap().unwrap();
                    let lean = lk.check("q", c, include).unwrap().unwrap();
                    assert_eq!(full.key, expect_key);
                    assert_eq!(full.values["n"], json!(n), "event {i}");
                    assert_eq!(full.values["total"], json!(total), "event {i}");
                    assert_eq!(lean, full.check);
                    assert_eq!(
                        (lean.window_start, lean.window_end),
                        (Some(hi - W), Some(hi))
                    );
                    match ci {
                        0 => {
                            assert_eq!(lean.value, Some(json!(n)));
                            assert_eq!(lean.holds, n > 2);
                        }
                        1 => {
                            assert_eq!(lean.value, Some(json!(total)));
                            assert_eq!(lean.holds, total > 300);
                        }
                        _ => assert_eq!(lean.value, None),
                    }
                    denies += lean.holds as u32;
                }
            }
            lk.apply();
        });
        if !is_late {
            applied.push((t, k, val));
            wm = Some(wm.map_or(t, |w| w.max(t)));
        }
    }
    // The stream exercised both verdicts and late drops.
    assert!(denies > 0);
    assert!(applied.len() < 3000);
}
