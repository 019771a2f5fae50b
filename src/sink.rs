//! The server's side of the inputs: an [`EventSink`] that applies a source's batch to the
//! engine and the log as one atomic unit with the input positions it covers, and starts the
//! configured sources.

use std::sync::Arc;

use weir_core::EventId;
use weir_inputs::{
    AmqpSource, BoxFuture, EventSink, KafkaSource, Shutdown, SinkError, Source, SourceBatch,
    UdpSource,
};

use crate::app::App;

/// Feeds input batches into the app.
pub struct AppSink(pub Arc<App>);

impl EventSink for AppSink {
    fn submit(&self, batch: SourceBatch) -> BoxFuture<'static, Result<Vec<EventId>, SinkError>> {
        let app = self.0.clone();
        Box::pin(async move {
            let positions = batch
                .positions
                .into_iter()
                .map(|(k, v)| (k, v.to_be_bytes().to_vec()))
                .collect();
            let mut events = batch.events;
            let invalid = app.schema_errors(&events);
            if !invalid.is_empty() {
                // Skipped and counted like any malformed input; the positions still advance.
                for (_, reason) in &invalid {
                    tracing::warn!(%reason, "event from an input refused by its schema");
                }
                let bad: std::collections::HashSet<usize> =
                    invalid.iter().map(|(i, _)| *i).collect();
                events = events
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| !bad.contains(i))
                    .map(|(_, e)| e)
                    .collect();
            }
            let (ids, receipt) = app.add(events, positions);
            receipt.await.map_err(|e| {
                if e.is_transient() {
                    SinkError::Transient(e.to_string())
                } else {
                    SinkError::Fatal(e.to_string())
                }
            })?;
            Ok(ids)
        })
    }

    fn position(&self, key: &str) -> Option<i64> {
        match self.0.store.meta_get(key) {
            Ok(Some(bytes)) => bytes.try_into().ok().map(i64::from_be_bytes),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(key, error = %e, "reading an input position failed");
                None
            }
        }
    }
}

/// Start every input the configuration turns on; each runs until `shutdown`.
pub fn start_inputs(
    app: &Arc<App>,
    shutdown: &Shutdown,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let sink: Arc<dyn EventSink> = Arc::new(AppSink(app.clone()));
    let mut tasks = Vec::new();
    if let Some(cfg) = app.cfg.udp.clone() {
        let source = UdpSource::bind(cfg)?;
        tracing::info!(addr = %source.local_addr()?, "UDP input listening");
        tasks.push(spawn("udp", source, sink.clone(), shutdown.clone()));
    }
    if let Some(cfg) = app.cfg.amqp.clone() {
        tracing::info!(url = %weir_inputs::amqp::redact_url(&cfg.url), queue = %cfg.queue, "AMQP input starting");
        tasks.push(spawn(
            "amqp",
            AmqpSource::new(cfg)?,
            sink.clone(),
            shutdown.clone(),
        ));
    }
    if let Some(cfg) = app.cfg.kafka.clone() {
        tracing::info!(brokers = %cfg.brokers, topic = %cfg.topic, group = %cfg.group, "Kafka input starting");
        tasks.push(spawn(
            "kafka",
            KafkaSource::new(cfg)?,
            sink.clone(),
            shutdown.clone(),
        ));
    }
    Ok(tasks)
}

fn spawn<S: Source + 'static>(
    name: &'static str,
    source: S,
    sink: Arc<dyn EventSink>,
    shutdown: Shutdown,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        match source.run(sink, shutdown).await {
            Ok(()) => tracing::info!(input = name, "input stopped"),
            Err(e) => tracing::error!(input = name, error = %e, "input failed"),
        }
    })
}
