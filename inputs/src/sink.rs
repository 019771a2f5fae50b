//! The server side of an input: where batches go, and where input positions are kept.

use std::future::Future;
use std::pin::Pin;

use weir_core::shape::ShapeOptions;
use weir_core::{Event, EventId, Millis};

/// A boxed, sendable future (what [`EventSink::submit`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One batch from an input: events plus the input positions reached with them.
///
/// The sink stores `positions` atomically with `events` (same durable write), so after a
/// crash either both are there or neither is. Keys are namespaced by input:
/// - `kafka/<group>/<topic>/<partition>` → the next offset to read;
/// - `amqp/<queue>/<message_id>` → the unix ms at which that message was applied (a dedupe
///   marker; the AMQP input prunes these once older than its `dedupe_horizon`, through
///   [`EventSink::prune_positions`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceBatch {
    /// Events to make durable and apply, in arrival order.
    pub events: Vec<Event>,
    /// Input positions to store with them (`key`, `value`).
    pub positions: Vec<(String, i64)>,
    /// The Kafka partition every event of the batch came from (a Kafka batch never mixes
    /// partitions); `None` for the other inputs.
    pub partition: Option<i32>,
    /// The tenant (account, project) the records name in their `weir-tenant` header, when
    /// they do (a batch never mixes tenants); otherwise the input's configured tenant.
    pub tenant: Option<(String, String)>,
    /// Runs of `events` that came from one upstream message known by a dedupe key (an AMQP
    /// delivery with a `message_id`; a cluster topic record carrying a `weir-origin`
    /// header), in order. A sink that stores `positions` itself can ignore them; a sink that
    /// forwards events elsewhere (cluster mode) keeps each key with its events so the
    /// partition that applies them can recognise a redelivery.
    pub origins: Vec<Origin>,
}

/// The events of a [`SourceBatch`] that came from one message known by a dedupe key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The dedupe key, named like an input position (`amqp/<queue>/<message_id>`).
    pub key: String,
    /// Which of the batch's events came from it.
    pub events: std::ops::Range<usize>,
}

/// Why a sink could not take a batch.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SinkError {
    /// Nothing of the batch was applied; worth retrying later (storage busy, ...).
    #[error("sink temporarily unavailable: {0}")]
    Transient(String),
    /// The sink will never take this batch (it may take nothing more at all, e.g. when the
    /// server's log has failed): do not acknowledge it upstream and do not resubmit it.
    #[error("sink refused the batch: {0}")]
    Fatal(String),
    /// Nothing of the batch was applied because its Kafka partition is no longer this
    /// consumer's (a rebalance moved it): drop it without committing; its new owner reads
    /// it again from its own stored position.
    #[error("the batch's partition was revoked: {0}")]
    Revoked(String),
}

/// Where inputs deliver events. Implemented by the server (storage + engine); tests use an
/// in-memory stand-in.
pub trait EventSink: Send + Sync + 'static {
    /// Make `batch` durable and apply it. Resolves only when the events and positions are
    /// durable (an input acknowledges upstream only after this returns `Ok`), with one id per
    /// event. On `Err(Transient)` nothing of the batch was applied, so submitting it again
    /// counts it once: a sink that has applied a batch must see it through to durable itself
    /// (the server's log writer retries with the same ids) rather than ask for a resubmit.
    /// On `Err(Fatal)` the batch is not durable and must not be acknowledged or resubmitted.
    fn submit(&self, batch: SourceBatch) -> BoxFuture<'static, Result<Vec<EventId>, SinkError>>;

    /// The stored value of an input position, if any (see [`SourceBatch`] for the keys).
    /// Asynchronous: the server reads it from its store off the async workers.
    fn position(&self, key: &str) -> BoxFuture<'static, Option<i64>>;

    /// The Kafka input has been assigned exactly `partitions` (its whole assignment), and is
    /// about to read their positions. A sink that keeps state per partition (cluster mode)
    /// restores the new ones here and lets go of the others. Resolves to the partitions the
    /// sink is ready for: an input assigning partitions by hand consumes only those (a
    /// group's assignment is taken whole). The default is ready for all of them.
    fn partitions_assigned(&self, partitions: &[i32]) -> BoxFuture<'static, Vec<i32>> {
        let all = partitions.to_vec();
        Box::pin(async move { all })
    }

    /// The Kafka input's partitions have been revoked (a rebalance has begun): no batch of
    /// them comes until the next [`EventSink::partitions_assigned`]. The default does nothing.
    fn partitions_revoked(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }

    /// How payloads are read right now: the sink's clock and its future-skew limit. The
    /// server answers with its own `Clock` and `max_future_skew`, so an event means the same
    /// whether it came over HTTP or an input. The default is the wall clock and the
    /// default 5-minute skew.
    fn shape_options(&self) -> ShapeOptions {
        ShapeOptions::at(crate::decode::now_ms())
    }

    /// The sink's clock, unix ms (AMQP dedupe markers are stamped and pruned with it).
    fn now_ms(&self) -> Millis {
        self.shape_options().now_ms
    }

    /// Delete the input positions under `prefix` whose value is below `older_than` (AMQP
    /// dedupe markers hold the unix ms they were applied at); resolves to how many remain
    /// under `prefix`. Sinks that keep no positions of their own may keep the default, which
    /// removes nothing and says so.
    fn prune_positions(
        &self,
        prefix: &str,
        older_than: i64,
    ) -> BoxFuture<'static, Result<PruneResult, SinkError>> {
        let _ = (prefix, older_than);
        Box::pin(async { Err(SinkError::Fatal("this sink cannot prune positions".into())) })
    }
}

/// What one [`EventSink::prune_positions`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PruneResult {
    /// Positions deleted.
    pub removed: u64,
    /// Positions left under the prefix.
    pub kept: u64,
}
