//! Shared helpers for the input integration tests.
//!
//! [`MemorySink`] stands in for the Weir server, which is not written yet: it keeps events
//! and input positions in memory, applies each batch atomically (events and positions under
//! one lock), and can take a while to be "durable" so batches are in flight when brokers fail.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub mod kafka;

use parking_lot::Mutex;
use weir_core::{Event, EventId};
use weir_inputs::{BoxFuture, EventSink, PruneResult, SinkError, SourceBatch};

/// The in-memory stand-in for the server's sink.
#[derive(Default)]
pub struct MemorySink {
    state: Arc<Mutex<State>>,
    delay: Duration,
    next_id: AtomicU64,
    /// The sink's clock, unix ms; 0 means the wall clock.
    clock: Arc<AtomicI64>,
}

#[derive(Default)]
struct State {
    events: Vec<Event>,
    positions: HashMap<String, i64>,
    batches: usize,
}

impl MemorySink {
    /// A sink whose batches become durable after `delay`.
    pub fn new(delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            delay,
            ..Self::default()
        })
    }

    /// Stand the sink's clock at `ms` (unix ms) instead of the wall clock.
    pub fn set_now(&self, ms: i64) {
        self.clock.store(ms, Ordering::SeqCst);
    }

    /// Events applied so far.
    pub fn events(&self) -> Vec<Event> {
        self.state.lock().events.clone()
    }

    /// How many events were applied.
    pub fn len(&self) -> usize {
        self.state.lock().events.len()
    }

    /// Batches applied.
    pub fn batches(&self) -> usize {
        self.state.lock().batches
    }

    /// Positions stored so far.
    pub fn positions(&self) -> HashMap<String, i64> {
        self.state.lock().positions.clone()
    }

    /// Pretend these positions were made durable earlier (e.g. by a run whose broker commit
    /// was lost).
    pub fn seed_positions(&self, positions: &[(String, i64)]) {
        self.state
            .lock()
            .positions
            .extend(positions.iter().cloned());
    }

    /// The integer field `n` of every applied event, sorted.
    pub fn ns(&self) -> Vec<i64> {
        let mut ns: Vec<i64> = self
            .events()
            .iter()
            .map(|e| e.fields["n"].as_i64().expect("field n"))
            .collect();
        ns.sort_unstable();
        ns
    }
}

impl EventSink for MemorySink {
    fn submit(&self, batch: SourceBatch) -> BoxFuture<'static, Result<Vec<EventId>, SinkError>> {
        let delay = self.delay;
        let n = batch.events.len() as u64;
        let first = self.next_id.fetch_add(n, Ordering::SeqCst);
        let state = self.state.clone();
        // Applied at the end of the delay: until the future resolves nothing is "durable".
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            let mut s = state.lock();
            s.events.extend(batch.events);
            s.positions.extend(batch.positions);
            s.batches += 1;
            Ok((first..first + n).collect())
        })
    }

    fn position(&self, key: &str) -> BoxFuture<'static, Option<i64>> {
        let p = self.state.lock().positions.get(key).copied();
        Box::pin(async move { p })
    }

    fn now_ms(&self) -> i64 {
        match self.clock.load(Ordering::SeqCst) {
            0 => weir_inputs::decode::now_ms(),
            ms => ms,
        }
    }

    fn prune_positions(
        &self,
        prefix: &str,
        older_than: i64,
    ) -> BoxFuture<'static, Result<PruneResult, SinkError>> {
        let mut s = self.state.lock();
        let before = s.positions.len();
        s.positions
            .retain(|k, v| !(k.starts_with(prefix) && *v < older_than));
        let removed = (before - s.positions.len()) as u64;
        let kept = s.positions.keys().filter(|k| k.starts_with(prefix)).count() as u64;
        Box::pin(async move { Ok(PruneResult { removed, kept }) })
    }
}

/// The value of environment variable `name`; a broker test without its broker fails and
/// says why (scripts/test.sh starts the brokers and sets it).
pub fn broker_env(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("{name} is not set: the broker tests need it (scripts/test.sh starts the brokers and sets it)"))
}

/// Poll `cond` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// A name unique to this test run: `prefix-<pid>-<nanos>`.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// A small AMQP publisher for tests (publisher confirms on, so a publish returns once the
/// broker has the message).
pub struct Publisher {
    _conn: lapin::Connection,
    channel: lapin::Channel,
}

impl Publisher {
    /// Connect to `url`.
    pub async fn connect(url: &str) -> Publisher {
        let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
            .await
            .expect("connect to RabbitMQ");
        let channel = conn.create_channel().await.expect("channel");
        channel
            .confirm_select(lapin::options::ConfirmSelectOptions::default())
            .await
            .expect("confirm mode");
        Publisher {
            _conn: conn,
            channel,
        }
    }

    /// The channel, to declare or delete test queues.
    pub fn channel(&self) -> &lapin::Channel {
        &self.channel
    }

    /// Publish `body` to `queue` (default exchange), with `message_id` if given.
    pub async fn publish(&self, queue: &str, body: &str, message_id: Option<&str>) {
        let mut props = lapin::BasicProperties::default();
        if let Some(id) = message_id {
            props = props.with_message_id(id.into());
        }
        self.channel
            .basic_publish(
                "".into(),
                queue.into(),
                lapin::options::BasicPublishOptions::default(),
                body.as_bytes(),
                props,
            )
            .await
            .expect("publish")
            .await
            .expect("publisher confirm");
    }

    /// Declare a durable test queue, dead-lettering to `dlx` if given.
    pub async fn declare(&self, queue: &str, dlx: Option<&str>) -> u32 {
        let mut args = lapin::types::FieldTable::default();
        if let Some(x) = dlx {
            args.insert(
                "x-dead-letter-exchange".into(),
                lapin::types::AMQPValue::LongString(x.into()),
            );
        }
        let opts = lapin::options::QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        self.channel
            .queue_declare(queue.into(), opts, args)
            .await
            .expect("declare queue")
            .message_count()
    }

    /// Messages ready in an existing queue.
    pub async fn ready(&self, queue: &str) -> u32 {
        let opts = lapin::options::QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        self.channel
            .queue_declare(queue.into(), opts, Default::default())
            .await
            .expect("queue exists")
            .message_count()
    }

    /// Delete a test queue.
    pub async fn delete(&self, queue: &str) {
        let _ = self
            .channel
            .queue_delete(queue.into(), Default::default())
            .await;
    }
}
