//! Alerts against a real `weir serve` (SPEC section 9, seed 000): one alert per episode of a
//! rule and key turning to deny, resolved when it allows again; ids per account from 0; exact
//! under 400 concurrent calls; durable across kill -9 with no gap and no repeat; the Redis
//! sink's layout read back from a real Redis (`WEIR_TEST_REDIS`, started by
//! `scripts/redis.sh`: the Redis test fails without it); the webhook sink delivering every
//! change in order to a receiver that was down; and the decision log.

mod common;

#[path = "../src/alerts/resp.rs"]
mod resp;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_port, now_ms, Server};
use serde_json::{json, Value};

/// Three events of a user within a minute are allowed; the third is denied.
const RULE: &str = "CREATE RULE logins AS SELECT count(*) AS n FROM login \
                    GROUP BY user, timeseries(time, 1s, 1min) DENY WHEN n > 2;";

fn login(user: &str, ts: i64) -> Value {
    json!({"type": "login", "ts": ts, "user": user})
}

async fn decide(s: &Server, event: &Value) -> String {
    let (st, d) = s.post("/api/add_and_check", event).await;
    assert_eq!(st, 200, "{d}");
    d["decision"].as_str().unwrap().to_string()
}

/// Poll `f` until it gives `Some`, for at most `secs`.
async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(t) = f().await {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn alerts(s: &Server, query: &str) -> Value {
    let (st, body) = s.get(&format!("/api/alerts{query}")).await;
    assert_eq!(st, 200, "{body}");
    body
}

#[tokio::test]
async fn an_episode_gives_one_alert_then_its_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    assert_eq!(s.statements(RULE).await.0, 200);
    let t0 = now_ms() - 4 * 60_000;
    let before = now_ms();
    for (i, want) in ["allow", "allow", "deny", "deny", "deny"]
        .iter()
        .enumerate()
    {
        assert_eq!(decide(&s, &login("ann", t0 + i as i64)).await, *want);
    }
    // Another key allowed all along: no alert for it.
    assert_eq!(decide(&s, &login("bob", t0)).await, "allow");
    let page = alerts(&s, "").await;
    assert_eq!(page["total"], 1, "{page}");
    let a = &page["alerts"][0];
    assert_eq!(a["id"], 0);
    assert_eq!(a["event_type"], "comparator");
    assert_eq!(a["account_id"], "default");
    assert_eq!(a["project_id"], "default");
    assert_eq!(a["dimension"], "logins");
    assert_eq!(a["key"], "user=ann");
    assert_eq!(a["key_fields"], json!({"user": "ann"}));
    assert_eq!(a["calculated_value"], 3);
    assert_eq!(a["threshold"], 2.0);
    assert_eq!(a["window"], "1min");
    assert_eq!(a["resolved_at"], Value::Null);
    assert!(a["created_at"].as_i64().unwrap() >= before, "{a}");
    assert_eq!(alerts(&s, "?state=open").await["total"], 1);
    assert_eq!(alerts(&s, "?state=resolved").await["total"], 0);

    // Two minutes later in event time the window holds one event: allowed, resolved.
    let t1 = t0 + 2 * 60_000;
    assert_eq!(decide(&s, &login("ann", t1)).await, "allow");
    let page = alerts(&s, "?state=resolved").await;
    assert_eq!(page["total"], 1, "{page}");
    let r = &page["alerts"][0];
    assert_eq!(r["id"], 0);
    assert!(r["resolved_at"].as_i64().unwrap() >= r["created_at"].as_i64().unwrap());
    assert_eq!(alerts(&s, "?state=open").await["total"], 0);

    // A second episode of the same key is a second alert, id 1; newest first.
    assert_eq!(decide(&s, &login("ann", t1 + 1)).await, "allow");
    assert_eq!(decide(&s, &login("ann", t1 + 2)).await, "deny");
    let page = alerts(&s, "").await;
    assert_eq!(page["total"], 2);
    assert_eq!(page["alerts"][0]["id"], 1);
    assert_eq!(page["alerts"][0]["resolved_at"], Value::Null);
    assert_eq!(page["alerts"][1]["id"], 0);
    // Filters and paging.
    assert_eq!(alerts(&s, "?key=user%3Dbob").await["total"], 0);
    assert_eq!(alerts(&s, "?rule=logins&key=user%3Dann").await["total"], 2);
    assert_eq!(alerts(&s, "?dimension=other").await["total"], 0);
    let p2 = alerts(&s, "?limit=1&page=2").await;
    assert_eq!(
        (p2["total"].clone(), p2["alerts"][0]["id"].clone()),
        (json!(2), json!(0))
    );
    let later = alerts(&s, &format!("?from={}", now_ms() + 60_000)).await;
    assert_eq!(later["total"], 0);
    assert_eq!(s.get("/api/alerts?state=closed").await.0, 400);
    assert_eq!(s.get("/api/alerts?colour=red").await.0, 400);
    // Seed 000's path: project, dimension, key.
    let (st, by_key) = s.get("/api/alerts/default/logins/user=ann").await;
    assert_eq!(st, 200, "{by_key}");
    assert_eq!(by_key["total"], 2);
    assert_eq!(
        s.get("/api/alerts/default/logins/user=bob").await.1["total"],
        0
    );
    assert_eq!(s.get("/api/alerts/elsewhere/logins/user=ann").await.0, 404);

    // A check decides too: unconditional adds push carl over the limit, a check denies and
    // opens an alert without an event id.
    let (st, _) = s
        .post(
            "/api/events?wait=durable",
            &json!({"events": [login("carl", t1), login("carl", t1), login("carl", t1)]}),
        )
        .await;
    assert_eq!(st, 200);
    let (_, d) = s.post("/api/check", &login("carl", t1)).await;
    assert_eq!(d["decision"], "deny", "{d}");
    let carl = eventually(5, "carl's alert", || async {
        let p = alerts(&s, "?key=user%3Dcarl").await;
        (p["total"] == 1).then(|| p["alerts"][0].clone())
    })
    .await;
    assert_eq!(carl["id"], 2);
    assert_eq!(carl["event_id"], Value::Null);
    assert_eq!(carl["calculated_value"], 3);

    // The decision log: newest first, filtered by rule, key and decision.
    let denied = eventually(5, "the decision log", || async {
        let (st, d) = s.get("/api/decisions?decision=deny&key=user%3Dann").await;
        assert_eq!(st, 200, "{d}");
        (d["decisions"].as_array().unwrap().len() == 4).then_some(d)
    })
    .await;
    let first = &denied["decisions"][0];
    assert_eq!(first["call"], "add_and_check");
    assert_eq!(first["decision"], "deny");
    assert_eq!(first["rules"][0]["rule"], "logins");
    assert_eq!(first["rules"][0]["value"], 3);
    assert_eq!(first["account"], "default");
    let (_, allowed) = s
        .get("/api/decisions?decision=allow&rule=logins&limit=2")
        .await;
    assert_eq!(
        allowed["decisions"].as_array().unwrap().len(),
        2,
        "{allowed}"
    );
    // Recorded behind the decision, like every decision: wait for carl's check too.
    let checks = eventually(5, "carl's check in the decision log", || async {
        let (_, d) = s.get("/api/decisions?key=user%3Dcarl").await;
        (!d["decisions"].as_array().unwrap().is_empty()).then_some(d)
    })
    .await;
    assert_eq!(checks["decisions"][0]["call"], "check", "{checks}");
    assert_eq!(s.get("/api/decisions?decision=maybe").await.0, 400);
    let metrics = s.metrics_text().await;
    assert!(
        metrics.contains("weir_alerts_total{change=\"fired\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("weir_alerts_total{change=\"resolved\"} 1"));
}

/// Fire `n` concurrent add_and_check calls of `event`.
async fn flood(s: &Arc<Server>, events: Vec<Value>) -> Vec<(u16, Value)> {
    let tasks: Vec<_> = events
        .into_iter()
        .map(|e| {
            let s = s.clone();
            tokio::spawn(async move { s.post("/api/add_and_check", &e).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn four_hundred_concurrent_denies_give_one_alert_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(Server::start(dir.path()).await);
    assert_eq!(s.statements(RULE).await.0, 200);
    let ts = now_ms() - 1_000;
    let events: Vec<Value> = (0..800)
        .map(|i| login(if i % 2 == 0 { "ann" } else { "bob" }, ts))
        .collect();
    let answers = flood(&s, events).await;
    let allowed = answers
        .iter()
        .filter(|(st, d)| *st == 200 && d["decision"] == "allow")
        .count();
    assert_eq!(allowed, 4, "two per key");
    let page = alerts(&s, "?state=open").await;
    assert_eq!(page["total"], 2, "{page}");
    let mut keys: Vec<&str> = page["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap())
        .collect();
    keys.sort();
    assert_eq!(keys, ["user=ann", "user=bob"]);
    let mut ids: Vec<u64> = page["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_u64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, [0, 1]);
}

/// Read one Redis DB: the hash at `key`, and `primary-key`.
async fn redis_read(url: &str, db: u32, key: &str) -> (HashMap<String, String>, Option<String>) {
    let mut c = resp::Resp::connect(url, Duration::from_secs(5))
        .await
        .unwrap();
    resp::ok(
        c.cmd(&[b"SELECT", db.to_string().as_bytes()])
            .await
            .unwrap(),
    )
    .unwrap();
    let hash = c.hgetall(key).await.unwrap().into_iter().collect();
    let pk = c.cmd(&[b"GET", b"primary-key"]).await.unwrap().text();
    (hash, pk)
}

async fn sinks_idle(s: &Server) -> Value {
    eventually(20, "the sinks to deliver everything", || async {
        let (_, v) = s.get("/api/alerts/sinks").await;
        let idle = v["sinks"]
            .as_array()
            .is_some_and(|a| !a.is_empty() && a.iter().all(|x| x["backlog"] == 0));
        idle.then_some(v)
    })
    .await
}

#[tokio::test]
async fn the_redis_sink_writes_seed_000s_layout_in_each_accounts_db() {
    let url = std::env::var("WEIR_TEST_REDIS").expect(
        "WEIR_TEST_REDIS (redis://host:port of a Redis server) is not set: scripts/test.sh starts one (scripts/redis.sh)",
    );
    // DBs 7 (default account) and 8 (acme), emptied first.
    let mut c = resp::Resp::connect(&url, Duration::from_secs(5))
        .await
        .unwrap();
    for db in ["7", "8"] {
        resp::ok(c.cmd(&[b"SELECT", db.as_bytes()]).await.unwrap()).unwrap();
        resp::ok(c.cmd(&[b"FLUSHDB"]).await.unwrap()).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    // Two accounts' keys (the account of an event is its key's), and an admin key for the
    // sinks' status.
    let (default_key, acme_key, admin_key) = (
        "default-key-0123456789",
        "acme-key-0123456789",
        "ops-key-0123456789ab",
    );
    let keys =
        format!("default:default:{default_key},acme:default:{acme_key},ops:all:{admin_key}:admin");
    let env = [
        ("WEIR_ALERTS__REDIS__URL", url.as_str()),
        ("WEIR_ALERTS__REDIS__DEFAULT_DB", "7"),
        ("WEIR_ALERTS__REDIS__DBS__ACME", "8"),
        ("WEIR_API_KEYS", keys.as_str()),
    ];
    let mut s = Server::start_with(dir.path(), &env).await;
    for key in [default_key, acme_key] {
        s.set_key(Some(key));
        assert_eq!(s.statements(RULE).await.0, 200);
    }
    let t0 = now_ms() - 4 * 60_000;
    for i in 0..3 {
        s.set_key(Some(default_key));
        decide(&s, &login("ann", t0 + i)).await;
        decide(&s, &login("bob", t0 + i)).await;
        // The same user in another account: that account's own alert and ids.
        s.set_key(Some(acme_key));
        decide(&s, &login("ann", t0 + i)).await;
    }
    // ann resolves in the default account.
    s.set_key(Some(default_key));
    assert_eq!(decide(&s, &login("ann", t0 + 2 * 60_000)).await, "allow");
    s.set_key(Some(admin_key));
    let status = sinks_idle(&s).await;
    assert_eq!(status["sinks"][0]["name"], "redis");
    assert_eq!(status["sinks"][0]["delivered"], 4, "{status}");

    let (ann, pk) = redis_read(&url, 7, "default:logins:user=ann:0").await;
    assert_eq!(pk.as_deref(), Some("2"), "primary-key is the next id");
    assert_eq!(ann["event_type"], "comparator");
    assert_eq!(ann["account_id"], "default");
    assert_eq!(ann["project_id"], "default");
    assert_eq!(ann["dimension"], "logins");
    assert_eq!(ann["key"], "user=ann");
    assert_eq!(ann["calculated_value"], "3");
    assert_eq!(ann["threshold"], "2.0");
    assert_eq!(ann["id"], "0");
    assert!(ann["created_at"].parse::<i64>().unwrap() > 0);
    assert!(
        ann["resolved_at"].parse::<i64>().unwrap() >= ann["created_at"].parse::<i64>().unwrap()
    );
    let (bob, _) = redis_read(&url, 7, "default:logins:user=bob:1").await;
    assert_eq!(bob["key"], "user=bob");
    assert!(!bob.contains_key("resolved_at"), "bob's episode is open");
    // acme's alert is its own id 0, in its own DB.
    let (acme, pk) = redis_read(&url, 8, "default:logins:user=ann:0").await;
    assert_eq!(pk.as_deref(), Some("1"));
    assert_eq!(acme["account_id"], "acme");
    let (none, _) = redis_read(&url, 7, "default:logins:user=ann:2").await;
    assert!(none.is_empty());
    // Redelivery is harmless: a restart with the cursor set back delivers everything again,
    // and Redis ends up the same.
    s.terminate();
    {
        let store = common::open_store(dir.path());
        store.meta_put("alert-sink/redis", b"").unwrap();
    }
    s.restart().await;
    s.set_key(Some(admin_key));
    let again = sinks_idle(&s).await;
    assert_eq!(again["sinks"][0]["delivered"], 4, "{again}");
    let (ann2, pk) = redis_read(&url, 7, "default:logins:user=ann:0").await;
    assert_eq!((ann2, pk.as_deref()), (ann, Some("2")));
}

/// A webhook receiver on `port`: answers 503 to the first POST, then 200; keeps what it
/// accepted (Idempotency-Key, body) in order.
async fn receiver(
    port: u16,
    accepted: Arc<parking_lot::Mutex<Vec<(String, Value)>>>,
) -> tokio::task::JoinHandle<()> {
    use axum::http::{HeaderMap, StatusCode};
    let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: HeaderMap, axum::Json(body): axum::Json<Value>| {
                let accepted = accepted.clone();
                let seen = seen.clone();
                async move {
                    if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let key = headers["idempotency-key"].to_str().unwrap().to_string();
                    accepted.lock().push((key, body));
                    StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_webhook_gets_every_change_in_order_after_being_down() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let hook = format!("http://127.0.0.1:{port}/hook");
    let env = [
        ("WEIR_ALERTS__WEBHOOK__URL", hook.as_str()),
        ("WEIR_ALERTS__MAX_BACKOFF", "200ms"),
    ];
    let mut s = Server::start_with(dir.path(), &env).await;
    assert_eq!(s.statements(RULE).await.0, 200);
    let t0 = now_ms() - 8 * 60_000;
    // Three episodes of ann (the last one open): five changes, while nobody listens.
    for ep in 0..3 {
        let t = t0 + ep * 2 * 60_000;
        for i in 0..3 {
            decide(&s, &login("ann", t + i)).await;
        }
    }
    let status = eventually(10, "failed attempts", || async {
        let (_, v) = s.get("/api/alerts/sinks").await;
        (v["sinks"][0]["failures"].as_u64().unwrap_or(0) >= 2).then_some(v)
    })
    .await;
    assert_eq!(status["sinks"][0]["backlog"], 5, "{status}");
    assert!(
        status["sinks"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("POST"),
        "{status}"
    );
    assert!(s
        .metrics_text()
        .await
        .contains("weir_alert_sink_deliveries_total{sink=\"webhook\",outcome=\"error\"}"));
    // Still down across a kill -9 and a restart: the outbox is durable.
    s.kill9();
    s.restart().await;
    let accepted = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let server = receiver(port, accepted.clone()).await;
    sinks_idle(&s).await;
    let got = accepted.lock().clone();
    let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "default-0-fired",
            "default-0-resolved",
            "default-1-fired",
            "default-1-resolved",
            "default-2-fired"
        ],
        "every change once, in order"
    );
    assert_eq!(got[0].1["change"], "fired");
    assert_eq!(got[0].1["key"], "user=ann");
    assert!(got[1].1["resolved_at"].is_i64());
    let (_, v) = s.get("/api/alerts/sinks").await;
    assert_eq!(v["sinks"][0]["delivered"], 5, "{v}");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn ids_continue_without_gaps_or_repeats_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path()).await;
    assert_eq!(s.statements(RULE).await.0, 200);
    let ts = now_ms() - 1_000;
    // 60 keys, 20 calls each, all at once; kill -9 in the middle of it.
    let events: Vec<Value> = (0..1200)
        .map(|i| login(&format!("u{}", i % 60), ts))
        .collect();
    let (client, url) = (s.client().clone(), format!("{}/api/add_and_check", s.url));
    let calls: Vec<_> = events
        .into_iter()
        .map(|e| {
            let (c, url) = (client.clone(), url.clone());
            tokio::spawn(async move { c.post(url).json(&e).send().await.is_ok() })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.kill9();
    let mut answered = 0;
    for c in calls {
        answered += c.await.unwrap() as usize;
    }
    eprintln!("{answered} of 1200 calls answered before kill -9");
    s.restart().await;
    let before = alerts(&s, "?limit=1000").await;
    let n_before = before["total"].as_u64().unwrap();
    eprintln!("{n_before} alerts stored before the kill");
    // Each open key keeps its one alert; new keys fire with the next ids.
    for u in 0..60 {
        for _ in 0..3 {
            decide(&s, &login(&format!("u{u}"), ts)).await;
        }
    }
    for u in 60..70 {
        for _ in 0..3 {
            decide(&s, &login(&format!("u{u}"), ts)).await;
        }
    }
    let after = alerts(&s, "?limit=1000").await;
    let mut ids: Vec<u64> = after["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_u64().unwrap())
        .collect();
    ids.sort();
    let total = after["total"].as_u64().unwrap();
    assert_eq!(
        total, 70,
        "one alert per key: {n_before} before the restart"
    );
    assert_eq!(ids, (0..70).collect::<Vec<u64>>(), "no gap, no repeat");
    // Every key has exactly one.
    let mut keys: Vec<String> = after["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 70);
}

#[tokio::test]
async fn an_accounts_projects_share_its_counter_and_see_only_their_own_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let (web, shop, other) = (
        "acme-web-key-0123456789",
        "acme-shop-key-0123456789",
        "zeta-key-0123456789abc",
    );
    let keys = format!("acme:web:{web},acme:shop:{shop},zeta:web:{other}");
    let mut s = Server::start_with(dir.path(), &[("WEIR_API_KEYS", keys.as_str())]).await;
    for key in [web, shop, other] {
        s.set_key(Some(key));
        assert_eq!(s.statements(RULE).await.0, 200);
    }
    let t0 = now_ms() - 4 * 60_000;
    // acme/web's episode first, then acme/shop's, then zeta/web's.
    for key in [web, shop, other] {
        s.set_key(Some(key));
        for i in 0..3 {
            decide(&s, &login("ann", t0 + i)).await;
        }
    }
    let seen = |page: &Value| -> Vec<(u64, String, String)> {
        page["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let f = |k: &str| a[k].as_str().unwrap().to_string();
                (a["id"].as_u64().unwrap(), f("account_id"), f("project_id"))
            })
            .collect()
    };
    s.set_key(Some(web));
    assert_eq!(
        seen(&alerts(&s, "").await),
        [(0, "acme".into(), "web".into())]
    );
    s.set_key(Some(shop));
    assert_eq!(
        seen(&alerts(&s, "").await),
        [(1, "acme".into(), "shop".into())]
    );
    s.set_key(Some(other));
    assert_eq!(
        seen(&alerts(&s, "").await),
        [(0, "zeta".into(), "web".into())]
    );
    // Seed 000's path is confined to the caller's project.
    s.set_key(Some(web));
    assert_eq!(s.get("/api/alerts/shop/logins/user=ann").await.0, 404);
    assert_eq!(s.get("/api/alerts/web/logins/user=ann").await.1["total"], 1);
    // The decision log too: every record web sees is web's.
    let d = eventually(5, "web's decisions", || async {
        let (_, d) = s.get("/api/decisions?rule=logins").await;
        let d = d["decisions"].as_array().cloned().unwrap_or_default();
        (d.len() == 3).then_some(d)
    })
    .await;
    assert!(
        d.iter()
            .all(|x| x["account"] == "acme" && x["project"] == "web"),
        "{d:?}"
    );
}
