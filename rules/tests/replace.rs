//! Replacing an `AS select` rule through a backfilled shadow (SPEC section 5): while
//! add_and_check calls keep running, no admitted event is lost or counted twice across the
//! swap, and the new condition decides from the moment it is committed.

#[path = "../../engine/tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;
use support::*;
use weir_core::Event;
use weir_engine::{Engine, EngineConfig, ReadRequest};
use weir_query_lang::ast::{AggFunc, BinaryOp, CreateRule, Ident, RuleSource};
use weir_rules::{RuleSet, RulesError};

fn order(ts: i64, seller: &str) -> Event {
    event("neworder", ts, json!({"seller": seller, "amount": 2}))
}

/// `RULE cap AS SELECT count(*) AS orders[, sum(amount) AS sales] FROM neworder
/// GROUP BY seller DENY WHEN orders > limit`.
fn cap(limit: f64, with_sales: bool) -> CreateRule {
    let mut items = vec![item(agg(AggFunc::Count, None), Some("orders"))];
    if with_sales {
        items.push(item(
            agg(AggFunc::Sum, Some(field("amount"))),
            Some("sales"),
        ));
    }
    CreateRule {
        name: Ident::new("cap"),
        or_replace: true,
        source: RuleSource::As(Box::new(select(
            "neworder",
            items,
            None,
            vec![gf("seller")],
        ))),
        deny_when: bin(BinaryOp::Gt, field("orders"), num(limit)),
        backfill: Default::default(),
    }
}

fn orders(rs: &RuleSet, seller: &str) -> i64 {
    let rows = rs
        .engine()
        .result("rule:cap", &ReadRequest::default())
        .unwrap();
    rows.iter()
        .find(|r| r.key["seller"] == json!(seller))
        .map_or(0, |r| r.values["orders"].as_i64().unwrap())
}

#[test]
fn replacing_a_rule_under_load_loses_and_doubles_nothing() {
    let rs = Arc::new(RuleSet::new(Arc::new(Engine::new(EngineConfig {
        shards: 8,
        ..EngineConfig::default()
    }))));
    rs.create_rule("cap", &cap(1e9, false)).unwrap();
    let next = Arc::new(AtomicU64::new(0));
    // (id, event, denied), appended under the locks like the server's log.
    let log = Arc::new(Mutex::new(Vec::<(u64, Event, bool)>::new()));
    let cursor = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicU64::new(u64::MAX));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (rs, next, log, cursor, stop) = (
                rs.clone(),
                next.clone(),
                log.clone(),
                cursor.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || loop {
                let i = cursor.fetch_add(1, Ordering::SeqCst);
                if i >= stop.load(Ordering::SeqCst) {
                    break;
                }
                let ev = order(i as i64, ["a", "b", "c"][(i % 3) as usize]);
                rs.add_and_check(&ev, |denied| {
                    let id = next.fetch_add(1, Ordering::SeqCst);
                    log.lock().unwrap().push((id, ev.clone(), denied));
                    id
                });
            })
        })
        .collect();
    while cursor.load(Ordering::SeqCst) < 1500 {
        std::thread::yield_now();
    }
    let new = cap(1500.0, true);
    let shadow = rs
        .prepare_owned("cap", &new, || next.load(Ordering::SeqCst))
        .unwrap();
    let before: Vec<(u64, Event)> = {
        let mut v: Vec<_> = log
            .lock()
            .unwrap()
            .iter()
            .filter(|(id, _, denied)| *id < shadow.boundary() && !denied)
            .map(|(id, ev, _)| (*id, ev.clone()))
            .collect();
        v.sort_by_key(|(id, _)| *id);
        v
    };
    rs.engine().backfill(&shadow, &before);
    rs.commit_rule("cap", &new, shadow).unwrap();
    // Keep going until every seller has tried 3000 more times under the new rule.
    stop.store(cursor.load(Ordering::SeqCst) + 9000, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    let log = log.lock().unwrap();
    assert_eq!(log.len() as u64, stop.load(Ordering::SeqCst));
    for seller in ["a", "b", "c"] {
        let admitted = log
            .iter()
            .filter(|(_, ev, denied)| !denied && ev.fields["seller"] == json!(seller))
            .count() as i64;
        assert_eq!(orders(&rs, seller), admitted, "seller {seller}");
        // The new limit holds from the commit on: 3000 more tries reach it, and from
        // then on the key is denied.
        assert!(admitted >= 1500, "seller {seller}: {admitted}");
        let (_, d) = rs.add_and_check(&order(0, seller), |_| 0);
        assert!(!d.allowed, "seller {seller}");
        let first_denial = log
            .iter()
            .filter(|(_, ev, d)| *d && ev.fields["seller"] == json!(seller))
            .map(|(id, ..)| *id)
            .min()
            .unwrap();
        let late_admits = log
            .iter()
            .filter(|(id, ev, d)| !*d && *id > first_denial && ev.fields["seller"] == json!(seller))
            .count();
        assert_eq!(late_admits, 0, "seller {seller}: admitted after a denial");
    }
    // The new owned query computes the new column too, over every admitted event.
    let rows = rs
        .engine()
        .result("rule:cap", &ReadRequest::default())
        .unwrap();
    let n: i64 = rows
        .iter()
        .map(|r| r.values["orders"].as_i64().unwrap())
        .sum();
    let sales: i64 = rows
        .iter()
        .map(|r| r.values["sales"].as_i64().unwrap())
        .sum();
    assert_eq!(sales, 2 * n);
    assert_eq!(rs.rule_names(), vec!["cap".to_string()]);
}

#[test]
fn prepare_refuses_what_it_cannot_build() {
    let rs = RuleSet::new(Arc::new(Engine::new(EngineConfig::default())));
    let on = CreateRule {
        source: RuleSource::On(Ident::new("q")),
        ..cap(1.0, false)
    };
    assert!(matches!(
        rs.prepare_owned("cap", &on, || 0),
        Err(RulesError::Mismatch(..))
    ));
    rs.create_rule("cap", &cap(5.0, false)).unwrap();
    let no_replace = CreateRule {
        or_replace: false,
        ..cap(1.0, false)
    };
    assert!(matches!(
        rs.prepare_owned("cap", &no_replace, || 0),
        Err(RulesError::RuleExists(_))
    ));
    // Aborting a prepared replacement leaves the old rule deciding.
    let s = rs.prepare_owned("cap", &cap(1.0, false), || 0).unwrap();
    rs.engine().abort(s);
    let (_, d) = rs.add_and_check(&order(0, "a"), |_| 0);
    assert!(d.allowed, "the old limit of 5 still applies");
}
