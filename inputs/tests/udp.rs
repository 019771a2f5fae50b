//! The UDP input end to end on loopback: every accepted form, bad datagrams counted and never
//! fatal, and a clean shutdown that flushes the last batch.

mod common;

use std::time::Duration;

use common::{wait_until, MemorySink};
use weir_inputs::{shutdown_channel, Source, UdpConfig, UdpSource};

#[tokio::test]
async fn udp_reads_every_form_and_counts_bad_datagrams() {
    let sink = MemorySink::new(Duration::from_millis(5));
    let src = UdpSource::bind(UdpConfig::new("127.0.0.1:0".parse().unwrap())).unwrap();
    let addr = src.local_addr().unwrap();
    assert!(src.recv_buffer_bytes().unwrap() > 0);
    let stats = src.stats();
    let (stop, shutdown) = shutdown_channel();
    let task = tokio::spawn(src.run(sink.clone(), shutdown));

    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut good = 0;
    let mut bad = 0;
    for i in 0..300i64 {
        // Three good forms in turn; every 10th datagram is bad.
        let (payload, events) = match i % 10 {
            9 => (String::from("{\"type\":"), 0),
            0 => (format!("evtname=order&n={i}&seller=s1"), 1),
            1 => (
                format!(
                    "{{\"type\":\"order\",\"n\":{i}}}\n{{\"event_type\":\"order\",\"n\":{}}}",
                    i + 1000
                ),
                2,
            ),
            _ => (
                format!("{{\"type\":\"order\",\"n\":{i},\"amount\":1.5}}"),
                1,
            ),
        };
        if events == 0 {
            bad += 1;
        }
        good += events;
        client.send_to(payload.as_bytes(), addr).await.unwrap();
        if i % 50 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // A datagram that is not UTF-8 is bad too, and does not stop the input.
    client.send_to(&[0xff, 0x00, 0x12], addr).await.unwrap();
    bad += 1;
    client.send_to(b"evtname=last&n=5000", addr).await.unwrap();
    good += 1;

    assert!(
        wait_until(Duration::from_secs(10), || sink.len() >= good).await,
        "only {} of {good} events arrived",
        sink.len()
    );
    assert!(wait_until(Duration::from_secs(2), || stats.invalid() == bad).await);
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();

    let mut expected: Vec<i64> = (0..300).filter(|i| i % 10 != 9).collect();
    expected.extend((0..300).filter(|i| i % 10 == 1).map(|i| i + 1000));
    expected.push(5000);
    expected.sort_unstable();
    assert_eq!(sink.ns(), expected);
    assert_eq!(stats.received(), 302);
    assert_eq!(stats.invalid(), bad);
    assert_eq!(stats.accepted(), good as u64);
    let order = sink
        .events()
        .into_iter()
        .find(|e| e.fields["n"] == 0)
        .unwrap();
    assert_eq!(order.kind, "order");
    assert_eq!(order.fields["seller"], "s1");
}

#[tokio::test]
async fn udp_shutdown_flushes_the_partial_batch() {
    let sink = MemorySink::new(Duration::from_millis(50));
    let mut cfg = UdpConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.linger = Duration::from_secs(60); // never flushed by time: only shutdown flushes it
    let src = UdpSource::bind(cfg).unwrap();
    let addr = src.local_addr().unwrap();
    let stats = src.stats();
    let (stop, shutdown) = shutdown_channel();
    let task = tokio::spawn(src.run(sink.clone(), shutdown));
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..5 {
        client
            .send_to(format!("evtname=x&n={i}").as_bytes(), addr)
            .unwrap();
    }
    assert!(wait_until(Duration::from_secs(5), || stats.received() == 5).await);
    assert_eq!(
        sink.len(),
        0,
        "nothing is flushed before linger or shutdown"
    );
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(sink.ns(), vec![0, 1, 2, 3, 4]);
    assert_eq!(stats.accepted(), 5);
}
