//! The Kafka input against a real Kafka-compatible broker (tansu; WEIR_TEST_KAFKA and
//! WEIR_TEST_TANSU): offsets committed after durability, malformed records skipped and
//! counted, lost commits not counted twice, and a SIGKILLed broker that comes back.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::kafka::{create_topic, produce_all, producer, Broker};
use common::{broker_env, unique, wait_until, MemorySink};
use weir_inputs::{shutdown_channel, KafkaConfig, KafkaSource, Source};

/// Record `i`: mostly good events with field `n = i`; every 25th is malformed.
fn record(i: i64) -> (String, String) {
    let body = match i % 25 {
        13 => "{\"oops\":".to_string(),
        7 => format!("evtname=order&n={i}"),
        _ => format!("{{\"type\":\"order\",\"n\":{i}}}"),
    };
    (format!("k{i}"), body)
}

fn good(range: std::ops::Range<i64>) -> Vec<i64> {
    range.filter(|i| i % 25 != 13).collect()
}

fn config(addr: &str, topic: &str, group: &str) -> KafkaConfig {
    let mut c = KafkaConfig::new(addr, topic, group);
    c.max_batch = 100;
    c.lag_interval = Duration::from_millis(300);
    c
}

async fn run_until<F: Fn() -> bool>(
    cfg: KafkaConfig,
    sink: std::sync::Arc<MemorySink>,
    done: F,
) -> std::sync::Arc<weir_inputs::InputStats> {
    let src = KafkaSource::new(cfg).unwrap();
    let stats = src.stats();
    let (stop, shutdown) = shutdown_channel();
    let task = tokio::spawn(src.run(sink, shutdown));
    let ok = wait_until(Duration::from_secs(60), &done).await;
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    assert!(ok, "condition not reached in time: {stats:?}");
    stats
}

#[tokio::test]
async fn kafka_consumes_skips_malformed_and_resumes_from_commits() {
    let (addr, tansu) = (broker_env("WEIR_TEST_KAFKA"), broker_env("WEIR_TEST_TANSU"));
    let topic = unique("weir-kafka");
    create_topic(&tansu, &addr, &topic, 3);
    let p = producer(&addr);
    let recs: Vec<_> = (0..300).map(record).collect();
    let placed = produce_all(&p, &topic, &recs).await;

    let sink = MemorySink::new(Duration::from_millis(5));
    let group = unique("g");
    let expected = good(0..300);
    let s = sink.clone();
    let stats = run_until(config(&addr, &topic, &group), sink.clone(), || {
        s.len() >= expected.len()
    })
    .await;
    assert_eq!(sink.ns(), expected);
    assert_eq!(stats.invalid(), 12);
    assert_eq!(stats.accepted(), expected.len() as u64);
    // Stored positions: next offset per partition, i.e. one past the last record of each.
    let mut last: HashMap<i32, i64> = HashMap::new();
    for (part, off) in &placed {
        let e = last.entry(*part).or_insert(-1);
        *e = (*e).max(*off);
    }
    let cfg = config(&addr, &topic, &group);
    for (part, off) in &last {
        assert_eq!(
            sink.positions().get(&cfg.position_key(*part)).copied(),
            Some(off + 1)
        );
    }

    // Same group again: nothing old is re-applied, only the new records.
    let more: Vec<_> = (300..350).map(record).collect();
    produce_all(&p, &topic, &more).await;
    let expected = good(0..350);
    let s = sink.clone();
    let stats = run_until(cfg, sink.clone(), || s.len() >= expected.len()).await;
    assert_eq!(sink.ns(), expected);
    assert_eq!(stats.invalid(), 2);
    assert!(stats.received() >= 50);
}

#[tokio::test]
async fn kafka_lost_commit_does_not_double_count() {
    let (addr, tansu) = (broker_env("WEIR_TEST_KAFKA"), broker_env("WEIR_TEST_TANSU"));
    let topic = unique("weir-kafka-lost");
    create_topic(&tansu, &addr, &topic, 3);
    let p = producer(&addr);
    let recs: Vec<_> = (0..200).map(record).collect();
    let placed = produce_all(&p, &topic, &recs).await;

    // Weir applied every partition up to offset 20 but its commits never reached the broker:
    // the group has no committed offsets, and Weir's stored positions must win.
    let group = unique("g");
    let cfg = config(&addr, &topic, &group);
    let sink = MemorySink::new(Duration::ZERO);
    let seeded: Vec<_> = (0..3).map(|part| (cfg.position_key(part), 20)).collect();
    sink.seed_positions(&seeded);
    let expected: Vec<i64> = placed
        .iter()
        .enumerate()
        .filter(|(i, (_, off))| *off >= 20 && (*i as i64) % 25 != 13)
        .map(|(i, _)| i as i64)
        .collect();
    let mut expected = expected;
    expected.sort_unstable();
    let s = sink.clone();
    let bad_after: u64 = placed
        .iter()
        .enumerate()
        .filter(|(i, (_, off))| *off >= 20 && (*i as i64) % 25 == 13)
        .count() as u64;
    let stats = run_until(cfg, sink.clone(), || s.len() >= expected.len()).await;
    assert_eq!(sink.ns(), expected);
    assert_eq!(stats.invalid(), bad_after);
}

#[tokio::test]
async fn kafka_broker_sigkill_and_restart_loses_and_doubles_nothing() {
    let tansu = broker_env("WEIR_TEST_TANSU");
    // A private broker: killing the shared one would disturb the other tests.
    let mut broker = Broker::start(&tansu);
    let addr = broker.addr();
    let topic = unique("weir-kafka-kill");
    create_topic(&tansu, &addr, &topic, 2);
    let p = producer(&addr);
    let first: Vec<_> = (0..1000).map(record).collect();
    produce_all(&p, &topic, &first).await;

    let sink = MemorySink::new(Duration::from_millis(30));
    let group = unique("g");
    let mut cfg = config(&addr, &topic, &group);
    cfg.options
        .insert("reconnect.backoff.max.ms".into(), "500".into());
    let src = KafkaSource::new(cfg).unwrap();
    let stats = src.stats();
    let (stop, shutdown) = shutdown_channel();
    let task = tokio::spawn(src.run(sink.clone(), shutdown));

    assert!(wait_until(Duration::from_secs(30), || sink.len() >= 200).await);
    broker.kill9();
    let at_kill = sink.len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    broker.restart();
    assert!(broker.dir().join("tansu.db").exists());

    let second: Vec<_> = (1000..1500).map(record).collect();
    let p = producer(&addr);
    produce_all(&p, &topic, &second).await;
    let expected = good(0..1500);
    let ok = wait_until(Duration::from_secs(90), || sink.len() >= expected.len()).await;
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    assert!(
        ok,
        "only {} of {} events arrived",
        sink.len(),
        expected.len()
    );
    assert!(at_kill < expected.len(), "the kill came mid-stream");
    assert_eq!(sink.ns(), expected, "every event exactly once");
    assert_eq!(stats.invalid(), 60);
}
