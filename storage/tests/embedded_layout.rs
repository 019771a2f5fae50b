//! Properties of the embedded backend's on-disk layout: chunked log, clustered type index,
//! type catalogue and the format version check.

use std::sync::Arc;

use serde_json::{json, Map};
use weir_core::Event;
use weir_storage::{
    EmbeddedStore, EventQuery, GroupCommit, LogRecord, RangeQuery, Storage, StorageError,
};

fn rec(seq: u64, kind: &str, ts: i64, denied: bool) -> LogRecord {
    let mut fields = Map::new();
    fields.insert("n".into(), json!(seq));
    fields.insert("nested".into(), json!({"k": [seq, "x", null]}));
    let mut event = Event::new(kind, ts, fields);
    event.session_id = Some(format!("s{}", seq % 3));
    LogRecord { seq, event, denied }
}

fn open(dir: &std::path::Path) -> EmbeddedStore {
    EmbeddedStore::open(dir, &Default::default()).unwrap()
}

fn all_seqs(store: &dyn Storage, after: u64) -> Vec<u64> {
    store
        .scan_seq(after)
        .unwrap()
        .map(|r| r.unwrap().seq)
        .collect()
}

#[test]
fn out_of_order_and_gapped_appends_replay_in_seq_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // One append whose records are out of order and leave gaps that later appends fill,
    // as concurrent submitters through group commit produce.
    let first: Vec<_> = [7u64, 1, 2, 3, 9, 10, 5]
        .iter()
        .map(|&s| rec(s, "a", 100 - s as i64, s == 2))
        .collect();
    store.append(&first, &[]).unwrap();
    store
        .append(&[rec(8, "b", 0, false), rec(4, "a", 0, false)], &[])
        .unwrap();
    store.append(&[rec(6, "b", 50, false)], &[]).unwrap();
    assert_eq!(all_seqs(&store, 0), (1..=10).collect::<Vec<_>>());
    // Starting in the middle of a chunk.
    assert_eq!(all_seqs(&store, 2), (3..=10).collect::<Vec<_>>());
    assert_eq!(all_seqs(&store, 10), Vec::<u64>::new());
    assert_eq!(store.last_seq().unwrap(), 10);
    // Denied records are replayed, flagged.
    let denied: Vec<u64> = store
        .scan_seq(0)
        .unwrap()
        .map(|r| r.unwrap())
        .filter(|r| r.denied)
        .map(|r| r.seq)
        .collect();
    assert_eq!(denied, vec![2]);
}

#[test]
fn long_appends_span_several_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let n = 3 * weir_storage::embedded::CHUNK_RECORDS as u64 + 17;
    let recs: Vec<_> = (1..=n).map(|s| rec(s, "a", s as i64, false)).collect();
    store.append(&recs, &[]).unwrap();
    let back: Vec<LogRecord> = store.scan_seq(0).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(back, recs);
    let from = weir_storage::embedded::CHUNK_RECORDS as u64 + 3;
    assert_eq!(all_seqs(&store, from), (from + 1..=n).collect::<Vec<_>>());
}

#[test]
fn all_types_scans_merge_every_type_including_new_ones_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        let recs: Vec<_> = (1..=30)
            .map(|s| {
                rec(
                    s,
                    ["a", "b", "c"][(s % 3) as usize],
                    (s * 7 % 11) as i64,
                    false,
                )
            })
            .collect();
        store.append(&recs, &[]).unwrap();
        store.sync().unwrap();
    }
    let store = open(dir.path());
    store.append(&[rec(31, "zz", 5, false)], &[]).unwrap();
    let q = RangeQuery {
        account: "default".into(),
        project: "default".into(),
        types: vec![],
        from_ts: 0,
        to_ts: 100,
    };
    let got: Vec<(i64, u64)> = store
        .scan_range(&q)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.event.ts, e.seq))
        .collect();
    let mut want: Vec<(i64, u64)> = (1..=30).map(|s| ((s * 7 % 11) as i64, s)).collect();
    want.push((5, 31));
    want.sort();
    assert_eq!(got, want);
    // Another project sees none of them.
    let other = EventQuery {
        account: "default".into(),
        project: "other".into(),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.scan(&other).unwrap().total, 0);
}

#[test]
fn group_commit_from_many_threads_keeps_the_log_in_seq_order() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Storage> = Arc::new(open(dir.path()));
    let gc = Arc::new(GroupCommit::start(store.clone(), false));
    let next = Arc::new(std::sync::atomic::AtomicU64::new(1));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (gc, next) = (gc.clone(), next.clone());
            std::thread::spawn(move || {
                for _ in 0..50 {
                    // Interleaved seqs: each batch takes three separate ids.
                    let recs: Vec<_> = (0..3)
                        .map(|_| {
                            let s = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            rec(s, "a", s as i64, false)
                        })
                        .collect();
                    gc.submit(recs, vec![]).wait_blocking().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(all_seqs(&*store, 0), (1..=1200).collect::<Vec<_>>());
}

#[test]
fn a_directory_of_another_format_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    {
        // A format-1 directory: fjall partitions but no format stamp.
        let ks = fjall::Config::new(dir.path()).open().unwrap();
        let log = ks
            .open_partition("log", fjall::PartitionCreateOptions::default())
            .unwrap();
        log.insert(1u64.to_be_bytes(), [1u8, 0]).unwrap();
        ks.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    let err = EmbeddedStore::open(dir.path(), &Default::default())
        .err()
        .expect("old format refused");
    assert!(matches!(err, StorageError::Config(_)), "{err}");
    assert!(err.to_string().contains("format 1"), "{err}");

    // A fresh directory is stamped and reopens fine.
    let fresh = tempfile::tempdir().unwrap();
    drop(open(fresh.path()));
    let store = open(fresh.path());
    assert_eq!(store.last_seq().unwrap(), 0);
}

/// A scan longer than a page returns every event in (ts, seq) order, from the snapshot it
/// started on even when events are appended between its pages; and a scan left open does not
/// keep the writer from sealing a memtable (a fjall iterator held across the whole scan
/// would: rotating needs the write lock its read guards hold, so this test hung).
#[test]
fn long_scans_read_pages_and_never_block_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let n = 3 * weir_storage::paged::PAGE as u64 + 17;
    let records: Vec<LogRecord> = (1..=n)
        .map(|s| rec(s, "a", ((s * 7919) % 5000) as i64, false))
        .collect();
    store.append(&records, &[]).unwrap();
    let range = RangeQuery {
        account: "default".into(),
        project: "default".into(),
        types: vec!["a".into()],
        from_ts: i64::MIN,
        to_ts: i64::MAX,
    };
    let mut scan = store.scan_range(&range).unwrap();
    let mut seen = vec![scan.next().unwrap().unwrap()];
    // While the scan is open: an append, and a memtable rotation on another thread.
    store.append(&[rec(n + 1, "a", 0, false)], &[]).unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            store.rotate_memtables_for_test();
            done_tx.send(()).unwrap();
        })
    };
    done_rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the memtable was sealed while a scan was open");
    writer.join().unwrap();
    seen.extend(scan.map(|e| e.unwrap()));
    let mut want: Vec<(i64, u64)> = records.iter().map(|r| (r.event.ts, r.seq)).collect();
    want.sort();
    let got: Vec<(i64, u64)> = seen.iter().map(|e| (e.event.ts, e.seq)).collect();
    assert_eq!(
        got, want,
        "every event once, in order, without the later append"
    );
}
