//! The language through the API: the event type in queries, the one-shot select over stored
//! events, errors with line and column wherever they are found, and the seed's query over
//! a query answering like the sliding query it means.

mod common;

use common::{now_ms, Server};
use serde_json::{json, Value};

/// A minute-aligned time an hour ago.
fn base() -> i64 {
    (now_ms() - 3_600_000) / 60_000 * 60_000
}

async fn post_events(s: &Server, events: Vec<Value>) {
    let (st, body) = s
        .post("/api/events?wait=durable", &json!({ "events": events }))
        .await;
    assert_eq!(st, 200, "{body}");
}

#[tokio::test]
async fn the_event_type_is_usable_in_select_where_and_group_by() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (st, body) = s
        .statements(
            "CREATE QUERY per_type AS SELECT type, count(*) AS n FROM events GROUP BY type;
             CREATE QUERY clicks AS SELECT count(*) AS n FROM events WHERE type = 'click';",
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let t = base();
    post_events(
        &s,
        vec![
            json!({"type": "click", "ts": t}),
            json!({"type": "click", "ts": t + 1}),
            json!({"type": "view", "ts": t + 2}),
        ],
    )
    .await;
    let (_, res) = s.get("/api/queries/per_type/result").await;
    let mut rows: Vec<(Value, Value, Value)> = res["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"]["type"].clone(),
                r["values"]["type"].clone(),
                r["values"]["n"].clone(),
            )
        })
        .collect();
    rows.sort_by_key(|r| r.0.to_string());
    assert_eq!(
        rows,
        vec![
            (json!("click"), json!("click"), json!(2)),
            (json!("view"), json!("view"), json!(1))
        ],
        "{res}"
    );
    let (_, res) = s.get("/api/queries/clicks/result").await;
    assert_eq!(res["rows"][0]["values"]["n"], 2, "{res}");
    // The same as a one-shot query.
    let (st, body) = s
        .statements("SELECT type, count(*) AS n FROM events GROUP BY type")
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        body["results"][0]["rows"].as_array().unwrap().len(),
        2,
        "{body}"
    );
}

#[tokio::test]
async fn a_one_shot_select_returns_the_matching_stored_events() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let t = base();
    let events: Vec<Value> = (0..10)
        .map(|i| json!({"type": "neworder", "ts": t + i, "amount": i * 30, "seller": format!("s{}", i % 2)}))
        .chain([json!({"type": "other", "ts": t, "amount": 1000})])
        .collect();
    post_events(&s, events).await;
    // The example of docs/query-language.md.
    let (st, body) = s
        .statements("SELECT * FROM neworder WHERE amount > 100 LIMIT 3;")
        .await;
    assert_eq!(st, 200, "{body}");
    let rows = body["results"][0]["rows"].as_array().unwrap();
    let amounts: Vec<&Value> = rows.iter().map(|r| &r["values"]["amount"]).collect();
    assert_eq!(amounts, [&json!(120), &json!(150), &json!(180)], "{body}");
    assert!(rows
        .iter()
        .all(|r| r["type"] == "neworder" && r["event_id"].is_u64()));
    assert_eq!(rows[0]["values"]["seller"], "s0");
    assert_eq!(rows[0]["ts"], t + 4);
    // Expressions over fields, every match without LIMIT.
    let (st, body) = s
        .statements(
            "SELECT amount * 2 AS double FROM neworder WHERE seller = 's1' AND amount >= 90",
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let doubles: Vec<i64> = body["results"][0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["values"]["double"].as_i64().unwrap())
        .collect();
    assert_eq!(doubles, [180, 300, 420, 540], "{body}");
}

#[tokio::test]
async fn errors_found_while_compiling_carry_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    // `SELECT *` over events is valid text but no continuous query: it was refused by the
    // engine alone, without a position.
    let (st, body) = s
        .statements(
            "CREATE QUERY a AS SELECT count(*) AS n FROM t;\nCREATE QUERY q AS SELECT * FROM t",
        )
        .await;
    assert_eq!(st, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("SELECT *"),
        "{body}"
    );
    assert_eq!(
        (body["line"].as_u64(), body["column"].as_u64()),
        (Some(2), Some(19)),
        "{body}"
    );
    let (_, list) = s.get("/api/queries").await;
    assert!(
        list["queries"].as_array().unwrap().is_empty(),
        "nothing applied: {list}"
    );
}

#[tokio::test]
async fn seed_example_one_answers_like_example_three() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (st, body) = s
        .statements(
            "series@5min = select start(time), symbol, price from raw group by timeseries(time, 5min), symbol
             last30min@5min = select * from series_5min(30min)
             direct = select start(time), symbol, price from raw group by timeseries(time,5min, 30min), symbol",
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let t0 = (now_ms() - 3 * 3_600_000) / 300_000 * 300_000;
    let events: Vec<Value> = (0..60)
        .map(|i| json!({"type": "raw", "ts": t0 + i * 170_000, "symbol": (["a", "b"][i as usize % 2]), "price": 100 + i}))
        .collect();
    post_events(&s, events).await;
    let last = t0 + 59 * 170_000;
    for q in [
        format!("at={}", last),
        format!("at={}", last - 600_000),
        format!("from={}&to={}", last - 3_600_000, last + 1),
    ] {
        let (st, view) = s
            .get(&format!("/api/queries/last30min_5min/result?{q}"))
            .await;
        assert_eq!(st, 200, "{view}");
        let (_, direct) = s.get(&format!("/api/queries/direct/result?{q}")).await;
        assert!(!view["rows"].as_array().unwrap().is_empty(), "{q}: {view}");
        assert_eq!(view, direct, "{q}");
        assert!(view["rows"][0]["window_start"].is_i64() && view["rows"][0]["window_end"].is_i64());
    }
    // One row per key at `at`.
    let (_, view) = s
        .get(&format!("/api/queries/last30min_5min/result?at={last}"))
        .await;
    assert_eq!(view["rows"].as_array().unwrap().len(), 2, "{view}");
}
