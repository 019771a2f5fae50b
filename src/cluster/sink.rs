//! The cluster's two sinks: what the consumer of the cluster topic feeds (each batch into
//! its partition's cell), and what the node's other inputs (UDP, AMQP) feed (produced to the
//! topic, like an event accepted over HTTP).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use std::collections::HashMap;
use weir_core::{Event, EventId, Tenant};

use weir_inputs::{
    BoxFuture, EventSink, KafkaConfig, KafkaSource, Origin, PruneResult, SinkError, SourceBatch,
};

use super::{Cell, CellState, Cluster};
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
            let key = cluster.position_key(p);
            let next = batch
                .positions
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| *v);
            let batch = first_deliveries(&cell, batch, app.clock().now_ms()).await;
            match AppSink(app).submit(batch).await {
                Ok(ids) => {
                    if let Some(next) = next {
                        cell.applied(next);
                    }
                    Ok(ids)
                }
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

/// `batch` without the records of upstream messages this partition has already applied (a
/// redelivery, produced again by whichever node received it), and with a dedupe marker for
/// each of the others, stored atomically with their events like a single node's AMQP input
/// stores its own.
async fn first_deliveries(cell: &Cell, mut batch: SourceBatch, now: i64) -> SourceBatch {
    if batch.origins.is_empty() {
        return batch;
    }
    let origins = std::mem::take(&mut batch.origins);
    let stored =
        futures_util::future::join_all(origins.iter().map(|o| cell.position(o.key.clone()))).await;
    let mut seen = std::collections::HashSet::new();
    let mut skip = vec![false; batch.events.len()];
    let mut skipped = 0u64;
    for (o, stored) in origins.iter().zip(stored) {
        if stored.is_some() || !seen.insert(o.key.as_str()) {
            let n = skip.len();
            for i in o.events.clone().filter(|&i| i < n) {
                skip[i] = true;
                skipped += 1;
            }
        } else {
            batch.positions.push((o.key.clone(), now));
        }
    }
    if skipped > 0 {
        metrics::counter!("weir_cluster_duplicate_events_total").increment(skipped);
        tracing::debug!(
            partition = cell.partition,
            skipped,
            "events of redelivered AMQP messages already applied; skipped"
        );
        let mut i = 0;
        batch.events.retain(|_| {
            i += 1;
            !skip[i - 1]
        });
    }
    batch
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
    let mut routes = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let route = cluster
            .partition_of(e)
            .map_err(|reason| ProduceError::Route { index: i, reason })?;
        routes.push(Some(route));
    }
    produce_routed(cluster, tenant, events, routes, &[]).await
}

/// Produce `events` by their routes (`None`: not produced). The events of one origin that
/// go to one partition become one record, a batch (`{"events": […]}`), with the origin's key in a
/// `weir-origin` header: a record is never split between batches, so that partition's cell
/// applies the message's events there whole or, on a redelivery, skips them whole.
async fn produce_routed(
    cluster: &Cluster,
    tenant: &Tenant,
    events: &[Event],
    routes: Vec<Option<(i32, Vec<u8>)>>,
    origins: &[Origin],
) -> Result<usize, ProduceError> {
    let mut origin_of = vec![None; events.len()];
    for (n, o) in origins.iter().enumerate() {
        for i in o.events.clone().filter(|&i| i < events.len()) {
            origin_of[i] = Some(n);
        }
    }
    let mut records: Vec<Record<'_>> = Vec::new();
    let mut grouped: HashMap<(usize, i32), usize> = HashMap::new();
    let mut produced = 0;
    for ((e, route), origin) in events.iter().zip(routes).zip(origin_of) {
        let Some((p, key)) = route else { continue };
        produced += 1;
        match origin {
            Some(n) => match grouped.get(&(n, p)) {
                Some(&r) => records[r].events.push(e),
                None => {
                    grouped.insert((n, p), records.len());
                    records.push(Record {
                        partition: p,
                        key,
                        events: vec![e],
                        origin: Some(origins[n].key.as_str()),
                    });
                }
            },
            None => records.push(Record {
                partition: p,
                key,
                events: vec![e],
                origin: None,
            }),
        }
    }
    let bodies: Vec<Vec<u8>> = records
        .iter()
        .map(|r| match (r.events.as_slice(), r.origin) {
            ([one], None) => super::route::wire(one),
            (many, _) => {
                let mut body = br#"{"events":["#.to_vec();
                for (i, e) in many.iter().enumerate() {
                    if i > 0 {
                        body.push(b',');
                    }
                    body.extend(super::route::wire(e));
                }
                body.extend(b"]}");
                body
            }
        })
        .collect();
    let header = format!("{}/{}", tenant.account, tenant.project);
    let topic = cluster.cfg().topic.clone();
    let sends = records.iter().zip(&bodies).map(|(r, body)| {
        let mut headers = OwnedHeaders::new().insert(Header {
            key: weir_inputs::kafka::TENANT_HEADER,
            value: Some(header.as_str()),
        });
        if let Some(origin) = r.origin {
            headers = headers.insert(Header {
                key: weir_inputs::kafka::ORIGIN_HEADER,
                value: Some(origin),
            });
        }
        let record = FutureRecord::to(&topic)
            .partition(r.partition)
            .key(r.key.as_slice())
            .payload(body.as_slice())
            .headers(headers);
        cluster.producer().send(record, Duration::from_secs(10))
    });
    for r in futures_util::future::join_all(sends).await {
        r.map_err(|(e, _)| ProduceError::Broker(e.to_string()))?;
    }
    Ok(produced)
}

/// One record to produce: events of one partition, in the order they came.
struct Record<'a> {
    partition: i32,
    /// The first event's routing key.
    key: Vec<u8>,
    events: Vec<&'a Event>,
    /// The upstream message they came from, by its dedupe key.
    origin: Option<&'a str>,
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
            let routes = batch
                .events
                .iter()
                .map(|e| match cluster.partition_of(e) {
                    Ok(route) => Some(route),
                    Err(reason) => {
                        tracing::warn!(%reason, "an input's event cannot be routed; skipped");
                        None
                    }
                })
                .collect();
            match produce_routed(&cluster, &tenant, &batch.events, routes, &batch.origins).await {
                Ok(_) => Ok(Vec::new()),
                Err(e) => Err(SinkError::Transient(e.to_string())),
            }
        })
    }

    /// The markers live in the partitions' cells, which prune them themselves (after the
    /// cluster's `dedupe_horizon`): nothing to do here.
    fn prune_positions(
        &self,
        _prefix: &str,
        _older_than: i64,
    ) -> BoxFuture<'static, Result<PruneResult, SinkError>> {
        Box::pin(async { Ok(PruneResult::default()) })
    }

    fn position(&self, _key: &str) -> BoxFuture<'static, Option<i64>> {
        Box::pin(async { None })
    }
}
