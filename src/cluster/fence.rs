//! A cell writes its keyspace only while its lease is surely its node's.
//!
//! A node cut off from the store keeps its cells in memory, and their writers keep retrying
//! what they could not write. Once the lease's term has passed another node may own the
//! partition and be writing the same keyspace; a retry that got through then (the network
//! mended) would put a stale owner's records among the new owner's. So every write of a cell
//! goes through [`Fenced`], which refuses it for good once the term has passed: the cell's
//! log stops, the cell is given up, and the partition is reopened from the store if this node
//! is given it again.
//!
//! What this rests on, like any lease: a write sent before the term lands before the lease
//! itself ends (the term is a fifth of the lease short of it), and the nodes' clocks agree to
//! within that margin.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use weir_core::{Clock, Millis};
use weir_storage::{
    CatalogKind, EventIter, EventPage, EventQuery, LogRecord, MetaPrune, RangeQuery, RecordIter,
    Result, StateIter, StateKeyWrite, Storage, StorageError,
};

/// A cell's view of its partition's store: reads pass, writes only until `until` (unix ms).
pub struct Fenced {
    inner: Arc<dyn Storage>,
    until: Arc<AtomicI64>,
    clock: Arc<dyn Clock>,
    partition: i32,
}

impl Fenced {
    /// `inner`, written only while `clock` is before `until`.
    pub fn new(
        inner: Arc<dyn Storage>,
        until: Arc<AtomicI64>,
        clock: Arc<dyn Clock>,
        partition: i32,
    ) -> Self {
        Fenced {
            inner,
            until,
            clock,
            partition,
        }
    }

    fn may_write(&self) -> Result<()> {
        if self.clock.now_ms() < self.until.load(Ordering::SeqCst) {
            return Ok(());
        }
        metrics::counter!("weir_cluster_fenced_writes_total").increment(1);
        Err(StorageError::Backend {
            backend: "cassandra",
            message: format!(
                "this node's lease of partition {} has lapsed: not writing its keyspace (another node may own it now)",
                self.partition
            ),
            transient: false,
        })
    }
}

impl Storage for Fenced {
    fn append(&self, records: &[LogRecord], meta: &[(String, Vec<u8>)]) -> Result<()> {
        self.may_write()?;
        self.inner.append(records, meta)
    }

    fn sync(&self) -> Result<()> {
        self.inner.sync()
    }

    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.meta_get(key)
    }

    fn meta_put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.may_write()?;
        self.inner.meta_put(key, value)
    }

    fn meta_cas(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool> {
        self.may_write()?;
        self.inner.meta_cas(key, expected, value)
    }

    fn meta_prune(&self, prefix: &str, remove: &dyn Fn(&[u8]) -> bool) -> Result<MetaPrune> {
        self.may_write()?;
        self.inner.meta_prune(prefix, remove)
    }

    fn meta_scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        self.inner.meta_scan(prefix, after, limit)
    }

    fn last_seq(&self) -> Result<u64> {
        self.inner.last_seq()
    }

    fn scan_seq(&self, after_seq: u64) -> Result<RecordIter<'_>> {
        self.inner.scan_seq(after_seq)
    }

    fn scan(&self, q: &EventQuery) -> Result<EventPage> {
        self.inner.scan(q)
    }

    fn scan_range(&self, q: &RangeQuery) -> Result<EventIter<'_>> {
        self.inner.scan_range(q)
    }

    fn newest_event_ts(
        &self,
        account: &str,
        project: &str,
        types: &[String],
    ) -> Result<Option<Millis>> {
        self.inner.newest_event_ts(account, project, types)
    }

    fn catalog_put(&self, kind: CatalogKind, name: &str, text: &str) -> Result<()> {
        self.may_write()?;
        self.inner.catalog_put(kind, name, text)
    }

    fn catalog_delete(&self, kind: CatalogKind, name: &str) -> Result<bool> {
        self.may_write()?;
        self.inner.catalog_delete(kind, name)
    }

    fn catalog_list(&self, kind: CatalogKind) -> Result<Vec<(String, String)>> {
        self.inner.catalog_list(kind)
    }

    fn state_write(&self, scope: &str, part: u32, keys: &[StateKeyWrite]) -> Result<()> {
        self.may_write()?;
        self.inner.state_write(scope, part, keys)
    }

    fn state_read(&self, scope: &str, part: u32) -> Result<StateIter<'_>> {
        self.inner.state_read(scope, part)
    }

    fn state_drop(&self, scope: &str, parts: u32) -> Result<()> {
        self.may_write()?;
        self.inner.state_drop(scope, parts)
    }

    fn record_decision(&self, seq: u64, json: &[u8]) -> Result<()> {
        self.may_write()?;
        self.inner.record_decision(seq, json)
    }

    fn recent_decisions(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        self.inner.recent_decisions(limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::ManualClock;

    #[test]
    fn writes_pass_until_the_term_and_fail_for_good_after() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn Storage> =
            Arc::new(weir_storage::EmbeddedStore::open(dir.path(), &Default::default()).unwrap());
        let clock = Arc::new(ManualClock::new(1_000));
        let until = Arc::new(AtomicI64::new(2_000));
        let f = Fenced::new(inner.clone(), until.clone(), clock.clone(), 3);
        f.meta_put("k", b"1").unwrap();
        assert_eq!(f.meta_get("k").unwrap().as_deref(), Some(&b"1"[..]));
        clock.set(2_000);
        let e = f.meta_put("k", b"2").unwrap_err();
        assert!(
            !e.is_transient(),
            "a lapsed lease is no transient failure: {e}"
        );
        assert!(e.to_string().contains("partition 3"), "{e}");
        // Reads still pass; nothing was written.
        assert_eq!(f.meta_get("k").unwrap().as_deref(), Some(&b"1"[..]));
        // A renewal moves the term on.
        until.store(3_000, Ordering::SeqCst);
        f.meta_put("k", b"3").unwrap();
        assert_eq!(inner.meta_get("k").unwrap().as_deref(), Some(&b"3"[..]));
    }
}
