//! The [`Source`] trait every input implements, and the shutdown signal it listens to.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

use crate::sink::EventSink;
use crate::stats::InputStats;
use crate::Result;

/// The shutdown signal: `true` (or a dropped sender) means stop.
pub type Shutdown = watch::Receiver<bool>;

/// A new shutdown signal: send `true` on the sender to stop every source holding a receiver.
pub fn shutdown_channel() -> (watch::Sender<bool>, Shutdown) {
    watch::channel(false)
}

/// Resolves once shutdown was asked for (or its sender is gone).
pub async fn stopped(shutdown: &mut Shutdown) {
    // `wait_for` errors only when the sender is dropped, which also means stop.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// One input. It owns its loop: reads, hands batches to the sink, acknowledges upstream only
/// after the sink says "durable", and returns when `shutdown` fires (after settling what it
/// can) or on an error it cannot recover from.
pub trait Source: Send {
    /// Counters of this input, readable while it runs.
    fn stats(&self) -> Arc<InputStats>;

    /// Run until shutdown.
    fn run(
        self,
        sink: Arc<dyn EventSink>,
        shutdown: Shutdown,
    ) -> impl Future<Output = Result<()>> + Send;
}
