//! Group commit: concurrent submitters share fsyncs, everyone gets a receipt, and what was
//! acknowledged is there after reopening.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Map;
use weir_core::Event;
use weir_storage::group_commit::Health;
use weir_storage::{
    CatalogKind, EmbeddedStore, EventIter, EventPage, EventQuery, GroupCommit, LogRecord,
    MetaPrune, RangeQuery, RecordIter, Result, StateIter, StateKeyWrite, Storage, StorageError,
};

/// Wraps a store and counts `append` and `sync` calls; can be told to fail appends
/// (`fail`: 0 never, 1 transiently, 2 for good), counting the failed attempts.
struct Counting {
    inner: EmbeddedStore,
    appends: AtomicU64,
    syncs: AtomicU64,
    fail: std::sync::atomic::AtomicU8,
    failed: AtomicU64,
}

impl Storage for Counting {
    fn append(&self, records: &[LogRecord], meta: &[(String, Vec<u8>)]) -> Result<()> {
        let fail = self.fail.load(Ordering::SeqCst);
        if fail > 0 {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(StorageError::Backend {
                backend: "embedded",
                message: "disk on fire".into(),
                transient: fail == 1,
            });
        }
        self.appends.fetch_add(1, Ordering::SeqCst);
        self.inner.append(records, meta)
    }
    fn sync(&self) -> Result<()> {
        // Make the fsync slow enough that submitters pile up behind it, as on a real disk.
        std::thread::sleep(std::time::Duration::from_millis(2));
        self.syncs.fetch_add(1, Ordering::SeqCst);
        self.inner.sync()
    }
    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.meta_get(key)
    }
    fn meta_put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.inner.meta_put(key, value)
    }
    fn meta_cas(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool> {
        self.inner.meta_cas(key, expected, value)
    }
    fn meta_prune(&self, prefix: &str, remove: &dyn Fn(&[u8]) -> bool) -> Result<MetaPrune> {
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
    fn catalog_put(&self, kind: CatalogKind, name: &str, text: &str) -> Result<()> {
        self.inner.catalog_put(kind, name, text)
    }
    fn catalog_delete(&self, kind: CatalogKind, name: &str) -> Result<bool> {
        self.inner.catalog_delete(kind, name)
    }
    fn catalog_list(&self, kind: CatalogKind) -> Result<Vec<(String, String)>> {
        self.inner.catalog_list(kind)
    }
    fn state_write(&self, scope: &str, part: u32, keys: &[StateKeyWrite]) -> Result<()> {
        self.inner.state_write(scope, part, keys)
    }
    fn state_read(&self, scope: &str, part: u32) -> Result<StateIter<'_>> {
        self.inner.state_read(scope, part)
    }
    fn state_drop(&self, scope: &str, parts: u32) -> Result<()> {
        self.inner.state_drop(scope, parts)
    }
    fn record_decision(&self, seq: u64, json: &[u8]) -> Result<()> {
        self.inner.record_decision(seq, json)
    }
    fn recent_decisions(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        self.inner.recent_decisions(limit)
    }
}

fn counting(dir: &std::path::Path) -> Arc<Counting> {
    Arc::new(Counting {
        inner: EmbeddedStore::open(dir, &Default::default()).unwrap(),
        appends: AtomicU64::new(0),
        syncs: AtomicU64::new(0),
        fail: Default::default(),
        failed: AtomicU64::new(0),
    })
}

fn rec(seq: u64) -> LogRecord {
    let mut fields = Map::new();
    fields.insert("n".into(), seq.into());
    LogRecord {
        seq,
        event: Event::new("t", 1_000 + seq as i64, fields),
        denied: false,
    }
}

const THREADS: u64 = 16;
const PER_THREAD: u64 = 40;

#[test]
fn concurrent_submitters_share_fsyncs_and_all_get_receipts() {
    let dir = tempfile::tempdir().unwrap();
    let store = counting(dir.path());
    let gc = Arc::new(GroupCommit::start(store.clone(), true));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let gc = gc.clone();
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let seq = 1 + t * PER_THREAD + i;
                    let meta = vec![(format!("input/{t}"), seq.to_be_bytes().to_vec())];
                    gc.submit(vec![rec(seq)], meta).wait_blocking().unwrap();
                    // Acknowledged means written: this input's position is ours (or later).
                    let pos = store.meta_get(&format!("input/{t}")).unwrap().unwrap();
                    assert_eq!(pos, seq.to_be_bytes().to_vec());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let submissions = THREADS * PER_THREAD;
    let syncs = store.syncs.load(Ordering::SeqCst);
    let stats = gc.stats();
    println!("{submissions} submissions, {syncs} fsyncs, stats {stats:?}");
    assert_eq!(stats.submissions, submissions);
    assert_eq!(stats.records, submissions);
    assert_eq!(stats.syncs, syncs);
    assert_eq!(store.appends.load(Ordering::SeqCst), stats.groups);
    assert!(syncs >= 1);
    assert!(
        syncs < submissions / 2,
        "{syncs} fsyncs for {submissions} concurrent submissions: not grouped"
    );
    let seqs: Vec<u64> = store.scan_seq(0).unwrap().map(|r| r.unwrap().seq).collect();
    assert_eq!(seqs, (1..=submissions).collect::<Vec<_>>());
    for t in 0..THREADS {
        let last = (t + 1) * PER_THREAD;
        assert_eq!(
            store.meta_get(&format!("input/{t}")).unwrap(),
            Some(last.to_be_bytes().to_vec()),
            "the last position of each input wins"
        );
    }
}

#[test]
fn receipts_can_be_awaited() {
    let dir = tempfile::tempdir().unwrap();
    let store = counting(dir.path());
    let gc = GroupCommit::start(store.clone(), true);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let a = gc.submit(vec![rec(1), rec(2)], vec![]);
        let b = gc.submit(vec![rec(3)], vec![("k".into(), b"v".to_vec())]);
        a.await.unwrap();
        b.await.unwrap();
    });
    assert_eq!(store.last_seq().unwrap(), 3);
    assert_eq!(store.meta_get("k").unwrap(), Some(b"v".to_vec()));
}

#[test]
fn non_durable_mode_never_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let store = counting(dir.path());
    let gc = GroupCommit::start(store.clone(), false);
    for seq in 1..=20 {
        gc.submit(vec![rec(seq)], vec![]).wait_blocking().unwrap();
    }
    assert_eq!(store.syncs.load(Ordering::SeqCst), 0);
    assert_eq!(gc.stats().syncs, 0);
    assert_eq!(store.last_seq().unwrap(), 20);
}

/// Wait (polling, no time limit asserted) until `cond` holds.
fn eventually(mut cond: impl FnMut() -> bool) {
    while !cond() {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

#[test]
fn a_transient_failure_is_retried_with_the_same_records_until_it_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let store = counting(dir.path());
    store.fail.store(1, Ordering::SeqCst);
    let gc = GroupCommit::start(store.clone(), true);
    let receipts: Vec<_> = (1..=10).map(|s| gc.submit(vec![rec(s)], vec![])).collect();
    // The writer keeps retrying and says so; nothing is written meanwhile.
    eventually(|| store.failed.load(Ordering::SeqCst) >= 3);
    assert_eq!(gc.health(), Health::Retrying);
    assert!(gc.health().check().unwrap_err().is_transient());
    assert_eq!(store.last_seq().unwrap(), 0);
    store.fail.store(0, Ordering::SeqCst);
    for r in receipts {
        r.wait_blocking().unwrap();
    }
    assert_eq!(gc.health(), Health::Ok);
    assert!(gc.stats().retries >= 3);
    let seqs: Vec<u64> = store.scan_seq(0).unwrap().map(|r| r.unwrap().seq).collect();
    assert_eq!(
        seqs,
        (1..=10).collect::<Vec<_>>(),
        "each record written once"
    );
}

#[test]
fn a_permanent_failure_fails_its_group_and_every_later_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = counting(dir.path());
    store.fail.store(2, Ordering::SeqCst);
    let gc = GroupCommit::start(store.clone(), true);
    let receipts: Vec<_> = (1..=10).map(|s| gc.submit(vec![rec(s)], vec![])).collect();
    for r in receipts {
        let err = r.wait_blocking().unwrap_err();
        assert!(!err.is_transient(), "{err}");
    }
    assert!(matches!(gc.health(), Health::Failed(why) if why.contains("disk on fire")));
    // The store works again, but the writer stays stopped: the engine holds events the log
    // does not, so nothing more may be acknowledged before a restart.
    store.fail.store(0, Ordering::SeqCst);
    let err = gc
        .submit(vec![rec(11)], vec![])
        .wait_blocking()
        .unwrap_err();
    assert!(err.to_string().contains("restart"), "{err}");
    assert_eq!(store.syncs.load(Ordering::SeqCst), 0);
    assert_eq!(store.last_seq().unwrap(), 0);
}

#[test]
fn shutdown_gives_up_a_retrying_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = counting(dir.path());
    store.fail.store(1, Ordering::SeqCst);
    let gc = GroupCommit::start(store.clone(), true);
    let r = gc.submit(vec![rec(1)], vec![]);
    eventually(|| store.failed.load(Ordering::SeqCst) >= 1);
    gc.shutdown();
    assert!(r.wait_blocking().unwrap_err().is_transient());
}

#[test]
fn shutdown_writes_what_was_queued_and_reopen_recovers_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store: Arc<dyn Storage> =
            Arc::new(EmbeddedStore::open(dir.path(), &Default::default()).unwrap());
        let gc = GroupCommit::start(store, true);
        let receipts: Vec<_> = (0..50)
            .map(|i| {
                let recs = (1..=100).map(|j| rec(i * 100 + j)).collect();
                gc.submit(recs, vec![("pos".into(), i.to_be_bytes().to_vec())])
            })
            .collect();
        gc.shutdown();
        for r in receipts {
            r.wait_blocking().unwrap();
        }
    }
    let store = EmbeddedStore::open(dir.path(), &Default::default()).unwrap();
    assert_eq!(store.last_seq().unwrap(), 5000);
    assert_eq!(store.scan_seq(0).unwrap().count(), 5000);
    assert_eq!(
        store.meta_get("pos").unwrap(),
        Some(49u64.to_be_bytes().to_vec())
    );
}
