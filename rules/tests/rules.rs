//! Rules: the SPEC rate limits, check vs add_and_check, all-or-nothing, concurrency.

#[path = "../../engine/tests/support/mod.rs"]
mod support;

use std::sync::Arc;

use serde_json::json;
use support::*;
use weir_engine::{Engine, EngineConfig, ReadRequest};
use weir_query_lang::ast::{AggFunc, BinaryOp, CreateRule, Ident, RuleSource, Select};
use weir_rules::{RuleSet, Verdict};

fn rule(name: &str, source: RuleSource, deny_when: weir_query_lang::ast::Expr) -> CreateRule {
    CreateRule {
        name: Ident::new(name),
        or_replace: false,
        source,
        deny_when,
        backfill: Default::default(),
    }
}

/// Rule A: `SELECT count(*) AS orders FROM neworder WHERE seller = 'usedcardealer'
/// GROUP BY seller, timeseries(time, 1s, 1min) DENY WHEN orders > 100`.
fn rule_a() -> CreateRule {
    let sel = select(
        "neworder",
        vec![item(agg(AggFunc::Count, None), Some("orders"))],
        Some(bin(BinaryOp::Eq, field("seller"), s("usedcardealer"))),
        vec![gf("seller"), ts(1000, Some(60_000))],
    );
    rule(
        "a",
        RuleSource::As(Box::new(sel)),
        bin(BinaryOp::Gt, field("orders"), num(100.0)),
    )
}

/// Rule B: `SELECT sum(amount) AS sales FROM neworder GROUP BY seller,
/// timeseries(time, 1min, 1d) DENY WHEN sales > 10000`.
fn rule_b_select() -> Select {
    select(
        "neworder",
        vec![item(
            agg(AggFunc::Sum, Some(field("amount"))),
            Some("sales"),
        )],
        None,
        vec![gf("seller"), ts(60_000, Some(86_400_000))],
    )
}

fn rule_b() -> CreateRule {
    rule(
        "b",
        RuleSource::As(Box::new(rule_b_select())),
        bin(BinaryOp::Gt, field("sales"), num(10_000.0)),
    )
}

fn order(ts: i64, seller: &str, amount: f64) -> weir_core::Event {
    event("neworder", ts, json!({"seller": seller, "amount": amount}))
}

fn rules() -> RuleSet {
    RuleSet::new(Arc::new(Engine::new(EngineConfig::default())))
}

#[test]
fn rule_a_admits_100_per_minute_and_check_does_not_count() {
    let rs = rules();
    rs.create_rule("a", &rule_a()).unwrap();
    let t0 = 1_700_000_000_000;
    for i in 0..100 {
        let (_, d) = rs.add_and_check(&order(t0 + i * 10, "usedcardealer", 1.0), |_| 0);
        assert!(d.allowed, "order {i} denied");
    }
    // check: 100 counted, 100 > 100 is false, so allowed; and nothing is added.
    let c = rs.check(&order(t0 + 1000, "usedcardealer", 1.0));
    assert!(c.allowed);
    assert_eq!(c.rules[0].value, Some(json!(100)));
    assert_eq!(c.rules[0].threshold, Some(100.0));
    assert_eq!(c.rules[0].window_ms, Some(60_000));
    assert_eq!(c.rules[0].key["seller"], json!("usedcardealer"));
    let (_, d) = rs.add_and_check(&order(t0 + 1000, "usedcardealer", 1.0), |denied| {
        assert!(denied);
        7
    });
    assert!(!d.allowed);
    assert_eq!(d.rules[0].decision, Verdict::Deny);
    assert_eq!(d.rules[0].value, Some(json!(101)));
    // Denied events are counted nowhere.
    let c = rs.check(&order(t0 + 1000, "usedcardealer", 1.0));
    assert_eq!(c.rules[0].value, Some(json!(100)));
    // Other sellers do not match rule A: allowed with no rules.
    let (_, d) = rs.add_and_check(&order(t0, "other", 1.0), |_| 0);
    assert!(d.allowed && d.rules.is_empty());
    // A minute after the first order, the window has slid past it.
    let (_, d) = rs.add_and_check(&order(t0 + 60_000, "usedcardealer", 1.0), |_| 0);
    assert!(d.allowed);
    assert_eq!(d.rules[0].value, Some(json!(1)));
}

#[test]
fn rule_b_caps_daily_sales_per_seller() {
    let rs = rules();
    rs.create_rule("b", &rule_b()).unwrap();
    let t0 = 1_700_000_000_000;
    for i in 0..10 {
        let (_, d) = rs.add_and_check(&order(t0 + i * 3_600_000, "s1", 1000.0), |_| 0);
        assert!(d.allowed);
    }
    // Exactly 10000 now; one more cent is over.
    let (_, d) = rs.add_and_check(&order(t0 + 11 * 3_600_000, "s1", 0.01), |_| 0);
    assert!(!d.allowed);
    assert_eq!(d.rules[0].threshold, Some(10_000.0));
    // Another seller is a different key.
    let (_, d) = rs.add_and_check(&order(t0 + 11 * 3_600_000, "s2", 5000.0), |_| 0);
    assert!(d.allowed);
    // A day after the first sale, that sale has left the window.
    let (_, d) = rs.add_and_check(&order(t0 + 86_400_000, "s1", 500.0), |_| 0);
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.rules[0].value, Some(json!(9500)));
}

#[test]
fn two_rules_are_all_or_nothing() {
    let rs = rules();
    rs.create_rule("a", &rule_a()).unwrap();
    rs.create_rule("b", &rule_b()).unwrap();
    // A plain query that also sees the orders.
    let engine = rs.engine().clone();
    let plain = select(
        "neworder",
        vec![item(agg(AggFunc::Count, None), Some("n"))],
        None,
        vec![gf("seller")],
    );
    engine.create_query("all_orders", &plain).unwrap();
    assert_eq!(engine.query_names(), vec!["all_orders".to_string()]);
    let t0 = 1_700_000_000_000;
    // 9999 of sales in one order: both rules allow.
    let (_, d) = rs.add_and_check(&order(t0, "usedcardealer", 9999.0), |_| 0);
    assert!(d.allowed && d.rules.len() == 2);
    // Rule A would allow (2 orders) but rule B denies (10001): counted in neither.
    let (_, d) = rs.add_and_check(&order(t0 + 1, "usedcardealer", 2.0), |_| 0);
    assert!(!d.allowed);
    let verdicts: Vec<_> = d
        .rules
        .iter()
        .map(|r| (r.rule.as_str(), r.decision))
        .collect();
    assert_eq!(verdicts, vec![("a", Verdict::Allow), ("b", Verdict::Deny)]);
    let c = rs.check(&order(t0 + 2, "usedcardealer", 0.0));
    assert_eq!(c.rules[0].value, Some(json!(1)));
    assert_eq!(c.rules[1].value, Some(json!(9999)));
    let rows = engine
        .result("all_orders", &ReadRequest::default())
        .unwrap();
    assert_eq!(rows[0].values["n"], json!(1));
}

#[test]
fn concurrent_add_and_check_admits_exactly_the_limit() {
    let rs = Arc::new(rules());
    let sel = select(
        "neworder",
        vec![item(agg(AggFunc::Count, None), Some("orders"))],
        None,
        vec![gf("seller"), ts(1000, Some(60_000))],
    );
    let r = rule(
        "limit",
        RuleSource::As(Box::new(sel)),
        bin(BinaryOp::GtEq, field("orders"), num(51.0)),
    );
    rs.create_rule("limit", &r).unwrap();
    let t0 = 1_700_000_000_000;
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let rs = rs.clone();
            std::thread::spawn(move || {
                let mut admitted = 0;
                for i in 0..40 {
                    let (_, d) = rs.add_and_check(&order(t0 + t * 40 + i, "hot", 1.0), |_| 0);
                    admitted += d.allowed as usize;
                }
                admitted
            })
        })
        .collect();
    let admitted: usize = threads.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(admitted, 50);
    let rows = rs
        .engine()
        .result("rule:limit", &ReadRequest::default())
        .unwrap();
    assert_eq!(rows[0].values["orders"], json!(50));
}

#[test]
fn rules_on_an_existing_query_and_drop() {
    let rs = rules();
    rs.engine().create_query("sales", &rule_b_select()).unwrap();
    let r = rule(
        "on",
        RuleSource::On(Ident::new("sales")),
        bin(BinaryOp::Gt, field("sales"), num(5.0)),
    );
    rs.create_rule("on", &r).unwrap();
    assert!(rs.create_rule("on", &r).is_err());
    let (_, d) = rs.add_and_check(&order(0, "x", 6.0), |_| 0);
    assert!(!d.allowed);
    // A condition on an aggregate the query does not compute is refused.
    let bad = rule(
        "bad",
        RuleSource::On(Ident::new("sales")),
        bin(
            BinaryOp::Gt,
            agg(AggFunc::Max, Some(field("amount"))),
            num(5.0),
        ),
    );
    assert!(rs.create_rule("bad", &bad).is_err());
    rs.drop_rule("on").unwrap();
    assert!(rs.rules().is_empty());
    let (_, d) = rs.add_and_check(&order(0, "x", 6.0), |_| 0);
    assert!(d.allowed);
}
