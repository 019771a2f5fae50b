//! Cluster mode: several `weir serve` nodes share the partitions of one Kafka events topic.
//!
//! - **A partition is a cell.** The node that owns partition `p` (Kafka's consumer group
//!   decides) runs a *cell* for it: a [`Hub`] of its own over its own Cassandra/Scylla
//!   keyspace `KEYSPACE_pP`, holding the partition's event log, query and rule state and
//!   input position. A cell is restored exactly as a single node restarts (persisted state,
//!   then its log replayed), then consumes the partition from its stored position; so a
//!   partition moved by a rebalance or a node's death continues exactly where its log ends.
//! - **Leases fence the cells.** Before a cell opens, its node takes the partition's lease in
//!   the shared keyspace (waiting out another holder's); it renews its leases while it can
//!   reach both Kafka and the store, and stops serving (503) what it cannot renew. A new owner
//!   waits for the lease to be released or to expire, so two nodes never write one cell.
//! - **Any node takes anything.** Events sent to any node over HTTP, UDP or AMQP are produced
//!   to the topic keyed by their routing fields ([`route`]) and reach their cell through
//!   Kafka like any producer's. `check` and `add_and_check` go to the owner of the event's
//!   partition in one hop ([`forward`]) and are decided there under the cell's locks: exact.
//! - **Reads fan out.** A query read asks every node for its cells' rows and merges them
//!   ([`merge`]); what cannot be merged exactly is refused, never approximated.
//! - **Statements apply everywhere.** A statement is applied on the node it was sent to (the
//!   *front*, whose catalogue in the shared keyspace is the cluster's), then to each of its
//!   cells and each peer's; a cell opening, and every node every few seconds, reconciles its
//!   cells with the shared catalogue.

pub mod fence;
pub mod forward;
pub mod merge;
pub mod route;
pub mod sink;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rdkafka::config::ClientConfig;
use rdkafka::producer::FutureProducer;
use serde::{Deserialize, Serialize};
use weir_core::{Clock, Tenant};
use weir_storage::{CassandraStore, CatalogKind, Storage};

use crate::app::Node;
use crate::config::{humantime_ms, ServeConfig};
use crate::store::Store;
use crate::tenants::Hub;

/// `[cluster]`: how this node finds the others and shares the partitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Kafka bootstrap brokers, `host:port[,host:port…]`.
    pub brokers: String,
    /// The events topic; its partitions are the units of ownership.
    pub topic: String,
    /// The consumer group every node of the cluster joins. Default `weir-cluster`.
    #[serde(default = "default_group")]
    pub group: String,
    /// This node's id, unique in the cluster. Default: the HTTP address.
    #[serde(default)]
    pub node: String,
    /// The URL peers reach this node's HTTP API at. Default `http://` + the HTTP address.
    #[serde(default)]
    pub advertise: String,
    /// The routing fields of every event type without its own entry in `routes`.
    #[serde(default)]
    pub route: Vec<String>,
    /// Routing fields by event type.
    #[serde(default)]
    pub routes: BTreeMap<String, Vec<String>>,
    /// Partitions of the topic when Weir has to create it. Default 6.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// How long a partition's lease lasts unrenewed. Default `10s`.
    #[serde(default = "default_lease", with = "humantime_ms")]
    pub lease: Duration,
    /// Who decides which node owns which partition. Default `weir`.
    #[serde(default)]
    pub membership: Membership,
    /// Extra librdkafka settings of the consumer and producer.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// How long a partition keeps the dedupe marker of an AMQP message it applied (so a
    /// redelivery, to any node, is recognised). Default `1h`; keep it longer than a message
    /// can stay unacknowledged (the longest a node with an AMQP input may be down).
    #[serde(default = "default_dedupe_horizon", with = "humantime_ms")]
    pub dedupe_horizon: Duration,
}

/// Who decides which node owns which partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Membership {
    /// Weir: the live members listed in the shared keyspace (each renews its entry every
    /// quarter lease) share the partitions round-robin in node-id order, and each node
    /// assigns itself its share by hand. Works with any Kafka-compatible broker.
    #[default]
    Weir,
    /// Kafka's consumer group: every node subscribes with the cluster's group id and the
    /// group coordinator assigns the partitions (needs a broker whose coordinator rebalances
    /// when a member dies).
    Kafka,
}

fn default_group() -> String {
    "weir-cluster".into()
}
fn default_partitions() -> i32 {
    6
}
fn default_lease() -> Duration {
    Duration::from_secs(10)
}
fn default_dedupe_horizon() -> Duration {
    Duration::from_secs(3600)
}

impl ClusterConfig {
    /// Defaults for a node of the cluster on `topic` at `brokers`.
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic: topic.into(),
            group: default_group(),
            node: String::new(),
            advertise: String::new(),
            route: Vec::new(),
            routes: BTreeMap::new(),
            partitions: default_partitions(),
            lease: default_lease(),
            membership: Membership::Weir,
            options: BTreeMap::new(),
            dedupe_horizon: default_dedupe_horizon(),
        }
    }

    /// The routing fields of events of type `kind`.
    pub fn route_of(&self, kind: &str) -> &[String] {
        self.routes.get(kind).unwrap_or(&self.route)
    }

    /// Every routing field set in use: the default and each type's.
    fn all_routes(&self) -> impl Iterator<Item = &Vec<String>> {
        std::iter::once(&self.route).chain(self.routes.values())
    }
}

/// What a cell is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CellState {
    /// Restored and consuming: it answers.
    Serving,
    /// Restored, and replaying its partition up to where the topic ended when it opened: it
    /// answers nothing yet (503), so a read never goes back behind what the partition's
    /// previous owner had answered.
    CatchingUp,
    /// A rebalance is under way: it answers nothing until reassigned.
    Paused,
    /// Its lease could not be renewed (Kafka or the store unreachable): it answers 503.
    Fenced,
}

/// The state word of a cell whose log failed for good.
const FAILED: u8 = 3;

/// One partition this node owns: its own hub over its own keyspace.
pub struct Cell {
    /// The partition.
    pub partition: i32,
    /// Its tenants' apps, over the partition's keyspace.
    pub hub: Arc<Hub>,
    state: AtomicU8,
    /// Until when (unix ms) its lease is surely this node's: the last taking or renewal's
    /// start plus the lease, less a margin for clocks. Past it the cell answers nothing, so
    /// it has stopped before any other node can take the lease over.
    valid_until: Arc<AtomicI64>,
    clock: Arc<dyn Clock>,
    flusher: tokio::task::JoinHandle<()>,
    /// When its AMQP dedupe markers were last pruned (unix ms; 0 = not yet).
    pruned_at: AtomicI64,
    /// The offset it must have applied before it answers: the partition's high watermark
    /// when it opened (`i64::MAX` while the broker has not said).
    catch_up_to: AtomicI64,
    /// The next offset of the partition it has applied and made durable.
    applied_to: AtomicI64,
    /// Whether its catalogue was reconciled with the shared one after it was put in the
    /// node's map (a statement broadcast while it was restored did not reach it).
    synced: std::sync::atomic::AtomicBool,
    /// Serialises the changes to its catalogue (a broadcast statement, a reconciliation): a
    /// reconciliation reads what the cell has only once a broadcast applying meanwhile is
    /// written, so it never replaces a definition with the same one under live traffic.
    catalog: tokio::sync::Mutex<()>,
}

impl Cell {
    /// What the cell is doing.
    pub fn state(&self) -> CellState {
        match self.state.load(Ordering::SeqCst) {
            0 if self.clock.now_ms() >= self.valid_until.load(Ordering::SeqCst) => {
                CellState::Fenced
            }
            0 if !self.synced.load(Ordering::SeqCst)
                || self.applied_to.load(Ordering::SeqCst)
                    < self.catch_up_to.load(Ordering::SeqCst) =>
            {
                CellState::CatchingUp
            }
            0 => CellState::Serving,
            1 => CellState::Paused,
            _ => CellState::Fenced,
        }
    }

    /// The partition has been applied up to `next` (the next offset to consume).
    pub fn applied(&self, next: i64) {
        self.applied_to.fetch_max(next, Ordering::SeqCst);
    }

    /// The broker says the partition ends at `high`: if the cell did not know where to
    /// catch up to, it is there.
    fn learn_high_watermark(&self, high: i64) {
        let _ =
            self.catch_up_to
                .compare_exchange(i64::MAX, high, Ordering::SeqCst, Ordering::SeqCst);
    }

    fn set(&self, s: CellState) {
        // A failed cell stays failed.
        let _ = self
            .state
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |cur| {
                (cur != FAILED).then_some(s as u8)
            });
    }

    /// Its log failed for good: fenced until it is reopened from the store (with Weir's
    /// membership, at the next heartbeat; with Kafka's, at the next rebalance or restart).
    fn fail(&self) {
        self.state.store(FAILED, Ordering::SeqCst);
    }

    /// Whether its log failed.
    fn failed(&self) -> bool {
        self.state.load(Ordering::SeqCst) == FAILED
    }

    /// The cell's stored input position (the next offset to consume).
    pub async fn position(&self, key: String) -> Option<i64> {
        stored_position(self.hub.node().store(), key)
            .await
            .ok()
            .flatten()
    }

    /// Forget the AMQP dedupe markers older than `horizon` ms, at most every quarter
    /// horizon; the markers left, when it pruned.
    async fn prune_markers(&self, horizon: i64) -> anyhow::Result<Option<u64>> {
        let now = self.clock.now_ms();
        let last = self.pruned_at.load(Ordering::SeqCst);
        if last != 0 && now - last < (horizon / 4).max(1) {
            return Ok(None);
        }
        let older_than = now.saturating_sub(horizon);
        let older = move |v: &[u8]| {
            <[u8; 8]>::try_from(v).is_ok_and(|b| i64::from_be_bytes(b) < older_than)
        };
        let store = self.hub.node().store().clone();
        let done = store
            .run(move |s| s.meta_prune(MARKER_PREFIX, &older))
            .await?;
        self.pruned_at.store(now, Ordering::SeqCst);
        Ok(Some(done.kept))
    }
}

/// The input position stored under `key` in `store`.
async fn stored_position(store: &Store, key: String) -> anyhow::Result<Option<i64>> {
    Ok(store
        .run(move |s| s.meta_get(&key))
        .await?
        .and_then(|b| b.try_into().ok().map(i64::from_be_bytes)))
}

/// Where a cell keeps the dedupe markers of the AMQP messages it applied
/// (`amqp/<queue>/<message_id>`, like a single node's AMQP input).
pub const MARKER_PREFIX: &str = "amqp/";

/// A node as the shared keyspace lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Its id.
    pub node: String,
    /// Its HTTP API.
    pub url: String,
    /// The partitions it serves.
    pub partitions: Vec<i32>,
    /// When it last said so (unix ms).
    pub at: i64,
}

/// A partition's lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lease {
    node: String,
    until: i64,
}

const MEMBER_PREFIX: &str = "cluster/node/";
const LEASE_PREFIX: &str = "cluster/lease/";

/// This node's part of the cluster.
pub struct Cluster {
    cfg: ClusterConfig,
    /// The node's configuration, the base of each cell's.
    serve: ServeConfig,
    /// The front: this node's hub over the shared keyspace (keys, the cluster's catalogue).
    front: Weak<Hub>,
    /// The shared keyspace.
    shared: Store,
    /// The partitions this node owns.
    cells: RwLock<BTreeMap<i32, Arc<Cell>>>,
    /// Opened partition keyspaces, kept across reassignments.
    stores: Mutex<HashMap<i32, Arc<dyn Storage>>>,
    /// Serialises assignments and closings.
    changes: tokio::sync::Mutex<()>,
    /// Produces what any node accepts to the topic.
    producer: FutureProducer,
    /// The topic's partition count.
    partitions: i32,
    /// The other nodes, as last read.
    members: RwLock<Vec<Member>>,
    /// The lease value this node last wrote, by partition (what a renewal expects to find),
    /// and until when it lets the cell serve.
    held: Mutex<HashMap<i32, (Vec<u8>, i64)>>,
    /// The lease term of each partition's newest cell here, shared with the fence of its
    /// store ([`fence::Fenced`]): a renewal moves it on; an older cell's is left behind.
    terms: Mutex<HashMap<i32, Arc<AtomicI64>>>,
    /// Serialises the lease writes (take, renew, release) with `held`.
    lease_ops: tokio::sync::Mutex<()>,
    /// When Kafka last answered (unix ms); leases are renewed only while it is recent.
    kafka_at: AtomicI64,
    /// What the front's engines hold (the shared catalogue as this node last applied it).
    front_applied: tokio::sync::Mutex<Option<CatalogMap>>,
    /// With Weir's membership: the partitions this node should own, for the consumer.
    share: tokio::sync::watch::Sender<Vec<i32>>,
    /// Peers are called with this.
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
}

impl Cluster {
    /// Join: connect the producer, learn (or create) the topic's partitions. Consuming
    /// starts with [`sink::start`].
    pub async fn new(
        cfg: ClusterConfig,
        serve: ServeConfig,
        front: &Arc<Hub>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Arc<Self>> {
        anyhow::ensure!(
            serve.storage == crate::config::StorageKind::Cassandra,
            "cluster mode keeps each partition's state in Cassandra/Scylla: give --cassandra-nodes (or storage = \"cassandra\")"
        );
        anyhow::ensure!(
            serve.kafka.is_none(),
            "cluster mode consumes the cluster topic itself: remove the [kafka] input (produce to topic {} instead)",
            cfg.topic
        );
        anyhow::ensure!(
            !cfg.route.is_empty() || !cfg.routes.is_empty(),
            "cluster mode needs routing fields: --cluster-route FIELD (or route/routes in [cluster])"
        );
        let producer: FutureProducer = client_config(&cfg)
            .set("partitioner", "murmur2_random")
            .set("acks", "all")
            .set("enable.idempotence", "false")
            .set("linger.ms", "1")
            .create()?;
        let partitions = ensure_topic(&cfg).await?;
        tracing::info!(topic = %cfg.topic, partitions, node = %cfg.node, "cluster topic ready");
        let now = clock.now_ms();
        Ok(Arc::new(Self {
            shared: front.node().store().clone(),
            front: Arc::downgrade(front),
            cfg,
            serve,
            cells: RwLock::new(BTreeMap::new()),
            stores: Mutex::new(HashMap::new()),
            changes: tokio::sync::Mutex::new(()),
            producer,
            partitions,
            members: RwLock::new(Vec::new()),
            held: Mutex::new(HashMap::new()),
            terms: Mutex::new(HashMap::new()),
            lease_ops: tokio::sync::Mutex::new(()),
            kafka_at: AtomicI64::new(now),
            front_applied: tokio::sync::Mutex::new(None),
            share: tokio::sync::watch::channel(Vec::new()).0,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            clock,
        }))
    }

    /// `[cluster]` as configured.
    pub fn cfg(&self) -> &ClusterConfig {
        &self.cfg
    }

    /// Where a cell keeps its position in the topic (the Kafka input's key).
    pub fn position_key(&self, p: i32) -> String {
        format!("kafka/{}/{}/{p}", self.cfg.group, self.cfg.topic)
    }

    /// Now, by this node's clock (unix ms).
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The topic's partition count.
    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    /// The producer of what this node accepts.
    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// The client peers are called with.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The front hub (this node's view of the shared keyspace).
    pub fn front(&self) -> Option<Arc<Hub>> {
        self.front.upgrade()
    }

    /// The cell of partition `p`, if this node owns it.
    pub fn cell(&self, p: i32) -> Option<Arc<Cell>> {
        self.cells.read().get(&p).cloned()
    }

    /// Every cell of this node, by partition.
    pub fn cells(&self) -> Vec<Arc<Cell>> {
        self.cells.read().values().cloned().collect()
    }

    /// The partition of an event: Kafka's default partitioner on its routing key.
    pub fn partition_of(&self, e: &weir_core::Event) -> Result<(i32, Vec<u8>), String> {
        let key = route::route_key(e, self.cfg.route_of(&e.kind))?;
        Ok((route::partition_of(&key, self.partitions), key))
    }

    /// The members listed in the shared keyspace (as last read), alive or not.
    pub fn members(&self) -> Vec<Member> {
        self.members.read().clone()
    }

    /// Whether a member's last word is recent enough to count it alive.
    pub fn alive(&self, m: &Member) -> bool {
        self.clock.now_ms() - m.at <= self.cfg.lease.as_millis() as i64
    }

    /// The URL of the live node serving partition `p`, if any (this node's own included).
    pub fn owner(&self, p: i32) -> Option<Member> {
        self.members
            .read()
            .iter()
            .filter(|m| self.alive(m) && m.partitions.contains(&p))
            .max_by_key(|m| m.at)
            .cloned()
    }

    /// Whether the fields of every routing set are all among `group` (then a key's rows
    /// live in one partition only).
    pub fn grouped_by_route(&self, group: &[String]) -> bool {
        self.cfg
            .all_routes()
            .filter(|r| !r.is_empty())
            .all(|r| r.iter().all(|f| group.contains(f)))
    }

    /// With Weir's membership: the partitions this node should own as they change.
    pub fn share(&self) -> tokio::sync::watch::Receiver<Vec<i32>> {
        self.share.subscribe()
    }

    /// Weir's membership: this node's share of the partitions among the live members, in
    /// node-id order, round-robin (`p % members == my index`).
    fn my_share(&self) -> Vec<i32> {
        let me = &self.cfg.node;
        let mut live: Vec<String> = self
            .members
            .read()
            .iter()
            .filter(|m| self.alive(m))
            .map(|m| m.node.clone())
            .collect();
        if !live.contains(me) {
            live.push(me.clone());
        }
        live.sort();
        let k = live.len() as i32;
        let i = live.iter().position(|n| n == me).unwrap_or(0) as i32;
        (0..self.partitions).filter(|p| p % k == i).collect()
    }

    /// Weir's membership: publish this node, then hand the consumer its share if it changed.
    pub async fn rebalance(&self) {
        if self.cfg.membership != Membership::Weir {
            return;
        }
        let share = self.my_share();
        let served: Vec<i32> = self.cells.read().keys().copied().collect();
        // Sent again while what is served differs (a lease still held elsewhere), so the
        // consumer keeps trying; a change of share is logged once.
        if share != served {
            if *self.share.borrow() != share {
                tracing::info!(partitions = ?share, "this node's share of the partitions changed");
            }
            self.share.send_replace(share);
        }
    }

    /// The keyspace of partition `p`.
    fn keyspace(&self, p: i32) -> String {
        format!("{}_p{p}", self.serve.cassandra.keyspace)
    }

    async fn open_store(&self, p: i32) -> anyhow::Result<Arc<dyn Storage>> {
        if let Some(s) = self.stores.lock().get(&p) {
            return Ok(s.clone());
        }
        let mut c = self.serve.cassandra.clone();
        c.keyspace = self.keyspace(p);
        let ks = c.keyspace.clone();
        let store: Arc<dyn Storage> =
            tokio::task::spawn_blocking(move || CassandraStore::connect(&c))
                .await?
                .map_err(|e| anyhow::anyhow!("opening keyspace {ks}: {e}"))
                .map(|s| Arc::new(s) as Arc<dyn Storage>)?;
        self.stores.lock().insert(p, store.clone());
        Ok(store)
    }

    /// The configuration of a cell: the node's, without inputs or alert sinks of its own.
    fn cell_config(&self, p: i32) -> ServeConfig {
        let mut c = self.serve.clone();
        c.cassandra.keyspace = self.keyspace(p);
        c.udp = None;
        c.amqp = None;
        c.kafka = None;
        c.cluster = None;
        c.alerts = Default::default();
        c
    }

    /// Take partition `p`'s lease, atomically (compare-and-set against the value read).
    /// While another node holds it: with Kafka's membership (the group moved the partition
    /// here, so its holder is letting go) wait; with Weir's, give up at once (`None`; the
    /// holder lets go when it sees its own share, and the next heartbeat tries again), so two
    /// nodes each waiting for the other's lease never stall. Returns until when the cell may
    /// serve.
    async fn take_lease(&self, p: i32) -> anyhow::Result<Option<i64>> {
        let wait = self.cfg.membership == Membership::Kafka;
        let me = self.cfg.node.clone();
        let mut waited = false;
        loop {
            let raw = self.lease_raw(p).await?;
            let now = self.clock.now_ms();
            let held = raw
                .as_deref()
                .and_then(|b| serde_json::from_slice::<Lease>(b).ok())
                .filter(|l| l.node != me && l.until > now);
            if held.is_none() {
                let _one = self.lease_ops.lock().await;
                if let Some(valid) = self.cas_lease(p, raw, now).await? {
                    return Ok(Some(valid));
                }
                // Another node wrote it between our read and write: read again.
            }
            if !wait {
                tracing::debug!(partition = p, holder = ?held.map(|l| l.node), "the partition's lease is held; trying later");
                return Ok(None);
            }
            if !waited {
                tracing::info!(partition = p, holder = ?held.map(|l| l.node), "waiting for the partition's lease");
                waited = true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Partition `p`'s lease as stored (its bytes).
    async fn lease_raw(&self, p: i32) -> anyhow::Result<Option<Vec<u8>>> {
        let key = format!("{LEASE_PREFIX}{p}");
        Ok(self.shared.run(move |s| s.meta_get(&key)).await?)
    }

    /// Write this node's lease of `p` (until `start + lease`) if the stored value is still
    /// `expected`. Returns until when the cell may serve, if written.
    async fn cas_lease(
        &self,
        p: i32,
        expected: Option<Vec<u8>>,
        start: i64,
    ) -> anyhow::Result<Option<i64>> {
        let lease = self.cfg.lease.as_millis() as i64;
        let value = serde_json::to_vec(&Lease {
            node: self.cfg.node.clone(),
            until: start + lease,
        })?;
        let key = format!("{LEASE_PREFIX}{p}");
        let v = value.clone();
        let written = self
            .shared
            .run(move |s| s.meta_cas(&key, expected.as_deref(), &v))
            .await?;
        if !written {
            return Ok(None);
        }
        let valid = start + lease - lease / 5;
        self.held.lock().insert(p, (value, valid));
        if let Some(term) = self.terms.lock().get(&p) {
            term.store(valid, Ordering::SeqCst);
        }
        Ok(Some(valid))
    }

    /// Renew partition `p`'s lease if it is still this node's (`None`: another node holds it
    /// now, after this one could not renew it in time).
    async fn renew_lease(&self, p: i32) -> anyhow::Result<Option<i64>> {
        let _one = self.lease_ops.lock().await;
        let Some((mine, _)) = self.held.lock().get(&p).cloned() else {
            return Ok(None);
        };
        let now = self.clock.now_ms();
        let renewed = self.cas_lease(p, Some(mine), now).await?;
        if renewed.is_none() {
            self.held.lock().remove(&p);
        }
        Ok(renewed)
    }

    /// Let partition `p`'s lease go (if it is still this node's).
    async fn release_lease(&self, p: i32) -> anyhow::Result<()> {
        let _one = self.lease_ops.lock().await;
        let Some((mine, _)) = self.held.lock().remove(&p) else {
            return Ok(());
        };
        // Nothing of this cell is written from here on.
        if let Some(term) = self.terms.lock().remove(&p) {
            term.store(0, Ordering::SeqCst);
        }
        let key = format!("{LEASE_PREFIX}{p}");
        let value = serde_json::to_vec(&Lease {
            node: self.cfg.node.clone(),
            until: 0,
        })?;
        self.shared
            .run(move |s| s.meta_cas(&key, Some(&mine), &value))
            .await?;
        Ok(())
    }

    /// The assignment is now `parts`: close the cells of partitions given away, open
    /// (restore) the new ones whose lease can be had, and serve them all. Returns the
    /// partitions served.
    pub async fn assigned(self: &Arc<Self>, parts: &[i32]) -> Vec<i32> {
        let _one = self.changes.lock().await;
        let gone: Vec<Arc<Cell>> = {
            let cells = self.cells.read();
            cells
                .values()
                .filter(|c| !parts.contains(&c.partition))
                .cloned()
                .collect()
        };
        for cell in gone {
            self.close(cell).await;
        }
        for &p in parts {
            if let Some(cell) = self.cell(p) {
                cell.set(CellState::Serving);
                continue;
            }
            // A cell that cannot open leaves its partition unserved (503s), and is retried
            // at the next assignment; the consumer does not read it meanwhile.
            match self.open(p).await {
                Ok(Some(cell)) => {
                    self.cells.write().insert(p, cell.clone());
                    // A statement broadcast while the cell was restored went to this node's
                    // cells without it; the shared catalogue has it. Reconciled again now
                    // that any later broadcast reaches the cell, before it answers.
                    if let Err(e) = self.sync_cell(&cell).await {
                        tracing::warn!(partition = p, error = %format!("{e:#}"),
                            "reconciling a new cell's catalogue failed; it answers once the next heartbeat has");
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(partition = p, error = %format!("{e:#}"), "opening the partition's cell failed; trying again later");
                }
            }
        }
        self.publish().await;
        let served: Vec<i32> = self.cells.read().keys().copied().collect();
        tracing::info!(partitions = ?served, wanted = ?parts, "cluster partitions assigned");
        served
    }

    /// A rebalance began: nothing is answered from the cells until the next assignment.
    pub fn revoked(&self) {
        for cell in self.cells() {
            cell.set(CellState::Paused);
        }
    }

    async fn open(self: &Arc<Self>, p: i32) -> anyhow::Result<Option<Arc<Cell>>> {
        let started = std::time::Instant::now();
        // A new term for the new cell: whatever an older cell of this partition here still
        // tries to write stays fenced off.
        let term = Arc::new(AtomicI64::new(0));
        self.terms.lock().insert(p, term.clone());
        if self.take_lease(p).await?.is_none() {
            return Ok(None);
        }
        match self.restore(p, started, term).await {
            Ok(cell) => Ok(Some(cell)),
            Err(e) => {
                // Let the lease go, so this node or another can try again at once.
                if let Err(e) = self.release_lease(p).await {
                    tracing::warn!(partition = p, error = %e, "releasing a lease failed (it expires)");
                }
                Err(e)
            }
        }
    }

    /// Restore partition `p`'s cell from its keyspace (its lease is this node's).
    async fn restore(
        self: &Arc<Self>,
        p: i32,
        started: std::time::Instant,
        term: Arc<AtomicI64>,
    ) -> anyhow::Result<Arc<Cell>> {
        let fenced = fence::Fenced::new(
            self.open_store(p).await?,
            term.clone(),
            self.clock.clone(),
            p,
        );
        let store = Store::new(Arc::new(fenced));
        let last_seq = store.run(|s| s.last_seq()).await?;
        let applied_to = stored_position(&store, self.position_key(p))
            .await?
            .unwrap_or(0);
        let log = store.start_log(self.serve.durable);
        let node = Arc::new(Node::new(
            self.cell_config(p),
            store,
            log,
            last_seq,
            self.clock.clone(),
        ));
        let hub = Arc::new(Hub::new(node, crate::access::KeyRing::default()));
        let mut tenants = hub.known_tenants().await?;
        tenants.extend(self.shared_tenants().await?);
        let replayed = hub.restore(tenants).await?;
        sync_catalog(self, &hub).await?;
        let flusher = tokio::spawn(crate::recovery::flush_loop(hub.clone()));
        // Answers wait until the partition is applied as far as it went when this cell opened
        // (what its previous owner may have answered, but not made durable, is replayed).
        let catch_up_to = self.high_watermark(p).await.unwrap_or(i64::MAX);
        tracing::info!(
            partition = p,
            replayed,
            last_seq,
            applied_to,
            catch_up_to,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "partition cell restored"
        );
        Ok(Arc::new(Cell {
            partition: p,
            hub,
            state: AtomicU8::new(CellState::Serving as u8),
            // Renewed while the cell was restored: it serves until the latest term.
            valid_until: term,
            clock: self.clock.clone(),
            flusher,
            pruned_at: AtomicI64::new(0),
            catch_up_to: AtomicI64::new(catch_up_to),
            applied_to: AtomicI64::new(applied_to),
            synced: Default::default(),
            catalog: Default::default(),
        }))
    }

    /// Give a partition away: flush its state, forget it, release its lease.
    async fn close(&self, cell: Arc<Cell>) {
        cell.set(CellState::Paused);
        self.cells.write().remove(&cell.partition);
        cell.flusher.abort();
        if let Err(e) = crate::recovery::flush_all(&cell.hub).await {
            tracing::warn!(partition = cell.partition, error = %e, "flushing a cell given away failed (its new owner replays the log)");
        }
        if let Err(e) = self.release_lease(cell.partition).await {
            tracing::warn!(partition = cell.partition, error = %e, "releasing a lease failed (it expires)");
        }
        tracing::info!(partition = cell.partition, "partition cell closed");
    }

    /// Close every cell (shutdown): flushed, leases released.
    pub async fn close_all(&self) {
        let _one = self.changes.lock().await;
        for cell in self.cells() {
            self.close(cell).await;
        }
        self.publish().await;
    }

    /// Tenants with definitions in the shared catalogue.
    async fn shared_tenants(&self) -> anyhow::Result<Vec<Tenant>> {
        Ok(shared_catalog(&self.shared)
            .await?
            .into_keys()
            .map(|(t, _, _)| t)
            .collect())
    }

    /// Say this node is here, learn who else is, and take a first share.
    pub async fn join(&self) {
        self.publish().await;
        self.rebalance().await;
    }

    /// Write this node's entry (its partitions, now) and read everyone's.
    async fn publish(&self) {
        let me = Member {
            node: self.cfg.node.clone(),
            url: self.cfg.advertise.clone(),
            partitions: self
                .cells()
                .iter()
                .filter(|c| matches!(c.state(), CellState::Serving | CellState::CatchingUp))
                .map(|c| c.partition)
                .collect(),
            at: self.clock.now_ms(),
        };
        let key = format!("{MEMBER_PREFIX}{}", me.node);
        let value = serde_json::to_vec(&me).expect("a member serializes");
        let written = self.shared.run(move |s| s.meta_put(&key, &value)).await;
        let read = self
            .shared
            .run(|s| s.meta_scan(MEMBER_PREFIX, None, 10_000))
            .await;
        match (written, read) {
            (Ok(()), Ok(rows)) => {
                let mut members: Vec<Member> = rows
                    .iter()
                    .filter_map(|(_, v)| serde_json::from_slice(v).ok())
                    .collect();
                members.sort_by(|a, b| a.node.cmp(&b.node));
                *self.members.write() = members;
            }
            (w, r) => {
                let e = w.err().or(r.err()).map(|e| e.to_string());
                tracing::warn!(error = ?e, "the cluster directory could not be updated");
            }
        }
    }

    /// Every `lease / 5`: renew the leases this node holds while Kafka answered recently. A
    /// lease not renewed in time lapses by itself: its cell has stopped answering (see
    /// [`Cell::state`]) before any other node may take it over.
    pub async fn renew_leases(self: Arc<Self>) {
        let every = (self.cfg.lease / 5).max(Duration::from_millis(200));
        let mut cut_off = false;
        loop {
            tokio::time::sleep(every).await;
            let now = self.clock.now_ms();
            let kafka_ok =
                now - self.kafka_at.load(Ordering::SeqCst) <= self.cfg.lease.as_millis() as i64 / 2;
            if !kafka_ok {
                if !cut_off {
                    tracing::warn!("Kafka does not answer: not renewing this node's leases (its partitions stop answering and move)");
                }
                cut_off = true;
                continue;
            }
            cut_off = false;
            let parts: Vec<i32> = self.held.lock().keys().copied().collect();
            for p in parts {
                if self.cell(p).is_some_and(|c| c.state() == CellState::Paused) {
                    continue;
                }
                match self.renew_lease(p).await {
                    // The cell's term (shared with its store's fence) moved on.
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        // Taken over after this node failed to renew it in time (its cell
                        // stopped answering then); or let go meanwhile.
                        if let Some(cell) = self.cell(p) {
                            tracing::warn!(
                                partition = p,
                                "the partition's lease was taken over; closing its cell"
                            );
                            cell.fail();
                            self.cells.write().remove(&p);
                            cell.flusher.abort();
                        }
                    }
                    Err(e) => {
                        tracing::warn!(partition = p, error = %e, "renewing a lease failed");
                    }
                }
            }
        }
    }

    /// Every `lease / 5`: whether Kafka answers (leases are renewed only while it does).
    pub async fn probe_kafka(self: Arc<Self>) {
        let every = (self.cfg.lease / 5).max(Duration::from_millis(200));
        loop {
            if self.kafka_reachable().await {
                self.kafka_at.store(self.clock.now_ms(), Ordering::SeqCst);
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Every `lease / 4`: reopen cells whose log failed, publish this node in the directory
    /// and take its share (while Kafka answers: a node cut off from it stops saying it is
    /// alive, so its partitions move), export the gauges; every few rounds, reconcile the
    /// cells and the front with the shared catalogue.
    pub async fn heartbeat(self: Arc<Self>) {
        let every = (self.cfg.lease / 4).max(Duration::from_millis(250));
        let mut round = 0u64;
        loop {
            tokio::time::sleep(every).await;
            round += 1;
            if self.cfg.membership == Membership::Weir {
                // A cell whose log failed (the store timed out, say) is let go, its lease
                // kept: the rebalance below hands its partition back to the consumer, which
                // reopens it from the store and resumes from its stored position.
                let _one = self.changes.lock().await;
                for cell in self.cells().into_iter().filter(|c| c.failed()) {
                    tracing::warn!(
                        partition = cell.partition,
                        "reopening a partition whose log failed, from the store"
                    );
                    self.cells.write().remove(&cell.partition);
                    cell.flusher.abort();
                }
            }
            let now = self.clock.now_ms();
            if now - self.kafka_at.load(Ordering::SeqCst) <= self.cfg.lease.as_millis() as i64 / 2 {
                self.publish().await;
                self.rebalance().await;
            }
            self.export_metrics().await;
            // A new cell whose reconciliation failed is tried again every round.
            for cell in self.cells() {
                if !round.is_multiple_of(8) && cell.synced.load(Ordering::SeqCst) {
                    continue;
                }
                if let Err(e) = self.sync_cell(&cell).await {
                    tracing::warn!(partition = cell.partition, error = %format!("{e:#}"), "reconciling a cell's catalogue failed");
                }
            }
            if round.is_multiple_of(8) {
                if let Some(front) = self.front() {
                    if let Err(e) = sync_front(&self, &front).await {
                        tracing::warn!(error = %format!("{e:#}"), "reconciling the front catalogue failed");
                    }
                }
            }
        }
    }

    /// The cluster in /metrics: members alive, partitions served here, each one's lag.
    async fn export_metrics(&self) {
        let alive = self.members().iter().filter(|m| self.alive(m)).count();
        metrics::gauge!("weir_cluster_members_alive").set(alive as f64);
        let cells = self.cells();
        let serving = cells
            .iter()
            .filter(|c| c.state() == CellState::Serving)
            .count();
        metrics::gauge!("weir_cluster_partitions_served").set(serving as f64);
        let horizon = i64::try_from(self.cfg.dedupe_horizon.as_millis()).unwrap_or(i64::MAX);
        for cell in cells {
            let (pos, high) = (
                cell.position(self.position_key(cell.partition)).await,
                self.high_watermark(cell.partition).await,
            );
            if let Some(high) = high {
                cell.learn_high_watermark(high);
                let lag = (high - pos.unwrap_or(0)).max(0);
                metrics::gauge!("weir_cluster_partition_lag", "partition" => cell.partition.to_string())
                    .set(lag as f64);
            }
            // A cell closed or fenced meanwhile writes nothing more.
            if !matches!(cell.state(), CellState::Serving | CellState::CatchingUp) {
                continue;
            }
            match cell.prune_markers(horizon).await {
                Ok(Some(kept)) => {
                    metrics::gauge!("weir_cluster_dedupe_markers", "partition" => cell.partition.to_string())
                        .set(kept as f64);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(partition = cell.partition, error = %format!("{e:#}"),
                    "pruning a partition's AMQP dedupe markers failed; trying again later"),
            }
        }
    }

    async fn kafka_reachable(&self) -> bool {
        use rdkafka::producer::Producer;
        let p = self.producer.clone();
        let topic = self.cfg.topic.clone();
        tokio::task::spawn_blocking(move || {
            p.client()
                .fetch_metadata(Some(&topic), Duration::from_secs(2))
                .is_ok()
        })
        .await
        .unwrap_or(false)
    }

    /// The front now holds what the shared catalogue says (a statement applied on it).
    pub async fn note_front_applied(&self) -> anyhow::Result<()> {
        let now = shared_catalog(&self.shared).await?;
        *self.front_applied.lock().await = Some(now);
        Ok(())
    }

    /// The next offset partition `p` will be given (its high watermark), if the broker says.
    pub async fn high_watermark(&self, p: i32) -> Option<i64> {
        use rdkafka::producer::Producer;
        let producer = self.producer.clone();
        let topic = self.cfg.topic.clone();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_watermarks(&topic, p, Duration::from_secs(2))
                .ok()
                .map(|(_, high)| high)
        })
        .await
        .ok()
        .flatten()
    }

    /// Reconcile `cell`'s catalogue with the shared one; then it may answer.
    async fn sync_cell(&self, cell: &Cell) -> anyhow::Result<()> {
        let _one = cell.catalog.lock().await;
        sync_catalog(self, &cell.hub).await?;
        cell.synced.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Apply DSL text to every cell of this node (after the front took it). A `CREATE` is
    /// applied as `CREATE OR REPLACE` (a cell may have reconciled it already), and a `DROP`
    /// of what a cell does not have is no error. A cell that refuses is logged; it is
    /// reconciled with the shared catalogue again within a few seconds.
    pub async fn apply_to_cells(&self, tenant: &Tenant, text: &str) -> anyhow::Result<()> {
        let text = or_replace(text);
        for cell in self.cells() {
            let _one = cell.catalog.lock().await;
            let app = cell.hub.ensure(tenant).await?;
            match crate::catalog::apply(&app, text.clone()).await {
                Ok(_) | Err(crate::ddl::DdlError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(partition = cell.partition, error = %e, "a cell refused a statement (it reconciles later)")
                }
            }
        }
        Ok(())
    }
}

/// The librdkafka settings every client of the cluster shares.
fn client_config(cfg: &ClusterConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in &cfg.options {
        c.set(k, v);
    }
    c.set("bootstrap.servers", &cfg.brokers);
    c
}

/// The topic's partition count, creating the topic (with `cfg.partitions`) when missing.
async fn ensure_topic(cfg: &ClusterConfig) -> anyhow::Result<i32> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let count = |cfg: &ClusterConfig| -> anyhow::Result<Option<i32>> {
        let consumer: rdkafka::consumer::BaseConsumer = client_config(cfg).create()?;
        let md = rdkafka::consumer::Consumer::fetch_metadata(
            &consumer,
            Some(&cfg.topic),
            Duration::from_secs(10),
        )?;
        Ok(md
            .topics()
            .iter()
            .find(|t| t.name() == cfg.topic && t.error().is_none())
            .map(|t| t.partitions().len() as i32)
            .filter(|n| *n > 0))
    };
    let c = cfg.clone();
    if let Some(n) = tokio::task::spawn_blocking(move || count(&c)).await?? {
        return Ok(n);
    }
    let admin: AdminClient<DefaultClientContext> = client_config(cfg).create()?;
    let topic = NewTopic::new(&cfg.topic, cfg.partitions, TopicReplication::Fixed(1));
    let created = admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .map_err(|e| anyhow::anyhow!("creating topic {}: {e}", cfg.topic))?;
    for r in created {
        if let Err((t, e)) = r {
            if e != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                anyhow::bail!("creating topic {t}: {e}");
            }
        }
    }
    for _ in 0..50 {
        let c = cfg.clone();
        if let Some(n) = tokio::task::spawn_blocking(move || count(&c)).await?? {
            return Ok(n);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("topic {} has no partitions after creating it", cfg.topic)
}

/// A catalogue entry: (tenant, kind, name) → its definition text.
type CatalogMap = BTreeMap<(Tenant, CatalogKind, String), String>;

/// Every definition of a store's catalogue, by tenant.
fn catalog_of(s: &dyn Storage) -> weir_storage::Result<CatalogMap> {
    let mut all = BTreeMap::new();
    for kind in [CatalogKind::Query, CatalogKind::Rule] {
        for (name, text) in s.catalog_list(kind)? {
            let (tenant, own) = match crate::tenant_store::tenant_of_name(&name) {
                Some(t) => {
                    let prefix = crate::tenant_store::prefix_of(&t);
                    let own = name[prefix.len()..].to_string();
                    (t, own)
                }
                None => (Tenant::default(), name),
            };
            all.insert((tenant, kind, own), text);
        }
    }
    Ok(all)
}

async fn shared_catalog(shared: &Store) -> anyhow::Result<CatalogMap> {
    Ok(shared.run(catalog_of).await?)
}

/// Bring a hub's definitions in line with the shared catalogue: create or replace what
/// differs, drop what is gone (rules first, then queries, so nothing dropped is read).
async fn reconcile(hub: &Hub, want: &CatalogMap, have: &CatalogMap) -> anyhow::Result<()> {
    for ((tenant, kind, name), text) in want {
        // A cell keeps what it was given as CREATE OR REPLACE: compare them alike.
        let had = have.get(&(tenant.clone(), *kind, name.clone()));
        if had.is_some_and(|h| or_replace(h) == or_replace(text)) {
            continue;
        }
        let app = hub.ensure(tenant).await?;
        let text = or_replace(text);
        match crate::catalog::apply(&app, text.clone()).await {
            Ok(_) => {
                tracing::info!(%tenant, name, replaced = had.is_some(), "reconciled: a shared definition applied here")
            }
            Err(e) => {
                tracing::warn!(%tenant, name, error = %e, "a shared definition does not apply here")
            }
        }
    }
    let mut gone: Vec<_> = have.keys().filter(|k| !want.contains_key(*k)).collect();
    gone.sort_by_key(|(_, kind, _)| *kind != CatalogKind::Rule);
    for (tenant, kind, name) in gone {
        let app = hub.ensure(tenant).await?;
        let dropped = match kind {
            CatalogKind::Rule => crate::catalog::drop_rule(&app, name).await.map(|_| ()),
            CatalogKind::Query => crate::catalog::drop_query(&app, name, true)
                .await
                .map(|_| ()),
        };
        match dropped {
            Ok(()) => {
                tracing::info!(%tenant, name, "reconciled: a definition gone from the cluster dropped here")
            }
            Err(e) => {
                tracing::warn!(%tenant, name, error = %e, "dropping a definition gone from the cluster failed")
            }
        }
    }
    Ok(())
}

/// A stored `CREATE …` as `CREATE OR REPLACE …`, so applying it where it exists replaces it.
fn or_replace(text: &str) -> String {
    match weir_query_lang::parse(text) {
        Ok(mut stmts) => {
            for s in &mut stmts {
                match s {
                    weir_query_lang::ast::Statement::CreateQuery(q) => {
                        if let weir_query_lang::ast::QueryForm::Create { or_replace } = &mut q.form
                        {
                            *or_replace = true;
                        }
                    }
                    weir_query_lang::ast::Statement::CreateRule(r) => r.or_replace = true,
                    _ => {}
                }
            }
            stmts
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(";\n")
        }
        Err(_) => text.to_string(),
    }
}

/// Reconcile a cell with the shared catalogue.
async fn sync_catalog(cluster: &Cluster, hub: &Hub) -> anyhow::Result<()> {
    let want = shared_catalog(&cluster.shared).await?;
    let have = hub.node().store().run(catalog_of).await?;
    reconcile(hub, &want, &have).await
}

/// Reconcile the front's engines with the shared catalogue (a peer changed it). The front's
/// own catalogue *is* the shared one, so what its engines hold is kept aside: the catalogue
/// as this node last applied it (on start, what the front was restored from).
pub async fn sync_front(cluster: &Cluster, front: &Hub) -> anyhow::Result<()> {
    let mut applied = cluster.front_applied.lock().await;
    let want = shared_catalog(&cluster.shared).await?;
    if let Some(have) = applied.as_ref() {
        reconcile(front, &want, have).await?;
    }
    *applied = Some(want);
    Ok(())
}
