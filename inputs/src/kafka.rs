//! The Kafka input over rdkafka: a consumer-group member that hands records to the sink in
//! batches and commits offsets only after the sink says the batch is durable.
//!
//! Exactly-once counting does not rest on the broker's commits. Each batch carries, for every
//! partition it touched, the position `kafka/<group>/<topic>/<partition>` → next offset, which
//! the sink stores atomically with the events. On every assignment the consumer seeks each
//! partition to the larger of that stored position and the broker's committed offset, and
//! every record below the partition's floor is skipped (counted as a duplicate). So a commit
//! lost in a crash or broker restart never makes Weir count a record twice. Malformed records
//! are skipped and counted; their offsets advance with the batch like any other.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Deserialize;
use tokio::time::Instant;
use weir_core::Event;

use crate::config::{duration, LogLimiter};
use crate::decode::decode_payload;
use crate::sink::{EventSink, SinkError, SourceBatch};
use crate::source::{stopped, Shutdown, Source};
use crate::stats::InputStats;
use crate::{InputError, Result};

/// Settings of the Kafka input (`--kafka-brokers … --kafka-topic … --kafka-group …`, or
/// `[kafka]` in the config file).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port[,host:port…]`.
    pub brokers: String,
    /// Topic to consume.
    pub topic: String,
    /// Consumer group id; run several Weirs with one group to share the partitions.
    pub group: String,
    /// Most records in one batch handed to the sink. Default 1000.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Longest a partial batch waits for more records. Default `10ms`.
    #[serde(default = "default_linger", deserialize_with = "duration")]
    pub linger: Duration,
    /// How often lag (high watermark minus position) is measured. Default `5s`.
    #[serde(default = "default_lag_interval", deserialize_with = "duration")]
    pub lag_interval: Duration,
    /// Extra librdkafka settings (e.g. `"session.timeout.ms" = "10000"`). Weir's own
    /// (group, commit and offset settings) cannot be overridden.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

fn default_max_batch() -> usize {
    1000
}
fn default_linger() -> Duration {
    Duration::from_millis(10)
}
fn default_lag_interval() -> Duration {
    Duration::from_secs(5)
}

impl KafkaConfig {
    /// Defaults for consuming `topic` from `brokers` as a member of `group`.
    pub fn new(
        brokers: impl Into<String>,
        topic: impl Into<String>,
        group: impl Into<String>,
    ) -> Self {
        Self {
            brokers: brokers.into(),
            topic: topic.into(),
            group: group.into(),
            max_batch: default_max_batch(),
            linger: default_linger(),
            lag_interval: default_lag_interval(),
            options: BTreeMap::new(),
        }
    }

    /// The position key of one partition (see [`SourceBatch`]).
    pub fn position_key(&self, partition: i32) -> String {
        format!("kafka/{}/{}/{partition}", self.group, self.topic)
    }
}

/// A Kafka input, ready to [`run`](Source::run).
#[derive(Debug)]
pub struct KafkaSource {
    config: KafkaConfig,
    stats: Arc<InputStats>,
}

impl KafkaSource {
    /// A source for `config` (connects when run).
    pub fn new(config: KafkaConfig) -> Result<Self> {
        if config.max_batch == 0 {
            return Err(InputError::Config(
                "kafka max_batch must be at least 1".into(),
            ));
        }
        Ok(Self {
            config,
            stats: Arc::new(InputStats::new("kafka")),
        })
    }
}

/// Rebalance handling and the per-partition floors shared with the consume loop.
struct Ctx {
    config: KafkaConfig,
    sink: Arc<dyn EventSink>,
    /// Partition → first offset not yet applied, for the assigned partitions.
    floors: Mutex<HashMap<i32, i64>>,
    /// Bumped on every assignment change, so the loop refreshes its floors.
    generation: AtomicU64,
}

impl ClientContext for Ctx {}

impl ConsumerContext for Ctx {
    fn rebalance(
        &self,
        base: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let parts: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                let committed = base
                    .committed_offsets(tpl.clone(), Duration::from_secs(5))
                    .map_err(|e| tracing::warn!(error = %e, "Could not read committed offsets."))
                    .ok();
                let mut floors = self.floors.lock();
                floors.clear();
                for (topic, p) in parts {
                    // librdkafka calls this synchronously, from the poll inside `recv`; it
                    // already waits here on the broker for the committed offsets.
                    let stored = block_on(self.sink.position(&self.config.position_key(p)));
                    let broker = committed
                        .as_ref()
                        .and_then(|c| c.find_partition(&topic, p))
                        .and_then(|e| match e.offset() {
                            Offset::Offset(o) => Some(o),
                            _ => None,
                        });
                    let floor = stored.max(broker);
                    if let Some(f) = floor {
                        let _ = tpl.set_partition_offset(&topic, p, Offset::Offset(f));
                        floors.insert(p, f);
                    }
                }
                tracing::info!(topic = %self.config.topic, partitions = ?floors,
                    "Kafka partitions assigned; resuming from Weir's stored positions.");
                if let Err(e) = base.assign(tpl) {
                    tracing::error!(error = %e, "Kafka assign failed.");
                }
            }
            other => {
                if other != RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
                    tracing::warn!(error = ?other, "Kafka rebalance error; unassigning.");
                }
                self.floors.lock().clear();
                if let Err(e) = base.unassign() {
                    tracing::error!(error = %e, "Kafka unassign failed.");
                }
            }
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// Records read but not yet durable.
#[derive(Default)]
struct Pending {
    events: Vec<Event>,
    next: BTreeMap<i32, i64>,
    records: usize,
}

impl Source for KafkaSource {
    fn stats(&self) -> Arc<InputStats> {
        self.stats.clone()
    }

    async fn run(self, sink: Arc<dyn EventSink>, mut shutdown: Shutdown) -> Result<()> {
        let cfg = self.config;
        let stats = self.stats;
        let mut client = ClientConfig::new();
        for (k, v) in &cfg.options {
            client.set(k, v);
        }
        client
            .set("bootstrap.servers", &cfg.brokers)
            .set("group.id", &cfg.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "range,roundrobin");
        let ctx = Ctx {
            config: cfg.clone(),
            sink: sink.clone(),
            floors: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
        };
        let consumer: Arc<StreamConsumer<Ctx>> = Arc::new(client.create_with_context(ctx)?);
        consumer.subscribe(&[&cfg.topic])?;
        tracing::info!(topic = %cfg.topic, group = %cfg.group, "Kafka input consuming.");
        let lag_task = tokio::spawn(measure_lag(consumer.clone(), stats.clone(), cfg.clone()));

        let mut floors: HashMap<i32, i64> = HashMap::new();
        let mut seen_generation = u64::MAX;
        let mut pending = Pending::default();
        let mut deadline: Option<Instant> = None;
        let mut limiter = LogLimiter::new(Duration::from_secs(1));
        let result = loop {
            tokio::select! {
                biased;
                _ = stopped(&mut shutdown) => break Ok(()),
                m = consumer.recv() => {
                    let m = match m {
                        Ok(m) => m,
                        Err(e) => {
                            if limiter.allow().is_some() {
                                tracing::warn!(error = %e, "Kafka consumer error (retrying).");
                            }
                            continue;
                        }
                    };
                    let generation = consumer.context().generation.load(Ordering::SeqCst);
                    if generation != seen_generation {
                        seen_generation = generation;
                        // Never lower a floor: records already taken (even if not yet durable)
                        // will be made durable, so they must not be taken twice.
                        let shared = consumer.context().floors.lock().clone();
                        floors.retain(|p, _| shared.contains_key(p));
                        for (p, f) in shared {
                            let e = floors.entry(p).or_insert(f);
                            *e = (*e).max(f);
                        }
                    }
                    let (p, offset) = (m.partition(), m.offset());
                    stats.add_received(1);
                    let floor = match floors.get(&p) {
                        Some(&f) => f,
                        None => {
                            let f = sink.position(&cfg.position_key(p)).await.unwrap_or(i64::MIN);
                            *floors.entry(p).or_insert(f)
                        }
                    };
                    if offset < floor {
                        stats.add_duplicates(1);
                        continue;
                    }
                    match decode_payload(m.payload().unwrap_or_default(), &sink.shape_options()) {
                        Ok(events) => pending.events.extend(events),
                        Err(reason) => {
                            stats.add_invalid(1);
                            if limiter.allow().is_some() {
                                tracing::warn!(partition = p, offset, %reason, "Malformed Kafka record skipped.");
                            }
                        }
                    }
                    drop(m);
                    floors.insert(p, offset + 1);
                    pending.next.insert(p, offset + 1);
                    pending.records += 1;
                    if pending.records >= cfg.max_batch {
                        deadline = None;
                        if let Err(e) = flush(&consumer, &*sink, &stats, &cfg, &mut pending).await {
                            break Err(e);
                        }
                    } else if deadline.is_none() {
                        deadline = Some(Instant::now() + cfg.linger);
                    }
                }
                _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)).await },
                    if deadline.is_some() => {
                    deadline = None;
                    if let Err(e) = flush(&consumer, &*sink, &stats, &cfg, &mut pending).await {
                        break Err(e);
                    }
                }
            }
        };
        let result = match result {
            Ok(()) => flush(&consumer, &*sink, &stats, &cfg, &mut pending).await,
            e => e,
        };
        lag_task.abort();
        let _ = lag_task.await;
        consumer.unsubscribe();
        // Dropping the last handle closes the consumer and leaves the group.
        drop(consumer);
        result
    }
}

/// Make the pending records durable (with their positions), then commit them to Kafka.
async fn flush(
    consumer: &StreamConsumer<Ctx>,
    sink: &dyn EventSink,
    stats: &InputStats,
    cfg: &KafkaConfig,
    pending: &mut Pending,
) -> Result<()> {
    if pending.records == 0 {
        return Ok(());
    }
    let p = std::mem::take(pending);
    let batch = SourceBatch {
        events: p.events,
        positions: p
            .next
            .iter()
            .map(|(part, next)| (cfg.position_key(*part), *next))
            .collect(),
    };
    let mut wait = Duration::from_millis(50);
    loop {
        match sink.submit(batch.clone()).await {
            Ok(ids) => {
                stats.add_accepted(ids.len() as u64);
                break;
            }
            Err(SinkError::Transient(e)) => {
                tracing::warn!(error = %e, "Kafka batch not stored yet; retrying.");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
    {
        let mut shared = consumer.context().floors.lock();
        for (part, next) in &p.next {
            if let Some(f) = shared.get_mut(part) {
                *f = (*f).max(*next);
            }
        }
    }
    let mut tpl = TopicPartitionList::new();
    for (part, next) in &p.next {
        tpl.add_partition_offset(&cfg.topic, *part, Offset::Offset(*next))?;
    }
    // Best effort: Weir's stored positions, not the broker's commits, decide what is skipped.
    if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
        tracing::debug!(error = %e, "Kafka offset commit failed (positions are kept by Weir).");
    }
    Ok(())
}

/// Every `lag_interval`, set the lag: high watermark minus position, over assigned partitions.
async fn measure_lag(consumer: Arc<StreamConsumer<Ctx>>, stats: Arc<InputStats>, cfg: KafkaConfig) {
    loop {
        tokio::time::sleep(cfg.lag_interval).await;
        let c = consumer.clone();
        let topic = cfg.topic.clone();
        let lag = tokio::task::spawn_blocking(move || -> Result<i64, KafkaError> {
            let floors = c.context().floors.lock().clone();
            let mut lag = 0;
            for (p, pos) in floors {
                let (_, high) = c.fetch_watermarks(&topic, p, Duration::from_secs(1))?;
                lag += (high - pos).max(0);
            }
            Ok(lag)
        })
        .await;
        if let Ok(Ok(lag)) = lag {
            stats.set_lag(lag);
        }
    }
}

/// Poll `f` to completion on this thread (for the one synchronous callback that needs an
/// asynchronous answer).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_toml_like_json() {
        let c: KafkaConfig = serde_json::from_str(
            r#"{"brokers":"127.0.0.1:9092","topic":"t","group":"g","options":{"session.timeout.ms":"6000"}}"#,
        )
        .unwrap();
        assert_eq!((c.max_batch, c.linger), (1000, Duration::from_millis(10)));
        assert_eq!(c.options["session.timeout.ms"], "6000");
        assert_eq!(c.position_key(2), "kafka/g/t/2");
        assert!(serde_json::from_str::<KafkaConfig>(
            r#"{"brokers":"b","topic":"t","group":"g","nope":1}"#
        )
        .is_err());
    }
}
