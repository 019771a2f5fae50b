//! Kafka helpers for tests: topics created with the `tansu` CLI, records produced with
//! rdkafka, and a private tansu broker a test may SIGKILL and restart.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Create `topic` with `partitions` on the broker at `addr`.
pub fn create_topic(tansu: &str, addr: &str, topic: &str, partitions: u32) {
    let out = Command::new(tansu)
        .args(["topic", "create", "--broker", &format!("tcp://{addr}")])
        .args(["--partitions", &partitions.to_string(), topic])
        .output()
        .expect("run tansu topic create");
    assert!(
        out.status.success(),
        "tansu topic create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A producer for `addr` that waits out broker restarts.
pub fn producer(addr: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("message.timeout.ms", "60000")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// Produce `body` keyed by `key`; returns (partition, offset).
pub async fn produce(p: &FutureProducer, topic: &str, key: &str, body: &str) -> (i32, i64) {
    let d = p
        .send(
            FutureRecord::to(topic).key(key).payload(body),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("produce");
    (d.partition, d.offset)
}

/// Produce many records at once; returns each one's (partition, offset), in order.
pub async fn produce_all(
    p: &FutureProducer,
    topic: &str,
    records: &[(String, String)],
) -> Vec<(i32, i64)> {
    let sends = records.iter().map(|(k, b)| produce(p, topic, k, b));
    futures_util::future::join_all(sends).await
}

/// A tansu broker owned by one test: durable sqlite storage in a temp dir, killable.
pub struct Broker {
    tansu: String,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    /// Start one on a free loopback port.
    pub fn start(tansu: &str) -> Broker {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut b = Broker {
            tansu: tansu.to_string(),
            dir: tempfile::tempdir().unwrap(),
            port,
            child: None,
        };
        b.restart();
        b
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The data dir.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// (Re)start on the same port and data.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let url = format!("tcp://{}", self.addr());
        let log = std::fs::File::create(self.dir.path().join("tansu.log")).unwrap();
        let child = Command::new(&self.tansu)
            .current_dir(self.dir.path())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        for _ in 0..300 {
            if TcpStream::connect(self.addr()).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("tansu did not start on {}", self.addr());
    }

    /// SIGKILL it (no clean shutdown).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("kill tansu"); // SIGKILL on Unix
            c.wait().unwrap();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
    }
}
