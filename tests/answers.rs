//! Small answers that must say what they mean, against the real binary: a bad `step` is a
//! 400 saying why, a batch lists every bad event with every reason, a 202 says it is not yet
//! durable, `/help` lists every route, and `weir bench` leaves nothing of its own behind.

mod common;

use std::process::Command;

use common::{now_ms, Server};
use serde_json::{json, Value};

/// A minute-aligned time an hour ago, so test events are neither in the future nor late.
fn base() -> i64 {
    (now_ms() - 3_600_000) / 60_000 * 60_000
}

#[tokio::test]
async fn an_invalid_step_is_refused_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (st, body) = s
        .statements(
            "CREATE QUERY sl AS SELECT count(*) AS n FROM t GROUP BY k, timeseries(time, 1min, 5min);\n\
             CREATE QUERY tu AS SELECT count(*) AS n FROM t GROUP BY k, timeseries(time, 1min);\n\
             CREATE QUERY un AS SELECT count(*) AS n FROM t GROUP BY k;",
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let t = base();
    let events: Vec<Value> = (0..10)
        .map(|i| json!({"type": "t", "k": "a", "time": t + i * 60_000}))
        .collect();
    let (st, body) = s
        .post("/api/events?wait=durable", &json!({ "events": events }))
        .await;
    assert_eq!(st, 200, "{body}");
    let range = format!("from={t}&to={}", t + 10 * 60_000);
    let refused = [
        ("sl", format!("{range}&step=90s"), "positive multiple"),
        ("sl", format!("{range}&step=0"), "positive multiple"),
        ("sl", format!("{range}&step=soon"), "not a duration"),
        ("sl", format!("at={}&step=2min", t + 600_000), "from"),
        ("tu", format!("{range}&step=2min"), "tumbling"),
        ("un", format!("{range}&step=2min"), "sliding"),
    ];
    for (q, qs, why) in refused {
        let (st, body) = s.get(&format!("/api/queries/{q}/result?{qs}")).await;
        assert_eq!(st, 400, "{q}?{qs}: {body}");
        let msg = body["error"].as_str().unwrap();
        assert!(msg.contains("step") && msg.contains(why), "{q}?{qs}: {msg}");
    }
    // A valid step gives one row every step: window ends every 2 min in the range.
    let (st, body) = s
        .get(&format!("/api/queries/sl/result?{range}&step=2min"))
        .await;
    assert_eq!(st, 200, "{body}");
    let ends: Vec<i64> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["window_end"].as_i64().unwrap())
        .collect();
    assert!(!ends.is_empty(), "{body}");
    assert!(ends.windows(2).all(|w| w[1] - w[0] == 120_000), "{ends:?}");
}

#[tokio::test]
async fn a_bad_batch_lists_every_bad_event_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let schema = json!({"type": "object", "required": ["amount"],
        "properties": {"amount": {"type": "number"}}});
    let r = s
        .client()
        .put(format!("{}/api/schemas/order", s.url))
        .json(&schema)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let batch = json!({"events": [
        {"type": "order", "amount": "ten"},   // 0: schema (wrong type)
        {"amount": 3},                        // 1: shape (no type)
        {"type": "order", "amount": 1},       // 2: fine
        {"type": "order"},                    // 3: schema (missing amount)
        {"type": "order", "time": "never"},   // 4: shape (bad time)
    ]});
    let (st, body) = s.post("/api/events", &batch).await;
    assert_eq!(st, 400, "{body}");
    let errors = body["errors"].as_array().unwrap();
    let indexes: Vec<i64> = errors
        .iter()
        .map(|e| e["index"].as_i64().unwrap())
        .collect();
    assert_eq!(indexes, [0, 1, 3, 4], "{body}");
    let reason = |i: usize| errors[i]["error"].as_str().unwrap().to_string();
    assert!(reason(0).contains("schema"), "{}", reason(0));
    assert!(reason(1).contains("type"), "{}", reason(1));
    assert!(reason(2).contains("schema"), "{}", reason(2));
    assert!(body["error"]
        .as_str()
        .unwrap()
        .starts_with("4 invalid events"));
    // The same for an array sent to add_and_check; nothing of either was applied.
    let (st, body) = s.post("/api/add_and_check", &batch["events"].clone()).await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["errors"].as_array().unwrap().len(), 4, "{body}");
    let (_, listed) = s.get("/api/events?eventType=order").await;
    assert_eq!(listed["total"], 0, "{listed}");
}

#[tokio::test]
async fn an_asynchronous_add_says_it_is_not_yet_durable() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (st, body) = s.post("/api/events", &json!({"type": "t", "x": 1})).await;
    assert_eq!(st, 202, "{body}");
    assert_eq!(body["durable"], false, "{body}");
    assert_eq!(
        (body["accepted"].clone(), body["ids"].clone()),
        (json!(1), json!([1]))
    );
    let (st, body) = s
        .post("/api/events?wait=durable", &json!({"type": "t", "x": 2}))
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["durable"], true, "{body}");
    let r = s
        .client()
        .post(format!("{}/event?evtname=t&x=3", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["durable"], false, "{body}");
}

#[tokio::test]
async fn help_lists_every_route_the_server_answers() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (st, help) = s.get("/help").await;
    assert_eq!(st, 200);
    let routes = help["routes"].as_object().unwrap();
    for route in [
        "GET /api/events",
        "POST /api/events",
        "POST /api/events/query",
        "POST /api/query",
        "GET /api/query/schema",
        "GET /api/stats",
        "GET /api/stats/{type}",
        "GET /api/keys",
        "GET /api/rules/{name}",
        "PUT /api/schemas/{type}",
        "GET /event",
        "POST /event",
    ] {
        assert!(routes.contains_key(route), "{route} missing from /help");
    }
    // Every listed route is answered (not the 404 fallback) with its method.
    for key in routes.keys() {
        let (method, path) = key.split_once(' ').unwrap();
        let path = path.replace("{name}", "nosuch").replace("{type}", "nosuch");
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = s
            .client()
            .request(method, format!("{}{path}", s.url))
            .send()
            .await
            .unwrap();
        let status = r.status();
        if status == 404 {
            let body: Value = r.json().await.unwrap_or(Value::Null);
            let msg = body["error"].as_str().unwrap_or_default();
            assert!(
                !msg.starts_with("no route"),
                "{key} is listed but not routed"
            );
        }
        assert_ne!(status, 405, "{key} is listed but its method is not routed");
    }
}

#[tokio::test]
async fn bench_cleans_up_after_itself() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (st, body) = s
        .statements("CREATE QUERY mine AS SELECT count(*) AS n FROM bench_order GROUP BY seller")
        .await;
    assert_eq!(st, 200, "{body}");
    for workload in ["add-and-check", "ingest"] {
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args([
                "bench",
                "--url",
                &s.url,
                "--duration",
                "1",
                "--connections",
                "2",
            ])
            .args(["--workload", workload, "--batch", "10", "--rate", "50"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("throwaway event type"), "{stdout}");
        let ok: f64 = stdout
            .lines()
            .find_map(|l| l.strip_prefix("weir: "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0);
        assert!(ok > 0.0, "the bench sent nothing: {stdout}");
    }
    // No rule of the bench is left, the user's query saw none of its events, and its events
    // are all of its own throwaway types (an event's tenant comes from the key it is sent
    // with, so they are in the caller's tenant, apart from the user's types).
    let (_, rules) = s.get("/api/rules").await;
    assert_eq!(rules["rules"], json!([]), "{rules}");
    let (_, q) = s.get("/api/queries").await;
    let names: Vec<&str> = q["queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mine"], "{q}");
    let (_, res) = s.get("/api/queries/mine/result").await;
    assert_eq!(res["rows"], json!([]), "{res}");
    let (_, listed) = s.get("/api/events?eventType=bench_order").await;
    assert_eq!(listed["total"], 0, "{listed}");
    let (_, all) = s.get("/api/events?limit=1000").await;
    let events = all["events"].as_array().unwrap();
    assert!(!events.is_empty(), "{all}");
    for e in events {
        let ty = e["type"].as_str().unwrap();
        assert!(ty.starts_with("weir_bench_"), "a bench event of type {ty}");
    }
}
