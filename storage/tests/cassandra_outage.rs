//! A frozen node fails calls fast, and the same store works again once it is back.
//!
//! This freezes the shared test node (SIGSTOP to `WEIR_TEST_CASSANDRA_PID`), so it must run
//! alone: after the other test binaries, with `--test-threads=1`. The node is always resumed,
//! by a drop guard, even when an assertion fails.

#![cfg(feature = "cassandra")]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use weir_core::Event;
use weir_storage::{LogRecord, Storage};

/// Resumes the node when dropped.
struct Frozen(String);

fn signal(sig: &str, pid: &str) {
    let ok = Command::new("kill")
        .args([sig, pid])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill {sig} {pid} failed");
}

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

fn batch(seqs: std::ops::RangeInclusive<u64>) -> Vec<LogRecord> {
    seqs.map(|seq| {
        let fields = json!({"i": seq});
        let mut e = Event::new(
            "a",
            1_700_000_000_000 + seq as i64,
            fields.as_object().unwrap().clone(),
        );
        e.account = "acme".into();
        e.project = "p".into();
        LogRecord {
            seq,
            event: e,
            denied: false,
        }
    })
    .collect()
}

fn pos(n: u64) -> Vec<(String, Vec<u8>)> {
    vec![("kafka/t/0".into(), n.to_be_bytes().to_vec())]
}

#[test]
fn a_frozen_node_fails_calls_fast_and_the_store_recovers() {
    let pid = std::env::var("WEIR_TEST_CASSANDRA_PID").unwrap_or_default();
    assert!(
        !pid.trim().is_empty(),
        "WEIR_TEST_CASSANDRA_PID is not set: scripts/cassandra.sh starts the node and exports it"
    );
    let ks = common::Keyspace::new();
    let s = ks.connect();
    s.append(&batch(1..=5), &pos(5)).unwrap();

    let timeout = Duration::from_millis(2000);
    let mut cfg = ks.0.clone();
    cfg.request_timeout_ms = timeout.as_millis() as u64;
    let fast = weir_storage::CassandraStore::connect(&cfg).unwrap();
    {
        let _frozen = Frozen::freeze(&pid);
        let started = Instant::now();
        let err = fast.meta_get("kafka/t/0").unwrap_err();
        let took = started.elapsed();
        eprintln!("meta_get on the frozen node failed after {took:?}: {err}");
        assert!(err.is_transient(), "{err}");
        assert!(
            took < timeout + Duration::from_secs(1),
            "meta_get took {took:?}"
        );

        let started = Instant::now();
        let err = fast.append(&batch(6..=8), &pos(8)).unwrap_err();
        let took = started.elapsed();
        eprintln!("append on the frozen node failed after {took:?}: {err}");
        assert!(err.is_transient(), "{err}");
        assert!(
            took < timeout + Duration::from_secs(1),
            "append took {took:?}"
        );
    }

    // Back: the same store reconnects by itself; the writer retries the same batch.
    let deadline = Instant::now() + Duration::from_secs(60);
    let resumed = Instant::now();
    loop {
        match fast.append(&batch(6..=8), &pos(8)) {
            Ok(()) => {
                eprintln!(
                    "the retried append went through {:?} after the resume",
                    resumed.elapsed()
                );
                break;
            }
            Err(e) if e.is_transient() && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(500))
            }
            Err(e) => panic!("the store did not recover: {e}"),
        }
    }
    assert_eq!(fast.last_seq().unwrap(), 8);
    let logged: Vec<u64> = fast.scan_seq(0).unwrap().map(|r| r.unwrap().seq).collect();
    assert_eq!(logged, (1..=8).collect::<Vec<_>>());
    assert_eq!(
        fast.meta_get("kafka/t/0").unwrap(),
        Some(pos(8)[0].1.clone())
    );
    // The store connected before the freeze sees the same.
    assert_eq!(s.last_seq().unwrap(), 8);
}
