//! SPEC section 13, route by route, against the real binary.

mod common;

use common::{now_ms, Server};
use serde_json::{json, Value};

/// A minute-aligned time an hour ago, so test events are neither in the future nor late.
fn base() -> i64 {
    (now_ms() - 3_600_000) / 60_000 * 60_000
}

#[tokio::test]
async fn health_help_cors_and_unknown_routes() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    assert_eq!(s.get("/healthz").await.0, 200);
    let (st, help) = s.get("/help").await;
    assert_eq!(st, 200);
    assert!(help["routes"]["POST /api/statements"].is_string());
    let r = s
        .client()
        .request(reqwest::Method::OPTIONS, format!("{}/api/events", s.url))
        .header("origin", "http://example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert!(r.headers().contains_key("access-control-allow-origin"));
    let (st, body) = s.get("/nope").await;
    assert_eq!(st, 404);
    assert!(body["error"].as_str().unwrap().contains("/nope"));
}

#[tokio::test]
async fn statements_apply_all_or_nothing_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (st, body) = s
        .statements("CREATE QUERY good AS SELECT count(*) AS n FROM click GROUP BY timeseries(time, 1min);\nCREATE QUERY bad AS SELECT count(* FROM click;")
        .await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["line"], 2);
    assert!(body["column"].as_u64().unwrap() > 1);
    assert!(
        body["error"].as_str().unwrap().contains("expected"),
        "{body}"
    );
    let (_, list) = s.get("/api/queries").await;
    assert_eq!(
        list["queries"].as_array().unwrap().len(),
        0,
        "nothing applied: {list}"
    );

    let (st, body) = s
        .statements("CREATE QUERY clicks AS SELECT count(*) AS n FROM click GROUP BY page, timeseries(time, 1min); SHOW QUERIES")
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["results"][0]["statement"], "create_query");
    assert_eq!(body["results"][0]["name"], "clicks");
    assert_eq!(body["results"][1]["statement"], "show_queries");

    let (st, q) = s.get("/api/queries/clicks").await;
    assert_eq!(st, 200);
    assert_eq!(q["name"], "clicks");
    assert_eq!(q["status"], "running");
    let (st, body) = s
        .statements("SHOW QUERIES;\nCREATE QUERY clicks AS SELECT count(*) FROM click")
        .await;
    assert_eq!(
        st, 400,
        "creating an existing query without OR REPLACE is refused"
    );
    assert_eq!(
        (body["line"].as_u64(), body["column"].as_u64()),
        (Some(2), Some(14)),
        "{body}"
    );

    let r = s
        .client()
        .delete(format!("{}/api/queries/clicks", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.get("/api/queries/clicks").await.0, 404);
}

#[tokio::test]
async fn events_and_results_series_and_sliding() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (st, body) = s
        .statements(
            "CREATE QUERY per_min AS SELECT count(*) AS n, sum(amount) AS total FROM order GROUP BY seller, timeseries(time, 1min);
             CREATE QUERY last5 AS SELECT count(*) AS n FROM order GROUP BY seller, timeseries(time, 1min, 5min);",
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let b = base();
    // seller a: 3 events in minute 0, 1 in minute 2; seller b: 2 in minute 1.
    let events = json!({"events": [
        {"type":"order","ts": b + 1_000, "seller":"a", "amount": 10},
        {"type":"order","ts": b + 2_000, "seller":"a", "amount": 5},
        {"type":"order","ts": b + 59_999, "seller":"a", "amount": 1},
        {"type":"order","ts": b + 60_000, "seller":"b", "amount": 7},
        {"type":"order","ts": b + 61_000, "seller":"b", "amount": 7},
        {"type":"order","ts": b + 130_000, "seller":"a", "amount": 2},
    ]});
    let (st, body) = s.post("/api/events", &events).await;
    assert_eq!(st, 202, "{body}");
    assert_eq!(body["accepted"], 6);
    assert_eq!(body["ids"].as_array().unwrap().len(), 6);
    let (st, _) = s
        .post("/api/events?wait=durable", &json!({"type":"other","ts": b}))
        .await;
    assert_eq!(st, 200);

    let (st, res) = s
        .get(&format!(
            "/api/queries/per_min/result?from={b}&to={}&key.seller=a",
            b + 180_000
        ))
        .await;
    assert_eq!(st, 200, "{res}");
    let rows = res["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{res}");
    assert_eq!(rows[0]["bucket_start"], b);
    assert_eq!(rows[0]["key"], json!({"seller":"a"}));
    assert_eq!(rows[0]["values"]["n"], 3);
    assert_eq!(rows[0]["values"]["total"], 16);
    assert_eq!(rows[1]["bucket_start"], b + 120_000);
    assert_eq!(rows[1]["values"]["total"], 2);

    let (st, res) = s
        .get(&format!("/api/queries/last5/result?at={}", b + 130_000))
        .await;
    assert_eq!(st, 200, "{res}");
    let mut rows: Vec<Value> = res["rows"].as_array().unwrap().clone();
    rows.sort_by_key(|r| r["key"]["seller"].as_str().unwrap().to_string());
    assert_eq!(rows.len(), 2, "{res}");
    assert_eq!(rows[0]["values"]["n"], 4);
    assert_eq!(rows[1]["values"]["n"], 2);
    assert_eq!(rows[0]["window_end"], b + 180_000);
    assert_eq!(rows[0]["window_start"], b + 180_000 - 300_000);
    // Without `at` a sliding window is read at now: these events are an hour old.
    let (_, res) = s.get("/api/queries/last5/result").await;
    assert_eq!(res["rows"], json!([]), "{res}");
    assert_eq!(s.get("/api/queries/nope/result").await.0, 404);
}

#[tokio::test]
async fn bad_events_are_refused_whole_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(dir.path(), &[("WEIR_MAX_BODY_BYTES", "2000")]).await;
    s.statements("CREATE QUERY all_n AS SELECT count(*) AS n FROM events")
        .await;
    let b = base();
    let (st, body) = s
        .post("/api/events", &json!({"events":[{"type":"x","ts":b},{"ts":b},{"type":"x","ts":"tomorrow-ish"},{"type":"x","ts": now_ms() + 3_600_000}]}))
        .await;
    assert_eq!(st, 400, "{body}");
    let idx: Vec<u64> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, vec![1, 2, 3]);
    let (_, res) = s.get("/api/queries/all_n/result").await;
    assert_eq!(
        res["rows"].as_array().unwrap().len(),
        0,
        "nothing of a refused batch is counted: {res}"
    );

    let r = s
        .client()
        .post(format!("{}/api/events", s.url))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("JSON"));

    let big =
        json!({"events": (0..100).map(|i| json!({"type":"x","ts":b,"i":i})).collect::<Vec<_>>()});
    let (st, body) = s.post("/api/events", &big).await;
    assert_eq!(st, 413, "{body}");
    assert!(body["error"].is_string());
    assert_eq!(
        s.get("/healthz").await.0,
        200,
        "bad input never hurts the server"
    );
}

#[tokio::test]
async fn check_add_and_check_and_seed_forms() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (st, body) = s
        .statements("CREATE RULE two_per_min AS SELECT count(*) AS orders FROM neworder GROUP BY seller, timeseries(time, 1s, 1min) DENY WHEN orders > 2")
        .await;
    assert_eq!(st, 200, "{body}");
    let ev = json!({"type":"neworder","seller":"x","amount":1});
    for expected in ["allow", "allow", "deny"] {
        let (st, d) = s.post("/api/add_and_check", &ev).await;
        assert_eq!(st, 200, "{d}");
        assert_eq!(d["decision"], expected, "{d}");
        assert!(d["event_id"].is_u64());
        let r = &d["rules"][0];
        assert_eq!(r["rule"], "two_per_min");
        assert_eq!(r["key"], json!({"seller":"x"}));
        assert_eq!(r["threshold"], 2.0);
        assert_eq!(r["decision"], expected);
    }
    // Two counted; the denied one is not: a read-only check sees 2, and 2 > 2 is false.
    let (_, d) = s.post("/api/check", &ev).await;
    assert_eq!(d["decision"], "allow", "{d}");
    assert_eq!(d["rules"][0]["value"], 2.0);
    // Another seller is unaffected; an event matching no rule is allowed with no rules.
    let (_, d) = s
        .post(
            "/api/add_and_check",
            &json!({"type":"neworder","seller":"y"}),
        )
        .await;
    assert_eq!(d["decision"], "allow");
    let (_, d) = s
        .post("/api/add_and_check", &json!({"type":"unrelated"}))
        .await;
    assert_eq!(d["decision"], "allow");
    assert_eq!(d["rules"], json!([]));
    // Batch form: an array in, an array of decisions out.
    let (_, ds) = s.post("/api/add_and_check", &json!([{"type":"neworder","seller":"z"},{"type":"neworder","seller":"z"},{"type":"neworder","seller":"z"}])).await;
    let decisions: Vec<&str> = ds
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, vec!["allow", "allow", "deny"]);

    // Seed 002 forms.
    let r = s
        .client()
        .post(format!(
            "{}/event?evtname=neworder&amount=10&seller=q&result=true",
            s.url
        ))
        .send()
        .await
        .unwrap();
    let d: Value = r.json().await.unwrap();
    assert_eq!(d["decision"], "allow");
    let id = d["event_id"].as_u64().unwrap();
    let r = s
        .client()
        .post(format!(
            "{}/event?evtname=neworder&amount=10&seller=q",
            s.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let (_, d) = s.get("/event?evtname=neworder&seller=q").await;
    assert_eq!(d["rules"][0]["value"], 2.0, "{d}");
    let (st, d) = s.get(&format!("/event?id={id}")).await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["rules"][0]["key"], json!({"seller":"q"}));
    assert_eq!(s.get("/event?id=999999").await.0, 404);

    let metrics = s.metrics_text().await;
    assert!(
        metrics.contains("weir_decisions_total{decision=\"deny\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("weir_query_events{query=\"rule:two_per_min\"}"),
        "{metrics}"
    );

    let (_, rules) = s.get("/api/rules").await;
    assert_eq!(rules["rules"][0]["name"], "two_per_min");
    let r = s
        .client()
        .delete(format!("{}/api/rules/two_per_min", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, d) = s.post("/api/add_and_check", &ev).await;
    assert_eq!(d["decision"], "allow");
}

#[tokio::test]
async fn per_type_schemas_refuse_bad_events_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path()).await;
    s.statements("CREATE QUERY parties AS SELECT count(*) AS n FROM party")
        .await;
    let schema = json!({"type":"object","required":["host","path"],"properties":{"host":{"type":"string"},"path":{"type":"string","pattern":"^/"}}});
    let r = s
        .client()
        .put(format!("{}/api/schemas/party", s.url))
        .json(&schema)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .client()
        .put(format!("{}/api/schemas/other", s.url))
        .json(&json!({"oneOf": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        400,
        "unsupported keywords are refused, not ignored"
    );

    let good = json!({"session_id":"e2","category":"party","name":"AppName","data":{"host":"h","path":"/"},"timestamp":"2021-09-26 09:15:27.243860"});
    let bad = json!({"category":"party","data":{"host":"h","path":"no-slash"}});
    let (st, _) = s.post("/api/events?wait=durable", &good).await;
    assert_eq!(st, 200);
    let (st, body) = s
        .post(
            "/api/events",
            &json!({"events":[good, bad, {"category":"party","data":{"path":"/"}}]}),
        )
        .await;
    assert_eq!(st, 400, "{body}");
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["index"], 1);
    assert!(
        errors[0]["error"].as_str().unwrap().contains("/path"),
        "{body}"
    );
    assert!(
        errors[1]["error"]
            .as_str()
            .unwrap()
            .contains("missing required field 'host'"),
        "{body}"
    );
    let (st, _) = s.post("/api/add_and_check", &bad).await;
    assert_eq!(st, 400);
    let (_, other) = s
        .post(
            "/api/events?wait=durable",
            &json!({"type":"unvalidated","x":1}),
        )
        .await;
    assert_eq!(
        other["accepted"], 1,
        "types without a schema are not checked"
    );

    s.terminate();
    s.restart().await;
    let (st, got) = s.get("/api/schemas/party").await;
    assert_eq!((st, got), (200, schema));
    assert_eq!(
        s.post("/api/events", &bad).await.0,
        400,
        "the schema survives a restart"
    );
    let (_, res) = s.get("/api/queries/parties/result").await;
    assert_eq!(
        res["rows"][0]["values"]["n"], 1,
        "only the valid event counted: {res}"
    );
    let r = s
        .client()
        .delete(format!("{}/api/schemas/party", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.post("/api/events", &bad).await.0, 202);
}
