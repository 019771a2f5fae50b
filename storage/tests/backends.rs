//! One test body run against every backend: the embedded store, and Cassandra on the node
//! named by `WEIR_TEST_CASSANDRA` (the Cassandra tests fail, never pass, without one).

mod common;

use std::sync::Arc;

use serde_json::json;
use weir_core::{Event, Millis};
use weir_storage::{CatalogKind, EventQuery, LogRecord, RangeQuery, Storage, StoredEvent};

/// Opens (and re-opens) one backend over the same underlying data.
trait Backend {
    fn open(&self) -> Arc<dyn Storage>;
    /// A second handle on the same data while the first is open, where the backend allows it.
    fn open_again(&self) -> Option<Arc<dyn Storage>> {
        None
    }
}

struct Embedded(tempfile::TempDir);

impl Backend for Embedded {
    fn open(&self) -> Arc<dyn Storage> {
        Arc::new(
            weir_storage::EmbeddedStore::open(self.0.path(), &Default::default())
                .expect("open embedded store"),
        )
    }
}

fn embedded() -> Box<dyn Backend> {
    Box::new(Embedded(tempfile::tempdir().unwrap()))
}

#[cfg(feature = "cassandra")]
impl Backend for common::Keyspace {
    fn open(&self) -> Arc<dyn Storage> {
        Arc::new(self.connect())
    }
    fn open_again(&self) -> Option<Arc<dyn Storage>> {
        Some(self.open())
    }
}

#[cfg(feature = "cassandra")]
fn cassandra() -> Box<dyn Backend> {
    Box::new(common::Keyspace::new())
}

macro_rules! storage_tests {
    ($backend:ident: $($test:ident),* $(,)?) => {
        mod $backend {
            $(
                #[test]
                fn $test() {
                    super::$test(&*super::$backend());
                }
            )*
        }
    };
}

macro_rules! all_backends {
    ($($test:ident),* $(,)?) => {
        storage_tests!(embedded: $($test),*);
        #[cfg(feature = "cassandra")]
        storage_tests!(cassandra: $($test),*);
    };
}

all_backends!(
    scan_matches_a_brute_force_filter,
    paging_boundaries,
    sessions_group_and_filter_by_type,
    denied_events_are_logged_but_never_scanned,
    catalogue_put_list_delete,
    meta_is_written_with_the_append,
    meta_prune_removes_only_what_it_is_told_under_its_prefix,
    meta_scan_pages_a_prefix_in_key_order,
    meta_cas_loses_no_update_between_writers,
    scan_seq_after_reopen,
    decisions_newest_first,
    newest_event_ts_per_types,
);

// ---------------------------------------------------------------------------------------
// Fixtures and the brute-force oracle.

const DAY: Millis = 86_400_000;
const T0: Millis = 1_700_000_000_000;

fn event(account: &str, kind: &str, ts: Millis, session: Option<&str>, i: u64) -> Event {
    let fields = json!({"i": i, "seller": format!("s{}", i % 3), "price": i as f64 * 1.5});
    let mut e = Event::new(kind, ts, fields.as_object().unwrap().clone());
    e.account = account.into();
    e.project = "p".into();
    e.session_id = session.map(str::to_string);
    e
}

/// 60 events over three days: types a/b/c, two accounts, two sessions, repeated timestamps,
/// events appended out of ts order, every 7th one denied.
fn corpus() -> Vec<LogRecord> {
    (1..=60u64)
        .map(|seq| {
            let kind = ["a", "b", "c"][(seq % 3) as usize];
            let account = if seq % 5 == 0 { "other" } else { "acme" };
            // Out of order in time, with collisions: ts repeats every 20 events.
            let ts = T0 + ((seq * 37) % 20) as Millis * (DAY / 8);
            let session = match seq % 4 {
                0 => Some("s1"),
                1 => Some("s2"),
                _ => None,
            };
            LogRecord {
                seq,
                event: event(account, kind, ts, session, seq),
                denied: seq % 7 == 0,
            }
        })
        .collect()
}

fn oracle(all: &[LogRecord], q: &EventQuery) -> (Vec<u64>, u64) {
    let mut hits: Vec<&LogRecord> = all
        .iter()
        .filter(|r| {
            let e = &r.event;
            !r.denied
                && e.account == q.account
                && e.project == q.project
                && (q.types.is_empty() || q.types.contains(&e.kind))
                && (q.session.is_none() || e.session_id == q.session)
                && q.from_ts.is_none_or(|f| e.ts >= f)
                && q.to_ts.is_none_or(|t| e.ts < t)
        })
        .collect();
    hits.sort_by_key(|r| (r.event.ts, r.seq));
    let total = hits.len() as u64;
    let page = hits
        .iter()
        .skip(q.offset as usize)
        .take(q.limit as usize)
        .map(|r| r.seq)
        .collect();
    (page, total)
}

fn query(types: &[&str], from: Option<Millis>, to: Option<Millis>) -> EventQuery {
    EventQuery {
        account: "acme".into(),
        project: "p".into(),
        types: types.iter().map(|s| s.to_string()).collect(),
        session: None,
        from_ts: from,
        to_ts: to,
        offset: 0,
        limit: 1000,
    }
}

fn seqs(events: &[StoredEvent]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

fn loaded(b: &dyn Backend) -> (Arc<dyn Storage>, Vec<LogRecord>) {
    let s = b.open();
    let all = corpus();
    // Two appends, so scans cross batch boundaries.
    s.append(&all[..25], &[]).unwrap();
    s.append(&all[25..], &[]).unwrap();
    (s, all)
}

// ---------------------------------------------------------------------------------------
// The test bodies.

fn scan_matches_a_brute_force_filter(b: &dyn Backend) {
    let (s, all) = loaded(b);
    let mid = T0 + DAY;
    let bounds = [
        (None, None),
        (Some(T0), Some(T0 + 3 * DAY)),
        (Some(mid), None),
        (None, Some(mid)),
        (Some(mid), Some(mid + DAY / 8)), // exactly one ts slot: from inclusive, to exclusive
        (Some(mid), Some(mid)),           // empty range
    ];
    let type_sets: [&[&str]; 5] = [&[], &["a"], &["b", "c"], &["c", "a", "a"], &["zzz"]];
    for (from, to) in bounds {
        for types in type_sets {
            let q = query(types, from, to);
            let page = s.scan(&q).unwrap();
            let (want, total) = oracle(&all, &q);
            assert_eq!(seqs(&page.events), want, "{q:?}");
            assert_eq!(page.total, total, "{q:?}");
            for e in &page.events {
                assert_eq!(
                    e.event,
                    all[e.seq as usize - 1].event,
                    "event {} round trip",
                    e.seq
                );
            }
            if let (Some(from), Some(to)) = (from, to) {
                let r = RangeQuery {
                    account: q.account.clone(),
                    project: q.project.clone(),
                    types: q.types.clone(),
                    from_ts: from,
                    to_ts: to,
                };
                let streamed: Vec<u64> =
                    s.scan_range(&r).unwrap().map(|e| e.unwrap().seq).collect();
                assert_eq!(streamed, want, "scan_range {r:?}");
            }
        }
    }
    // The other account sees only its own events.
    let mut q = query(&[], None, None);
    q.account = "other".into();
    let (want, total) = oracle(&all, &q);
    assert!(total > 0);
    assert_eq!(seqs(&s.scan(&q).unwrap().events), want);
}

fn paging_boundaries(b: &dyn Backend) {
    let (s, all) = loaded(b);
    let base = query(&["a", "b"], None, None);
    let (_, total) = oracle(&all, &base);
    assert!(total > 10, "fixture too small: {total}");
    let mut pages_concat = Vec::new();
    for (offset, limit) in [
        (0, 10),
        (10, 10),
        (20, 10),
        (30, 10),
        (total - 1, 5),
        (total, 5),
        (total + 3, 5),
        (0, 0),
        (0, total),
    ] {
        let q = EventQuery {
            offset,
            limit,
            ..base.clone()
        };
        let page = s.scan(&q).unwrap();
        let (want, t) = oracle(&all, &q);
        assert_eq!(seqs(&page.events), want, "offset {offset} limit {limit}");
        assert_eq!(page.total, t, "total is of all matches, not of the page");
        if limit == 10 {
            pages_concat.extend(seqs(&page.events));
        }
    }
    // Consecutive pages tile the result with no gap or repeat.
    let everything = s
        .scan(&EventQuery {
            limit: 1000,
            ..base
        })
        .unwrap();
    assert_eq!(pages_concat, seqs(&everything.events)[..pages_concat.len()]);
}

fn sessions_group_and_filter_by_type(b: &dyn Backend) {
    let (s, all) = loaded(b);
    for session in ["s1", "s2", "nobody"] {
        for types in [vec![], vec!["a".to_string()], vec!["b".into(), "c".into()]] {
            for (from, to) in [(None, None), (Some(T0 + DAY), Some(T0 + 2 * DAY))] {
                let q = EventQuery {
                    session: Some(session.into()),
                    types: types.clone(),
                    from_ts: from,
                    to_ts: to,
                    ..query(&[], None, None)
                };
                let page = s.scan(&q).unwrap();
                let (want, total) = oracle(&all, &q);
                assert_eq!(seqs(&page.events), want, "{q:?}");
                assert_eq!(page.total, total);
                assert!(page
                    .events
                    .iter()
                    .all(|e| e.event.session_id.as_deref() == Some(session)));
            }
        }
    }
}

fn denied_events_are_logged_but_never_scanned(b: &dyn Backend) {
    let (s, all) = loaded(b);
    let denied: Vec<u64> = all.iter().filter(|r| r.denied).map(|r| r.seq).collect();
    assert!(!denied.is_empty());
    let logged: Vec<LogRecord> = s.scan_seq(0).unwrap().map(Result::unwrap).collect();
    assert_eq!(
        logged, all,
        "the log keeps every record, denied flag included"
    );
    let mut q = query(&[], None, None);
    for account in ["acme", "other"] {
        q.account = account.into();
        let page = s.scan(&q).unwrap();
        assert!(page.events.iter().all(|e| !denied.contains(&e.seq)));
        let streamed: Vec<u64> = s
            .scan_range(&RangeQuery {
                account: account.into(),
                project: "p".into(),
                types: vec![],
                from_ts: Millis::MIN,
                to_ts: Millis::MAX,
            })
            .unwrap()
            .map(|e| e.unwrap().seq)
            .collect();
        assert!(streamed.iter().all(|seq| !denied.contains(seq)));
        assert_eq!(streamed, seqs(&page.events));
    }
}

fn catalogue_put_list_delete(b: &dyn Backend) {
    let s = b.open();
    assert!(s.catalog_list(CatalogKind::Query).unwrap().is_empty());
    s.catalog_put(CatalogKind::Query, "q2", "q2 = select count(*) from b")
        .unwrap();
    s.catalog_put(CatalogKind::Query, "q1", "q1 = select 1 from a")
        .unwrap();
    s.catalog_put(
        CatalogKind::Rule,
        "q1",
        "CREATE RULE q1 ON x DENY WHEN n > 1",
    )
    .unwrap();
    s.catalog_put(CatalogKind::Query, "q1", "q1 = select 2 from a")
        .unwrap();
    assert_eq!(
        s.catalog_list(CatalogKind::Query).unwrap(),
        vec![
            ("q1".to_string(), "q1 = select 2 from a".to_string()),
            ("q2".to_string(), "q2 = select count(*) from b".to_string()),
        ]
    );
    assert!(s.catalog_delete(CatalogKind::Query, "q1").unwrap());
    assert!(!s.catalog_delete(CatalogKind::Query, "q1").unwrap());
    assert_eq!(s.catalog_list(CatalogKind::Query).unwrap().len(), 1);
    assert_eq!(
        s.catalog_list(CatalogKind::Rule).unwrap(),
        vec![(
            "q1".to_string(),
            "CREATE RULE q1 ON x DENY WHEN n > 1".to_string()
        )]
    );
}

fn meta_is_written_with_the_append(b: &dyn Backend) {
    let s = b.open();
    assert_eq!(s.meta_get("kafka/t/3").unwrap(), None);
    let all = corpus();
    s.append(
        &all[..5],
        &[
            ("kafka/t/3".into(), 5u64.to_be_bytes().to_vec()),
            ("amqp/dedupe/x".into(), vec![]),
        ],
    )
    .unwrap();
    assert_eq!(
        s.meta_get("kafka/t/3").unwrap(),
        Some(5u64.to_be_bytes().to_vec())
    );
    assert_eq!(s.meta_get("amqp/dedupe/x").unwrap(), Some(vec![]));
    assert_eq!(s.last_seq().unwrap(), 5);
    s.append(
        &all[5..9],
        &[("kafka/t/3".into(), 9u64.to_be_bytes().to_vec())],
    )
    .unwrap();
    assert_eq!(
        s.meta_get("kafka/t/3").unwrap(),
        Some(9u64.to_be_bytes().to_vec())
    );
    s.meta_put("schema/version", b"1").unwrap();
    assert_eq!(s.meta_get("schema/version").unwrap(), Some(b"1".to_vec()));
    s.sync().unwrap();
    drop(s);
    let s = b.open();
    assert_eq!(
        s.meta_get("kafka/t/3").unwrap(),
        Some(9u64.to_be_bytes().to_vec())
    );
    assert_eq!(s.last_seq().unwrap(), 9);
}

fn meta_prune_removes_only_what_it_is_told_under_its_prefix(b: &dyn Backend) {
    let s = b.open();
    let at = |ms: i64| ms.to_be_bytes().to_vec();
    let mut meta: Vec<(String, Vec<u8>)> = (0..5000i64)
        .map(|i| (format!("amqp/q/m{i}"), at(i)))
        .collect();
    meta.push(("amqp/q2/m1".into(), at(0)));
    meta.push(("kafka/g/t/0".into(), at(0)));
    s.append(&[], &meta).unwrap();
    let older =
        |cut: i64| move |v: &[u8]| v.try_into().map(i64::from_be_bytes).is_ok_and(|t| t < cut);
    let done = s.meta_prune("amqp/q/", &older(4500)).unwrap();
    assert_eq!((done.removed, done.kept), (4500, 500));
    assert_eq!(s.meta_get("amqp/q/m4499").unwrap(), None);
    assert_eq!(s.meta_get("amqp/q/m4500").unwrap(), Some(at(4500)));
    // Other prefixes are untouched, even with the same value.
    assert_eq!(s.meta_get("amqp/q2/m1").unwrap(), Some(at(0)));
    assert_eq!(s.meta_get("kafka/g/t/0").unwrap(), Some(at(0)));
    let again = s.meta_prune("amqp/q/", &older(4500)).unwrap();
    assert_eq!((again.removed, again.kept), (0, 500));
}

fn meta_cas_loses_no_update_between_writers(b: &dyn Backend) {
    let s = b.open();
    let key = "cluster/lease/0";
    assert!(s.meta_cas(key, None, b"a").unwrap(), "absent: written");
    assert!(
        !s.meta_cas(key, None, b"b").unwrap(),
        "present: not written as absent"
    );
    assert!(
        !s.meta_cas(key, Some(b"x"), b"b").unwrap(),
        "another value: not written"
    );
    assert_eq!(s.meta_get(key).unwrap(), Some(b"a".to_vec()));
    assert!(s.meta_cas(key, Some(b"a"), b"b").unwrap());
    assert_eq!(s.meta_get(key).unwrap(), Some(b"b".to_vec()));
    // A counter that writers (threads, over two handles where the backend allows: two
    // sessions, like two nodes) increment by read and compare-and-set: no increment lost.
    let handles = [s.clone(), b.open_again().unwrap_or_else(|| s.clone())];
    let (writers, each) = (4u64, 5u64);
    let tries: u64 = std::thread::scope(|scope| {
        let joins: Vec<_> = (0..writers)
            .map(|w| {
                let h = handles[w as usize % 2].clone();
                scope.spawn(move || {
                    let mut tries = 0;
                    for _ in 0..each {
                        loop {
                            tries += 1;
                            let now = h.meta_get("counter").unwrap();
                            let n = now
                                .as_deref()
                                .map_or(0, |b| u64::from_be_bytes(b.try_into().expect("8 bytes")));
                            if h.meta_cas("counter", now.as_deref(), &(n + 1).to_be_bytes())
                                .unwrap()
                            {
                                break;
                            }
                        }
                    }
                    tries
                })
            })
            .collect();
        joins.into_iter().map(|j| j.join().unwrap()).sum()
    });
    let n = s.meta_get("counter").unwrap().unwrap();
    assert_eq!(
        u64::from_be_bytes(n.try_into().unwrap()),
        writers * each,
        "after {tries} tries"
    );
}

fn meta_scan_pages_a_prefix_in_key_order(b: &dyn Backend) {
    let s = b.open();
    let key = |a: &str, i: u64| format!("alerts/{a}/{i:020}");
    let mut meta: Vec<(String, Vec<u8>)> = (0..25u64)
        .map(|i| (key("acme", i), i.to_be_bytes().to_vec()))
        .collect();
    // Neighbours on both sides of the prefix, which a scan must never return.
    meta.push(("alerts/acma/x".into(), b"before".to_vec()));
    meta.push(("alerts/acme0".into(), b"no slash".to_vec()));
    meta.push(("alerts/acmf/x".into(), b"after".to_vec()));
    s.append(&[], &meta).unwrap();
    s.meta_put(&key("acme", 25), b"put alone").unwrap();

    let prefix = "alerts/acme/";
    let mut got = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s.meta_scan(prefix, after.as_deref(), 7).unwrap();
        assert!(page.len() <= 7);
        if page.is_empty() {
            break;
        }
        after = Some(page.last().unwrap().0.clone());
        got.extend(page);
    }
    let keys: Vec<String> = got.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys, (0..26).map(|i| key("acme", i)).collect::<Vec<_>>());
    assert_eq!(got[3].1, 3u64.to_be_bytes().to_vec());
    assert_eq!(got[25].1, b"put alone".to_vec());
    // A page from the middle, a limit of zero, an empty prefix range.
    let mid = s.meta_scan(prefix, Some(&key("acme", 23)), 100).unwrap();
    assert_eq!(mid.len(), 2);
    assert!(s.meta_scan(prefix, None, 0).unwrap().is_empty());
    assert!(s.meta_scan("alerts/nobody/", None, 10).unwrap().is_empty());
    // Overwriting a key keeps one entry with the new value.
    s.meta_put(&key("acme", 0), b"resolved").unwrap();
    let first = s.meta_scan(prefix, None, 1).unwrap();
    assert_eq!(first, vec![(key("acme", 0), b"resolved".to_vec())]);
    drop(s);
    let s = b.open();
    assert_eq!(s.meta_scan(prefix, None, 100).unwrap().len(), 26);
}

fn scan_seq_after_reopen(b: &dyn Backend) {
    let s = b.open();
    assert_eq!(s.last_seq().unwrap(), 0);
    assert_eq!(s.scan_seq(0).unwrap().count(), 0);
    let all = corpus();
    s.append(&all, &[]).unwrap();
    s.sync().unwrap();
    drop(s);
    let s = b.open();
    assert_eq!(s.last_seq().unwrap(), 60);
    let after: Vec<LogRecord> = s.scan_seq(41).unwrap().map(Result::unwrap).collect();
    assert_eq!(after, all[41..].to_vec());
    assert_eq!(s.scan_seq(60).unwrap().count(), 0);
    assert_eq!(s.scan_seq(u64::MAX).unwrap().count(), 0);
}

fn decisions_newest_first(b: &dyn Backend) {
    let s = b.open();
    assert!(s.recent_decisions(10).unwrap().is_empty());
    for (seq, d) in [(5u64, "allow"), (6, "deny"), (6, "allow"), (9, "deny")] {
        s.record_decision(seq, format!("{{\"decision\":\"{d}\"}}").as_bytes())
            .unwrap();
    }
    let got = s.recent_decisions(3).unwrap();
    assert_eq!(
        got,
        vec![
            (9, br#"{"decision":"deny"}"#.to_vec()),
            (6, br#"{"decision":"allow"}"#.to_vec()),
            (6, br#"{"decision":"deny"}"#.to_vec()),
        ]
    );
    drop(s);
    let s = b.open();
    s.record_decision(10, b"{}").unwrap();
    assert_eq!(s.recent_decisions(2).unwrap()[0], (10, b"{}".to_vec()));
    assert_eq!(s.recent_decisions(2).unwrap()[1].0, 9);
}

fn newest_event_ts_per_types(b: &dyn Backend) {
    let (s, all) = loaded(b);
    let type_sets: [&[&str]; 4] = [&[], &["a"], &["b", "c"], &["zzz"]];
    for types in type_sets {
        let types: Vec<String> = types.iter().map(|t| t.to_string()).collect();
        // Denied events are never indexed, so they do not count.
        let want = all
            .iter()
            .filter(|r| !r.denied && r.event.account == "acme")
            .filter(|r| types.is_empty() || types.contains(&r.event.kind))
            .map(|r| r.event.ts)
            .max();
        assert_eq!(
            s.newest_event_ts("acme", "p", &types).unwrap(),
            want,
            "{types:?}"
        );
    }
    assert_eq!(s.newest_event_ts("nobody", "p", &[]).unwrap(), None);
}
