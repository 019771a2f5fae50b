//! Backfill (SPEC section 5): a shadow fed live from its boundary and from the log before
//! it, promoted atomically, equals a fresh query fed every event once — also while other
//! threads keep applying events across the swap. And restore reports what it could not
//! restore.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;
use support::*;
use weir_core::Event;
use weir_engine::{Engine, EngineConfig, ReadRequest, Row};
use weir_query_lang::ast::{AggFunc, Select};

const G: i64 = 1000;

fn cfg(shards: usize) -> EngineConfig {
    EngineConfig {
        shards,
        default_grace_ms: 3000,
        default_retention_ms: 20_000,
    }
}

/// count, sum, min, max, first, last, exact distinct of v per k, sliding 5 s every 1 s.
fn sel(w: Option<i64>) -> Select {
    let v = || Some(field("v"));
    select(
        "t",
        vec![
            item(agg(AggFunc::Count, None), Some("n")),
            item(agg(AggFunc::Sum, v()), Some("sum")),
            item(agg(AggFunc::Min, v()), Some("min")),
            item(agg(AggFunc::Max, v()), Some("max")),
            item(agg(AggFunc::First, v()), Some("first")),
            item(agg(AggFunc::Last, v()), Some("last")),
            item(agg(AggFunc::CountDistinct, v()), Some("d")),
        ],
        None,
        vec![gf("k"), ts(G, w)],
    )
}

/// A deterministic stream: time mostly increasing with some late events, unique times
/// (so first/last have no ties), integer values (so sums are exact in any order).
fn stream(n: usize, seed: u64) -> Vec<Event> {
    let mut x = seed | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|i| {
            let r = next();
            let late = if r % 7 == 0 { (r % 4000) as i64 } else { 0 };
            let ts = (i as i64 * 10 - late).max(0) * 8 + (i as i64 % 8);
            event(
                "t",
                ts,
                json!({ "k": format!("k{}", r % 5), "v": (r >> 8) % 100 }),
            )
        })
        .collect()
}

fn series(e: &Engine, name: &str) -> Vec<Row> {
    e.result(
        name,
        &ReadRequest {
            from: Some(0),
            to: Some(i64::MAX),
            ..Default::default()
        },
    )
    .unwrap()
}

fn oracle(events: &[Event], shards: usize, s: &Select) -> Engine {
    let e = Engine::new(cfg(shards));
    e.create_query("q", s).unwrap();
    for ev in events {
        e.apply(ev, || 0);
    }
    e
}

#[test]
fn shadow_gets_live_and_backfilled_events_and_promotion_swaps_atomically() {
    let events = stream(600, 7);
    let old = sel(Some(3 * G));
    let new = sel(Some(5 * G));
    let e = Engine::new(cfg(4));
    e.create_query("q", &old).unwrap();
    let next = AtomicU64::new(0);
    let mut log: Vec<(u64, Event)> = Vec::new();
    for ev in &events[..250] {
        let (id, _) = e.apply(ev, || next.fetch_add(1, Ordering::SeqCst));
        log.push((id, ev.clone()));
    }
    let shadow = e
        .create_shadow("q", &new, &[], false, || next.load(Ordering::SeqCst))
        .unwrap();
    assert_eq!(shadow.boundary(), 250);
    assert_eq!(shadow.name(), "q");
    assert_eq!(shadow.source_types(), Some(vec!["t".to_string()]));
    assert_eq!(shadow.largest_window_ms(), Some(5 * G + 3000));
    for ev in &events[250..400] {
        let (id, _) = e.apply(ev, || next.fetch_add(1, Ordering::SeqCst));
        log.push((id, ev.clone()));
    }
    // Invisible meanwhile: reads, listings and checkpoints still show the old version.
    assert_eq!(
        series(&e, "q"),
        series(&oracle(&events[..400], 4, &old), "q")
    );
    assert_eq!(e.query_names(), vec!["q".to_string()]);
    assert_eq!(e.checkpoint().queries.len(), 1);
    // Backfill the whole log: ids >= the boundary must be skipped, not counted twice.
    e.backfill(&shadow, &log);
    for ev in &events[400..500] {
        e.apply(ev, || next.fetch_add(1, Ordering::SeqCst));
    }
    e.promote(shadow).unwrap();
    for ev in &events[500..] {
        e.apply(ev, || next.fetch_add(1, Ordering::SeqCst));
    }
    let want = series(&oracle(&events, 4, &new), "q");
    assert!(!want.is_empty());
    assert_eq!(series(&e, "q"), want);
    assert_eq!(e.query("q").unwrap().plan.time, {
        weir_engine::TimeShape::Sliding { g: G, w: 5 * G }
    });
    assert_eq!(e.metrics().len(), 1);
}

#[test]
fn abort_and_drop_leave_the_old_version() {
    let e = Engine::new(cfg(2));
    e.create_query("q", &sel(None)).unwrap();
    let s = e
        .create_shadow("q", &sel(Some(G)), &[], false, || 0)
        .unwrap();
    e.abort(s);
    assert!(matches!(
        e.query("q").unwrap().plan.time,
        weir_engine::TimeShape::Tumbling { .. }
    ));
    let s = e
        .create_shadow("q", &sel(Some(G)), &[], false, || 0)
        .unwrap();
    e.drop_query("q").unwrap();
    assert!(
        e.promote(s).is_err(),
        "a dropped query's shadow must not come back"
    );
    assert!(e.query("q").is_none());
    // A shadow of a new name creates the query on promotion.
    let s = e
        .create_shadow("fresh", &sel(None), &[], false, || 0)
        .unwrap();
    assert!(e.query("fresh").is_none());
    e.promote(s).unwrap();
    assert!(e.query("fresh").is_some());
}

#[test]
fn concurrent_applies_across_create_backfill_promote_equal_the_oracle() {
    let events = Arc::new(stream(4000, 99));
    let threads = 3;
    let new = sel(Some(4 * G));
    let e = Arc::new(Engine::new(cfg(8)));
    e.create_query("q", &sel(Some(2 * G))).unwrap();
    let next = Arc::new(AtomicU64::new(0));
    let log = Arc::new(Mutex::new(Vec::<(u64, Event)>::new()));
    let cursor = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (e, next, log, events, cursor) = (
                e.clone(),
                next.clone(),
                log.clone(),
                events.clone(),
                cursor.clone(),
            );
            std::thread::spawn(move || loop {
                let i = cursor.fetch_add(1, Ordering::SeqCst) as usize;
                let Some(ev) = events.get(i) else { break };
                e.apply(ev, || {
                    // Under the shard locks, as the server does: id and log together.
                    let id = next.fetch_add(1, Ordering::SeqCst);
                    log.lock().unwrap().push((id, ev.clone()));
                    id
                });
            })
        })
        .collect();
    // Swap while the workers run.
    while cursor.load(Ordering::SeqCst) < 1000 {
        std::thread::yield_now();
    }
    let shadow = e
        .create_shadow("q", &new, &[], false, || next.load(Ordering::SeqCst))
        .unwrap();
    let mut before: Vec<(u64, Event)> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(id, _)| *id < shadow.boundary())
        .cloned()
        .collect();
    before.sort_by_key(|(id, _)| *id);
    assert_eq!(
        before.len() as u64,
        shadow.boundary(),
        "log complete below S"
    );
    e.backfill(&shadow, &before);
    e.promote(shadow).unwrap();
    for w in workers {
        w.join().unwrap();
    }
    // The oracle: a fresh query fed every event once, in log (id) order.
    let mut all = log.lock().unwrap().clone();
    all.sort_by_key(|(id, _)| *id);
    assert_eq!(all.len(), events.len());
    let ordered: Vec<Event> = all.into_iter().map(|(_, ev)| ev).collect();
    let want = series(&oracle(&ordered, 8, &new), "q");
    assert!(!want.is_empty());
    assert_eq!(series(&e, "q"), want);
}

#[test]
fn restore_restores_matching_queries_and_names_the_rest() {
    let events = stream(300, 3);
    let a = Engine::new(cfg(2));
    a.create_query("same", &sel(Some(2 * G))).unwrap();
    a.create_query("changed", &sel(Some(2 * G))).unwrap();
    for ev in &events {
        a.apply(ev, || 0);
    }
    let cp = a.checkpoint();
    let b = Engine::new(cfg(2));
    b.create_query("same", &sel(Some(2 * G))).unwrap();
    b.create_query("changed", &sel(Some(3 * G))).unwrap();
    b.create_query("new", &sel(None)).unwrap();
    let missing = b.restore(&cp).unwrap();
    assert_eq!(missing, vec!["changed".to_string(), "new".to_string()]);
    assert_eq!(series(&b, "same"), series(&a, "same"));
    assert!(series(&b, "changed").is_empty());
    // Another shard count: nothing can be restored.
    let c = Engine::new(cfg(3));
    c.create_query("same", &sel(Some(2 * G))).unwrap();
    assert_eq!(c.restore(cp).unwrap(), vec!["same".to_string()]);
}
