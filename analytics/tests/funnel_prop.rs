//! The funnel against a brute-force O(n²) oracle on random small inputs.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use weir_analytics::JsonQuery;
use weir_core::Event;

/// (type index, ts, user index or none, item index or none)
type Spec = (usize, i64, Option<u8>, Option<u8>);

const TYPES: [&str; 3] = ["a", "b", "c"];

fn make(events: &[Spec]) -> Vec<(u64, Event)> {
    let mut out: Vec<(u64, Event)> = events
        .iter()
        .enumerate()
        .map(|(i, (t, ts, user, item))| {
            let mut f = Map::new();
            if let Some(u) = user {
                f.insert("user".into(), json!(format!("u{u}")));
            }
            if let Some(it) = item {
                f.insert("item".into(), json!(it));
            }
            (i as u64 + 1, Event::new(TYPES[*t], *ts, f))
        })
        .collect();
    out.sort_by_key(|(id, e)| (e.ts, *id));
    out
}

/// Data set membership, written out directly: a = type a, b = type b, u = has a user.
fn in_set(name: &str, e: &Event) -> bool {
    match name {
        "a" => e.kind == "a",
        "b" => e.kind == "b",
        _ => e.fields.get("user").is_some(),
    }
}

fn key(e: &Event, keys: &[&str]) -> Option<Vec<Value>> {
    keys.iter().map(|k| e.fields.get(*k).cloned()).collect()
}

/// Per step: (count, conversions), by checking every earlier event for every event.
fn oracle(events: &[(u64, Event)], steps: &[&str], keys: &[&str]) -> Vec<(u64, u64)> {
    let n = events.len();
    let mut converted = vec![vec![false; n]; steps.len()];
    let mut out = Vec::new();
    for (k, step) in steps.iter().enumerate() {
        let (mut count, mut conv) = (0, 0);
        for i in 0..n {
            let e = &events[i].1;
            if !in_set(step, e) {
                continue;
            }
            count += 1;
            let ok = if k == 0 {
                true
            } else {
                let ki = key(e, keys);
                ki.is_some() && (0..i).any(|j| converted[k - 1][j] && key(&events[j].1, keys) == ki)
            };
            if ok {
                converted[k][i] = true;
                conv += 1;
            }
        }
        out.push((count, conv));
    }
    out
}

fn query(steps: &[&str], keys: &[&str]) -> Value {
    json!({
        "data": [
            {"name": "a", "filters": [{"type": "eq", "key": "event_tag", "value": "a"}]},
            {"name": "b", "filters": [{"type": "eq", "key": "type", "value": "b"}]},
            {"name": "u", "filters": [{"type": "all", "key": "user"}]}
        ],
        "funnel": {"type": "exact_order", "order": steps, "match": keys}
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn funnel_equals_brute_force(
        specs in prop::collection::vec(
            (0usize..3, 0i64..15, prop::option::weighted(0.9, 0u8..3), prop::option::weighted(0.9, 0u8..2)),
            0..40,
        ),
        steps in prop::collection::vec(prop::sample::select(vec!["a", "b", "u"]), 1..4),
        keys in prop::sample::subsequence(vec!["user", "item"], 0..=2),
    ) {
        let events = make(&specs);
        let mut q = JsonQuery::compile(&query(&steps, &keys)).unwrap();
        for (id, e) in &events {
            q.push(*id, e);
        }
        let got = q.finish();
        let want = oracle(&events, &steps, &keys);
        for (k, (count, conv)) in want.iter().enumerate() {
            let step = &got["funnel"]["steps"][k];
            prop_assert_eq!(&step["name"], &json!(steps[k]));
            prop_assert_eq!(&step["count"], &json!(count));
            if k == 0 {
                prop_assert!(step.get("conversions").is_none());
            } else {
                prop_assert_eq!(&step["conversions"], &json!(conv));
            }
        }
        prop_assert_eq!(got["funnel"]["steps"].as_array().unwrap().len(), steps.len());
    }
}
