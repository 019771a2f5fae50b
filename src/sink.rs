//! The server's side of the inputs: an [`EventSink`] that applies a source's batch to the
//! engine and the log as one atomic unit with the input positions it covers, and starts the
//! configured sources.
//!
//! A batch is applied to the engine (where its events get their ids) before its records are
//! durable. So that an input's retry never counts a batch twice, a batch is refused with
//! nothing applied while the log is not taking writes ([`weir_storage::Health`]), and once
//! applied its records are written by the log writer itself, retrying transient failures
//! with the same ids: the only transient error the sink returns is that up-front refusal.
//! After `kill -9` the engine is rebuilt from the log, which holds a batch with its
//! positions or neither, and the input redelivers what the log does not hold.

use std::sync::Arc;

use weir_core::{EventId, Millis, ShapeOptions};
use weir_inputs::{
    AmqpSource, BoxFuture, EventSink, KafkaSource, PruneResult, Shutdown, SinkError, Source,
    SourceBatch, UdpSource,
};
use weir_storage::StorageError;

use crate::app::App;
use crate::tenants::Hub;

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
            // Refused before anything is applied: safe to retry.
            let (ids, receipt) = app.add(events, positions).map_err(sink_error)?;
            // Applied: the log writer retries transient failures itself, so an error here is
            // one it gave up on (it stopped for good, or the server is shutting down). The
            // batch is then not durable and never acknowledged; it must not be resubmitted
            // to this process, whose engine holds it: the input redelivers it after restart.
            receipt
                .await
                .map_err(|e| SinkError::Fatal(format!("the batch was not made durable: {e}")))?;
            Ok(ids)
        })
    }

    fn shape_options(&self) -> ShapeOptions {
        self.0.shape_opts()
    }

    fn now_ms(&self) -> Millis {
        self.0.clock().now_ms()
    }

    fn prune_positions(
        &self,
        prefix: &str,
        older_than: i64,
    ) -> BoxFuture<'static, Result<PruneResult, SinkError>> {
        let store = self.0.node().store().clone();
        let prefix = prefix.to_string();
        Box::pin(async move {
            let older = move |v: &[u8]| {
                <[u8; 8]>::try_from(v).is_ok_and(|b| i64::from_be_bytes(b) < older_than)
            };
            let done = store
                .run(move |store| store.meta_prune(&prefix, &older))
                .await
                .map_err(sink_error)?;
            Ok(PruneResult {
                removed: done.removed,
                kept: done.kept,
            })
        })
    }

    fn position(&self, key: &str) -> BoxFuture<'static, Option<i64>> {
        let store = self.0.node().store().clone();
        let key = key.to_string();
        Box::pin(async move {
            match store
                .run({
                    let key = key.clone();
                    move |store| store.meta_get(&key)
                })
                .await
            {
                Ok(Some(bytes)) => bytes.try_into().ok().map(i64::from_be_bytes),
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(key, error = %e, "reading an input position failed");
                    None
                }
            }
        })
    }
}

fn sink_error(e: StorageError) -> SinkError {
    if e.is_transient() {
        SinkError::Transient(e.to_string())
    } else {
        SinkError::Fatal(e.to_string())
    }
}

/// Start every input the configuration turns on; each runs until `shutdown`.
pub fn start_inputs(
    hub: &Hub,
    shutdown: &Shutdown,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let cfg = hub.node().cfg();
    // Each input's events belong to its configured tenant (restored on start).
    let sink = |input: &str| -> anyhow::Result<Arc<dyn EventSink>> {
        let tenant = cfg.auth.input_tenant(input)?;
        if let Some(cluster) = hub.cluster() {
            // Cluster mode: produced to the cluster topic, to the events' partitions.
            return Ok(Arc::new(crate::cluster::sink::ProduceSink {
                cluster: cluster.clone(),
                tenant,
            }));
        }
        let app = hub.app(&tenant).ok_or_else(|| {
            anyhow::anyhow!("the tenant {tenant} of input {input} is not restored")
        })?;
        Ok(Arc::new(AppSink(app)))
    };
    let mut tasks = Vec::new();
    if let Some(cfg) = cfg.udp.clone() {
        let source = UdpSource::bind(cfg)?;
        tracing::info!(addr = %source.local_addr()?, "UDP input listening");
        tasks.push(spawn("udp", source, sink("udp")?, shutdown.clone()));
    }
    if let Some(cfg) = hub.node().cfg().amqp.clone() {
        tracing::info!(url = %weir_inputs::amqp::redact_url(&cfg.url), queue = %cfg.queue, "AMQP input starting");
        tasks.push(spawn(
            "amqp",
            AmqpSource::new(cfg)?,
            sink("amqp")?,
            shutdown.clone(),
        ));
    }
    if let Some(cfg) = hub.node().cfg().kafka.clone() {
        tracing::info!(brokers = %cfg.brokers, topic = %cfg.topic, group = %cfg.group, "Kafka input starting");
        tasks.push(spawn(
            "kafka",
            KafkaSource::new(cfg)?,
            sink("kafka")?,
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::Duration;

    use serde_json::json;
    use weir_core::{Event, SystemClock};
    use weir_engine::ReadRequest;
    use weir_storage::{
        CatalogKind, EmbeddedStore, EventIter, EventPage, EventQuery, GroupCommit, LogRecord,
        MetaPrune, RangeQuery, RecordIter, Result, StateIter, StateKeyWrite, Storage,
    };

    use super::*;
    use crate::app::Node;
    use crate::config::ServeConfig;
    use crate::store::Store;

    /// A real store whose appends fail transiently while `failing` is set.
    struct Flaky {
        inner: EmbeddedStore,
        failing: AtomicBool,
        failed: AtomicU64,
    }

    impl Storage for Flaky {
        fn append(&self, records: &[LogRecord], meta: &[(String, Vec<u8>)]) -> Result<()> {
            if self.failing.load(Ordering::SeqCst) {
                self.failed.fetch_add(1, Ordering::SeqCst);
                return Err(StorageError::Backend {
                    backend: "embedded",
                    message: "write timed out".into(),
                    transient: true,
                });
            }
            self.inner.append(records, meta)
        }
        fn sync(&self) -> Result<()> {
            self.inner.sync()
        }
        fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
            self.inner.meta_get(key)
        }
        fn meta_put(&self, key: &str, value: &[u8]) -> Result<()> {
            self.inner.meta_put(key, value)
        }
        fn meta_cas(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool> {
            self.inner.meta_cas(key, expected, value)
        }
        fn meta_prune(&self, prefix: &str, remove: &dyn Fn(&[u8]) -> bool) -> Result<MetaPrune> {
            self.inner.meta_prune(prefix, remove)
        }
        fn meta_scan(
            &self,
            prefix: &str,
            after: Option<&str>,
            limit: usize,
        ) -> Result<Vec<(String, Vec<u8>)>> {
            self.inner.meta_scan(prefix, after, limit)
        }
        fn last_seq(&self) -> Result<u64> {
            self.inner.last_seq()
        }
        fn scan_seq(&self, after_seq: u64) -> Result<RecordIter<'_>> {
            self.inner.scan_seq(after_seq)
        }
        fn scan(&self, q: &EventQuery) -> Result<EventPage> {
            self.inner.scan(q)
        }
        fn scan_range(&self, q: &RangeQuery) -> Result<EventIter<'_>> {
            self.inner.scan_range(q)
        }
        fn catalog_put(&self, kind: CatalogKind, name: &str, text: &str) -> Result<()> {
            self.inner.catalog_put(kind, name, text)
        }
        fn catalog_delete(&self, kind: CatalogKind, name: &str) -> Result<bool> {
            self.inner.catalog_delete(kind, name)
        }
        fn catalog_list(&self, kind: CatalogKind) -> Result<Vec<(String, String)>> {
            self.inner.catalog_list(kind)
        }
        fn state_write(&self, scope: &str, part: u32, keys: &[StateKeyWrite]) -> Result<()> {
            self.inner.state_write(scope, part, keys)
        }
        fn state_read(&self, scope: &str, part: u32) -> Result<StateIter<'_>> {
            self.inner.state_read(scope, part)
        }
        fn state_drop(&self, scope: &str, parts: u32) -> Result<()> {
            self.inner.state_drop(scope, parts)
        }
        fn record_decision(&self, seq: u64, json: &[u8]) -> Result<()> {
            self.inner.record_decision(seq, json)
        }
        fn recent_decisions(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
            self.inner.recent_decisions(limit)
        }
    }

    fn batch(ids: std::ops::Range<u32>) -> SourceBatch {
        let events = ids
            .clone()
            .map(|i| {
                let fields = json!({ "id": format!("e{i}") });
                Event::new(
                    "item",
                    1_700_000_000_000,
                    fields.as_object().unwrap().clone(),
                )
            })
            .collect();
        SourceBatch {
            events,
            positions: vec![("kafka/g/t/0".into(), i64::from(ids.end))],
            ..Default::default()
        }
    }

    /// What every input does: retry a transient refusal, give up on a fatal one.
    async fn submit_like_an_input(sink: &AppSink, b: SourceBatch) -> Vec<EventId> {
        loop {
            match sink.submit(b.clone()).await {
                Ok(ids) => return ids,
                Err(SinkError::Transient(_)) => tokio::time::sleep(Duration::from_millis(2)).await,
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// `(id, count)` of every key of `by_id`.
    fn counts(app: &App) -> Vec<(String, i64)> {
        let mut rows: Vec<(String, i64)> = app
            .engine()
            .result("by_id", &ReadRequest::default())
            .unwrap()
            .into_iter()
            .map(|r| {
                let id = r.key["id"].as_str().unwrap().to_string();
                (id, r.values["n"].as_i64().unwrap())
            })
            .collect();
        rows.sort();
        rows
    }

    #[test]
    fn a_transient_storage_failure_never_counts_a_batch_twice() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Flaky {
            inner: EmbeddedStore::open(dir.path(), &Default::default()).unwrap(),
            failing: AtomicBool::new(false),
            failed: AtomicU64::new(0),
        });
        let cfg = ServeConfig {
            shards: 4,
            ..ServeConfig::default()
        };
        let log = GroupCommit::start(store.clone(), true);
        let node = Node::new(
            cfg,
            Store::new(store.clone()),
            log,
            0,
            Arc::new(SystemClock),
        );
        let app = Arc::new(App::new(Arc::new(node), Default::default()));
        let sink = AppSink(app.clone());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            crate::catalog::apply(
                &app,
                "CREATE QUERY by_id AS SELECT count(*) AS n FROM item GROUP BY id".into(),
            )
            .await
            .unwrap();
            store.failing.store(true, Ordering::SeqCst);
            let first = {
                let sink = AppSink(app.clone());
                tokio::spawn(async move { submit_like_an_input(&sink, batch(0..50)).await })
            };
            // The log is retrying the first batch's write: it is applied once, and another
            // batch is refused with nothing applied (so the input's retry is safe).
            while store.failed.load(Ordering::SeqCst) < 3 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let refused = sink.submit(batch(50..80)).await;
            assert!(
                matches!(refused, Err(SinkError::Transient(_))),
                "{refused:?}"
            );
            assert_eq!(counts(&app).len(), 50);
            assert!(counts(&app).iter().all(|(_, n)| *n == 1));
            // The store recovers: the first batch becomes durable under its ids.
            store.failing.store(false, Ordering::SeqCst);
            let ids = first.await.unwrap();
            assert_eq!(ids, (1..=50).collect::<Vec<u64>>());
            let ids = submit_like_an_input(&sink, batch(50..80)).await;
            assert_eq!(ids, (51..=80).collect::<Vec<u64>>());
        });
        let counted = counts(&app);
        assert_eq!(counted.len(), 80);
        assert!(counted.iter().all(|(_, n)| *n == 1), "counted twice");
        // The log holds each event once, with the last position.
        let seqs: Vec<u64> = store.scan_seq(0).unwrap().map(|r| r.unwrap().seq).collect();
        assert_eq!(seqs, (1..=80).collect::<Vec<u64>>());
        assert_eq!(rt.block_on(sink.position("kafka/g/t/0")), Some(80));
    }

    #[test]
    fn inputs_read_times_with_the_servers_clock_and_skew() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Storage> =
            Arc::new(EmbeddedStore::open(dir.path(), &Default::default()).unwrap());
        let cfg = ServeConfig {
            max_future_skew: Duration::from_secs(7),
            ..ServeConfig::default()
        };
        let log = GroupCommit::start(store.clone(), true);
        let clock = Arc::new(weir_core::ManualClock::new(1_234_000));
        let node = Node::new(cfg, Store::new(store), log, 0, clock);
        let app = Arc::new(App::new(Arc::new(node), Default::default()));
        let sink = AppSink(app);
        let opts = sink.shape_options();
        assert_eq!((opts.now_ms, opts.max_future_skew_ms), (1_234_000, 7_000));
        assert_eq!(sink.now_ms(), 1_234_000);
    }
}
