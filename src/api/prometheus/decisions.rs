//! Rule decisions (see [`crate::decisions`]) as Prometheus series:
//! - `weir_rule_decisions{rule="r", decision="allow"|"deny", <key labels>}`: decisions made
//!   since the server started, cumulative;
//! - `weir_rule_value{rule="r", <key labels>}`: the compared value of the latest decision;
//! - `weir_rule_threshold{rule="r", <key labels>}`: its threshold.

use promql_parser::label::Matcher;

use super::source::{add_key_labels, matches_all, matches_known, Labels, Series};
use crate::decisions::{DecisionSeries, Entry, Point};

/// The series of every (rule, key) matching, each a function of the entry's point.
fn each(
    ds: &DecisionSeries,
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
    ds.for_each(|entry| {
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
    });
}

/// Every matching series at each of `times`.
pub fn select(ds: &DecisionSeries, matchers: &[Matcher], times: &[i64]) -> Vec<Series> {
    let mut out = Vec::new();
    each(ds, matchers, |labels, entry, pick| {
        let values: Vec<Option<f64>> = times.iter().map(|&t| entry.at(t).and_then(pick)).collect();
        if values.iter().any(Option::is_some) {
            out.push(Series { labels, values });
        }
    });
    out
}

/// The labels of every matching series with a sample in `[from, to]`.
pub fn series(
    ds: &DecisionSeries,
    matchers: &[Matcher],
    from: Option<i64>,
    to: Option<i64>,
) -> Vec<Labels> {
    let mut out = Vec::new();
    each(ds, matchers, |labels, entry, pick| {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weir_rules::RuleDecision;
    use weir_rules::{Decision, Verdict};

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
        let allow = select(&d, &[m("decision", "allow"), m("seller", "x")], &times);
        assert_eq!(allow.len(), 1);
        assert_eq!(allow[0].values, vec![None, Some(2.0), Some(2.0), Some(2.0)]);
        let deny = select(&d, &[m("decision", "deny"), m("seller", "x")], &times);
        assert_eq!(deny[0].values, vec![None, Some(0.0), Some(0.0), Some(1.0)]);
        let value = select(
            &d,
            &[m("__name__", "weir_rule_value"), m("seller", "x")],
            &times,
        );
        assert_eq!(value[0].values, vec![None, Some(2.0), Some(2.0), Some(3.0)]);
        let th = select(&d, &[m("__name__", "weir_rule_threshold")], &times);
        assert_eq!(th.len(), 2);
        let listed = series(&d, &[m("rule", "limit")], Some(0), Some(11_500));
        // x: decisions (allow, deny), value, threshold; y starts after 11.5 s.
        assert_eq!(listed.len(), 4);
    }
}
