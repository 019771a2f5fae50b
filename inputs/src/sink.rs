//! The server side of an input: where batches go, and where input positions are kept.

use std::future::Future;
use std::pin::Pin;

use weir_core::{Event, EventId};

/// A boxed, sendable future (what [`EventSink::submit`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One batch from an input: events plus the input positions reached with them.
///
/// The sink stores `positions` atomically with `events` (same durable write), so after a
/// crash either both are there or neither is. Keys are namespaced by input:
/// - `kafka/<group>/<topic>/<partition>` → the next offset to read;
/// - `amqp/<queue>/<message_id>` → the unix ms at which that message was applied (a dedupe
///   marker; the server may prune these after its dedupe window, see the crate README).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceBatch {
    /// Events to make durable and apply, in arrival order.
    pub events: Vec<Event>,
    /// Input positions to store with them (`key`, `value`).
    pub positions: Vec<(String, i64)>,
}

/// Why a sink could not take a batch. Nothing of a failed batch was applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying later (storage busy, shutting down a flush, ...).
    #[error("sink temporarily unavailable: {0}")]
    Transient(String),
    /// The sink will never take this batch.
    #[error("sink refused the batch: {0}")]
    Fatal(String),
}

/// Where inputs deliver events. Implemented by the server (storage + engine); tests use an
/// in-memory stand-in.
pub trait EventSink: Send + Sync + 'static {
    /// Make `batch` durable and apply it. Resolves only when the events and positions are
    /// durable (an input acknowledges upstream only after this returns `Ok`), with one id per
    /// event. On `Err` nothing of the batch was applied.
    fn submit(&self, batch: SourceBatch) -> BoxFuture<'static, Result<Vec<EventId>, SinkError>>;

    /// The stored value of an input position, if any (see [`SourceBatch`] for the keys).
    fn position(&self, key: &str) -> Option<i64>;
}
