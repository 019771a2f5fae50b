//! The two rate limits of SPEC section 4, decided exactly under 400 concurrent calls.

mod common;

use std::sync::Arc;

use common::{now_ms, Server};
use serde_json::{json, Value};

const RULES: &str = "
CREATE RULE seller_orders AS SELECT count(*) AS orders FROM neworder WHERE seller = 'usedcardealer'
  GROUP BY seller, timeseries(time, 1s, 1min) DENY WHEN orders > 100;
CREATE RULE daily_sales AS SELECT sum(amount) AS sales FROM neworder
  GROUP BY seller, timeseries(time, 1min, 1d) DENY WHEN sales > 10000;
";

/// Fire `n` concurrent add_and_check calls of `event`; return how many were allowed.
async fn flood(s: &Arc<Server>, event: Value, n: usize) -> (usize, Vec<Value>) {
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let s = s.clone();
        let e = event.clone();
        tasks.push(tokio::spawn(async move {
            s.post("/api/add_and_check", &e).await
        }));
    }
    let mut allowed = 0;
    let mut all = Vec::new();
    for t in tasks {
        let (st, d) = t.await.unwrap();
        assert_eq!(st, 200, "{d}");
        if d["decision"] == "allow" {
            allowed += 1;
        }
        all.push(d);
    }
    (allowed, all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn hundred_orders_per_minute_for_one_seller_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(Server::start(dir.path()).await);
    assert_eq!(s.statements(RULES).await.0, 200);
    let ts = now_ms() - 1_000;
    let (allowed, decisions) = flood(
        &s,
        json!({"type":"neworder","ts":ts,"seller":"usedcardealer","amount":50}),
        400,
    )
    .await;
    assert_eq!(allowed, 100, "exactly the limit is admitted");
    let denied = decisions.iter().find(|d| d["decision"] == "deny").unwrap();
    let by_rule: Vec<(&str, &str)> = denied["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["rule"].as_str().unwrap(), r["decision"].as_str().unwrap()))
        .collect();
    assert!(by_rule.contains(&("seller_orders", "deny")), "{denied}");
    assert!(by_rule.contains(&("daily_sales", "allow")), "{denied}");
    // The 300 denied events used up none of the daily quota: 100 × $50 counted, no more.
    let (_, d) = s
        .post(
            "/api/check",
            &json!({"type":"neworder","ts":ts,"seller":"usedcardealer","amount":1}),
        )
        .await;
    let sales = d["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "daily_sales")
        .unwrap();
    assert_eq!(sales["value"].as_f64(), Some(5000.0), "{d}");
    // Other sellers are not limited by the first rule.
    let (allowed, _) = flood(
        &s,
        json!({"type":"neworder","ts":ts,"seller":"other","amount":1}),
        150,
    )
    .await;
    assert_eq!(allowed, 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn ten_thousand_dollars_per_day_for_any_seller_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(Server::start(dir.path()).await);
    assert_eq!(s.statements(RULES).await.0, 200);
    let ts = now_ms() - 1_000;
    let (allowed, _) = flood(
        &s,
        json!({"type":"neworder","ts":ts,"seller":"s1","amount":30}),
        400,
    )
    .await;
    assert_eq!(
        allowed, 333,
        "333 × $30 = $9990; the next would pass $10000"
    );
    let (allowed, _) = flood(
        &s,
        json!({"type":"neworder","ts":ts,"seller":"s2","amount":100}),
        400,
    )
    .await;
    assert_eq!(
        allowed, 100,
        "exactly $10000 is allowed, a cent more is not"
    );
    let (_, d) = s
        .post(
            "/api/check",
            &json!({"type":"neworder","ts":ts,"seller":"s2","amount":1}),
        )
        .await;
    assert_eq!(
        d["decision"], "allow",
        "a read-only check at the limit still allows: {d}"
    );
    let (_, d) = s
        .post(
            "/api/add_and_check",
            &json!({"type":"neworder","ts":ts,"seller":"s2","amount":1}),
        )
        .await;
    assert_eq!(d["decision"], "deny", "{d}");
}

/// Replacing a rule with the same definition while 400 add_and_check calls run against it
/// (what a cluster node's reconciliation may do): still exactly the limit is admitted, each
/// count once.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn a_rule_replaced_under_traffic_still_admits_exactly_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(Server::start(dir.path()).await);
    let rule = "CREATE OR REPLACE RULE cap AS SELECT count(*) AS c FROM order GROUP BY seller, timeseries(time, 1s, 1min) DENY WHEN c > 100";
    assert_eq!(s.statements(rule).await.0, 200);
    let ts = now_ms() - 1_000;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let (done, replaced) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let replacing = {
        let (s, done, replaced) = (s.clone(), done.clone(), replaced.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                let (st, body) = s.statements(rule).await;
                assert_eq!(st, 200, "{body}");
                replaced.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // Eight waves of 50 concurrent calls, each followed by a replacement's end, so that
    // replacements run during the waves on either store.
    let (mut allowed, mut decisions) = (0, Vec::new());
    for _ in 0..8 {
        let before = replaced.load(Ordering::SeqCst);
        let (a, d) = flood(
            &s,
            json!({"type":"order","ts":ts,"seller":"hot","amount":1}),
            50,
        )
        .await;
        allowed += a;
        decisions.extend(d);
        while replaced.load(Ordering::SeqCst) == before {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    done.store(true, Ordering::SeqCst);
    replacing.await.unwrap();
    let mut counts: Vec<i64> = decisions
        .iter()
        .filter(|d| d["decision"] == "allow")
        .map(|d| d["rules"][0]["value"].as_i64().unwrap())
        .collect();
    counts.sort_unstable();
    assert_eq!(allowed, 100, "admitted on counts {counts:?}");
    let (_, d) = s
        .post(
            "/api/check",
            &json!({"type":"order","ts":ts,"seller":"hot"}),
        )
        .await;
    assert_eq!(d["rules"][0]["value"], 100, "{d}");
}
