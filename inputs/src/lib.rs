//! # weir-inputs
//!
//! Weir's event inputs beside HTTP (which lives with the API): UDP, AMQP and Kafka. Each input
//! is a [`Source`] that owns its loop, hands batches of events to an [`EventSink`] and gets a
//! receipt back once the events are durable; only then does it acknowledge (AMQP) or commit
//! (Kafka). Every input reads payloads with the shape readers of `weir-core`, so an event
//! means the same whichever way it arrived.
//!
//! # Layout
//! - [`sink`]: the [`EventSink`] trait the server implements, and [`SourceBatch`].
//! - [`source`]: the [`Source`] trait and the [`Shutdown`] signal.
//! - [`stats`]: per-input counters ([`InputStats`]), mirrored to the `metrics` facade.
//! - [`decode`]: one payload (datagram, message, record) to events.
//! - [`config`]: serde helpers shared by the config structs (durations as `"10s"`).
//! - [`udp`]: the UDP input ([`UdpSource`], [`UdpConfig`]).
//! - [`amqp`]: the AMQP input over lapin ([`AmqpSource`], [`AmqpConfig`]).
//! - [`kafka`]: the Kafka input over rdkafka ([`KafkaSource`], [`KafkaConfig`]).

pub mod amqp;
pub mod config;
pub mod decode;
pub mod kafka;
pub mod sink;
pub mod source;
pub mod stats;
pub mod udp;

pub use amqp::{AmqpConfig, AmqpSource};
pub use kafka::{KafkaConfig, KafkaSource};
pub use sink::{BoxFuture, EventSink, Origin, PruneResult, SinkError, SourceBatch};
pub use source::{shutdown_channel, Shutdown, Source};
pub use stats::InputStats;
pub use udp::{UdpConfig, UdpSource};

/// Everything that can stop an input.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A socket could not be bound or read.
    #[error("input i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The AMQP client failed in a way reconnecting cannot fix.
    #[error("AMQP error: {0}")]
    Amqp(#[from] lapin::Error),
    /// The Kafka client failed in a way retrying cannot fix.
    #[error("Kafka error: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The sink refused a batch for good.
    #[error("sink error: {0}")]
    Sink(#[from] SinkError),
    /// A configuration value is unusable.
    #[error("bad input configuration: {0}")]
    Config(String),
}

/// Result of an input operation.
pub type Result<T, E = InputError> = std::result::Result<T, E>;
