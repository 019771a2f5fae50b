//! The key index and the stats series on generated data, against independent recounts.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Map, Value};
use weir_analytics::{KeyIndex, StatsConfig, StatsSeries};
use weir_core::Event;

fn ev(kind: &str, ts: i64, fields: Value) -> Event {
    let Value::Object(m) = fields else {
        panic!("fields must be an object")
    };
    Event::new(kind, ts, m)
}

/// A small deterministic generator.
struct Rng(u64);
impl Rng {
    fn next(&mut self, m: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % m
    }
}

#[test]
fn keys_are_exact_with_few_distinct_values() {
    let mut ix = KeyIndex::new();
    let mut rng = Rng(42);
    let mut want: BTreeMap<&str, HashMap<String, u64>> = BTreeMap::new();
    for _ in 0..3000 {
        let user = format!("u{}", rng.next(15));
        let colour = rng.next(5);
        ix.observe(&ev(
            "view",
            0,
            json!({"user_id": user, "item": {"colour": colour}}),
        ));
        *want.entry("user_id").or_default().entry(user).or_default() += 1;
        *want
            .entry("item.colour")
            .or_default()
            .entry(colour.to_string())
            .or_default() += 1;
    }
    let got = ix.keys(Some("view"));
    assert_eq!(got["count"], 3000);
    let mut expected = Vec::new();
    for (key, counts) in &want {
        let mut vals: Vec<(&String, &u64)> = counts.iter().collect();
        vals.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let values: Vec<Value> = vals
            .iter()
            .map(|(v, c)| json!({"value": v, "count": c}))
            .collect();
        expected.push(json!({"key": key, "count": 3000, "values": values}));
    }
    assert_eq!(got["keys"], Value::Array(expected));
}

#[test]
fn heavy_values_survive_many_distinct_ones_and_values_are_cut() {
    let mut ix = KeyIndex::new();
    let long = "x".repeat(150);
    for i in 0..5000 {
        // "hot" is 1/5 of the events and "warm" 1/10; the rest are all different.
        let v = match i % 10 {
            0 | 5 => "hot".to_string(),
            3 => "warm".to_string(),
            _ => format!("v{i}"),
        };
        ix.observe(&ev("t", 0, json!({"k": v, "long": long})));
    }
    let got = ix.keys(Some("t"));
    let k = &got["keys"][0];
    assert_eq!(k["key"], "k");
    let values = k["values"].as_array().unwrap();
    assert_eq!(values.len(), 20);
    assert_eq!(values[0]["value"], "hot");
    assert_eq!(values[1]["value"], "warm");
    // Space-Saving never underestimates a kept value.
    assert!(values[0]["count"].as_u64().unwrap() >= 1000);
    assert!(values[1]["count"].as_u64().unwrap() >= 500);
    assert_eq!(got["keys"][1]["values"][0]["value"], "x".repeat(100));
}

#[test]
fn union_over_types_sums_and_lists_types() {
    let mut ix = KeyIndex::new();
    for i in 0..6 {
        ix.observe(&ev("a", 0, json!({"user": "u1", "only_a": i})));
    }
    for _ in 0..4 {
        ix.observe(&ev("b", 0, json!({"user": "u2"})));
    }
    ix.observe(&ev("b", 0, json!({"user": "u1"})));
    let got = ix.keys(None);
    assert_eq!(
        got["types"],
        json!([{"type": "a", "count": 6}, {"type": "b", "count": 5}])
    );
    assert_eq!(got["keys"][1]["key"], "user");
    assert_eq!(got["keys"][1]["count"], 11);
    assert_eq!(
        got["keys"][1]["values"],
        json!([{"value": "u1", "count": 7}, {"value": "u2", "count": 4}])
    );
    assert_eq!(got["keys"][0]["key"], "only_a");
    let prefixed = ix.keys_with_prefix(None, "us");
    assert_eq!(prefixed["keys"].as_array().unwrap().len(), 1);
}

#[test]
fn key_index_checkpoint_round_trips() {
    let mut a = KeyIndex::new();
    let mut rng = Rng(7);
    let events: Vec<Event> = (0..400)
        .map(|_| {
            ev(
                ["x", "y"][rng.next(2) as usize],
                0,
                json!({"f": rng.next(40)}),
            )
        })
        .collect();
    for e in &events[..200] {
        a.observe(e);
    }
    let mut b: KeyIndex = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
    for e in &events[200..] {
        a.observe(e);
        b.observe(e);
    }
    assert_eq!(a.keys(None), b.keys(None));
    assert_eq!(a, b);
}

const G: i64 = 60_000;
const H48: i64 = 48 * 3_600_000;

#[test]
fn stats_bucket_boundaries() {
    let mut s = StatsSeries::default();
    for ts in [0, 59_999, 60_000, 119_999, 120_000] {
        s.observe(&ev("click", ts, json!({})));
    }
    s.observe(&ev("view", 60_001, json!({})));
    let got = s.stats(None, 0);
    assert_eq!(
        got,
        json!({
            "granularity_ms": G, "from": 180_000 - H48, "to": 180_000, "total": 6,
            "types": {
                "click": {"total": 5, "buckets": [
                    {"start": 0, "count": 2}, {"start": 60_000, "count": 2}, {"start": 120_000, "count": 1}
                ]},
                "view": {"total": 1, "buckets": [{"start": 60_000, "count": 1}]}
            }
        })
    );
    let only = s.stats(Some("view"), 0);
    assert_eq!(only["total"], 1);
    assert_eq!(only["types"].as_object().unwrap().len(), 1);
}

#[test]
fn stats_expire_after_48_hours_of_event_time() {
    let mut s = StatsSeries::default();
    s.observe_at("a", 30_000); // bucket 0
    s.observe_at("a", 2879 * G); // the window is buckets 0..=2879: bucket 0 is still in
    assert_eq!(s.stats(Some("a"), 0)["total"], 2);
    s.observe_at("b", 2880 * G); // now buckets 1..=2880: bucket 0 has gone
    let got = s.stats(None, 0);
    assert_eq!(got["from"], G);
    assert_eq!(got["total"], 2);
    assert_eq!(
        got["types"]["a"]["buckets"],
        json!([{"start": 2879 * G, "count": 1}])
    );
    s.observe_at("a", 59_000); // too late for the window
    assert_eq!(s.dropped(), 1);
    assert_eq!(s.stats(None, 0)["total"], 2);
    // The wall clock plays no part once there are events.
    assert_eq!(s.stats(None, 10 * H48), got);
}

#[test]
fn stats_equal_a_recount_on_late_and_out_of_order_events() {
    let cfg = StatsConfig {
        granularity_ms: 10_000,
        retention_ms: 600_000,
        max_types: 10,
    };
    let mut s = StatsSeries::new(cfg).unwrap();
    let mut restored: Option<StatsSeries> = None;
    let mut rng = Rng(99);
    let mut wm = i64::MIN;
    let mut counted: Vec<(&str, i64)> = Vec::new();
    let mut t = 0;
    for i in 0..5000 {
        t += rng.next(2_000) as i64;
        let ts = t - rng.next(700_000) as i64 * i64::from(rng.next(4) == 0); // some very late
        let kind = ["a", "b", "c"][rng.next(3) as usize];
        wm = wm.max(ts);
        if ts.div_euclid(10_000) > wm.div_euclid(10_000) - 60 {
            counted.push((kind, ts));
        }
        s.observe_at(kind, ts);
        if let Some(r) = &mut restored {
            r.observe_at(kind, ts);
        }
        if i == 2500 {
            restored = Some(serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap());
        }
    }
    let first = wm.div_euclid(10_000) - 59;
    let mut want: BTreeMap<&str, BTreeMap<i64, u64>> = BTreeMap::new();
    for (k, ts) in counted {
        let b = ts.div_euclid(10_000);
        if b >= first {
            *want.entry(k).or_default().entry(b * 10_000).or_default() += 1;
        }
    }
    let mut types = Map::new();
    let mut total = 0;
    for (k, buckets) in want {
        let t: u64 = buckets.values().sum();
        total += t;
        let b: Vec<Value> = buckets
            .iter()
            .map(|(s, c)| json!({"start": s, "count": c}))
            .collect();
        types.insert(k.to_string(), json!({"total": t, "buckets": b}));
    }
    let got = s.stats(None, 0);
    assert!(s.dropped() > 100, "some events were late");
    assert_eq!(got["total"], total);
    assert_eq!(got["types"], Value::Object(types));
    assert_eq!(restored.unwrap().stats(None, 0), got);
}
