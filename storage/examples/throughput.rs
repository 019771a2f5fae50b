//! A quick end-to-end throughput run of the embedded backend, for profiling:
//! durable group-commit append of 1000-event batches, then `scan_seq` and `scan_range`.
//!
//! `cargo run --release -p weir-storage --example throughput -- [events] [in_flight]`

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use weir_core::Event;
use weir_storage::{EmbeddedStore, GroupCommit, LogRecord, RangeQuery, Storage};

fn event(i: u64) -> Event {
    let fields = json!({
        "seller": format!("seller{}", i % 100),
        "user_id": format!("u{}", i % 10_000),
        "amount": (i % 1000) as f64 * 1.25,
        "qty": i % 7,
        "path": "/checkout/confirm",
    });
    let kind = ["neworder", "payment", "refund", "view"][(i % 4) as usize];
    let mut e = Event::new(
        kind,
        1_700_000_000_000 + i as i64,
        fields.as_object().expect("object").clone(),
    );
    e.session_id = Some(format!("sess{}", i % 500));
    e
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let in_flight: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EmbeddedStore::open(dir.path(), &Default::default()).expect("open"));
    let gc = GroupCommit::start(store.clone(), true);

    // Events are built before the clock starts: this measures storage, not event building.
    let mut batches: Vec<Vec<LogRecord>> = (0..n.div_ceil(1000))
        .map(|b| {
            (b * 1000 + 1..=b * 1000 + 1000)
                .map(|seq| LogRecord {
                    seq,
                    event: event(seq),
                    denied: false,
                })
                .collect()
        })
        .collect();
    batches.reverse();
    let n = batches.len() as u64 * 1000;
    let t = Instant::now();
    while !batches.is_empty() {
        let receipts: Vec<_> = (0..in_flight)
            .filter_map(|_| batches.pop())
            .map(|b| gc.submit(b, vec![]))
            .collect();
        for r in receipts {
            r.wait_blocking().expect("append");
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "append durable, {in_flight} in flight: {n} events in {secs:.2}s = {:.0} events/s ({:?})",
        n as f64 / secs,
        gc.stats()
    );
    gc.shutdown();
    if std::env::var_os("APPEND_ONLY").is_some() {
        return;
    }

    let t = Instant::now();
    let mut count = 0u64;
    for r in store.scan_seq(0).expect("scan_seq") {
        std::hint::black_box(r.expect("record"));
        count += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "scan_seq: {count} in {secs:.2}s = {:.0} events/s",
        count as f64 / secs
    );

    for types in [vec!["neworder".to_string()], vec![]] {
        let q = RangeQuery {
            account: "default".into(),
            project: "default".into(),
            types: types.clone(),
            from_ts: 0,
            to_ts: i64::MAX,
        };
        let t = Instant::now();
        let mut count = 0u64;
        for e in store.scan_range(&q).expect("scan_range") {
            std::hint::black_box(e.expect("event"));
            count += 1;
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "scan_range types={types:?}: {count} in {secs:.2}s = {:.0} events/s",
            count as f64 / secs
        );
    }
}
