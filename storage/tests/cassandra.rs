//! What only the Cassandra/Scylla backend has: the repair of an append a crash cut short, the
//! schema version check, calls from inside a tokio runtime, and failures that say they are
//! transient. Runs on the node named by `WEIR_TEST_CASSANDRA` (fails without one).

#![cfg(feature = "cassandra")]

mod common;

use std::time::{Duration, Instant};

use serde_json::json;
use weir_core::{Event, Millis};
use weir_storage::{
    CassandraConfig, CassandraStore, EventQuery, LogRecord, RangeQuery, Storage, StorageError,
};

use common::Keyspace;

const T0: Millis = 1_700_000_000_000;

fn rec(seq: u64, kind: &str, session: Option<&str>) -> LogRecord {
    let fields = json!({"i": seq});
    let mut e = Event::new(
        kind,
        T0 + seq as Millis * 1000,
        fields.as_object().unwrap().clone(),
    );
    e.account = "acme".into();
    e.project = "p".into();
    e.session_id = session.map(str::to_string);
    LogRecord {
        seq,
        event: e,
        denied: false,
    }
}

fn batch(seqs: std::ops::RangeInclusive<u64>, kind: &str) -> Vec<LogRecord> {
    seqs.map(|s| rec(s, kind, Some("sess"))).collect()
}

fn pos(n: u64) -> Vec<(String, Vec<u8>)> {
    vec![("kafka/t/0".into(), n.to_be_bytes().to_vec())]
}

fn all_query(types: &[&str], session: Option<&str>) -> EventQuery {
    EventQuery {
        account: "acme".into(),
        project: "p".into(),
        types: types.iter().map(|t| t.to_string()).collect(),
        session: session.map(str::to_string),
        from_ts: None,
        to_ts: None,
        offset: 0,
        limit: 1000,
    }
}

/// (seq, type) of everything each read path shows.
fn visible(s: &dyn Storage) -> Vec<Vec<(u64, String)>> {
    let logged: Vec<(u64, String)> = s
        .scan_seq(0)
        .unwrap()
        .map(|r| r.map(|r| (r.seq, r.event.kind)).unwrap())
        .collect();
    let page = |q: EventQuery| -> Vec<(u64, String)> {
        let page = s.scan(&q).unwrap();
        assert_eq!(page.total as usize, page.events.len());
        page.events
            .into_iter()
            .map(|e| (e.seq, e.event.kind))
            .collect()
    };
    let by_seq = |mut v: Vec<(u64, String)>| {
        v.sort();
        v
    };
    let ranged: Vec<(u64, String)> = s
        .scan_range(&RangeQuery {
            account: "acme".into(),
            project: "p".into(),
            types: vec![],
            from_ts: Millis::MIN,
            to_ts: Millis::MAX,
        })
        .unwrap()
        .map(|e| e.map(|e| (e.seq, e.event.kind)).unwrap())
        .collect();
    vec![
        logged,
        by_seq(page(all_query(&[], None))),
        by_seq(page(all_query(&["a", "ghost", "new"], None))),
        by_seq(page(all_query(&[], Some("sess")))),
        by_seq(ranged),
    ]
}

fn expect_only(s: &dyn Storage, want: &[(u64, &str)]) {
    let want: Vec<(u64, String)> = want.iter().map(|(q, k)| (*q, k.to_string())).collect();
    for (i, got) in visible(s).into_iter().enumerate() {
        assert_eq!(got, want, "read path {i}");
    }
}

fn seqs_of(kind: &str, seqs: std::ops::RangeInclusive<u64>) -> Vec<(u64, &str)> {
    seqs.map(|s| (s, kind)).collect()
}

#[test]
fn an_append_cut_short_before_its_commit_is_repaired_on_connect() {
    let ks = Keyspace::new();
    let s = ks.connect();
    s.append(&batch(1..=10, "a"), &pos(10)).unwrap();
    // A crash right before the commit: intent, log and index rows written.
    s.append_without_commit(&batch(11..=15, "ghost"), &pos(15))
        .unwrap();
    // Not even this store shows them.
    assert_eq!(s.last_seq().unwrap(), 10);
    expect_only(&s, &seqs_of("a", 1..=10));
    assert_eq!(s.meta_get("kafka/t/0").unwrap(), Some(pos(10)[0].1.clone()));
    assert_eq!(
        s.newest_event_ts("acme", "p", &["ghost".into()]).unwrap(),
        None
    );
    drop(s);

    let s = ks.connect();
    assert_eq!(s.last_seq().unwrap(), 10);
    expect_only(&s, &seqs_of("a", 1..=10));
    assert_eq!(s.meta_get("kafka/t/0").unwrap(), Some(pos(10)[0].1.clone()));
    // Seqs 11..13 used again, then 14..16: only the new events show, with no phantom of the
    // ghosts at 14 and 15 (whose index rows had other keys).
    s.append(&batch(11..=13, "new"), &pos(13)).unwrap();
    let mut want = seqs_of("a", 1..=10);
    want.extend(seqs_of("new", 11..=13));
    expect_only(&s, &want);
    s.append(&batch(14..=16, "new"), &pos(16)).unwrap();
    want.extend(seqs_of("new", 14..=16));
    expect_only(&s, &want);
    assert_eq!(s.last_seq().unwrap(), 16);
    assert_eq!(
        s.newest_event_ts("acme", "p", &["ghost".into()]).unwrap(),
        None
    );
    assert_eq!(
        s.newest_event_ts("acme", "p", &[]).unwrap(),
        Some(T0 + 16_000)
    );
}

#[test]
fn an_append_after_a_failed_one_repairs_it_first() {
    let ks = Keyspace::new();
    let s = ks.connect();
    s.append(&batch(1..=3, "a"), &[]).unwrap();
    s.append_without_commit(&batch(4..=9, "ghost"), &pos(9))
        .unwrap();
    // The writer retries with other events at the same seqs (fewer of them).
    s.append(&batch(4..=5, "new"), &pos(5)).unwrap();
    let mut want = seqs_of("a", 1..=3);
    want.extend(seqs_of("new", 4..=5));
    expect_only(&s, &want);
    assert_eq!(s.last_seq().unwrap(), 5);
    s.append(&batch(6..=9, "a"), &pos(9)).unwrap();
    want.extend(seqs_of("a", 6..=9));
    expect_only(&s, &want);
    drop(s);
    let s = ks.connect();
    expect_only(&s, &want);
    assert_eq!(s.meta_get("kafka/t/0").unwrap(), Some(pos(9)[0].1.clone()));
}

#[test]
fn a_keyspace_of_a_newer_schema_is_refused() {
    let ks = Keyspace::new();
    let s = ks.connect();
    s.set_schema_version(99).unwrap();
    match CassandraStore::connect(&ks.0) {
        Err(StorageError::Config(msg)) => {
            assert!(msg.contains("schema version 99"), "{msg}");
            assert!(msg.contains(&ks.0.keyspace), "{msg}");
        }
        Err(e) => panic!("expected a config error, got {e}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
    // Back to this build's version, so the guard can open it and drop it.
    s.set_schema_version(1).unwrap();
    drop(s);
    ks.connect();
}

#[tokio::test(flavor = "current_thread")]
async fn calls_work_from_inside_a_runtime() {
    let cfg = common::cassandra_config();
    // From a blocking thread of this runtime...
    let store = tokio::task::spawn_blocking(move || {
        let s = CassandraStore::connect(&cfg).unwrap();
        s.append(&batch(1..=2, "a"), &pos(2)).unwrap();
        s
    })
    .await
    .unwrap();
    // ...and straight from the runtime's own thread: no nested block_on, no panic.
    assert_eq!(store.last_seq().unwrap(), 2);
    assert_eq!(
        store.meta_get("kafka/t/0").unwrap(),
        Some(pos(2)[0].1.clone())
    );
    store.append(&batch(3..=3, "a"), &[]).unwrap();
    assert_eq!(store.scan_seq(0).unwrap().count(), 3);
    store.drop_keyspace().unwrap();
    // Dropping the store inside the runtime does not panic either.
    drop(store);
}

#[test]
fn no_node_fails_fast_with_a_transient_cassandra_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = CassandraConfig {
        nodes: vec![format!("127.0.0.1:{port}")],
        keyspace: common::keyspace(),
        connect_timeout_ms: 1000,
        ..Default::default()
    };
    let started = Instant::now();
    let err = CassandraStore::connect(&cfg)
        .err()
        .expect("no node listens there");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(err.is_transient(), "{err}");
    assert!(
        err.to_string().starts_with("cassandra backend error"),
        "{err}"
    );
}

#[test]
fn bad_settings_are_config_errors() {
    let nodes = common::cassandra_nodes();
    for cfg in [
        CassandraConfig {
            keyspace: "no-dashes".into(),
            ..Default::default()
        },
        CassandraConfig {
            username: Some("u".into()),
            ..Default::default()
        },
        CassandraConfig {
            nodes: vec![],
            ..Default::default()
        },
    ] {
        let cfg = CassandraConfig {
            nodes: if cfg.nodes.is_empty() {
                vec![]
            } else {
                nodes.clone()
            },
            ..cfg
        };
        assert!(
            matches!(CassandraStore::connect(&cfg), Err(StorageError::Config(_))),
            "{cfg:?}"
        );
    }
}

/// The test CA's PEM file (scripts/cassandra.sh makes it and the node's certificate).
fn test_ca() -> std::path::PathBuf {
    let ca = std::env::var("WEIR_TEST_CASSANDRA_CA").unwrap_or_default();
    assert!(
        !ca.is_empty(),
        "WEIR_TEST_CASSANDRA_CA is not set: scripts/cassandra.sh makes the node's TLS \
         certificate and exports the CA that signed it"
    );
    ca.into()
}

fn tls_config(server_name: Option<&str>) -> CassandraConfig {
    CassandraConfig {
        tls: Some(weir_storage::CassandraTls {
            ca_file: test_ca(),
            cert_file: None,
            key_file: None,
            server_name: server_name.map(str::to_string),
        }),
        ..common::cassandra_config()
    }
}

#[test]
fn tls_to_the_node_checks_its_certificate() {
    // Checked against the node's address (the certificate names 127.0.0.1), then by name.
    for name in [None, Some("localhost")] {
        let cfg = tls_config(name);
        let s = CassandraStore::connect(&cfg).unwrap_or_else(|e| panic!("TLS {name:?}: {e}"));
        s.append(&batch(1..=3, "a"), &pos(3)).unwrap();
        assert_eq!(s.last_seq().unwrap(), 3);
        s.drop_keyspace().unwrap();
    }
    // A name the certificate does not have is refused.
    let mut cfg = tls_config(Some("elsewhere.invalid"));
    cfg.connect_timeout_ms = 2000;
    let err = CassandraStore::connect(&cfg)
        .err()
        .expect("a wrong name is refused");
    assert!(err.to_string().contains("certificate"), "{err}");
    // A CA file that is not PEM is a config error.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("ca.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let mut cfg = tls_config(None);
    cfg.tls.as_mut().unwrap().ca_file = bad;
    assert!(matches!(
        CassandraStore::connect(&cfg),
        Err(StorageError::Config(_))
    ));
}

#[test]
fn data_centre_settings_and_consistency_reach_the_node() {
    // The test node's snitch puts it in `datacenter1`.
    let ks = Keyspace::new();
    let cfg = CassandraConfig {
        replication: "datacenter1:1".parse().unwrap(),
        local_dc: Some("datacenter1".into()),
        consistency: "local_one".parse().unwrap(),
        ..ks.0.clone()
    };
    let s = CassandraStore::connect(&cfg).unwrap();
    s.append(&batch(1..=2, "a"), &pos(2)).unwrap();
    assert_eq!(s.last_seq().unwrap(), 2);
    drop(s);
    // Two replicas cannot answer on a one-node cluster: every read and write is at the
    // configured level, so connecting (which reads the schema version) fails, transiently.
    let two = CassandraConfig {
        consistency: "TWO".parse().unwrap(),
        ..ks.0.clone()
    };
    let err = CassandraStore::connect(&two)
        .err()
        .expect("TWO on one node");
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("consistency level TWO"), "{err}");
}
