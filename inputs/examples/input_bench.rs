//! Loopback throughput of the inputs (numbers for docs/benchmarks.md).
//!
//! ```sh
//! cargo run --release -p weir-inputs --example input_bench -- udp [RATE] [SECONDS]
//! WEIR_TEST_AMQP=amqp://guest:guest@127.0.0.1:5672/%2f cargo run --release -p weir-inputs --example input_bench -- amqp [N]
//! WEIR_TEST_KAFKA=127.0.0.1:PORT WEIR_TEST_TANSU=tansu cargo run --release -p weir-inputs --example input_bench -- kafka [N]
//! ```
//! The sink is a no-op that answers at once, so this measures the input itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use rdkafka::producer::{FutureProducer, FutureRecord};
use weir_core::EventId;
use weir_inputs::{
    shutdown_channel, AmqpConfig, AmqpSource, BoxFuture, EventSink, InputStats, KafkaConfig,
    KafkaSource, SinkError, Source, SourceBatch, UdpConfig, UdpSource,
};

#[derive(Default)]
struct NullSink(AtomicU64);

impl EventSink for NullSink {
    fn submit(&self, b: SourceBatch) -> BoxFuture<'static, Result<Vec<EventId>, SinkError>> {
        let n = b.events.len() as u64;
        let first = self.0.fetch_add(n, Ordering::Relaxed);
        Box::pin(async move { Ok((first..first + n).collect()) })
    }
    fn position(&self, _: &str) -> BoxFuture<'static, Option<i64>> {
        Box::pin(async { None })
    }
}

fn event(i: u64) -> String {
    format!(
        "{{\"type\":\"order\",\"n\":{i},\"seller\":\"s{}\",\"amount\":12.5}}",
        i % 100
    )
}

async fn wait_for(stats: &InputStats, n: u64, limit: Duration) -> Duration {
    let start = Instant::now();
    while stats.accepted() < n && start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

async fn udp(rate: u64, secs: u64) {
    let src = UdpSource::bind(UdpConfig::new("127.0.0.1:0".parse().unwrap())).unwrap();
    let (addr, buf) = (src.local_addr().unwrap(), src.recv_buffer_bytes().unwrap());
    let stats = src.stats();
    let (stop, shutdown) = shutdown_channel();
    let task = tokio::spawn(src.run(Arc::new(NullSink::default()), shutdown));
    let sent = tokio::task::spawn_blocking(move || {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let total = rate * secs;
        let start = Instant::now();
        for i in 0..total {
            // Pace in steps of 1 ms so the rate holds on average.
            let due = Duration::from_nanos(i * 1_000_000_000 / rate);
            while start.elapsed() < due {
                std::hint::spin_loop();
            }
            let _ = sock.send_to(event(i).as_bytes(), addr);
        }
        (total, start.elapsed())
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    let got = stats.accepted();
    println!(
        "udp: rcvbuf {buf} B, sent {} at {rate}/s in {:.2}s, accepted {got}, loss {:.3}%",
        sent.0,
        sent.1.as_secs_f64(),
        100.0 * (sent.0 - got) as f64 / sent.0 as f64
    );
}

async fn amqp(n: u64) {
    let url = std::env::var("WEIR_TEST_AMQP").expect("WEIR_TEST_AMQP");
    let queue = format!("weir-bench-{}", std::process::id());
    let conn = lapin::Connection::connect(&url, Default::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let opts = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(queue.as_str().into(), opts, Default::default())
        .await
        .unwrap();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let confirms = join_all(chunk.iter().map(|i| {
            let props = lapin::BasicProperties::default().with_message_id(format!("m{i}").into());
            let body = event(*i);
            let ch = ch.clone();
            let q = queue.clone();
            async move {
                ch.basic_publish(
                    "".into(),
                    q.as_str().into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    props,
                )
                .await
                .unwrap()
                .await
                .unwrap()
            }
        }))
        .await;
        assert_eq!(confirms.len(), chunk.len());
    }
    let src = AmqpSource::new(AmqpConfig::new(url, queue.clone())).unwrap();
    let stats = src.stats();
    let (stop, shutdown) = shutdown_channel();
    let task = tokio::spawn(src.run(Arc::new(NullSink::default()), shutdown));
    let took = wait_for(&stats, n, Duration::from_secs(120)).await;
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    let _ = ch
        .queue_delete(queue.as_str().into(), Default::default())
        .await;
    println!(
        "amqp: {} events in {:.2}s = {:.0} events/s (prefetch 500, acked per batch)",
        stats.accepted(),
        took.as_secs_f64(),
        stats.accepted() as f64 / took.as_secs_f64()
    );
}

async fn kafka(n: u64) {
    let addr = std::env::var("WEIR_TEST_KAFKA").expect("WEIR_TEST_KAFKA");
    let tansu = std::env::var("WEIR_TEST_TANSU").expect("WEIR_TEST_TANSU");
    let topic = format!("weir-bench-{}", std::process::id());
    let ok = std::process::Command::new(tansu)
        .args([
            "topic",
            "create",
            "--broker",
            &format!("tcp://{addr}"),
            "--partitions",
            "3",
            &topic,
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    let p: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .set("linger.ms", "20")
        .create()
        .unwrap();
    for chunk in (0..n).collect::<Vec<_>>().chunks(5000) {
        join_all(chunk.iter().map(|i| {
            let (k, b) = (i.to_string(), event(*i));
            let p = &p;
            let topic = &topic;
            async move {
                p.send(
                    FutureRecord::to(topic).key(&k).payload(&b),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(e, _)| e)
                .unwrap()
            }
        }))
        .await;
    }
    let src = KafkaSource::new(KafkaConfig::new(
        addr,
        topic,
        format!("bench-{}", std::process::id()),
    ))
    .unwrap();
    let stats = src.stats();
    let (stop, shutdown) = shutdown_channel();
    let task = tokio::spawn(src.run(Arc::new(NullSink::default()), shutdown));
    let took = wait_for(&stats, n, Duration::from_secs(300)).await;
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    println!(
        "kafka: {} events in {:.2}s = {:.0} events/s (3 partitions, batches of 1000; includes group join)",
        stats.accepted(),
        took.as_secs_f64(),
        stats.accepted() as f64 / took.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    match args.first().map(String::as_str) {
        Some("udp") => udp(num(1, 50_000), num(2, 4)).await,
        Some("amqp") => amqp(num(1, 50_000)).await,
        Some("kafka") => kafka(num(1, 100_000)).await,
        _ => eprintln!("usage: input_bench udp [RATE] [SECONDS] | amqp [N] | kafka [N]"),
    }
}
