//! A quick end-to-end throughput run of the embedded backend, for profiling:
//! durable group-commit append of 1000-event batches, then `scan_seq` and `scan_range`.
//!
//! `cargo run --release -p weir-storage --example throughput -- [events] [in_flight]`
//! (set `APPEND_ONLY=1` to stop after the append, `CONSUMER_WORK=1` to do some work per
//! scanned event, as backfill and replay do).

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

/// What the consumer does with each scanned event: nothing, or (with `CONSUMER_WORK` set) a
/// stand-in for engine work: serialising the fields to JSON (a few hundred ns).
fn consume(e: &Event) {
    if std::env::var("CONSUMER_WORK").is_ok_and(|v| v == "1") {
        std::hint::black_box(serde_json::to_vec(&e.fields).expect("json"));
    } else {
        std::hint::black_box(e);
    }
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let in_flight: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EmbeddedStore::open(dir.path(), &Default::default()).expect("open"));
    let durable = std::env::var("DURABLE").map_or(true, |v| v != "0");
    let gc = GroupCommit::start(store.clone(), durable);

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
        "append durable={durable}, {in_flight} in flight: {n} events in {secs:.2}s = {:.0} events/s ({:?})",
        n as f64 / secs,
        gc.stats()
    );
    gc.shutdown();
    println!(
        "data directory: {:.1} MiB",
        dir_bytes(dir.path()) as f64 / 1048576.0
    );
    if std::env::var_os("APPEND_ONLY").is_some() {
        return;
    }

    let t = Instant::now();
    let mut count = 0u64;
    for r in store.scan_seq(0).expect("scan_seq") {
        consume(&r.expect("record").event);
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
            consume(&e.expect("event").event);
            count += 1;
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "scan_range types={types:?}: {count} in {secs:.2}s = {:.0} events/s",
            count as f64 / secs
        );
    }
}
