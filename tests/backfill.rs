//! Backfill (SPEC section 5) through the real binary: creating a query replays stored events;
//! replacing one while writers keep sending counts every event exactly once; BACKFILL d and
//! NO BACKFILL bound the replay; a restart keeps the backfilled state.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{now_ms, Server};
use parking_lot::Mutex;
use serde_json::{json, Value};

/// (count, sum, max) per key, recomputed from the events.
type Oracle = BTreeMap<String, (u64, i64, i64)>;

fn add(oracle: &mut Oracle, events: &[Value]) {
    for e in events {
        let entry = oracle
            .entry(e["k"].as_str().unwrap().to_string())
            .or_insert((0, 0, i64::MIN));
        let amount = e["amount"].as_i64().unwrap();
        entry.0 += 1;
        entry.1 += amount;
        entry.2 = entry.2.max(amount);
    }
}

fn batch(seed: u64, n: u64, ts: i64) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let x = seed * 7919 + i * 104_729;
            json!({"type": "sale", "ts": ts - (x % 600_000) as i64, "k": format!("k{}", x % 7), "amount": (x % 1000) as i64})
        })
        .collect()
}

async fn results(s: &Server, query: &str) -> BTreeMap<String, Value> {
    let (st, res) = s.get(&format!("/api/queries/{query}/result")).await;
    assert_eq!(st, 200, "{res}");
    res["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"]["k"].as_str().unwrap().to_string(),
                r["values"].clone(),
            )
        })
        .collect()
}

fn assert_matches(got: &BTreeMap<String, Value>, oracle: &Oracle, with_max: bool) {
    assert_eq!(got.len(), oracle.len(), "keys: {got:?}");
    for (k, (n, s, m)) in oracle {
        let v = &got[k];
        assert_eq!(v["n"].as_u64(), Some(*n), "count of {k}: {v}");
        assert_eq!(v["s"].as_f64(), Some(*s as f64), "sum of {k}: {v}");
        if with_max {
            assert_eq!(v["m"].as_f64(), Some(*m as f64), "max of {k}: {v}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replace_while_writers_run_counts_every_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path()).await;
    let ts = now_ms() - 1_000;
    let first = batch(1, 3000, ts);
    let (st, _) = s
        .post("/api/events?wait=durable", &json!({ "events": first }))
        .await;
    assert_eq!(st, 200);
    let mut oracle = Oracle::new();
    add(&mut oracle, &first);

    // Created after the events: backfill finds them all.
    let (st, body) = s
        .statements(
            "CREATE QUERY totals AS SELECT count(*) AS n, sum(amount) AS s FROM sale GROUP BY k",
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["results"][0]["backfilled"], 3000);
    assert_matches(&results(&s, "totals").await, &oracle, false);

    // Writers keep sending while the query is replaced.
    let sent = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let (client, url, sent, stop) = (
            s.client().clone(),
            s.url.clone(),
            sent.clone(),
            stop.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let events = batch(100 + w * 10_000 + i, 25, ts);
                let r = client
                    .post(format!("{url}/api/events?wait=durable"))
                    .json(&json!({ "events": events }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                sent.lock().extend(events);
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (st, body) = s
        .statements("CREATE OR REPLACE QUERY totals AS SELECT count(*) AS n, sum(amount) AS s, max(amount) AS m FROM sale GROUP BY k")
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["results"][0]["replaced"], true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    add(&mut oracle, &sent.lock());
    assert!(sent.lock().len() > 100, "writers ran during the replace");
    assert_matches(&results(&s, "totals").await, &oracle, true);

    // A restart (kill -9) keeps exactly that.
    s.kill9();
    s.restart().await;
    assert_matches(&results(&s, "totals").await, &oracle, true);
}

#[tokio::test]
async fn backfill_duration_and_no_backfill_bound_the_replay() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let now = now_ms();
    let old: Vec<Value> = (0..10)
        .map(|i| json!({"type":"sale","ts": now - 3_600_000 - i,"k":"a","amount":1}))
        .collect();
    let recent: Vec<Value> = (0..5)
        .map(|i| json!({"type":"sale","ts": now - 60_000 - i,"k":"a","amount":1}))
        .collect();
    s.post("/api/events?wait=durable", &json!({"events": old}))
        .await;
    s.post("/api/events?wait=durable", &json!({"events": recent}))
        .await;
    let (st, body) = s
        .statements(
            "CREATE QUERY all_time AS SELECT count(*) AS n FROM sale GROUP BY k;
             CREATE QUERY last_30 AS SELECT count(*) AS n FROM sale GROUP BY k BACKFILL 30min;
             CREATE QUERY fresh AS SELECT count(*) AS n FROM sale GROUP BY k NO BACKFILL;",
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(results(&s, "all_time").await["a"]["n"], 15);
    assert_eq!(results(&s, "last_30").await["a"]["n"], 5);
    assert!(results(&s, "fresh").await.is_empty());
    s.post(
        "/api/events?wait=durable",
        &json!({"type":"sale","k":"a","amount":1}),
    )
    .await;
    assert_eq!(results(&s, "fresh").await["a"]["n"], 1);
    assert_eq!(results(&s, "all_time").await["a"]["n"], 16);
}

#[tokio::test]
async fn progress_is_visible_while_a_large_backfill_runs() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let ts = now_ms() - 1_000;
    for chunk in 0..20 {
        let (st, _) = s
            .post(
                "/api/events?wait=durable",
                &json!({ "events": batch(chunk, 5000, ts) }),
            )
            .await;
        assert_eq!(st, 200);
    }
    let s = Arc::new(s);
    let s2 = s.clone();
    let apply = tokio::spawn(async move {
        s2.statements("CREATE QUERY big AS SELECT count(*) AS n FROM sale GROUP BY k")
            .await
    });
    let mut seen = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !apply.is_finished() && Instant::now() < deadline {
        let (st, q) = s.get("/api/queries/big").await;
        if st == 200 && q["status"] == "backfilling" {
            seen = Some(q);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (st, body) = apply.await.unwrap();
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["results"][0]["backfilled"], 100_000);
    let q = seen.expect("the backfill was seen in progress");
    let p = q["progress"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p), "{q}");
    assert_eq!(q["total"], 100_000);
    let (_, q) = s.get("/api/queries/big").await;
    assert_eq!(q["status"], "running");
}

/// Issue 11, item 4: the default backfill span is measured back from the newest stored event
/// of the query's source (its watermark), not from the wall clock: events from yesterday are
/// all replayed into a sliding query created today, and read at yesterday's time.
/// Item 2 through the server: once live events move the watermark on, yesterday's windows
/// are no longer complete and are not returned; `complete_from` says where rows start.
#[tokio::test]
async fn default_backfill_is_measured_from_the_sources_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let minute = 60_000;
    let yesterday = (now_ms() - 86_400_000).div_euclid(minute) * minute;
    let events: Vec<Value> = (0..600i64)
        .map(|i| json!({"type": "sale", "ts": yesterday + (i * 7_919) % (5 * minute), "k": format!("k{}", i % 3), "amount": i}))
        .collect();
    let (st, body) = s
        .post("/api/events?wait=durable", &json!({ "events": events }))
        .await;
    assert_eq!(st, 200, "{body}");
    // Another type's newer events do not move this query's watermark.
    let (st, _) = s
        .post(
            "/api/events?wait=durable",
            &json!({"type": "other", "k": "k0", "amount": 1}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, body) = s
        .statements(
            "CREATE QUERY recent AS SELECT count(*) AS n, max(amount) AS m FROM sale GROUP BY k, timeseries(time, 1min, 10min)",
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["results"][0]["backfilled"], 600, "{body}");

    // The window ending with yesterday's last bucket holds all 600.
    let at = yesterday + 5 * minute - 1;
    let (st, res) = s.get(&format!("/api/queries/recent/result?at={at}")).await;
    assert_eq!(st, 200, "{res}");
    let rows = res["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{res}");
    for r in rows {
        let k: i64 = r["key"]["k"].as_str().unwrap()[1..].parse().unwrap();
        let mine: Vec<i64> = (0..600).filter(|i| i % 3 == k).collect();
        assert_eq!(r["values"]["n"].as_u64(), Some(mine.len() as u64), "{r}");
        let max = *mine.iter().max().unwrap() as f64;
        assert_eq!(r["values"]["m"].as_f64(), Some(max), "{r}");
        assert_eq!(r["window_start"], json!(yesterday - 5 * minute));
        assert_eq!(r["window_end"], json!(yesterday + 5 * minute));
    }
    assert!(
        res["complete_from"].as_i64().unwrap() <= yesterday + 5 * minute,
        "{res}"
    );

    // A live sale today: yesterday's windows reach below the retained buckets now.
    let (st, _) = s
        .post(
            "/api/events?wait=durable",
            &json!({"type": "sale", "k": "k1", "amount": 5}),
        )
        .await;
    assert_eq!(st, 200);
    let (from, to) = (yesterday, yesterday + 15 * minute);
    let (st, res) = s
        .get(&format!("/api/queries/recent/result?from={from}&to={to}"))
        .await;
    assert_eq!(st, 200, "{res}");
    assert_eq!(res["rows"], json!([]), "{res}");
    let complete_from = res["complete_from"].as_i64().unwrap();
    assert!(complete_from > now_ms() - 30 * minute, "{res}");
    // From complete_from on, rows are there and exact: the one live sale.
    let (st, res) = s
        .get(&format!(
            "/api/queries/recent/result?from={}&to={}",
            complete_from - minute,
            now_ms() + minute
        ))
        .await;
    assert_eq!(st, 200, "{res}");
    let rows = res["rows"].as_array().unwrap();
    assert!(!rows.is_empty(), "{res}");
    for r in rows {
        assert!(r["window_end"].as_i64().unwrap() >= complete_from, "{r}");
        assert_eq!(r["values"]["n"].as_u64(), Some(1), "{r}");
    }
}
