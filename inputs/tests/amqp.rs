//! The AMQP input against a real RabbitMQ (WEIR_TEST_AMQP): acks only after durability,
//! malformed messages dead-lettered, redeliveries of applied messages not counted twice.

mod common;

use std::time::Duration;

use common::{broker_env, unique, wait_until, MemorySink, Publisher};
use weir_inputs::{shutdown_channel, AmqpConfig, AmqpSource, Source};

#[tokio::test]
async fn amqp_applies_good_messages_and_dead_letters_bad_ones() {
    let url = broker_env("WEIR_TEST_AMQP");
    let queue = unique("weir-amqp");
    let (dlx, dlq) = (format!("{queue}-dlx"), format!("{queue}-dead"));
    let publisher = Publisher::connect(&url).await;
    let ch = publisher.channel();
    ch.exchange_declare(
        dlx.as_str().into(),
        lapin::ExchangeKind::Fanout,
        Default::default(),
        Default::default(),
    )
    .await
    .unwrap();
    publisher.declare(&dlq, None).await;
    ch.queue_bind(
        dlq.as_str().into(),
        dlx.as_str().into(),
        "".into(),
        Default::default(),
        Default::default(),
    )
    .await
    .unwrap();
    publisher.declare(&queue, Some(&dlx)).await;

    let mut expected = Vec::new();
    let mut bad = 0;
    for i in 0..300i64 {
        let id = format!("m{i}");
        let body = match i % 15 {
            7 => {
                bad += 1;
                String::from("{\"no_type\":1}")
            }
            3 => {
                expected.extend([i, i + 10_000]);
                format!(
                    "{{\"type\":\"a\",\"n\":{i}}}\n{{\"type\":\"b\",\"n\":{}}}",
                    i + 10_000
                )
            }
            5 => {
                expected.push(i);
                format!("evtname=order&n={i}")
            }
            _ => {
                expected.push(i);
                format!("{{\"type\":\"a\",\"n\":{i}}}")
            }
        };
        publisher.publish(&queue, &body, Some(&id)).await;
    }
    expected.sort_unstable();

    let sink = MemorySink::new(Duration::from_millis(5));
    let mut cfg = AmqpConfig::new(url.clone(), queue.clone());
    cfg.prefetch = 40;
    cfg.dead_letter_exchange = Some(dlx.clone());
    let src = AmqpSource::new(cfg).unwrap();
    let stats = src.stats();
    let (stop, shutdown) = shutdown_channel();
    let task = tokio::spawn(src.run(sink.clone(), shutdown));

    assert!(
        wait_until(Duration::from_secs(20), || sink.len() >= expected.len()).await,
        "only {} of {} events arrived",
        sink.len(),
        expected.len()
    );
    assert!(wait_until(Duration::from_secs(5), || stats.invalid() == bad).await);
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();

    assert_eq!(sink.ns(), expected);
    assert_eq!(
        (stats.received(), stats.invalid(), stats.duplicates()),
        (300, bad, 0)
    );
    assert_eq!(stats.accepted(), expected.len() as u64);
    // Every good message was acked (none left after the consumer closed) and every bad one
    // went to the dead-letter queue.
    assert_eq!(publisher.ready(&queue).await, 0);
    assert_eq!(publisher.ready(&dlq).await, bad as u32);
    // One dedupe marker per applied message.
    let markers = sink
        .positions()
        .keys()
        .filter(|k| k.starts_with(&format!("amqp/{queue}/")))
        .count();
    assert_eq!(markers, 300 - bad as usize);

    publisher.delete(&queue).await;
    publisher.delete(&dlq).await;
}

#[tokio::test]
async fn amqp_skips_messages_already_applied() {
    let url = broker_env("WEIR_TEST_AMQP");
    let queue = unique("weir-amqp-dedupe");
    let publisher = Publisher::connect(&url).await;
    publisher.declare(&queue, None).await;
    // m3 and m7 were applied before (their ack was lost): they must be acked, not re-applied.
    let sink = MemorySink::new(Duration::ZERO);
    sink.seed_positions(&[
        (format!("amqp/{queue}/m3"), 1),
        (format!("amqp/{queue}/m7"), 1),
    ]);
    for i in 0..10 {
        let body = format!("{{\"type\":\"a\",\"n\":{i}}}");
        publisher
            .publish(&queue, &body, Some(&format!("m{i}")))
            .await;
    }
    // The same message id twice in a row (a publisher retry) is applied once.
    publisher
        .publish(&queue, "{\"type\":\"a\",\"n\":4}", Some("m4"))
        .await;
    // Without a message_id a message is at-least-once: it is applied.
    publisher
        .publish(&queue, "{\"type\":\"a\",\"n\":99}", None)
        .await;

    let src = AmqpSource::new(AmqpConfig::new(url.clone(), queue.clone())).unwrap();
    let stats = src.stats();
    let (stop, shutdown) = shutdown_channel();
    let task = tokio::spawn(src.run(sink.clone(), shutdown));
    assert!(wait_until(Duration::from_secs(10), || stats.received() == 12).await);
    assert!(wait_until(Duration::from_secs(5), || sink.len() >= 9).await);
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(sink.ns(), vec![0, 1, 2, 4, 5, 6, 8, 9, 99]);
    assert_eq!(stats.duplicates(), 3);
    assert_eq!(publisher.ready(&queue).await, 0);
    publisher.delete(&queue).await;
}

#[tokio::test]
async fn amqp_require_message_id_rejects_messages_without_one() {
    let url = broker_env("WEIR_TEST_AMQP");
    let queue = unique("weir-amqp-require");
    let publisher = Publisher::connect(&url).await;
    publisher.declare(&queue, None).await;
    publisher
        .publish(&queue, "{\"type\":\"a\",\"n\":1}", None)
        .await;
    publisher
        .publish(&queue, "{\"type\":\"a\",\"n\":2}", Some("x2"))
        .await;
    let sink = MemorySink::new(Duration::ZERO);
    let mut cfg = AmqpConfig::new(url.clone(), queue.clone());
    cfg.require_message_id = true;
    cfg.declare = false; // only check that the queue exists
    let src = AmqpSource::new(cfg).unwrap();
    let stats = src.stats();
    let (stop, shutdown) = shutdown_channel();
    let task = tokio::spawn(src.run(sink.clone(), shutdown));
    assert!(
        wait_until(Duration::from_secs(10), || sink.len() == 1
            && stats.invalid() == 1)
        .await
    );
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(sink.ns(), vec![2]);
    assert_eq!(publisher.ready(&queue).await, 0);
    publisher.delete(&queue).await;
}

#[tokio::test]
async fn amqp_dedupe_markers_stay_bounded_by_the_horizon() {
    let url = broker_env("WEIR_TEST_AMQP");
    let queue = unique("weir-amqp-horizon");
    let publisher = Publisher::connect(&url).await;
    publisher.declare(&queue, None).await;
    let prefix = format!("amqp/{queue}/");
    let markers = |sink: &MemorySink| {
        sink.positions()
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .count()
    };
    // The sink's clock drives the horizon: 10 s, advanced 20 s between rounds.
    const T0: i64 = 1_700_000_000_000;
    const PER_ROUND: usize = 50;
    let sink = MemorySink::new(Duration::ZERO);
    sink.set_now(T0);
    let mut cfg = AmqpConfig::new(url.clone(), queue.clone());
    cfg.dedupe_horizon = Duration::from_secs(10);
    let src = AmqpSource::new(cfg).unwrap();
    let stats = src.stats();
    let (stop, shutdown) = shutdown_channel();
    let task = tokio::spawn(src.run(sink.clone(), shutdown));
    for round in 0..6i64 {
        sink.set_now(T0 + round * 20_000);
        for i in 0..PER_ROUND {
            let body = format!("{{\"type\":\"a\",\"n\":{}}}", round * 1000 + i as i64);
            publisher
                .publish(&queue, &body, Some(&format!("r{round}-{i}")))
                .await;
        }
        let total = PER_ROUND * (round as usize + 1);
        assert!(
            wait_until(Duration::from_secs(20), || sink.len() >= total).await,
            "round {round}: {} of {total} events",
            sink.len()
        );
        if round == 0 {
            // Within the first horizon after connecting nothing is pruned.
            assert_eq!(markers(&sink), PER_ROUND);
            assert_eq!(stats.markers(), None);
        } else {
            // Earlier rounds are older than the horizon: forgotten; this round's are kept.
            assert!(
                wait_until(Duration::from_secs(10), || markers(&sink) == PER_ROUND).await,
                "round {round}: {} markers kept",
                markers(&sink)
            );
            let kept = stats.markers().expect("a prune ran");
            assert!((1..=PER_ROUND as u64).contains(&kept), "{kept}");
        }
    }
    // A redelivery within the horizon is still recognised.
    publisher
        .publish(&queue, "{\"type\":\"a\",\"n\":5000}", Some("r5-0"))
        .await;
    assert!(wait_until(Duration::from_secs(10), || stats.duplicates() == 1).await);
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(sink.len(), PER_ROUND * 6);
    publisher.delete(&queue).await;
}
