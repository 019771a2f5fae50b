//! Property tests of the incremental persistence (key-bucket rows): random streams with
//! out-of-order and late events, sweeps that drop expired keys, flushes, and a crash at any point — also in the
//! middle of a flush, with only some of its key writes stored and no marks. Restoring the
//! stored rows and replaying the log after them must give exactly the state of the run that
//! never stopped (every shard, key, buffer entry and per-bucket state, compared bit for bit).

mod support;

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;
use support::*;
use weir_engine::persist::{KeyWrite, MARK_KEY};
use weir_engine::{Engine, EngineConfig, ReadRequest};
use weir_query_lang::ast::{AggFunc, Select};

const G: i64 = 1000;
const SHARDS: usize = 4;

/// Rows as a store keeps them: (part, key, bucket) → value, with the embedded store's
/// semantics (a key's write removes what it says, then upserts its rows).
#[derive(Default, Clone)]
struct Rows(BTreeMap<(u32, Vec<u8>, i64), Vec<u8>>);

impl Rows {
    fn write(&mut self, part: u32, k: &KeyWrite) {
        let doomed: Vec<_> = self
            .0
            .range((part, k.key.clone(), i64::MIN)..=(part, k.key.clone(), i64::MAX))
            .map(|(key, _)| key.clone())
            .filter(|(_, _, b)| {
                let gone =
                    k.delete_all || k.delete_through.is_some_and(|t| *b != i64::MIN && *b <= t);
                gone && !k.rows.iter().any(|(r, _)| r == b)
            })
            .collect();
        for d in doomed {
            self.0.remove(&d);
        }
        for (b, v) in &k.rows {
            self.0.insert((part, k.key.clone(), *b), v.clone());
        }
    }

    fn part(&self, part: u32) -> Vec<(Vec<u8>, i64, Vec<u8>)> {
        self.0
            .range((part, Vec::new(), i64::MIN)..(part + 1, Vec::new(), i64::MIN))
            .map(|((_, k, b), v)| (k.clone(), *b, v.clone()))
            .collect()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Event { ts: i64, key: u8, v: i64 },
    Flush,
}

fn arb_ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            12 => (0i64..400, 0u8..24, -5i64..50, 0u8..10).prop_map(|(t, key, v, late)| Op::Event {
                // Mostly in order (time grows with the position), some far out of order.
                ts: if late == 0 { t * 37 } else { t * 97 },
                key,
                v,
            }),
            1 => Just(Op::Flush),
        ],
        1..400,
    )
}

fn query(window: Option<i64>) -> Select {
    let v = || Some(field("v"));
    select(
        "t",
        vec![
            item(agg(AggFunc::Count, None), Some("n")),
            item(agg(AggFunc::Sum, v()), Some("sum")),
            item(agg(AggFunc::Min, v()), Some("min")),
            item(agg(AggFunc::Max, v()), Some("max")),
            item(agg(AggFunc::CountDistinct, v()), Some("distinct")),
        ],
        None,
        vec![gf("k"), ts(G, window)],
    )
}

fn engine(sel: &Select) -> Engine {
    let e = Engine::new(EngineConfig {
        shards: SHARDS,
        default_grace_ms: 2 * G,
        default_retention_ms: 8 * G,
    });
    e.create_query("q", sel).unwrap();
    e
}

/// Capture every shard and store its key writes, then (when `complete`) the marks; with
/// `complete` false only the first `keep` key writes land (a crash mid-flush).
fn flush(e: &Engine, rows: &mut Rows, seq: u64, complete: bool, keep: usize) {
    let q = e.persisted_queries().pop().unwrap();
    let caps: Vec<_> = (0..SHARDS).map(|s| q.capture_shard(s, &|| seq)).collect();
    let mut written = 0;
    for c in &caps {
        for k in &c.keys {
            if !complete && written >= keep {
                return;
            }
            rows.write(c.shard as u32, k);
            written += 1;
        }
    }
    if complete {
        for c in &caps {
            let mark = KeyWrite {
                key: MARK_KEY.to_vec(),
                delete_all: false,
                delete_through: None,
                rows: vec![(0, c.mark.clone())],
            };
            rows.write(c.shard as u32, &mark);
        }
    }
}

/// Every shard, key, buffer entry and per-bucket state (the engine-wide event counter is
/// not query state and is not persisted).
fn state(e: &Engine) -> weir_engine::EngineCheckpoint {
    let mut cp = e.checkpoint();
    cp.events_applied = 0;
    cp
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn restore_plus_replay_equals_the_run_that_never_stopped(
        ops in arb_ops(),
        window in prop_oneof![Just(None), (1i64..6).prop_map(|b| Some(b * G))],
        torn in any::<bool>(),
        keep in 0usize..40,
    ) {
        // Sweeps every few events, so keys whose buckets all expired are dropped (and their
        // rows removed) during the run; sweeps are part of applying an event, so replay
        // repeats them.
        weir_engine::shard::set_sweep_interval(7);
        let sel = query(window);
        let live = engine(&sel);
        let mut rows = Rows::default();
        let mut log = Vec::new();
        let mut seq = 0u64;
        for op in &ops {
            match op {
                Op::Event { ts, key, v } => {
                    seq += 1;
                    let ev = event("t", *ts, json!({ "k": format!("k{key}"), "v": v }));
                    live.apply(&ev, || seq);
                    log.push((seq, ev));
                }
                Op::Flush => flush(&live, &mut rows, seq, true, 0),
            }
        }
        if torn {
            flush(&live, &mut rows, seq, false, keep);
        }

        // The crash: a new engine from the stored rows, then the log after the marks.
        let restored = engine(&sel);
        let q = restored.persisted_queries().pop().unwrap();
        let mut from = u64::MAX;
        let mut complete = true;
        for s in 0..SHARDS {
            let part = rows.part(s as u32);
            match q.restore_shard(s, part.into_iter().map(Ok::<_, String>)) {
                Ok((_, pos)) => from = from.min(pos),
                Err(_) => complete = false,
            }
        }
        if !complete {
            // Never flushed whole: everything comes from the log.
            q.reset();
            from = 0;
        }
        for (s, ev) in log.iter().filter(|(s, _)| *s > from) {
            restored.replay(ev, *s);
        }
        restored.end_replay();
        prop_assert!(state(&live) == state(&restored), "states differ");
        let req = ReadRequest { from: Some(0), to: Some(60_000), ..Default::default() };
        prop_assert_eq!(live.result("q", &req).unwrap(), restored.result("q", &req).unwrap());

        // And the restored engine keeps evolving like the original.
        for (i, op) in ops.iter().enumerate().take(50) {
            if let Op::Event { ts, key, v } = op {
                let ev = event("t", ts + 5_000, json!({ "k": format!("k{key}"), "v": v + i as i64 }));
                live.apply(&ev, || 0);
                restored.apply(&ev, || 0);
            }
        }
        prop_assert!(state(&live) == state(&restored), "states differ after more events");
    }
}

#[test]
fn a_second_flush_writes_only_what_changed() {
    let e = engine(&query(Some(3 * G)));
    for i in 0..100 {
        let ev = event("t", 1_000 + i, json!({ "k": format!("k{i}"), "v": i }));
        e.apply(&ev, || i as u64 + 1);
    }
    let q = e.persisted_queries().pop().unwrap();
    let first: usize = (0..SHARDS)
        .map(|s| q.capture_shard(s, &|| 100).keys.len())
        .sum();
    assert_eq!(first, 100, "every new key is written once");
    let ev = event("t", 1_500, json!({ "k": "k7", "v": 1 }));
    e.apply(&ev, || 101);
    let caps: Vec<_> = (0..SHARDS).map(|s| q.capture_shard(s, &|| 101)).collect();
    let keys: Vec<_> = caps.iter().flat_map(|c| &c.keys).collect();
    assert_eq!(keys.len(), 1, "only the key that changed");
    assert_eq!(keys[0].key, br#"["k7"]"#.to_vec());
    // Its sentinel and the one bucket that changed.
    assert_eq!(keys[0].rows.len(), 2);
}
