//! The AMQP input survives the broker dropping its connection mid-stream
//! (`rabbitmqctl close_all_connections`): it reconnects, and no event is lost or counted twice.
//! In its own test binary because closing every connection would disturb other AMQP tests.

mod common;

use std::time::Duration;

use common::{broker_env, unique, wait_until, MemorySink, Publisher};
use weir_inputs::{shutdown_channel, AmqpConfig, AmqpSource, Source};

const TOTAL: i64 = 2000;

fn body(i: i64) -> String {
    if i % 100 == 42 {
        "not an event".to_string()
    } else {
        format!("{{\"type\":\"a\",\"n\":{i}}}")
    }
}

#[tokio::test]
async fn amqp_connection_drop_loses_and_doubles_nothing() {
    let url = broker_env("WEIR_TEST_AMQP");
    let queue = unique("weir-amqp-drop");
    let publisher = Publisher::connect(&url).await;
    publisher.declare(&queue, None).await;
    for i in 0..TOTAL / 2 {
        publisher
            .publish(&queue, &body(i), Some(&format!("m{i}")))
            .await;
    }

    // Slow durability, so batches are in flight (read, not yet acked) when the drop comes.
    let sink = MemorySink::new(Duration::from_millis(40));
    let mut cfg = AmqpConfig::new(url.clone(), queue.clone());
    cfg.prefetch = 100;
    cfg.max_backoff = Duration::from_millis(500);
    let src = AmqpSource::new(cfg).unwrap();
    let stats = src.stats();
    let (stop, shutdown) = shutdown_channel();
    let task = tokio::spawn(src.run(sink.clone(), shutdown));

    assert!(wait_until(Duration::from_secs(20), || sink.len() >= 300).await);
    let out = std::process::Command::new("rabbitmqctl")
        .args(["close_all_connections", "test"])
        .output()
        .expect("run rabbitmqctl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let at_drop = sink.len();

    // The rest of the stream arrives after the drop, over a new publisher connection.
    let publisher = Publisher::connect(&url).await;
    for i in TOTAL / 2..TOTAL {
        publisher
            .publish(&queue, &body(i), Some(&format!("m{i}")))
            .await;
    }
    let expected: Vec<i64> = (0..TOTAL).filter(|i| i % 100 != 42).collect();
    assert!(
        wait_until(Duration::from_secs(60), || sink.len() >= expected.len()).await,
        "only {} of {} events arrived",
        sink.len(),
        expected.len()
    );
    // A reject lost with the connection means that bad message is read (and counted) again.
    assert!(wait_until(Duration::from_secs(5), || stats.invalid() >= 20).await);
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();

    assert!(at_drop < expected.len(), "the drop came mid-stream");
    assert_eq!(sink.ns(), expected, "every event exactly once");
    assert_eq!(stats.accepted(), expected.len() as u64);
    // Redelivered messages were read twice; those already durable were skipped.
    assert!(stats.received() >= TOTAL as u64);
    assert_eq!(publisher.ready(&queue).await, 0);
    eprintln!(
        "received {}, duplicates skipped {}, at drop {at_drop}",
        stats.received(),
        stats.duplicates()
    );
    publisher.delete(&queue).await;
}
