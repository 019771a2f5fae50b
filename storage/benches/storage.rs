//! Storage benchmarks: durable append throughput through group commit, replay speed of
//! `scan_seq`, backfill speed of `scan_range`, and the record encoding against plain JSON.
//!
//! `cargo bench -p weir-storage --bench storage`

#![allow(missing_docs)] // criterion_group! generates undocumented functions

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;
use weir_core::Event;
use weir_storage::record::{decode_record, encode_record};
use weir_storage::{EmbeddedStore, GroupCommit, LogRecord, RangeQuery, Storage};

fn event(i: u64) -> Event {
    let fields = json!({
        "seller": format!("seller{}", i % 100),
        "user_id": format!("u{}", i % 10_000),
        "amount": (i % 1000) as f64 * 1.25,
        "qty": i % 7,
        "path": "/checkout/confirm",
    });
    let mut e = Event::new(
        "neworder",
        1_700_000_000_000 + i as i64,
        fields.as_object().unwrap().clone(),
    );
    e.session_id = Some(format!("sess{}", i % 500));
    e
}

fn batch(start: u64, n: u64) -> Vec<LogRecord> {
    (start..start + n)
        .map(|seq| LogRecord {
            seq,
            event: event(seq),
            denied: false,
        })
        .collect()
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_group_commit");
    g.sample_size(10);
    for in_flight in [1u64, 8] {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Storage> =
            Arc::new(EmbeddedStore::open(dir.path(), &Default::default()).unwrap());
        let gc = GroupCommit::start(store, true);
        let mut next = 1u64;
        g.throughput(Throughput::Elements(1000 * in_flight));
        g.bench_function(format!("batches_of_1000_x{in_flight}_in_flight"), |b| {
            b.iter(|| {
                let receipts: Vec<_> = (0..in_flight)
                    .map(|_| {
                        let r = gc.submit(batch(next, 1000), vec![]);
                        next += 1000;
                        r
                    })
                    .collect();
                for r in receipts {
                    r.wait_blocking().unwrap();
                }
            })
        });
        println!("fsyncs: {:?}", gc.stats());
    }
    g.finish();
}

fn replay(c: &mut Criterion) {
    const N: u64 = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), &Default::default()).unwrap();
    for start in (1..=N).step_by(10_000) {
        store.append(&batch(start, 10_000), &[]).unwrap();
    }
    store.sync().unwrap();
    let mut g = c.benchmark_group("replay");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N));
    g.bench_function("scan_seq_200k", |b| {
        b.iter(|| {
            let mut n = 0u64;
            for r in store.scan_seq(0).unwrap() {
                black_box(r.unwrap());
                n += 1;
            }
            assert_eq!(n, N);
        })
    });
    let range = RangeQuery {
        account: "default".into(),
        project: "default".into(),
        types: vec!["neworder".into()],
        from_ts: 0,
        to_ts: i64::MAX,
    };
    g.bench_function("scan_range_one_type_200k", |b| {
        b.iter(|| {
            let mut n = 0u64;
            for e in store.scan_range(&range).unwrap() {
                black_box(e.unwrap());
                n += 1;
            }
            assert_eq!(n, N);
        })
    });
    g.finish();
}

fn encoding(c: &mut Criterion) {
    let rec = LogRecord {
        seq: 1,
        event: event(12345),
        denied: false,
    };
    let bin = encode_record(&rec).unwrap();
    let js = serde_json::to_vec(&rec.event).unwrap();
    println!(
        "encoded size: envelope+binary fields {} bytes, json {} bytes",
        bin.len(),
        js.len()
    );
    let mut g = c.benchmark_group("encoding");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_envelope_binary", |b| {
        b.iter(|| encode_record(black_box(&rec)).unwrap())
    });
    g.bench_function("encode_json", |b| {
        b.iter(|| serde_json::to_vec(black_box(&rec.event)).unwrap())
    });
    g.bench_function("decode_envelope_binary", |b| {
        b.iter(|| decode_record(1, black_box(&bin)).unwrap())
    });
    g.bench_function("decode_json", |b| {
        b.iter(|| serde_json::from_slice::<Event>(black_box(&js)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, append, replay, encoding);
criterion_main!(benches);
