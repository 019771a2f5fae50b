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
use weir_rules::{Decision, Verdict};

/// Number of independently locked parts of the map.
pub const SHARDS: usize = 32;
/// How long points are kept (48 h, like a series query's retention).
pub const RETENTION_MS: i64 = 48 * 3600 * 1000;

/// The totals of one (rule, key) as of a time.
#[derive(Debug, Clone, Copy, PartialEq)]
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
#[derive(Debug)]
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
    /// Count one decision of `add_and_check`, made at `now_ms`.
    pub fn record(&self, decision: &Decision, now_ms: i64) {
        let t = now_ms.div_euclid(1000) * 1000 + 1000;
        for rd in &decision.rules {
            let key_text = serde_json::Value::Object(rd.key.clone()).to_string();
            let mut h = DefaultHasher::new();
            (&rd.rule, &key_text).hash(&mut h);
            let shard = &self.shards[(h.finish() as usize) % SHARDS];
            let mut map = shard.lock();
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
