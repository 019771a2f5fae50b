//! The AMQP input over lapin: consume a queue, hand deliveries to the sink in batches (at most
//! `prefetch` unacknowledged at once), and ack a batch only after the sink says it is durable.
//!
//! - Malformed deliveries are rejected without requeue (dead-lettered when the queue has a
//!   dead-letter exchange) and counted.
//! - When the broker goes away the source reconnects with exponential backoff; unacked
//!   deliveries come back from the broker and the source resumes.
//! - Redeliveries of messages already made durable (the ack was lost with the connection)
//!   are recognised by their AMQP `message_id`: each applied id is stored with its batch as
//!   the position `amqp/<queue>/<message_id>` and such a delivery is acked without being
//!   applied again. Messages without a `message_id` are at-least-once (or refused with
//!   `require_message_id`).
//! - Those markers are forgotten once older than `dedupe_horizon` (default 1 h, on the sink's
//!   clock), pruned after a flush at most every quarter horizon, so the store holds about
//!   `rate × horizon` markers, never one per message for ever. Pruning pauses for
//!   `min(dedupe_horizon, 1 min)` after every (re)connect: redeliveries of what was unacked
//!   come first then, however long Weir or the broker was away.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties};
use serde::Deserialize;
use tokio::time::Instant;
use weir_core::Event;

use crate::config::{duration, LogLimiter};
use crate::decode::decode_payload;
use crate::sink::{EventSink, Origin, SinkError, SourceBatch};
use crate::source::{stopped, Shutdown, Source};
use crate::stats::InputStats;
use crate::{InputError, Result};

/// Settings of the AMQP input (`--amqp URL --amqp-queue Q`, or `[amqp]` in the config file).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpConfig {
    /// Broker URL, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`.
    pub url: String,
    /// Queue to consume.
    pub queue: String,
    /// Most unacknowledged deliveries at once (`basic.qos`); also the largest batch.
    /// Default 500.
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
    /// Declare the queue (durable) if missing; when `false` only check that it exists.
    /// Default `true`.
    #[serde(default = "yes")]
    pub declare: bool,
    /// When declaring, route rejected deliveries to this exchange (`x-dead-letter-exchange`).
    /// Must match the queue's arguments if it already exists.
    #[serde(default)]
    pub dead_letter_exchange: Option<String>,
    /// Refuse (reject) messages without a `message_id`, so every applied message can be
    /// recognised on redelivery. Default `false` (such messages are at-least-once).
    #[serde(default)]
    pub require_message_id: bool,
    /// Longest a partial batch waits for more deliveries. Default `10ms`.
    #[serde(default = "default_linger", deserialize_with = "duration")]
    pub linger: Duration,
    /// Longest wait between reconnection attempts (backoff doubles from 100 ms). Default `5s`.
    #[serde(default = "default_max_backoff", deserialize_with = "duration")]
    pub max_backoff: Duration,
    /// How long a dedupe marker (`amqp/<queue>/<message_id>`) is kept: a redelivery of a
    /// message applied longer ago than this may be counted again. Default `1h`.
    #[serde(default = "default_dedupe_horizon", deserialize_with = "duration")]
    pub dedupe_horizon: Duration,
}

fn default_prefetch() -> u16 {
    500
}
fn yes() -> bool {
    true
}
fn default_linger() -> Duration {
    Duration::from_millis(10)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(5)
}
fn default_dedupe_horizon() -> Duration {
    Duration::from_secs(3600)
}

/// Longest pause of pruning after a (re)connect.
const PRUNE_HOLD_MS: i64 = 60_000;

impl AmqpConfig {
    /// Defaults for consuming `queue` at `url`.
    pub fn new(url: impl Into<String>, queue: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            queue: queue.into(),
            prefetch: default_prefetch(),
            declare: true,
            dead_letter_exchange: None,
            require_message_id: false,
            linger: default_linger(),
            max_backoff: default_max_backoff(),
            dedupe_horizon: default_dedupe_horizon(),
        }
    }
}

/// `amqp://user:secret@host` → `amqp://user:***@host`, for logs.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let auth_end = rest.find('@');
    let path_start = rest.find('/').unwrap_or(rest.len());
    match auth_end {
        Some(at) if at < path_start => match rest[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &url[..scheme_end],
                &rest[..colon],
                &rest[at..]
            ),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

/// An AMQP input, ready to [`run`](Source::run).
#[derive(Debug)]
pub struct AmqpSource {
    config: AmqpConfig,
    stats: Arc<InputStats>,
}

impl AmqpSource {
    /// A source for `config` (connects when run).
    pub fn new(config: AmqpConfig) -> Result<Self> {
        if config.prefetch == 0 {
            return Err(InputError::Config(
                "amqp prefetch must be at least 1".into(),
            ));
        }
        if config.dedupe_horizon.is_zero() {
            return Err(InputError::Config(
                "amqp dedupe_horizon must be more than 0".into(),
            ));
        }
        Ok(Self {
            config,
            stats: Arc::new(InputStats::new("amqp")),
        })
    }
}

/// How one connected session ended.
enum End {
    Shutdown,
}

impl Source for AmqpSource {
    fn stats(&self) -> Arc<InputStats> {
        self.stats.clone()
    }

    async fn run(self, sink: Arc<dyn EventSink>, mut shutdown: Shutdown) -> Result<()> {
        let url = redact_url(&self.config.url);
        let first = Duration::from_millis(100);
        let mut backoff = first;
        let mut limiter = LogLimiter::new(Duration::from_secs(1));
        loop {
            let mut session = Session {
                config: &self.config,
                stats: &self.stats,
                sink: &sink,
                limiter: &mut limiter,
                connected: false,
                connected_at: 0,
                last_prune: None,
            };
            match session.run(&mut shutdown).await {
                Ok(End::Shutdown) => return Ok(()),
                Err(e @ InputError::Sink(_)) => return Err(e),
                Err(e) => {
                    if session.connected {
                        backoff = first;
                    }
                    tracing::warn!(url = %url, queue = %self.config.queue, error = %e,
                        retry_in_ms = backoff.as_millis() as u64,
                        "AMQP connection lost or refused; reconnecting.");
                }
            }
            tokio::select! {
                _ = stopped(&mut shutdown) => return Ok(()),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.config.max_backoff.max(first));
        }
    }
}

/// Deliveries read but not yet settled with the broker.
#[derive(Default)]
struct Pending {
    events: Vec<Event>,
    positions: Vec<(String, i64)>,
    origins: Vec<Origin>,
    ids: HashSet<String>,
    deliveries: usize,
    last_tag: Option<u64>,
}

struct Session<'a> {
    config: &'a AmqpConfig,
    stats: &'a Arc<InputStats>,
    sink: &'a Arc<dyn EventSink>,
    limiter: &'a mut LogLimiter,
    connected: bool,
    /// When this connection was made, on the sink's clock.
    connected_at: i64,
    /// When markers were last pruned, on the sink's clock.
    last_prune: Option<i64>,
}

impl Session<'_> {
    async fn run(&mut self, shutdown: &mut Shutdown) -> Result<End> {
        let cfg = self.config;
        let props = ConnectionProperties::default()
            .with_connection_name(format!("weir input {}", cfg.queue).into());
        let conn = Connection::connect(&cfg.url, props).await?;
        let channel = conn.create_channel().await?;
        channel
            .basic_qos(cfg.prefetch, BasicQosOptions::default())
            .await?;
        let mut args = FieldTable::default();
        if let Some(dlx) = &cfg.dead_letter_exchange {
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(dlx.as_str().into()),
            );
        }
        let opts = QueueDeclareOptions {
            passive: !cfg.declare,
            durable: true,
            ..QueueDeclareOptions::default()
        };
        let queue = channel
            .queue_declare(cfg.queue.as_str().into(), opts, args)
            .await?;
        self.stats.set_lag(i64::from(queue.message_count()));
        let mut consumer = channel
            .basic_consume(
                cfg.queue.as_str().into(),
                format!("weir-{}", cfg.queue).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        self.connected = true;
        self.connected_at = self.sink.now_ms();
        tracing::info!(queue = %cfg.queue, prefetch = cfg.prefetch, "AMQP input consuming.");

        let mut pending = Pending::default();
        let mut deadline: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                _ = stopped(shutdown) => {
                    // Settle what is already read, then leave cleanly.
                    self.flush(&channel, &mut pending).await?;
                    let _ = conn.close(200, "weir shutting down".into()).await;
                    return Ok(End::Shutdown);
                }
                d = consumer.next() => {
                    let delivery = match d {
                        Some(Ok(d)) => d,
                        Some(Err(e)) => return Err(e.into()),
                        None => return Err(InputError::Config("AMQP consumer was cancelled".into())),
                    };
                    self.read(&channel, delivery, &mut pending).await?;
                    if pending.deliveries >= usize::from(cfg.prefetch) {
                        deadline = None;
                        self.flush(&channel, &mut pending).await?;
                    } else if deadline.is_none() && pending.deliveries > 0 {
                        deadline = Some(Instant::now() + cfg.linger);
                    }
                }
                _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)).await },
                    if deadline.is_some() => {
                    deadline = None;
                    self.flush(&channel, &mut pending).await?;
                }
            }
        }
    }

    /// Take one delivery: reject it if malformed, else add it to the pending batch.
    async fn read(
        &mut self,
        channel: &Channel,
        d: lapin::message::Delivery,
        pending: &mut Pending,
    ) -> Result<()> {
        self.stats.add_received(1);
        let id = d.properties.message_id().as_ref().map(|s| s.to_string());
        let decoded = match (&id, self.config.require_message_id) {
            (None, true) => Err("message has no message_id (require_message_id is on)".into()),
            _ => decode_payload(&d.data, &self.sink.shape_options()),
        };
        let events = match decoded {
            Ok(events) => events,
            Err(reason) => {
                self.stats.add_invalid(1);
                if let Some(suppressed) = self.limiter.allow() {
                    tracing::warn!(queue = %self.config.queue, %reason, suppressed,
                        "Malformed AMQP message rejected.");
                }
                let opts = BasicRejectOptions { requeue: false };
                channel.basic_reject(d.delivery_tag, opts).await?;
                return Ok(());
            }
        };
        pending.deliveries += 1;
        pending.last_tag = Some(d.delivery_tag);
        match id {
            Some(id) => {
                let key = format!("amqp/{}/{id}", self.config.queue);
                if pending.ids.contains(&key) || self.sink.position(&key).await.is_some() {
                    self.stats.add_duplicates(1);
                    return Ok(());
                }
                pending.positions.push((key.clone(), self.sink.now_ms()));
                let start = pending.events.len();
                pending.events.extend(events);
                pending.origins.push(Origin {
                    key: key.clone(),
                    events: start..pending.events.len(),
                });
                pending.ids.insert(key);
            }
            None => pending.events.extend(events),
        }
        Ok(())
    }

    /// Make the pending batch durable, then ack every delivery in it at once.
    async fn flush(&mut self, channel: &Channel, pending: &mut Pending) -> Result<()> {
        let Some(last_tag) = pending.last_tag else {
            return Ok(());
        };
        let p = std::mem::take(pending);
        let batch = SourceBatch {
            events: p.events,
            positions: p.positions,
            origins: p.origins,
            ..Default::default()
        };
        let mut wait = Duration::from_millis(50);
        loop {
            match self.sink.submit(batch.clone()).await {
                Ok(ids) => {
                    self.stats.add_accepted(ids.len() as u64);
                    let opts = BasicAckOptions { multiple: true };
                    channel.basic_ack(last_tag, opts).await?;
                    self.prune().await;
                    return Ok(());
                }
                Err(SinkError::Transient(e)) => {
                    tracing::warn!(error = %e, "AMQP batch not stored yet; retrying.");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e @ (SinkError::Fatal(_) | SinkError::Revoked(_))) => {
                    // The sink will take nothing more (its log failed): stop without settling,
                    // so the broker keeps these deliveries for the next run.
                    tracing::error!(error = %e, deliveries = p.deliveries,
                        "The sink refused an AMQP batch; stopping the input, the broker keeps the batch.");
                    return Err(e.into());
                }
            }
        }
    }
}

impl Session<'_> {
    /// Forget the dedupe markers older than the horizon, if it is time to (see the module
    /// notes). A failed prune is logged and tried again after the next flush.
    async fn prune(&mut self) {
        let horizon = i64::try_from(self.config.dedupe_horizon.as_millis()).unwrap_or(i64::MAX);
        let now = self.sink.now_ms();
        if now.saturating_sub(self.connected_at) < horizon.min(PRUNE_HOLD_MS) {
            return;
        }
        if let Some(last) = self.last_prune {
            if now.saturating_sub(last) < (horizon / 4).max(1) {
                return;
            }
        }
        let prefix = format!("amqp/{}/", self.config.queue);
        match self
            .sink
            .prune_positions(&prefix, now.saturating_sub(horizon))
            .await
        {
            Ok(done) => {
                self.last_prune = Some(now);
                self.stats.set_markers(done.kept);
                tracing::debug!(queue = %self.config.queue, removed = done.removed,
                    kept = done.kept, "AMQP dedupe markers pruned.");
            }
            Err(e) => {
                tracing::warn!(queue = %self.config.queue, error = %e,
                    "Pruning AMQP dedupe markers failed; trying again later.");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_url("amqp://127.0.0.1/a@b"), "amqp://127.0.0.1/a@b");
        assert_eq!(redact_url("amqp://user@h"), "amqp://user@h");
    }

    #[test]
    fn config_defaults_and_unknown_fields() {
        let c: AmqpConfig = serde_json::from_str(r#"{"url":"amqp://h","queue":"q"}"#).unwrap();
        assert_eq!(c, AmqpConfig::new("amqp://h", "q"));
        assert!(c.declare);
        assert!(serde_json::from_str::<AmqpConfig>(r#"{"url":"u","queue":"q","x":1}"#).is_err());
        assert!(AmqpSource::new(AmqpConfig { prefetch: 0, ..c }).is_err());
    }
}
