//! The inputs through the real binary: UDP, RabbitMQ and Kafka feed queries, and a `kill -9`
//! of Weir in the middle of a queue or topic loses nothing and counts nothing twice.
//! The broker tests need the brokers `scripts/test.sh` starts (WEIR_TEST_AMQP, WEIR_TEST_KAFKA,
//! WEIR_TEST_TANSU); without them they say so and pass.

mod common;

use std::time::{Duration, Instant};

use common::{free_port, Server};
use serde_json::Value;

const COUNT_BY_ID: &str = "CREATE QUERY by_id AS SELECT count(*) AS n FROM item GROUP BY id";

/// Poll `by_id` until `n` distinct ids are counted (or 60 s pass); assert each counted once.
async fn expect_each_once(s: &Server, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, res) = s.get("/api/queries/by_id/result").await;
        let rows = res["rows"].as_array().cloned().unwrap_or_default();
        for r in &rows {
            assert_eq!(r["values"]["n"], 1, "counted twice: {r}");
        }
        if rows.len() >= n {
            assert_eq!(rows.len(), n, "more ids than were sent");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} events arrived",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of `name`; a broker test without its broker fails and says why.
fn env(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!("{name} is not set: the broker tests need it (scripts/test.sh starts the brokers and sets it)")
        })
}

#[tokio::test]
async fn udp_datagrams_in_every_form_and_bad_ones_are_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let s = Server::prepared(dir.path(), COUNT_BY_ID, &["--udp", &addr]).await;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(br#"{"type":"item","id":"a"}"#, &addr).unwrap();
    sock.send_to(
        b"{\"type\":\"item\",\"id\":\"b\"}\n{\"type\":\"item\",\"id\":\"c\"}",
        &addr,
    )
    .unwrap();
    sock.send_to(b"evtname=item&id=d", &addr).unwrap();
    sock.send_to(b"\xff\xfe not an event", &addr).unwrap();
    sock.send_to(
        br#"{"events":[{"type":"item","id":"e"},{"type":"item","id":"f"}]}"#,
        &addr,
    )
    .unwrap();
    expect_each_once(&s, 6).await;
}

/// The ids counted by `by_id`, sorted.
async fn counted_ids(s: &Server) -> Vec<String> {
    let (_, res) = s.get("/api/queries/by_id/result").await;
    let mut ids: Vec<String> = res["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| r["key"]["id"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn udp_reads_event_times_with_the_servers_future_skew() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let conf_dir = tempfile::tempdir().unwrap();
    let config = conf_dir.path().join("weir.toml");
    // Wider than the 5-minute default, so both sides of the setting are visible.
    std::fs::write(&config, "max_future_skew = \"1h\"\n").unwrap();
    let args = ["--config", config.to_str().unwrap(), "--udp", &addr];
    let s = Server::prepared(dir.path(), COUNT_BY_ID, &args).await;
    let now_s = common::now_ms() / 1000;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let send = |id: &str, ahead_s: i64| {
        let body = format!(r#"{{"type":"item","id":"{id}","ts":{}}}"#, now_s + ahead_s);
        sock.send_to(body.as_bytes(), &addr).unwrap();
    };
    send("in_30min", 30 * 60); // within 1 h: accepted (the old fixed 5 min refused it)
    send("in_2h", 2 * 3600); // beyond 1 h: refused
    send("now", 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ids = counted_ids(&s).await;
        let metrics = s
            .client()
            .get(format!("{}/metrics", s.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let refused = metrics
            .lines()
            .any(|l| l.starts_with("weir_input_invalid_total{input=\"udp\"} 1"));
        if ids.len() >= 2 && refused {
            assert_eq!(ids, ["in_30min", "now"]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "counted {ids:?}, far-future datagram refused: {refused}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn amqp_queue_survives_kill9_of_weir() {
    let url = env("WEIR_TEST_AMQP");
    let queue = format!("weir-e2e-{}", free_port());
    let (_conn, ch) = common::amqp_queue(&url, &queue).await;
    let publish = |i: usize| {
        let ch = ch.clone();
        let queue = queue.clone();
        async move {
            let body = if i % 50 == 7 {
                "not json at all".to_string()
            } else {
                format!(r#"{{"type":"item","id":"m{i}"}}"#)
            };
            common::publish(&ch, &queue, &body, Some(&format!("msg-{i}"))).await;
        }
    };
    for i in 0..1000 {
        publish(i).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::prepared(
        dir.path(),
        COUNT_BY_ID,
        &["--amqp", &url, "--amqp-queue", &queue],
    )
    .await;
    // Let part of the queue through, then kill Weir without warning.
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.kill9();
    for i in 1000..2000 {
        publish(i).await;
    }
    s.restart().await;
    let valid = (0..2000).filter(|i| i % 50 != 7).count();
    expect_each_once(&s, valid).await;
    let _ = ch
        .queue_delete(queue.as_str().into(), Default::default())
        .await;
}

#[tokio::test]
async fn kafka_topic_survives_kill9_of_weir() {
    let (brokers, tansu) = (env("WEIR_TEST_KAFKA"), env("WEIR_TEST_TANSU"));
    let topic = format!("weir-e2e-{}", free_port());
    let out = std::process::Command::new(&tansu)
        .args([
            "topic",
            "create",
            "--broker",
            &format!("tcp://{brokers}"),
            "--partitions",
            "3",
            &topic,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap();
    let produce = |range: std::ops::Range<usize>| {
        let producer = producer.clone();
        let topic = topic.clone();
        async move {
            for i in range {
                let body = if i % 40 == 3 {
                    "{broken".to_string()
                } else {
                    format!(r#"{{"type":"item","id":"k{i}"}}"#)
                };
                let key = format!("{i}");
                producer
                    .send(
                        rdkafka::producer::FutureRecord::to(&topic)
                            .key(&key)
                            .payload(&body),
                        Duration::from_secs(30),
                    )
                    .await
                    .map_err(|(e, _)| e)
                    .unwrap();
            }
        }
    };
    produce(0..600).await;
    let dir = tempfile::tempdir().unwrap();
    let group = format!("weir-e2e-{}", free_port());
    // A killed consumer stays in its group until its session times out: keep that short so
    // the restarted Weir gets the partitions back quickly.
    let conf_dir = tempfile::tempdir().unwrap();
    let config = conf_dir.path().join("weir.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\ntopic = \"{topic}\"\ngroup = \"{group}\"\n\
             options = {{ \"session.timeout.ms\" = \"6000\", \"heartbeat.interval.ms\" = \"500\" }}\n"
        ),
    )
    .unwrap();
    let args = ["--config", config.to_str().unwrap()];
    let mut s = Server::prepared(dir.path(), COUNT_BY_ID, &args).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.kill9();
    produce(600..1200).await;
    // The killed consumer never left its group: wait out its session before Weir rejoins.
    tokio::time::sleep(Duration::from_secs(8)).await;
    s.restart().await;
    let valid = (0..1200).filter(|i| i % 40 != 3).count();
    expect_each_once(&s, valid).await;
    let (_, q) = s.get("/api/queries/by_id").await;
    assert_eq!(q["name"], Value::from("by_id"));
}
