//! The cluster's two sinks: what the consumer of the cluster topic feeds (each batch into
//! its partition's cell), and what the node's other inputs (UDP, AMQP) feed (produced to the
//! topic, like an event accepted over HTTP).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use weir_core::{Event, EventId, Tenant};
use weir_inputs::{BoxFuture, EventSink, KafkaConfig, KafkaSource, SinkError, SourceBatch};

use super::{CellState, Cluster};
use crate::sink::AppSink;

/// Feeds the cluster topic's batches into their partitions' cells.
pub struct CellSink {
    cluster: Arc<Cluster>,
    /// The tenant of records that name none.
    default_tenant: Tenant,
}

impl EventSink for CellSink {
    fn submit(&self, batch: SourceBatch) -> BoxFuture<'static, Result<Vec<EventId>, SinkError>> {
        let cluster = self.cluster.clone();
        let tenant = batch
            .tenant
            .clone()
            .map(|(a, p)| Tenant::new(a, p))
            .unwrap_or_else(|| self.default_tenant.clone());
        Box::pin(async move {
            let p = batch.partition.unwrap_or(-1);
            let cell = cluster
                .cell(p)
                .filter(|c| c.state() != CellState::Paused)
                .ok_or_else(|| SinkError::Revoked(format!("partition {p} is not this node's")))?;
            if cell.state() == CellState::Fenced {
                return Err(SinkError::Transient(format!(
                    "partition {p}'s lease cannot be renewed"
                )));
            }
            let app = cell
                .hub
                .ensure(&tenant)
                .await
                .map_err(|e| SinkError::Transient(format!("restoring tenant {tenant}: {e}")))?;
            match AppSink(app).submit(batch).await {
                Err(SinkError::Fatal(why)) => {
                    // This cell's log has failed: it answers nothing more (503) until it
                    // is reopened from the store; the other partitions go on.
                    tracing::error!(partition = p, %why, "a partition's log failed; not serving it");
                    cell.fail();
                    Err(SinkError::Revoked(format!(
                        "partition {p}'s log failed: {why}"
                    )))
                }
                other => other,
            }
        })
    }

    fn position(&self, key: &str) -> BoxFuture<'static, Option<i64>> {
        let cluster = self.cluster.clone();
        let key = key.to_string();
        Box::pin(async move {
            let p: i32 = key.rsplit('/').next()?.parse().ok()?;
            cluster.cell(p)?.position(key).await
        })
    }

    fn partitions_assigned(&self, partitions: &[i32]) -> BoxFuture<'static, Vec<i32>> {
        let cluster = self.cluster.clone();
        let parts = partitions.to_vec();
        Box::pin(async move { cluster.assigned(&parts).await })
    }

    fn partitions_revoked(&self) -> BoxFuture<'static, ()> {
        self.cluster.revoked();
        Box::pin(async {})
    }
}

/// Start consuming the cluster topic as a member of the cluster's group.
pub fn start(
    cluster: &Arc<Cluster>,
    default_tenant: Tenant,
    shutdown: &weir_inputs::Shutdown,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let cfg = cluster.cfg();
    let mut k = KafkaConfig::new(&cfg.brokers, &cfg.topic, &cfg.group);
    k.options = cfg.options.clone();
    let mut source = KafkaSource::new(k)?;
    if cfg.membership == super::Membership::Weir {
        source = source.assigned_by(cluster.share());
    }
    let sink: Arc<dyn EventSink> = Arc::new(CellSink {
        cluster: cluster.clone(),
        default_tenant,
    });
    let shutdown = shutdown.clone();
    Ok(tokio::spawn(async move {
        use weir_inputs::Source;
        match source.run(sink, shutdown).await {
            Ok(()) => tracing::info!("cluster consumer stopped"),
            Err(e) => tracing::error!(error = %e, "cluster consumer failed"),
        }
    }))
}

/// Produce events to the cluster topic, each keyed by its routing fields (so it lands in the
/// partition Kafka's default partitioner gives that key), with its tenant in a header.
/// Resolves once the broker has every one of them (`acks=all`), or with the first error.
pub async fn produce(
    cluster: &Cluster,
    tenant: &Tenant,
    events: &[Event],
) -> Result<usize, ProduceError> {
    let mut routed = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let (p, key) = cluster
            .partition_of(e)
            .map_err(|reason| ProduceError::Route { index: i, reason })?;
        routed.push((p, key, super::route::wire(e)));
    }
    let header = format!("{}/{}", tenant.account, tenant.project);
    let topic = cluster.cfg().topic.clone();
    let sends = routed.iter().map(|(p, key, body)| {
        let record = FutureRecord::to(&topic)
            .partition(*p)
            .key(key.as_slice())
            .payload(body.as_slice())
            .headers(OwnedHeaders::new().insert(Header {
                key: weir_inputs::kafka::TENANT_HEADER,
                value: Some(header.as_str()),
            }));
        cluster.producer().send(record, Duration::from_secs(10))
    });
    for r in futures_util::future::join_all(sends).await {
        r.map_err(|(e, _)| ProduceError::Broker(e.to_string()))?;
    }
    Ok(events.len())
}

/// Why events were not produced.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// An event cannot be routed (it lacks a routing field); nothing was produced.
    #[error("event {index}: {reason}")]
    Route {
        /// Its index in the request.
        index: usize,
        /// Why.
        reason: String,
    },
    /// The broker did not take them (some may have been produced).
    #[error("the cluster topic did not take the events: {0}")]
    Broker(String),
}

/// What the node's UDP and AMQP inputs feed in cluster mode: produced to the topic.
pub struct ProduceSink {
    /// The cluster.
    pub cluster: Arc<Cluster>,
    /// The input's tenant.
    pub tenant: Tenant,
}

impl EventSink for ProduceSink {
    fn submit(&self, batch: SourceBatch) -> BoxFuture<'static, Result<Vec<EventId>, SinkError>> {
        let cluster = self.cluster.clone();
        let tenant = self.tenant.clone();
        Box::pin(async move {
            let routable: Vec<Event> = batch
                .events
                .into_iter()
                .filter(|e| match cluster.partition_of(e) {
                    Ok(_) => true,
                    Err(reason) => {
                        tracing::warn!(%reason, "an input's event cannot be routed; skipped");
                        false
                    }
                })
                .collect();
            match produce(&cluster, &tenant, &routable).await {
                Ok(_) => Ok(Vec::new()),
                Err(e) => Err(SinkError::Transient(e.to_string())),
            }
        })
    }

    fn position(&self, _key: &str) -> BoxFuture<'static, Option<i64>> {
        Box::pin(async { None })
    }
}
