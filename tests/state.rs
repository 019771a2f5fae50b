//! Query state persisted as key-bucket rows: a restart loads the rows (not a replay of the
//! whole log), answers exactly what the server answered before the kill, and a later flush
//! writes only the keys that changed.

mod common;

use common::{now_ms, Server};
use serde_json::{json, Value};

const DSL: &str = "
CREATE QUERY sliding AS SELECT count(*) AS n, sum(amount) AS s FROM sale GROUP BY seller, timeseries(time, 10s, 60min);
CREATE QUERY series AS SELECT count(*) AS n, min(amount) AS lo, max(amount) AS hi FROM sale GROUP BY seller, timeseries(time, 1min);
";

static AT: std::sync::LazyLock<i64> = std::sync::LazyLock::new(now_ms);

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Both queries read at one fixed time and as series over a fixed range (a read without `at`
/// would follow the wall clock between the two reads being compared).
async fn answers(server: &Server) -> Vec<Value> {
    let at = *AT;
    let from = at - 3 * 3_600_000;
    let to = at + 60_000;
    let mut out = Vec::new();
    for q in ["sliding", "series"] {
        out.push(
            server
                .get(&format!("/api/queries/{q}/result?at={at}"))
                .await
                .1["rows"]
                .clone(),
        );
        let (status, body) = server
            .get(&format!("/api/queries/{q}/result?from={from}&to={to}"))
            .await;
        assert_eq!(status, 200, "{body}");
        out.push(body["rows"].clone());
    }
    out
}

async fn ddl(server: &Server, text: &str) {
    let (status, body) = server.statements(text).await;
    assert_eq!(status, 200, "{text}: {body}");
}

async fn send(server: &Server, events: Vec<Value>) {
    let (status, body) = server
        .post("/api/events?wait=durable", &json!({ "events": events }))
        .await;
    assert!(status == 200 || status == 202, "{status} {body}");
}

#[tokio::test]
async fn restart_loads_the_rows_and_answers_exactly() {
    let dir = tempfile::tempdir().unwrap();
    // No periodic flush: state is flushed by statements only, so the test decides when.
    let mut server = Server::start_with(dir.path(), &[("WEIR_CHECKPOINT_INTERVAL", "1h")]).await;
    ddl(&server, DSL).await;
    let t0 = now_ms() - 30 * 60_000;
    // 500 sellers, in and out of order, over half an hour.
    let events: Vec<Value> = (0..3000)
        .map(|i| {
            let jitter = if i % 7 == 0 { -300_000 } else { 0 };
            json!({"type": "sale", "seller": format!("s{}", i % 500), "amount": (i * 37) % 101,
                   "time": t0 + i * 500 + jitter})
        })
        .collect();
    send(&server, events).await;
    // A statement flushes the state that changed.
    ddl(
        &server,
        "CREATE QUERY other AS SELECT count(*) AS n FROM refund",
    )
    .await;
    let written = metric(
        &server.metrics_text().await,
        "weir_state_rows_written_total",
    );
    assert!(written >= 1000.0, "rows of both queries written: {written}");
    // A tail the flush does not hold: replayed from the log after the restart.
    let tail: Vec<Value> = (0..50)
        .map(|i| json!({"type": "sale", "seller": format!("s{}", i % 10), "amount": 500 + i, "time": t0 + 1_600_000 + i}))
        .collect();
    send(&server, tail).await;
    let before = answers(&server).await;
    assert!(!before[0].as_array().unwrap().is_empty());

    server.kill9();
    server.restart().await;
    let text = server.metrics_text().await;
    let restored = metric(&text, "weir_state_keys_restored");
    assert_eq!(
        restored, 1000.0,
        "500 sellers in each query loaded from rows"
    );
    assert_eq!(
        answers(&server).await,
        before,
        "answers differ after the restart"
    );

    // The next flush writes only what changed: 3 sellers, in both queries.
    let rows_before = metric(&text, "weir_state_rows_written_total");
    let later: Vec<Value> = (0..3)
        .map(|i| json!({"type": "sale", "seller": format!("s{i}"), "amount": 1, "time": t0 + 1_700_000}))
        .collect();
    send(&server, later).await;
    ddl(
        &server,
        "CREATE QUERY other2 AS SELECT count(*) AS n FROM refund",
    )
    .await;
    let rows = metric(
        &server.metrics_text().await,
        "weir_state_rows_written_total",
    ) - rows_before;
    // The replayed tail's 10 sellers and the 3 new events' sellers (s0–s2 among them), each a
    // sentinel and the buckets that changed, in 2 queries.
    assert!(
        rows > 0.0 && rows <= 60.0,
        "only changed keys are written, got {rows} rows"
    );

    // Replacing a query with another shape: the restart serves the new one.
    ddl(&server, "CREATE OR REPLACE QUERY series AS SELECT count(*) AS n FROM sale GROUP BY seller, timeseries(time, 5min)").await;
    let before = answers(&server).await;
    server.kill9();
    server.restart().await;
    assert_eq!(
        answers(&server).await,
        before,
        "answers differ after replace and restart"
    );
    let restored = metric(&server.metrics_text().await, "weir_state_keys_restored");
    assert_eq!(
        restored, 1000.0,
        "the replaced query's rows were loaded, not rebuilt"
    );
}

/// The analytics' keys and stats of every route, read at once.
async fn insights(server: &Server) -> Vec<Value> {
    let mut out = vec![
        server.get("/api/keys").await.1,
        server.get("/api/stats").await.1,
    ];
    for t in ["click", "view", "buy", "page"] {
        out.push(server.get(&format!("/api/keys?type={t}")).await.1);
        out.push(server.get(&format!("/api/stats/{t}")).await.1);
    }
    out
}

#[tokio::test]
async fn analytics_restart_from_rows_per_type() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(dir.path(), &[("WEIR_CHECKPOINT_INTERVAL", "1h")]).await;
    let t0 = now_ms() - 3 * 3_600_000;
    let event = |i: i64, ty: &str| {
        json!({"type": ty, "time": t0 + i * 1_000, "user": format!("u{}", i % 13),
               "item": {"colour": i % 5, "size": if i % 2 == 0 { "s" } else { "m" }}})
    };
    let types = ["click", "view", "buy", "page"];
    send(
        &server,
        (0..2000).map(|i| event(i, types[i as usize % 4])).collect(),
    )
    .await;
    // Events keep coming while the state is flushed: some land between the query's capture
    // and the analytics' snapshot, so the replay starts before the analytics' id and must
    // skip what their rows hold.
    let flood = async {
        for b in 0..40 {
            send(
                &server,
                (0..10).map(|i| event(3000 + b * 10 + i, "page")).collect(),
            )
            .await;
        }
    };
    tokio::join!(
        ddl(&server, "CREATE QUERY q1 AS SELECT count(*) AS n FROM page"),
        flood
    );
    let text = server.metrics_text().await;
    assert_eq!(metric(&text, "weir_insights_types_written_total"), 4.0);
    // A tail after the flush, of three of the types: replayed after the restart.
    let tail = ["click", "view", "page"];
    send(
        &server,
        (2000..2300)
            .map(|i| event(i, tail[i as usize % 3]))
            .collect(),
    )
    .await;
    let before = insights(&server).await;
    assert_eq!(before[1]["total"], 2700, "{}", before[1]);

    server.kill9();
    server.restart().await;
    assert_eq!(
        insights(&server).await,
        before,
        "keys and stats differ from those of the run before the kill"
    );

    // The replayed tail changed three types: the next flush writes those three.
    ddl(
        &server,
        "CREATE QUERY q2 AS SELECT count(*) AS n FROM click",
    )
    .await;
    let text = server.metrics_text().await;
    assert_eq!(metric(&text, "weir_insights_types_written_total"), 3.0);
    // One event of one type: the next flush writes that type's head and one bucket, and
    // the header.
    let (types_before, rows_before) = (
        metric(&text, "weir_insights_types_written_total"),
        metric(&text, "weir_insights_rows_written_total"),
    );
    send(&server, vec![event(2300, "buy")]).await;
    ddl(
        &server,
        "CREATE QUERY q3 AS SELECT count(*) AS n FROM click",
    )
    .await;
    let text = server.metrics_text().await;
    assert_eq!(
        metric(&text, "weir_insights_types_written_total") - types_before,
        1.0
    );
    assert_eq!(
        metric(&text, "weir_insights_rows_written_total") - rows_before,
        3.0
    );
    let before = insights(&server).await;
    server.kill9();
    server.restart().await;
    assert_eq!(insights(&server).await, before);
}
