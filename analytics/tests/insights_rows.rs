//! The analytics as rows: a snapshot written and loaded back equals the live insights; a
//! later snapshot writes only the types that changed; a flush cut short by a crash, loaded
//! and followed by a replay with [`Loaded::includes`], counts every event once.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use weir_analytics::insights::{KeyWrite, PARTS};
use weir_analytics::{Insights, KeyIndex, Loaded, StatsConfig, StatsSeries};
use weir_core::Event;

const G: i64 = 60_000;

/// One part's rows by (key, bucket).
type Part = BTreeMap<(Vec<u8>, i64), Vec<u8>>;

/// A state store in memory with the semantics of `Storage::state_write`.
#[derive(Default, Clone)]
struct Rows {
    parts: BTreeMap<u32, Part>,
}

impl Rows {
    fn write(&mut self, w: &KeyWrite) {
        assert!(w.part < PARTS);
        let part = self.parts.entry(w.part).or_default();
        if w.delete_all {
            part.retain(|(k, _), _| *k != w.key);
        }
        if let Some(through) = w.delete_through {
            part.retain(|(k, b), _| *k != w.key || *b == i64::MIN || *b > through);
        }
        for (b, v) in &w.rows {
            part.insert((w.key.clone(), *b), v.clone());
        }
    }

    fn read(&self) -> Vec<(Vec<u8>, i64, Vec<u8>)> {
        self.parts
            .values()
            .flat_map(|p| p.iter().map(|((k, b), v)| (k.clone(), *b, v.clone())))
            .collect()
    }
}

fn insights(granularity_ms: i64) -> Insights {
    let stats = StatsSeries::new(StatsConfig {
        granularity_ms,
        ..StatsConfig::default()
    })
    .unwrap();
    Insights::new(KeyIndex::default(), stats)
}

fn ev(kind: &str, ts: i64, fields: Value) -> Event {
    let Value::Object(m) = fields else {
        return Event::new(kind, ts, Map::new());
    };
    Event::new(kind, ts, m)
}

/// 600 events of 6 types over 3 h, some late.
fn events(from: usize, to: usize) -> Vec<(u64, Event)> {
    (from..to)
        .map(|i| {
            let kind = format!("type{}", i % 6);
            let late = if i % 11 == 0 { 3_600_000 } else { 0 };
            let ts = 10 * 3_600_000 + i as i64 * 18_000 - late;
            let e = ev(
                &kind,
                ts,
                json!({"user": format!("u{}", i % 7), "n": i % 3, "nested": {"k": i % 2}}),
            );
            (i as u64 + 1, e)
        })
        .collect()
}

fn answers(i: &Insights) -> Vec<Value> {
    let mut out = vec![i.keys.keys(None), i.stats.stats(None, 0)];
    for t in 0..6 {
        out.push(i.keys.keys(Some(&format!("type{t}"))));
    }
    out
}

fn flush(live: &mut Insights, seq: u64, rows: &mut Rows) -> usize {
    let snap = live.snapshot(seq);
    let (types, header) = snap.writes();
    for w in &types {
        rows.write(w);
    }
    rows.write(&header);
    types.iter().map(|w| w.rows.len()).sum::<usize>() + 1
}

#[test]
fn rows_load_back_equal_and_only_changed_types_are_written() {
    let mut live = insights(G);
    let mut rows = Rows::default();
    for (_, e) in events(0, 600) {
        live.observe(&e);
    }
    assert_eq!(live.dirty().len(), 6);
    flush(&mut live, 600, &mut rows);
    assert!(live.dirty().is_empty());

    let mut back = insights(G);
    let loaded = back.load(rows.read()).unwrap();
    assert_eq!(loaded.seq, 600);
    assert!(loaded.ahead.is_empty());
    assert_eq!(loaded.types, 6);
    assert_eq!(answers(&back), answers(&live));

    // One event of one type: one type's head, one bucket and the header.
    live.observe(&ev(
        "type3",
        10 * 3_600_000 + 600 * 18_000,
        json!({"user": "u1"}),
    ));
    let written = flush(&mut live, 601, &mut rows);
    assert_eq!(written, 3);
    let mut back = insights(G);
    back.load(rows.read()).unwrap();
    assert_eq!(answers(&back), answers(&live));
    // Nothing changed: nothing to write.
    assert!(live.snapshot(601).is_empty());
}

#[test]
fn a_flush_cut_short_is_completed_by_the_replay() {
    let all = events(0, 900);
    let mut uninterrupted = insights(G);
    for (_, e) in &all {
        uninterrupted.observe(e);
    }
    let mut live = insights(G);
    let mut rows = Rows::default();
    for (_, e) in &all[..500] {
        live.observe(e);
    }
    flush(&mut live, 500, &mut rows);
    for (_, e) in &all[500..700] {
        live.observe(e);
    }
    // The second flush writes two types and dies before the others and the header.
    let snap = live.snapshot(700);
    let (types, _header) = snap.writes();
    for w in &types[..2] {
        rows.write(w);
    }

    let mut back = insights(G);
    let loaded = back.load(rows.read()).unwrap();
    assert_eq!(loaded.seq, 500);
    assert_eq!(loaded.ahead.len(), 2);
    for (seq, e) in &all[500..] {
        if !loaded.includes(&e.kind, *seq) {
            back.observe(e);
        }
    }
    assert_eq!(answers(&back), answers(&uninterrupted));
}

#[test]
fn a_failed_write_is_requeued() {
    let mut live = insights(G);
    let mut rows = Rows::default();
    for (_, e) in events(0, 300) {
        live.observe(&e);
    }
    flush(&mut live, 300, &mut rows);
    for (_, e) in events(300, 310) {
        live.observe(&e);
    }
    let lost = live.snapshot(310);
    assert!(!lost.is_empty());
    live.requeue(lost.into_dirty());
    for (_, e) in events(310, 320) {
        live.observe(&e);
    }
    flush(&mut live, 320, &mut rows);
    let mut back = insights(G);
    back.load(rows.read()).unwrap();
    assert_eq!(answers(&back), answers(&live));
}

#[test]
fn another_granularity_keeps_the_keys_and_restarts_the_stats() {
    let mut live = insights(G);
    let mut rows = Rows::default();
    for (_, e) in events(0, 120) {
        live.observe(&e);
    }
    flush(&mut live, 120, &mut rows);
    let mut back = insights(10_000);
    let loaded: Loaded = back.load(rows.read()).unwrap();
    assert!(loaded.stats_reset);
    assert_eq!(back.keys.keys(None), live.keys.keys(None));
    assert_eq!(back.stats.stats(None, 0)["total"], 0);
    // Every type is rewritten whole by the next flush, at the new granularity.
    assert_eq!(back.dirty().len(), 6);
    let snap = back.snapshot(120);
    assert!(snap.writes().0.iter().all(|w| w.delete_all));
}

#[test]
fn buckets_leaving_the_window_are_removed() {
    let mut live = insights(G);
    let mut rows = Rows::default();
    live.observe(&ev("a", 0, json!({})));
    live.observe(&ev("a", G, json!({})));
    flush(&mut live, 2, &mut rows);
    // 48 h later: buckets 0 and 1 are out of the window.
    live.observe(&ev("a", 48 * 3_600_000 + G, json!({})));
    flush(&mut live, 3, &mut rows);
    let stored: Vec<i64> = rows.read().iter().map(|(_, b, _)| *b).collect();
    assert!(!stored.contains(&0) && !stored.contains(&1), "{stored:?}");
    let mut back = insights(G);
    back.load(rows.read()).unwrap();
    assert_eq!(back.stats.stats(None, 0), live.stats.stats(None, 0));
}
