//! The event store and analytics API (SPEC section 8) through the real binary, on generated
//! data with answers computed independently here.

mod common;

use std::collections::{BTreeMap, HashSet};

use common::{now_ms, Server};
use serde_json::{json, Value};

/// 300 events: product_view / add_to_cart for 10 users × 3 colours, spread over an hour,
/// every third one in a session, plus 30 page events of another type.
fn generated(base: i64) -> Vec<Value> {
    let mut events = Vec::new();
    for i in 0..270i64 {
        let user = format!("u{}", i % 10);
        let colour = i % 3;
        let tag = if i % 4 == 3 {
            "add_to_cart"
        } else {
            "product_view"
        };
        let mut data = json!({"event_tag": tag, "user_id": user, "item_colour_id": colour});
        if i % 9 == 0 {
            data.as_object_mut().unwrap().remove("item_colour_id");
        }
        let mut e = json!({"ts": base + i * 10_000, "data": data});
        if i % 3 == 0 {
            e["session_id"] = json!(format!("s{}", i % 2));
        }
        events.push(e);
    }
    for i in 0..30i64 {
        events
            .push(json!({"type": "page", "ts": base + i * 7_000, "path": format!("/p{}", i % 4)}));
    }
    events
}

/// The funnel by the definition of SPEC section 8, computed naively.
fn expected_funnel(events: &[Value]) -> (usize, usize, usize, usize) {
    let mut sorted: Vec<&Value> = events.iter().filter(|e| e.get("data").is_some()).collect();
    sorted.sort_by_key(|e| e["ts"].as_i64().unwrap());
    let complete =
        |e: &Value| e["data"].get("user_id").is_some() && e["data"].get("item_colour_id").is_some();
    let mut views = 0;
    let mut carts = 0;
    let mut conversions = 0;
    let mut seen = HashSet::new();
    let mut unique_viewers = HashSet::new();
    for e in sorted {
        if !complete(e) {
            continue;
        }
        let key = (
            e["data"]["user_id"].to_string(),
            e["data"]["item_colour_id"].to_string(),
        );
        if e["data"]["event_tag"] == "product_view" {
            views += 1;
            unique_viewers.insert(e["data"]["user_id"].to_string());
            seen.insert(key);
        } else {
            carts += 1;
            if seen.contains(&key) {
                conversions += 1;
            }
        }
    }
    (views, carts, conversions, unique_viewers.len())
}

#[tokio::test]
async fn events_listing_paging_sessions_query_stats_keys() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let base = (now_ms() - 2 * 3_600_000) / 60_000 * 60_000;
    let events = generated(base);
    let (st, body) = s
        .post("/api/events?wait=durable", &json!({ "events": events }))
        .await;
    assert_eq!(st, 200, "{body}");

    // Paging over everything: 300 events in pages of 120, ordered by time, no gaps or repeats.
    let mut ids = Vec::new();
    let mut last_ts = i64::MIN;
    for page in 1..=3 {
        let (st, p) = s.get(&format!("/api/events?page={page}&limit=120")).await;
        assert_eq!(st, 200, "{p}");
        assert_eq!(p["total"], 300);
        let got = p["events"].as_array().unwrap();
        assert_eq!(got.len(), if page < 3 { 120 } else { 60 });
        for e in got {
            let ts = e["ts"].as_i64().unwrap();
            assert!(ts >= last_ts, "ordered by time");
            last_ts = ts;
            ids.push(e["event_id"].as_u64().unwrap());
        }
    }
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 300);

    // Type and time filters; repeated eventType means several types.
    let (from, to) = (base + 100_000, base + 200_000); // i in 10..20 → 10 events of the funnel types
    let (_, p) = s.get(&format!("/api/events?eventType=product_view&eventType=add_to_cart&startDate={from}&endDate={to}&limit=100")).await;
    assert_eq!(p["total"], 10, "{p}");
    let (_, p) = s
        .post(
            "/api/events/query",
            &json!({"eventType": ["page"], "limit": 5, "page": 2}),
        )
        .await;
    assert_eq!(p["total"], 30);
    assert_eq!(p["events"].as_array().unwrap().len(), 5);
    assert_eq!(p["events"][0]["type"], "page");

    // Sessions: grouped, each ordered by time.
    let (_, p) = s
        .get("/api/events?session=s0&limit=1000&groupBy=session")
        .await;
    let sessions = p["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    let s0: Vec<i64> = sessions[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["ts"].as_i64().unwrap())
        .collect();
    assert_eq!(
        s0.len(),
        (0..270).filter(|i| i % 3 == 0 && i % 2 == 0).count()
    );
    assert!(s0.windows(2).all(|w| w[0] <= w[1]));

    // The seed 001 JSON query with its funnel.
    let q = json!({
        "start": base, "end": base + 3_600_000,
        "data": [
            {"name": "product_view", "filters": [{"type":"eq","key":"event_tag","value":"product_view"},{"type":"all","key":"user_id"},{"type":"all","key":"item_colour_id"}], "unique": ["user_id"]},
            {"name": "add_to_cart", "filters": [{"type":"eq","key":"event_tag","value":"add_to_cart"},{"type":"all","key":"user_id"},{"type":"all","key":"item_colour_id"}], "unique": ["user_id"]}
        ],
        "funnel": {"type": "exact_order", "order": ["product_view", "add_to_cart"], "match": ["user_id", "item_colour_id"]}
    });
    let (st, a) = s.post("/api/query", &q).await;
    assert_eq!(st, 200, "{a}");
    let (views, carts, conversions, unique_viewers) = expected_funnel(&events);
    assert_eq!(a["data"]["product_view"]["count"], views as u64, "{a}");
    assert_eq!(
        a["data"]["product_view"]["unique"]["user_id"],
        unique_viewers as u64
    );
    assert_eq!(a["data"]["add_to_cart"]["count"], carts as u64);
    assert_eq!(
        a["funnel"]["steps"][1]["conversions"], conversions as u64,
        "{a}"
    );
    assert!(
        conversions > 0 && conversions < carts,
        "the data exercises both outcomes"
    );
    let (st, bad) = s
        .post(
            "/api/query",
            &json!({"data": [{"name": "x", "filters": [{"type": "like", "key": "a"}]}]}),
        )
        .await;
    assert_eq!(st, 400);
    assert!(
        bad["error"]
            .as_str()
            .unwrap()
            .contains("data[0].filters[0].type"),
        "{bad}"
    );
    assert_eq!(
        s.get("/api/query/schema").await.1["$schema"]
            .as_str()
            .map(|v| v.contains("2020-12")),
        Some(true)
    );

    // Stats and keys, kept as events arrive.
    let (_, st) = s.get("/api/stats").await;
    assert_eq!(st["total"], 300, "{st}");
    let (_, st) = s.get("/api/stats/page").await;
    assert_eq!(st["total"], 30, "{st}");
    let (_, k) = s.get("/api/keys?type=page").await;
    let path = k["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "path")
        .expect("path key");
    let counts: BTreeMap<String, u64> = path["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["value"].as_str().unwrap().to_string(),
                v["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        BTreeMap::from([
            ("/p0".into(), 8),
            ("/p1".into(), 8),
            ("/p2".into(), 7),
            ("/p3".into(), 7)
        ])
    );
}

/// N concurrent writers adding events of M types (batches and single decisions, some
/// denied): the stats and keys count every allowed event exactly once, and each writer sees
/// its own acknowledged events at once.
#[tokio::test]
async fn concurrent_writers_give_exact_counts() {
    const WRITERS: usize = 8;
    const TYPES: usize = 5;
    const ROUNDS: usize = 12;
    const BATCH: usize = 25;
    let dir = tempfile::tempdir().unwrap();
    let s = std::sync::Arc::new(Server::start(dir.path()).await);
    // Per user of type "gated", the first 3 events are allowed and the rest denied.
    let (st, body) = s
        .statements(
            "CREATE RULE cap AS SELECT count(*) AS n FROM gated \
             GROUP BY user, timeseries(time, 1s, 1h) DENY WHEN n > 3",
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let base = (now_ms() - 3_600_000) / 60_000 * 60_000;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut denied = 0u64;
                for r in 0..ROUNDS {
                    let events: Vec<Value> = (0..BATCH)
                        .map(|i| {
                            let n = (w * ROUNDS + r) * BATCH + i;
                            json!({"type": format!("t{}", n % TYPES), "ts": base + n as i64 * 100,
                                   "w": w, "v": n % 4})
                        })
                        .collect();
                    let (st, body) = s
                        .post("/api/events?wait=durable", &json!({ "events": events }))
                        .await;
                    assert_eq!(st, 200, "{body}");
                    // Read-your-writes: every event this writer was acknowledged is counted
                    // (only it writes `w` = its number).
                    let (_, k) = s.get("/api/keys?prefix=w").await;
                    let me = w.to_string();
                    let mine = k["keys"][0]["values"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|v| v["value"] == me.as_str())
                        .map_or(0, |v| v["count"].as_u64().unwrap());
                    assert_eq!(mine, ((r + 1) * BATCH) as u64, "{k}");
                    let e = json!({"type": "gated", "user": format!("u{w}-{}", r % 2)});
                    let (st, d) = s.post("/api/add_and_check", &e).await;
                    assert_eq!(st, 200, "{d}");
                    denied += u64::from(d["decision"] == "deny");
                }
                denied
            })
        })
        .collect();
    let mut denied = 0;
    for t in tasks {
        denied += t.await.unwrap();
    }
    let per_type = (WRITERS * ROUNDS * BATCH / TYPES) as u64;
    let (_, st) = s.get("/api/stats").await;
    for t in 0..TYPES {
        assert_eq!(st["types"][format!("t{t}")]["total"], per_type, "{st}");
        let (_, k) = s.get(&format!("/api/keys?type=t{t}")).await;
        assert_eq!(k["count"], per_type, "{k}");
        let v = k["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["key"] == "v")
            .expect("key v");
        let sum: u64 = v["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["count"].as_u64().unwrap())
            .sum();
        assert_eq!(sum, per_type);
    }
    // 2 users per writer, 3 allowed each, of ROUNDS / 2 events per user.
    let allowed = (WRITERS * 2 * 3) as u64;
    assert_eq!(denied, (WRITERS * ROUNDS) as u64 - allowed);
    assert_eq!(st["types"]["gated"]["total"], allowed, "{st}");
    assert_eq!(
        st["total"],
        per_type * TYPES as u64 + allowed,
        "denied events count nowhere"
    );
}
