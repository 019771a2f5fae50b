//! Rule decisions as series: per rule and group key, how many `add_and_check` calls it
//! allowed and denied, and the deciding value and threshold of its latest decision.
//!
//! Series (see `docs/grafana.md`):
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
use promql_parser::label::Matcher;
use weir_rules::{Decision, Verdict};

use super::source::{add_key_labels, matches_all, matches_known, sample, Labels, Series};

/// Number of independently locked parts of the map.
pub const SHARDS: usize = 32;
/// How long points are kept (48 h, like a series query's retention).
pub const RETENTION_MS: i64 = 48 * 3600 * 1000;

/// The totals of one (rule, key) as of a time.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    /// From when these totals hold (unix ms, a whole second).
    t: i64,
    allow: u64,
    deny: u64,
    value: Option<f64>,
    threshold: Option<f64>,
}

#[derive(Debug)]
struct Entry {
    rule: String,
    key: serde_json::Map<String, serde_json::Value>,
    points: Vec<Point>,
}

impl Entry {
    /// The point in force at `t` (the last one with `p.t <= t`).
    fn at(&self, t: i64) -> Option<&Point> {
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
            p.value = sample(rd.value.as_ref());
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

    /// The series of every (rule, key) matching, each a function of the entry's point.
    fn each(
        &self,
        matchers: &[Matcher],
        mut f: impl FnMut(Labels, &Entry, &dyn Fn(&Point) -> Option<f64>),
    ) {
        type Pick = fn(&Point) -> Option<f64>;
        let kinds: [(&str, Option<&str>, Pick); 4] = [
            ("weir_rule_decisions", Some("allow"), |p| {
                Some(p.allow as f64)
            }),
            ("weir_rule_decisions", Some("deny"), |p| Some(p.deny as f64)),
            ("weir_rule_value", None, |p| p.value),
            ("weir_rule_threshold", None, |p| p.threshold),
        ];
        for shard in &self.shards {
            let map = shard.lock();
            for entry in map.values() {
                for (name, decision, pick) in kinds {
                    let mut labels = Labels::from([
                        ("__name__".to_string(), name.to_string()),
                        ("rule".to_string(), entry.rule.clone()),
                    ]);
                    if let Some(d) = decision {
                        labels.insert("decision".into(), d.into());
                    }
                    if !matches_known(matchers, &labels) {
                        continue;
                    }
                    add_key_labels(&mut labels, &entry.key);
                    if matches_all(matchers, &labels) {
                        f(labels, entry, &pick);
                    }
                }
            }
        }
    }

    /// Every matching series at each of `times`.
    pub fn select(&self, matchers: &[Matcher], times: &[i64]) -> Vec<Series> {
        let mut out = Vec::new();
        self.each(matchers, |labels, entry, pick| {
            let values: Vec<Option<f64>> =
                times.iter().map(|&t| entry.at(t).and_then(pick)).collect();
            if values.iter().any(Option::is_some) {
                out.push(Series { labels, values });
            }
        });
        out
    }

    /// The labels of every matching series with a sample in `[from, to]`.
    pub fn series(&self, matchers: &[Matcher], from: Option<i64>, to: Option<i64>) -> Vec<Labels> {
        let mut out = Vec::new();
        self.each(matchers, |labels, entry, pick| {
            let to = to.unwrap_or(i64::MAX);
            let from = from.unwrap_or(i64::MIN);
            // A point holds until the next one: it has a sample in [from, to] if it starts
            // by `to` and the next starts after `from`.
            let any = entry.points.iter().enumerate().any(|(i, p)| {
                let next = entry.points.get(i + 1).map(|n| n.t).unwrap_or(i64::MAX);
                p.t <= to && next > from && pick(p).is_some()
            });
            if any {
                out.push(labels);
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weir_rules::RuleDecision;

    fn decision(rule: &str, seller: &str, verdict: Verdict, value: f64) -> Decision {
        Decision {
            allowed: verdict == Verdict::Allow,
            rules: vec![RuleDecision {
                rule: rule.into(),
                key: json!({ "seller": seller }).as_object().unwrap().clone(),
                value: Some(json!(value)),
                threshold: Some(2.0),
                window_ms: None,
                window_start: None,
                window_end: None,
                decision: verdict,
            }],
        }
    }

    #[test]
    fn counts_per_rule_key_and_second() {
        let d = DecisionSeries::default();
        d.record(&decision("limit", "x", Verdict::Allow, 1.0), 10_100);
        d.record(&decision("limit", "x", Verdict::Allow, 2.0), 10_900);
        d.record(&decision("limit", "x", Verdict::Deny, 3.0), 12_000);
        d.record(&decision("limit", "y", Verdict::Allow, 1.0), 12_500);
        let m = |n: &str, v: &str| Matcher::new(promql_parser::label::MatchOp::Equal, n, v);
        let times = [10_999, 11_000, 12_999, 13_000];
        let allow = d.select(&[m("decision", "allow"), m("seller", "x")], &times);
        assert_eq!(allow.len(), 1);
        assert_eq!(allow[0].values, vec![None, Some(2.0), Some(2.0), Some(2.0)]);
        let deny = d.select(&[m("decision", "deny"), m("seller", "x")], &times);
        assert_eq!(deny[0].values, vec![None, Some(0.0), Some(0.0), Some(1.0)]);
        let value = d.select(
            &[m("__name__", "weir_rule_value"), m("seller", "x")],
            &times,
        );
        assert_eq!(value[0].values, vec![None, Some(2.0), Some(2.0), Some(3.0)]);
        let th = d.select(&[m("__name__", "weir_rule_threshold")], &times);
        assert_eq!(th.len(), 2);
        let listed = d.series(&[m("rule", "limit")], Some(0), Some(11_500));
        // x: decisions (allow, deny), value, threshold; y starts after 11.5 s.
        assert_eq!(listed.len(), 4);
    }
}
