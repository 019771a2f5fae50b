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

use std::collections::{BTreeMap, BTreeSet, HashMap};
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
use crate::sink::{EventSink, Origin, SinkError, SourceBatch};
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
    /// Partitions assigned by the caller instead of the consumer group (see
    /// [`KafkaSource::assigned_by`]).
    assignment: Option<tokio::sync::watch::Receiver<Vec<i32>>>,
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
            assignment: None,
        })
    }

    /// Consume exactly the partitions `assignment` names (each change reassigns) instead of
    /// joining the consumer group: for a caller that decides ownership itself (Weir's
    /// cluster membership). The group id is still used for offset commits. Each change is
    /// handled like a group assignment: the sink is told first, then every partition is
    /// resumed from its stored position.
    pub fn assigned_by(mut self, assignment: tokio::sync::watch::Receiver<Vec<i32>>) -> Self {
        self.assignment = Some(assignment);
        self
    }
}

/// Assign `parts` of the topic by hand, as a group assignment would: tell the sink, resume
/// each partition from the larger of its stored position and the broker's commit.
async fn assign_manually(consumer: &StreamConsumer<Ctx>, parts: &[i32]) -> Result<()> {
    let ctx = consumer.context();
    let parts = &ctx.sink.partitions_assigned(parts).await;
    let mut tpl = TopicPartitionList::new();
    for p in parts {
        tpl.add_partition(&ctx.config.topic, *p);
    }
    let committed = consumer
        .committed_offsets(tpl.clone(), Duration::from_secs(5))
        .map_err(|e| tracing::warn!(error = %e, "Could not read committed offsets."))
        .ok();
    let mut floors = HashMap::new();
    for p in parts {
        let stored = ctx.sink.position(&ctx.config.position_key(*p)).await;
        let broker = committed
            .as_ref()
            .and_then(|c| c.find_partition(&ctx.config.topic, *p))
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
        let offset = match stored.max(broker) {
            Some(f) => {
                floors.insert(*p, f);
                Offset::Offset(f)
            }
            None => Offset::Beginning,
        };
        tpl.set_partition_offset(&ctx.config.topic, *p, offset)?;
    }
    tracing::info!(topic = %ctx.config.topic, partitions = ?floors,
        "Kafka partitions assigned by the caller; resuming from Weir's stored positions.");
    *ctx.floors.lock() = floors;
    consumer.assign(&tpl)?;
    ctx.generation.fetch_add(1, Ordering::SeqCst);
    Ok(())
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
                let numbers: Vec<i32> = parts.iter().map(|(_, p)| *p).collect();
                // A sink with per-partition state restores the new partitions first, so
                // their stored positions below are the restored ones.
                block_on(self.sink.partitions_assigned(&numbers));
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
                block_on(self.sink.partitions_revoked());
                if let Err(e) = base.unassign() {
                    tracing::error!(error = %e, "Kafka unassign failed.");
                }
            }
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// Records read but not yet durable, by partition: each partition's become one batch
/// with its own position, so a sink may keep partitions apart.
#[derive(Default)]
struct Pending {
    parts: BTreeMap<i32, PartPending>,
    records: usize,
    /// Partitions whose batch the sink dropped (not this node's any more, or its state
    /// failed): their records are not read again until the next assignment, which resumes
    /// them from the sink's stored position (so nothing dropped is skipped as if taken).
    dropped: BTreeSet<i32>,
}

/// One partition's records read but not yet durable.
struct PartPending {
    events: Vec<Event>,
    /// The next offset to read once these are durable.
    next: i64,
    /// The tenant of every one of them (their `weir-tenant` header), if they name one.
    tenant: Option<(String, String)>,
    /// The events of records with a `weir-origin` header.
    origins: Vec<Origin>,
}

/// The `weir-tenant: ACCOUNT/PROJECT` header of a record, if it has one.
fn tenant_header<M: Message>(m: &M) -> Option<(String, String)> {
    let (a, p) = header(m, TENANT_HEADER)?.split_once('/')?;
    Some((a.to_string(), p.to_string()))
}

/// The `weir-origin` header of a record, if it has one.
fn origin_header<M: Message>(m: &M) -> Option<String> {
    header(m, ORIGIN_HEADER).map(str::to_string)
}

/// The first header `name` of a record, as UTF-8 text.
fn header<'m, M: Message>(m: &'m M, name: &str) -> Option<&'m str> {
    use rdkafka::message::Headers;
    let headers = m.headers()?;
    headers
        .iter()
        .find_map(|h| (h.key == name).then_some(h.value).flatten())
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// The header naming the upstream message a record's events came from, by its dedupe key
/// (`amqp/<queue>/<message_id>`): set by Weir's cluster mode when it produces what its AMQP
/// input received, so the partition that applies the record recognises a redelivery.
pub const ORIGIN_HEADER: &str = "weir-origin";

/// The header naming a record's tenant, `ACCOUNT/PROJECT` (set by Weir's cluster mode when
/// it produces events it accepted over HTTP for a tenant).
pub const TENANT_HEADER: &str = "weir-tenant";

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
        let mut assignment = self.assignment;
        match &mut assignment {
            None => consumer.subscribe(&[&cfg.topic])?,
            Some(rx) => {
                let parts = rx.borrow_and_update().clone();
                assign_manually(&consumer, &parts).await?;
            }
        }
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
                changed = async {
                    match assignment.as_mut() {
                        Some(rx) => rx.changed().await,
                        None => std::future::pending().await,
                    }
                } => {
                    let Some(rx) = assignment.as_mut().filter(|_| changed.is_ok()) else {
                        assignment = None;
                        continue;
                    };
                    // Store what is read of the partitions kept, then take the new set.
                    deadline = None;
                    if let Err(e) = flush(&consumer, &*sink, &stats, &cfg, &mut pending).await {
                        break Err(e);
                    }
                    let parts = rx.borrow_and_update().clone();
                    if let Err(e) = assign_manually(&consumer, &parts).await {
                        break Err(e);
                    }
                }
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
                        floors.retain(|p, _| shared.contains_key(p) && !pending.dropped.contains(p));
                        pending.dropped.clear();
                        // Records of partitions taken away are not ours to store any more:
                        // their new owner reads them from its own stored position.
                        pending.parts.retain(|p, _| shared.contains_key(p));
                        pending.records = pending.parts.values().map(|b| b.events.len()).sum();
                        for (p, f) in shared {
                            let e = floors.entry(p).or_insert(f);
                            *e = (*e).max(f);
                        }
                    }
                    let (p, offset) = (m.partition(), m.offset());
                    if pending.dropped.contains(&p) {
                        continue;
                    }
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
                    let tenant = tenant_header(&m);
                    if pending.parts.get(&p).is_some_and(|b| b.tenant != tenant) {
                        // A batch never mixes tenants: store what this partition has first.
                        deadline = None;
                        if let Err(e) = flush(&consumer, &*sink, &stats, &cfg, &mut pending).await {
                            break Err(e);
                        }
                    }
                    let part = pending.parts.entry(p).or_insert_with(|| PartPending {
                        events: Vec::new(),
                        next: offset + 1,
                        tenant,
                        origins: Vec::new(),
                    });
                    match decode_payload(m.payload().unwrap_or_default(), &sink.shape_options()) {
                        Ok(events) => {
                            let start = part.events.len();
                            part.events.extend(events);
                            if let Some(key) = origin_header(&m) {
                                part.origins.push(Origin {
                                    key,
                                    events: start..part.events.len(),
                                });
                            }
                        }
                        Err(reason) => {
                            stats.add_invalid(1);
                            if limiter.allow().is_some() {
                                tracing::warn!(partition = p, offset, %reason, "Malformed Kafka record skipped.");
                            }
                        }
                    }
                    drop(m);
                    floors.insert(p, offset + 1);
                    part.next = offset + 1;
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

/// Make the pending records durable (each partition's batch with its position, the
/// partitions at once), then commit them to Kafka.
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
    let parts = std::mem::take(&mut pending.parts);
    pending.records = 0;
    let next: Vec<(i32, i64)> = parts.iter().map(|(part, b)| (*part, b.next)).collect();
    let batches = parts.into_iter().map(|(part, b)| SourceBatch {
        events: b.events,
        positions: vec![(cfg.position_key(part), b.next)],
        partition: Some(part),
        tenant: b.tenant,
        origins: b.origins,
    });
    let stored = futures_util::future::join_all(batches.map(|b| store(sink, stats, b))).await;
    let stored = stored.into_iter().collect::<Result<Vec<bool>>>()?;
    // Partitions revoked meanwhile were not stored: neither committed nor floored here, and
    // not read on until they are assigned again.
    let next: Vec<(i32, i64)> = next
        .into_iter()
        .zip(stored)
        .filter_map(|(n, kept)| {
            if !kept {
                pending.dropped.insert(n.0);
            }
            kept.then_some(n)
        })
        .collect();
    {
        let mut shared = consumer.context().floors.lock();
        for (part, next) in &next {
            if let Some(f) = shared.get_mut(part) {
                *f = (*f).max(*next);
            }
        }
    }
    let mut tpl = TopicPartitionList::new();
    for (part, next) in &next {
        tpl.add_partition_offset(&cfg.topic, *part, Offset::Offset(*next))?;
    }
    // Best effort: Weir's stored positions, not the broker's commits, decide what is skipped.
    if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
        tracing::debug!(error = %e, "Kafka offset commit failed (positions are kept by Weir).");
    }
    Ok(())
}

/// Submit one batch until the sink takes it (`true`), says its partition is no longer
/// ours (`false`), or refuses it for good (an error).
async fn store(sink: &dyn EventSink, stats: &InputStats, batch: SourceBatch) -> Result<bool> {
    let mut wait = Duration::from_millis(50);
    loop {
        match sink.submit(batch.clone()).await {
            Ok(ids) => {
                stats.add_accepted(ids.len() as u64);
                return Ok(true);
            }
            Err(SinkError::Revoked(why)) => {
                tracing::info!(%why, "Kafka batch dropped: its partition moved.");
                return Ok(false);
            }
            Err(SinkError::Transient(e)) => {
                tracing::warn!(error = %e, "Kafka batch not stored yet; retrying.");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
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
