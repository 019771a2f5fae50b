//! The Cassandra/Scylla node freezes (SIGSTOP) while synchronous calls flow, then comes back
//! (SIGCONT): calls answer 503 quickly instead of hanging, nothing acknowledged is lost, no
//! event is counted twice, and Weir carries on by itself once the node is back.
//!
//! Needs the node of `scripts/cassandra.sh` (`WEIR_TEST_CASSANDRA`, `WEIR_TEST_CASSANDRA_PID`).
//! It freezes that node, so it lives in a test binary of its own (cargo runs test binaries one
//! after another) with a single test.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{now_ms, Server};
use serde_json::{json, Value};

/// Sends SIGCONT to the node when dropped, whatever happened in between.
struct Frozen(String);

impl Frozen {
    fn freeze(pid: &str) -> Self {
        signal("-STOP", pid);
        Frozen(pid.to_string())
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal("-CONT", &self.0);
    }
}

fn signal(sig: &str, pid: &str) {
    let st = std::process::Command::new("kill")
        .args([sig, pid])
        .status()
        .unwrap();
    assert!(st.success(), "kill {sig} {pid}");
}

fn node() -> (String, String) {
    let why = "the Cassandra outage test needs a node: scripts/test.sh starts one \
               (scripts/cassandra.sh) and exports WEIR_TEST_CASSANDRA and WEIR_TEST_CASSANDRA_PID";
    (
        std::env::var("WEIR_TEST_CASSANDRA").expect(why),
        std::env::var("WEIR_TEST_CASSANDRA_PID").expect(why),
    )
}

#[derive(Default)]
struct Outcomes {
    /// Ids answered 200: durable.
    acked: Vec<String>,
    /// Ids answered 503 with `pending_ids`: applied, written once the node is back.
    pending: Vec<String>,
    /// Calls answered 503 without applying anything.
    refused: u64,
    /// The slowest answer of any call.
    slowest: Duration,
    /// Answers other than 200 and 503.
    other: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_node_gives_quick_503s_and_loses_nothing() {
    let (nodes, pid) = node();
    let dir = tempfile::tempdir().unwrap();
    let keyspace = format!("weir_outage_{}", std::process::id());
    let args = [
        "--storage",
        "cassandra",
        "--cassandra-nodes",
        &nodes,
        "--cassandra-keyspace",
        &keyspace,
    ];
    let env = [
        ("WEIR_DURABLE_TIMEOUT", "2s"),
        ("WEIR_CASSANDRA__REQUEST_TIMEOUT_MS", "1000"),
    ];
    let mut server = Server::start_on_with(dir.path(), &args, &env).await;
    let (st, body) = server
        .statements("CREATE QUERY per_id AS SELECT count(*) AS n FROM tick GROUP BY id")
        .await;
    assert_eq!(st, 200, "{body}");

    let ts = now_ms() - 10_000;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let (client, url, stop) = (server.client().clone(), server.url.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Outcomes::default();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                i += 1;
                let id = format!("{worker}-{i}");
                let (path, body) = if i % 2 == 0 {
                    ("/api/add_and_check", json!({"type":"tick","ts":ts,"id":id}))
                } else {
                    (
                        "/api/events?wait=durable",
                        json!({"type":"tick","ts":ts,"id":id}),
                    )
                };
                let started = Instant::now();
                let r = client
                    .post(format!("{url}{path}"))
                    .json(&body)
                    .timeout(Duration::from_secs(60))
                    .send()
                    .await
                    .expect("the server answers");
                let status = r.status().as_u16();
                let answer: Value = r.json().await.unwrap_or(Value::Null);
                out.slowest = out.slowest.max(started.elapsed());
                match status {
                    200 => out.acked.push(id),
                    503 if answer.get("pending_ids").is_some() => out.pending.push(id),
                    503 => {
                        out.refused += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    _ => out.other.push(format!("{status} {answer}")),
                }
            }
            out
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    {
        let _frozen = Frozen::freeze(&pid);
        tokio::time::sleep(Duration::from_secs(8)).await;
    }
    // The node is back: Weir must carry on by itself.
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut all = Outcomes::default();
    let mut acked_after = 0;
    for t in tasks {
        let o = t.await.unwrap();
        acked_after += o.acked.len();
        all.acked.extend(o.acked);
        all.pending.extend(o.pending);
        all.refused += o.refused;
        all.slowest = all.slowest.max(o.slowest);
        all.other.extend(o.other);
    }
    eprintln!(
        "acknowledged {}, 503 pending {}, 503 refused {}, slowest answer {:?}",
        all.acked.len(),
        all.pending.len(),
        all.refused,
        all.slowest
    );
    assert!(all.other.is_empty(), "unexpected answers: {:?}", all.other);
    assert!(
        !all.pending.is_empty() || all.refused > 0,
        "the outage was seen by callers as 503s"
    );
    // A frozen node answers nothing; the calls must not wait for it.
    assert!(
        all.slowest < Duration::from_secs(6),
        "a call waited {:?} during the outage",
        all.slowest
    );
    assert!(acked_after > 0);

    // Every acknowledged and every pending event is counted exactly once, before and after a
    // kill -9: pending ones were written when the node came back.
    let expect: HashSet<String> = all.acked.iter().chain(&all.pending).cloned().collect();
    let counted = |res: &Value| -> HashSet<String> {
        let rows = res["rows"].as_array().expect("rows");
        for r in rows {
            assert_eq!(r["values"]["n"], 1, "no event counted twice: {r}");
        }
        rows.iter()
            .map(|r| r["key"]["id"].as_str().unwrap().to_string())
            .collect()
    };
    // Wait until the log has caught up (pending writes go out once the node is back).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, res) = server.get("/api/queries/per_id/result").await;
        if counted(&res) == expect || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Something durable after the outage proves the log is writing again.
    let (st, body) = server
        .post(
            "/api/events?wait=durable",
            &json!({"type":"tick","ts":ts,"id":"after"}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    server.kill9();
    server.restart().await;
    let (_, res) = server.get("/api/queries/per_id/result").await;
    let mut seen = counted(&res);
    assert!(seen.remove("after"), "the event written after the outage");
    let lost: Vec<_> = expect.difference(&seen).collect();
    let extra: Vec<_> = seen.difference(&expect).collect();
    assert!(
        lost.is_empty(),
        "acknowledged or pending but lost: {lost:?}"
    );
    assert!(extra.is_empty(), "refused but counted: {extra:?}");
}
