//! `kill -9` while synchronous calls are in flight: after a restart on the same data dir every
//! acknowledged event is counted exactly once, and rule state is intact.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{now_ms, Server};
use serde_json::json;

const DSL: &str = "
CREATE QUERY per_id AS SELECT count(*) AS n FROM tick GROUP BY id;
CREATE RULE cap AS SELECT count(*) AS c FROM capped GROUP BY user, timeseries(time, 1s, 1h) DENY WHEN c > 50;
";

async fn crash_and_recover(env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(dir.path(), env).await;
    assert_eq!(server.statements(DSL).await.0, 200);
    let ts = now_ms() - 10_000;
    // Rule state before the crash: 30 of the 50 allowed.
    for _ in 0..30 {
        let (_, d) = server
            .post(
                "/api/add_and_check",
                &json!({"type":"capped","ts":ts,"user":"u"}),
            )
            .await;
        assert_eq!(d["decision"], "allow");
    }
    // A flood of synchronous calls with unique ids, killed mid-way.
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let (client, url) = (server.client().clone(), server.url.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..10_000 {
                let id = format!("{worker}-{i}");
                let (path, body) = if i % 2 == 0 {
                    ("/api/add_and_check", json!({"type":"tick","ts":ts,"id":id}))
                } else {
                    (
                        "/api/events?wait=durable",
                        json!({"events":[{"type":"tick","ts":ts,"id":id}]}),
                    )
                };
                match client.post(format!("{url}{path}")).json(&body).send().await {
                    Ok(r) if r.status().is_success() => acked.push(id),
                    _ => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill9();
    let mut acked = HashSet::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(
        acked.len() > 100,
        "the flood got going before the kill ({} acked)",
        acked.len()
    );
    eprintln!("{} events acknowledged before kill -9", acked.len());

    let s = &mut server;
    s.restart().await;
    let (_, res) = s.get("/api/queries/per_id/result").await;
    let rows = res["rows"].as_array().unwrap();
    let mut seen = HashSet::new();
    for r in rows {
        assert_eq!(r["values"]["n"], 1, "no event counted twice: {r}");
        seen.insert(r["key"]["id"].as_str().unwrap().to_string());
    }
    eprintln!("{} events counted after restart", seen.len());
    let lost: Vec<_> = acked.difference(&seen).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        lost.len(),
        lost.iter().take(5).collect::<Vec<_>>()
    );
    // Rule state survived: 20 more are allowed, then denied.
    let mut allowed = 0;
    for _ in 0..25 {
        let (_, d) = s
            .post(
                "/api/add_and_check",
                &json!({"type":"capped","ts":ts,"user":"u"}),
            )
            .await;
        allowed += (d["decision"] == "allow") as usize;
    }
    assert_eq!(allowed, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_replaying_the_whole_log() {
    crash_and_recover(&[("WEIR_CHECKPOINT_INTERVAL", "1h")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_with_frequent_checkpoints() {
    crash_and_recover(&[("WEIR_CHECKPOINT_INTERVAL", "200ms")]).await;
}
