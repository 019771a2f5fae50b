//! Starting the real `weir` binary for integration tests, and talking to it.
//!
//! The backend is the embedded store unless `WEIR_TEST_STORAGE=cassandra`: then every server
//! runs on the Cassandra/Scylla node in `WEIR_TEST_CASSANDRA` (host:port, started by
//! `scripts/cassandra.sh`), with one keyspace per data dir, so a restart on the same data dir
//! finds the same data.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running `weir serve` on a free loopback port.
pub struct Server {
    /// The child process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    port: u16,
    env: Vec<(String, String)>,
    args: Vec<String>,
    client: reqwest::Client,
    /// The API key `statements`, `post`, `get` and `metrics_text` send, if any.
    key: Option<String>,
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether the servers of this run use the Cassandra/Scylla backend.
pub fn on_cassandra() -> bool {
    match std::env::var("WEIR_TEST_STORAGE").as_deref() {
        Ok("cassandra") => true,
        Ok("embedded") | Err(_) => false,
        Ok(other) => panic!("WEIR_TEST_STORAGE={other}: expected embedded or cassandra"),
    }
}

/// The Cassandra node of this run.
fn cassandra_nodes() -> String {
    std::env::var("WEIR_TEST_CASSANDRA").unwrap_or_else(|_| {
        panic!(
            "WEIR_TEST_STORAGE=cassandra but WEIR_TEST_CASSANDRA (host:port of a node) is not set: \
             scripts/test.sh starts a Cassandra node (scripts/cassandra.sh) and exports it"
        )
    })
}

/// The keyspace that stands for `data_dir` on Cassandra.
fn keyspace_of(data_dir: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data_dir.hash(&mut h);
    format!("weir_t{:016x}", h.finish())
}

/// The flags that put a server on this run's backend, its data named after `data_dir`.
fn backend_args(data_dir: &Path) -> Vec<String> {
    if !on_cassandra() {
        return Vec::new();
    }
    vec![
        "--storage".into(),
        "cassandra".into(),
        "--cassandra-nodes".into(),
        cassandra_nodes(),
        "--cassandra-keyspace".into(),
        keyspace_of(data_dir),
    ]
}

/// The store a server on `data_dir` would open, opened directly (to prepare what a server
/// then finds). Drop it before starting a server on the embedded store (one process at a time).
pub fn open_store(data_dir: &Path) -> std::sync::Arc<dyn weir_storage::Storage> {
    if on_cassandra() {
        let cfg = weir_storage::CassandraConfig {
            nodes: vec![cassandra_nodes()],
            keyspace: keyspace_of(data_dir),
            ..Default::default()
        };
        std::sync::Arc::new(
            weir_storage::CassandraStore::connect(&cfg).expect("connect to the test node"),
        )
    } else {
        std::sync::Arc::new(
            weir_storage::EmbeddedStore::open(data_dir, &Default::default())
                .expect("open the store"),
        )
    }
}

impl Server {
    /// Start a server on `data_dir` with extra flags and environment, wait until healthy.
    pub async fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        Self::start_on(data_dir, free_port(), &[], env).await
    }

    /// Apply `dsl` on a server without inputs, stop it, and start it again on the same data
    /// dir with `args` (so queries exist before inputs deliver anything).
    pub async fn prepared(data_dir: &Path, dsl: &str, args: &[&str]) -> Server {
        let mut first = Self::start(data_dir).await;
        let (st, body) = first.statements(dsl).await;
        assert_eq!(st, 200, "{body}");
        first.terminate();
        Self::start_args(data_dir, args).await
    }

    /// Start a server on `data_dir` with extra command-line flags, wait until healthy.
    pub async fn start_args(data_dir: &Path, args: &[&str]) -> Server {
        Self::start_on(data_dir, free_port(), args, &[]).await
    }

    /// Start a server on `data_dir` with extra flags and environment, wait until healthy.
    pub async fn start_on_with(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::start_on(data_dir, free_port(), args, env).await
    }

    /// Start a server on `data_dir` on the given port with extra flags, wait until healthy.
    pub async fn start_port_args(data_dir: &Path, port: u16, args: &[&str]) -> Server {
        Self::start_on(data_dir, port, args, &[]).await
    }

    /// Start a server on `data_dir` on the given port, wait until healthy.
    pub async fn start_port(data_dir: &Path, port: u16) -> Server {
        Self::start_on(data_dir, port, &[], &[]).await
    }

    /// Start a server on `data_dir`, wait until healthy.
    pub async fn start(data_dir: &Path) -> Server {
        Self::start_with(data_dir, &[]).await
    }

    async fn start_on(data_dir: &Path, port: u16, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
        cmd.args([
            "serve",
            "--http",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir)
        .args(backend_args(data_dir))
        .args(args)
        .env(
            "RUST_LOG",
            std::env::var("WEIR_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        if on_cassandra() {
            // One shared node under the whole suite's load on two cores: a request may wait
            // on a garbage collection or a schema change well past the 2 s default. The tests
            // check answers, not latency; a test's own setting (below) still wins.
            cmd.env("WEIR_CASSANDRA__REQUEST_TIMEOUT_MS", "15000");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start weir serve");
        let server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            data_dir: data_dir.to_path_buf(),
            port,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            args: args.iter().map(|a| a.to_string()).collect(),
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(512)
                .build()
                .unwrap(),
            key: None,
        };
        let mut server = server;
        server.wait_healthy().await;
        server
    }

    async fn wait_healthy(&mut self) {
        // A first start on Cassandra creates a keyspace and its tables (schema changes are
        // slow on a busy node).
        let allowed = if on_cassandra() { 180 } else { 60 };
        let deadline = Instant::now() + Duration::from_secs(allowed);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("weir serve exited before it was healthy: {status} (its log is above)");
            }
            if let Ok(r) = self
                .client
                .get(format!("{}/healthz", self.url))
                .send()
                .await
            {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "weir did not become healthy in {allowed} s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kill the process with SIGKILL (no chance to flush anything).
    pub fn kill9(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().unwrap();
    }

    /// Stop with SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "weir exited with {status} after SIGTERM");
    }

    /// Start again on the same data dir and port.
    pub async fn restart(&mut self) {
        let env: Vec<(String, String)> = self.env.clone();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let args: Vec<String> = self.args.clone();
        let args: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
        let fresh = Self::start_on(&self.data_dir.clone(), self.port, &args, &env).await;
        let old = std::mem::replace(self, fresh);
        drop(old);
    }

    /// A client for this server.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Send `key` (or, with `None`, no key) with the calls of this helper from now on.
    pub fn set_key(&mut self, key: Option<&str>) {
        self.key = key.map(str::to_string);
    }

    fn keyed(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.key {
            Some(k) => rb.bearer_auth(k),
            None => rb,
        }
    }

    /// POST DSL text; returns (status, body).
    pub async fn statements(&self, text: &str) -> (u16, Value) {
        let r = self
            .keyed(self.client.post(format!("{}/api/statements", self.url)))
            .header("content-type", "text/plain")
            .body(text.to_string())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// The text of `GET /metrics`.
    pub async fn metrics_text(&self) -> String {
        self.keyed(self.client.get(format!("{}/metrics", self.url)))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// POST JSON to a path; returns (status, body).
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .keyed(self.client.post(format!("{}{path}", self.url)))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// GET a path; returns (status, body).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .keyed(self.client.get(format!("{}{path}", self.url)))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Now in unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The `(method, path)` pairs of a `GET /help` answer.
pub fn help_routes(help: &Value) -> Vec<(String, String)> {
    help["routes"]
        .as_object()
        .expect("GET /help has routes")
        .keys()
        .map(|k| {
            let (m, p) = k.split_once(' ').expect("METHOD /path");
            (m.to_string(), p.to_string())
        })
        .collect()
}

/// Unix ms as UTC `[year, month, day, hour, minute, second, millisecond]` (civil from days,
/// Howard Hinnant's algorithm), for tests that write times as text.
pub fn civil(ms: i64) -> [i64; 7] {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    [
        y,
        m,
        d,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000),
    ]
}

/// A connection to RabbitMQ at `url` and a channel in confirm mode with the durable `queue`
/// declared, as Weir's AMQP input declares it.
pub async fn amqp_queue(url: &str, queue: &str) -> (lapin::Connection, lapin::Channel) {
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| panic!("connecting to RabbitMQ at {url}: {e}"));
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    let durable = lapin::options::QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(queue.into(), durable, Default::default())
        .await
        .unwrap();
    (conn, ch)
}

/// Publish `body` to `queue` (with `id` as its AMQP message_id), confirmed by the broker.
pub async fn publish(ch: &lapin::Channel, queue: &str, body: &str, id: Option<&str>) {
    let props = match id {
        Some(id) => lapin::BasicProperties::default().with_message_id(id.into()),
        None => lapin::BasicProperties::default(),
    };
    ch.basic_publish(
        "".into(),
        queue.into(),
        Default::default(),
        body.as_bytes(),
        props,
    )
    .await
    .unwrap()
    .await
    .unwrap();
}
