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
