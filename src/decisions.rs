//! Rule decisions as series: per rule and group key, how many `add_and_check` calls it
//! allowed and denied, and the deciding value and threshold of its latest decision.
//!
//! The Prometheus API shows them as series (see `api::prometheus::decisions`,
//! `docs/grafana.md`):
//! - `weir_rule_decisions{rule="r", decision="allow"|"deny", <key labels>}`: decisions made
//!   since the server started, cumulative;
//! - `weir_rule_value{rule="r", <key labels>}`: the compared value of the latest decision;
//! - `weir_rule_threshold{rule="r", <key labels>}`: its threshold.
//!
//! Recording happens after the decision, outside the engine's shard locks: the map is split
//! into [`SHARDS`] mutex-guarded parts chosen by a hash of (rule, key), so concurrent calls
//! on different keys rarely meet. Times are wall-clock seconds: a decision made during the
//! second `[s, s+1)` counts from `s+1` on, so the value at `t` is exactly what had been
//! decided before `floor(t)` — with one point per (rule, key) and second. Points older than
//! [`RETENTION_MS`] are dropped (the latest is always kept).

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use weir_rules::{Decision, Verdict};

/// Number of independently locked parts of the map.
pub const SHARDS: usize = 32;
/// How long points are kept (48 h, like a series query's retention).
pub const RETENTION_MS: i64 = 48 * 3600 * 1000;

/// The totals of one (rule, key) as of a time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// From when these totals hold (unix ms, a whole second).
    pub t: i64,
    /// Allowed so far.
    pub allow: u64,
    /// Denied so far.
    pub deny: u64,
    /// The compared value of the latest decision.
    pub value: Option<f64>,
    /// Its threshold.
    pub threshold: Option<f64>,
}

/// One (rule, key) and its points, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The rule.
    pub rule: String,
    /// The group key.
    pub key: serde_json::Map<String, serde_json::Value>,
    /// Totals over time.
    pub points: Vec<Point>,
}

impl Entry {
    /// The point in force at `t` (the last one with `p.t <= t`).
    pub fn at(&self, t: i64) -> Option<&Point> {
        let i = self.points.partition_point(|p| p.t <= t);
        i.checked_sub(1).map(|i| &self.points[i])
    }
}

/// Per-rule, per-key decision counters with their history.
#[derive(Debug)]
pub struct DecisionSeries {
    shards: Vec<Mutex<HashMap<(String, String), Entry>>>,
}

impl Default for DecisionSeries {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl DecisionSeries {
    /// The map of `entries` (a cluster's cells' parts, see `cluster::forward`): one
    /// (rule, key) found in several is merged, its decisions added up.
    pub fn from_entries(entries: impl IntoIterator<Item = Entry>) -> Self {
        let ds = Self::default();
        for e in entries {
            let key_text = serde_json::Value::Object(e.key.clone()).to_string();
            let mut map = ds.shard(&e.rule, &key_text).lock();
            match map.entry((e.rule.clone(), key_text)) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(e);
                }
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    let merged = merge(o.get(), &e);
                    o.insert(merged);
                }
            }
        }
        ds
    }

    /// Every (rule, key) entry, copied.
    pub fn entries(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        self.for_each(|e| out.push(e.clone()));
        out
    }

    fn shard(&self, rule: &str, key_text: &str) -> &Mutex<HashMap<(String, String), Entry>> {
        let mut h = DefaultHasher::new();
        (rule, key_text).hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// Count one decision of `add_and_check`, made at `now_ms`.
    pub fn record(&self, decision: &Decision, now_ms: i64) {
        let t = now_ms.div_euclid(1000) * 1000 + 1000;
        for rd in &decision.rules {
            let key_text = serde_json::Value::Object(rd.key.clone()).to_string();
            let mut map = self.shard(&rd.rule, &key_text).lock();
            let entry = map
                .entry((rd.rule.clone(), key_text))
                .or_insert_with(|| Entry {
                    rule: rd.rule.clone(),
                    key: rd.key.clone(),
                    points: Vec::new(),
                });
            let mut p = entry.points.last().copied().unwrap_or(Point {
                t,
                allow: 0,
                deny: 0,
                value: None,
                threshold: None,
            });
            match rd.decision {
                Verdict::Allow => p.allow += 1,
                Verdict::Deny => p.deny += 1,
            }
            p.value = match rd.value.as_ref() {
                Some(serde_json::Value::Number(n)) => n.as_f64(),
                Some(serde_json::Value::Bool(b)) => Some(if *b { 1.0 } else { 0.0 }),
                _ => None,
            };
            p.threshold = rd.threshold;
            match entry.points.last_mut() {
                Some(last) if last.t >= t => *last = Point { t: last.t, ..p },
                _ => entry.points.push(Point { t, ..p }),
            }
            let keep_from = t - RETENTION_MS;
            let old = entry.points.partition_point(|p| p.t < keep_from);
            if old > 0 && old < entry.points.len() {
                entry.points.drain(..old);
            }
        }
    }

    /// Call `f` on every (rule, key) entry (each part of the map locked in turn).
    pub fn for_each(&self, mut f: impl FnMut(&Entry)) {
        for shard in &self.shards {
            for entry in shard.lock().values() {
                f(entry);
            }
        }
    }
}

/// One (rule, key) as two parts saw it: at every time either has a point, the decisions of
/// both added up, the value and threshold of the later point.
fn merge(a: &Entry, b: &Entry) -> Entry {
    let mut times: Vec<i64> = a.points.iter().chain(&b.points).map(|p| p.t).collect();
    times.sort_unstable();
    times.dedup();
    let points = times
        .into_iter()
        .map(|t| {
            let (pa, pb) = (a.at(t), b.at(t));
            let latest = match (pa, pb) {
                (Some(x), Some(y)) => Some(if y.t >= x.t { y } else { x }),
                (x, y) => x.or(y),
            };
            Point {
                t,
                allow: pa.map_or(0, |p| p.allow) + pb.map_or(0, |p| p.allow),
                deny: pa.map_or(0, |p| p.deny) + pb.map_or(0, |p| p.deny),
                value: latest.and_then(|p| p.value),
                threshold: latest.and_then(|p| p.threshold),
            }
        })
        .collect();
    Entry {
        rule: a.rule.clone(),
        key: a.key.clone(),
        points,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(points: &[(i64, u64, u64, f64)]) -> Entry {
        Entry {
            rule: "r".into(),
            key: serde_json::from_str(r#"{"seller":"a"}"#).unwrap(),
            points: points
                .iter()
                .map(|&(t, allow, deny, v)| Point {
                    t,
                    allow,
                    deny,
                    value: Some(v),
                    threshold: Some(10.0),
                })
                .collect(),
        }
    }

    #[test]
    fn parts_of_one_key_add_up() {
        let ds = DecisionSeries::from_entries([
            entry(&[(1000, 1, 0, 1.0), (3000, 2, 1, 3.0)]),
            entry(&[(2000, 5, 0, 7.0)]),
        ]);
        let all = ds.entries();
        assert_eq!(all.len(), 1);
        let e = &all[0];
        let got: Vec<(i64, u64, u64, Option<f64>)> = e
            .points
            .iter()
            .map(|p| (p.t, p.allow, p.deny, p.value))
            .collect();
        assert_eq!(
            got,
            vec![
                (1000, 1, 0, Some(1.0)),
                (2000, 6, 0, Some(7.0)),
                (3000, 7, 1, Some(3.0)),
            ]
        );
    }

    #[test]
    fn distinct_keys_stay_apart() {
        let mut b = entry(&[(1000, 1, 0, 1.0)]);
        b.key = serde_json::from_str(r#"{"seller":"b"}"#).unwrap();
        let ds = DecisionSeries::from_entries([entry(&[(1000, 2, 0, 2.0)]), b.clone()]);
        let mut all = ds.entries();
        all.sort_by_key(|e| e.key["seller"].to_string());
        assert_eq!(all.len(), 2);
        assert_eq!(all[1], b);
    }
}
