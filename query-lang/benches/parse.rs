//! Parse throughput of the query language, in statements per second.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

/// A mix of statements like the ones users write.
const STATEMENTS: &[&str] = &[
    "series@5min = select start(time), symbol, price from raw group by timeseries(time, 5min), symbol",
    "last30min@5min = select * from series_5min(30min)",
    "CREATE RULE seller_orders AS SELECT count(*) AS orders FROM neworder WHERE seller = 'usedcardealer' GROUP BY seller, timeseries(time, 1s, 1min) DENY WHEN orders > 100",
    "CREATE RULE daily_sales AS SELECT sum(amount) AS sales FROM neworder GROUP BY seller, timeseries(time, 1min, 1d) DENY WHEN sales > 10000",
    "SELECT count(distinct user_id) AS users, percentile(latency, 0.99) AS p99, avg(price * qty) FROM events WHERE (path =~ '^/api' OR status IN (500, 502, 503)) AND host IS NOT NULL GROUP BY host, timeseries(time, 10s, 1h) HAVING users > 10 LIMIT 100",
];

fn bench_parse(c: &mut Criterion) {
    let text = STATEMENTS.join(";\n");
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(STATEMENTS.len() as u64));
    g.bench_function("mixed_statements", |b| {
        b.iter(|| weir_query_lang::parse(black_box(&text)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
