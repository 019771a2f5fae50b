//! What the Cassandra tests share: the node from `WEIR_TEST_CASSANDRA` and a keyspace of
//! their own.

#![cfg(feature = "cassandra")]
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use weir_storage::{CassandraConfig, CassandraStore};

/// The node's `host:port` list, or a failure that says how to get one: these tests never
/// pass without a node.
pub fn cassandra_nodes() -> Vec<String> {
    let nodes = std::env::var("WEIR_TEST_CASSANDRA").unwrap_or_default();
    assert!(
        !nodes.trim().is_empty(),
        "WEIR_TEST_CASSANDRA is not set: the Cassandra tests need a real node. scripts/test.sh \
         starts one through scripts/cassandra.sh and exports WEIR_TEST_CASSANDRA=host:port \
         (by hand: `source scripts/cassandra.sh`, then run the tests from that shell)"
    );
    nodes.split(',').map(|s| s.trim().to_string()).collect()
}

/// A fresh keyspace name, unique across test processes sharing the node.
pub fn keyspace() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "weir_t{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The test node with a keyspace of its own.
pub fn cassandra_config() -> CassandraConfig {
    CassandraConfig {
        nodes: cassandra_nodes(),
        keyspace: keyspace(),
        // Schema changes on a busy test node can be slow to settle.
        request_timeout_ms: 10_000,
        ..Default::default()
    }
}

/// Connects to its keyspace (again and again) and drops the keyspace at the end.
pub struct Keyspace(pub CassandraConfig);

impl Keyspace {
    pub fn new() -> Self {
        Self(cassandra_config())
    }

    pub fn connect(&self) -> CassandraStore {
        CassandraStore::connect(&self.0).expect("connect to the test Cassandra node")
    }
}

impl Drop for Keyspace {
    fn drop(&mut self) {
        if let Ok(s) = CassandraStore::connect(&self.0) {
            let _ = s.drop_keyspace();
        }
    }
}
