//! The running server's shared state, and the one path every event takes:
//! engine (under its shard locks, where the event gets its id) → event log (group commit)
//! → answer.
//!
//! Every event is applied to the engine and given its id (its log sequence number) while the
//! engine holds the locks of every shard it touches, so the ids of events that share a shard
//! are in the order they changed it: replaying the log in id order rebuilds the same state.
//! The records of one request (or one input message) are then appended to the log as one
//! atomic batch, together with the input positions they cover (Kafka offsets, AMQP message
//! ids): after a crash either all of them and their positions are there, or none.
//!
//! Persisted state records the highest id it includes. Between an event getting its id and
//! its record being queued for the log there is a short gap; the `submitting` gate lets a
//! state flush wait out that gap, so the log holds every event the state includes before the
//! state is written (see [`crate::state`]).
//!
//! The analytics (keys, stats) are not on this path: the log writer hands each written group
//! to the insights thread (see [`crate::insights`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use weir_core::shape::ShapeError;
use weir_core::{Clock, Event, EventId, Schema, ShapeOptions};
use weir_engine::Engine;
use weir_rules::{Decision, RuleSet};
use weir_storage::{GroupCommit, LogRecord, Receipt, Storage, StorageError};

use crate::config::ServeConfig;
use crate::insights::InsightsFeed;
use crate::store::Store;

/// What every tenant's app on this node shares: the configuration, the store, the one event
/// log and its sequence, the clock and the analytics.
pub struct Node {
    /// The configuration the server runs with.
    cfg: ServeConfig,
    /// The node's store, every tenant's data (tenants reach it through their own view).
    store: Store,
    /// The group-commit writer in front of the store's event log.
    log: GroupCommit,
    /// The next event id to hand out.
    next_seq: AtomicU64,
    /// Held (shared) from an event getting its id until its record is queued for the log.
    submitting: RwLock<()>,
    /// Wall clock.
    clock: Arc<dyn Clock>,
    /// Field keys and 48 h stats of every accepted event (seeds 001, 003), fed by the log.
    insights: InsightsFeed,
    /// Alerts of every account (shared by all tenants: ids are per account), their sinks, and
    /// the decision log.
    alerts: Arc<crate::alerts::Alerts>,
}

impl Node {
    /// Assemble the node; `last_seq` is the highest event id already in the log.
    pub fn new(
        cfg: ServeConfig,
        store: Store,
        log: GroupCommit,
        last_seq: u64,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let insights = InsightsFeed::start(crate::insights::empty(&cfg), last_seq);
        if !log.on_written(insights.hook()) {
            tracing::warn!("the log writer feeds other analytics already; these stay empty");
        }
        let alerts = Arc::new(crate::alerts::Alerts::new(cfg.alerts.clone()));
        Self {
            cfg,
            alerts,
            store,
            log,
            next_seq: AtomicU64::new(last_seq + 1),
            submitting: RwLock::new(()),
            clock,
            insights,
        }
    }

    /// The configuration the server runs with.
    pub fn cfg(&self) -> &ServeConfig {
        &self.cfg
    }

    /// Wall clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Alerts of every account, their sinks, and the decision log.
    pub fn alerts(&self) -> &Arc<crate::alerts::Alerts> {
        &self.alerts
    }

    /// The node's whole store (every tenant's data): for what is the node's, not a tenant's
    /// (input positions, the log).
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// Everything a request handler needs: one tenant's queries, rules and schemas, over the
/// node's log and store (seen through the tenant's view, see [`crate::tenant_store`]).
pub struct App {
    /// What every tenant shares.
    node: Arc<Node>,
    /// The account and project this app serves.
    tenant: weir_core::Tenant,
    /// Queries and their incremental state.
    engine: Arc<Engine>,
    /// Rules on top of the engine.
    rules: RuleSet,
    /// The tenant's view of the store (event log, catalogue, persisted state), reached only
    /// off the async workers.
    store: Store,
    /// Serialises DSL statements so catalogue and engine change together.
    statements: tokio::sync::Mutex<()>,
    /// JSON Schemas by event type; events of those types must satisfy them.
    schemas: RwLock<HashMap<String, Arc<Schema>>>,
    /// Backfills in progress, by query name.
    backfills: crate::backfills::Backfills,
    /// Stored definitions that could not be restored on start, by (kind, name): the reason.
    /// They stay in the catalogue (listed with status `error`) until replaced or dropped.
    catalog_errors: CatalogErrors,
    /// Per-rule, per-key decision counts for the Prometheus API.
    decision_series: crate::decisions::DecisionSeries,
    /// Query state on disk: what is flushed, and where.
    persist: crate::state::StatePersist,
    /// This tenant's event and decision counters.
    counters: Counters,
}

/// A tenant's counters in /metrics, registered once: the default tenant's carry no tenant
/// labels (as before tenants), another's carry `account` and `project`, so a tenant's key can
/// be shown its own series (see [`crate::api::metrics`]).
struct Counters {
    accepted: metrics::Counter,
    allowed: metrics::Counter,
    denied: metrics::Counter,
    dropped_denied: metrics::Counter,
    invalid_schema: metrics::Counter,
}

impl Counters {
    fn new(t: &weir_core::Tenant) -> Self {
        let tenant: Vec<(&'static str, String)> = if t.is_default() {
            Vec::new()
        } else {
            vec![
                ("account", t.account.clone()),
                ("project", t.project.clone()),
            ]
        };
        let with = |extra: &[(&'static str, &str)]| -> Vec<metrics::Label> {
            extra
                .iter()
                .map(|(k, v)| metrics::Label::new(*k, v.to_string()))
                .chain(
                    tenant
                        .iter()
                        .map(|(k, v)| metrics::Label::new(*k, v.clone())),
                )
                .collect()
        };
        Self {
            accepted: metrics::counter!("weir_events_accepted_total", with(&[])),
            allowed: metrics::counter!("weir_decisions_total", with(&[("decision", "allow")])),
            denied: metrics::counter!("weir_decisions_total", with(&[("decision", "deny")])),
            dropped_denied: metrics::counter!(
                "weir_events_dropped_total",
                with(&[("reason", "denied")])
            ),
            invalid_schema: metrics::counter!(
                "weir_events_invalid_total",
                with(&[("reason", "schema")])
            ),
        }
    }
}

/// Stored definitions that could not be restored, by (kind, name), with the reason.
pub type CatalogErrors = Mutex<HashMap<(weir_storage::CatalogKind, String), String>>;

/// Where the schemas are kept in the store's meta data.
const SCHEMAS_KEY: &str = "schemas";

/// What happened to one event sent through [`App::add_and_check`].
pub struct Checked {
    /// The decision, listing every matching rule.
    pub decision: Decision,
    /// The id the event got (denied events are logged too, flagged, and count nowhere).
    pub event_id: EventId,
    /// Resolves once the event is durable.
    pub receipt: Receipt,
}

impl App {
    /// The configuration the server runs with.
    pub fn cfg(&self) -> &ServeConfig {
        &self.node.cfg
    }

    /// What every tenant's app on this node shares.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// The account and project this app serves: every read and write of a call is confined
    /// to it.
    pub fn tenant(&self) -> &weir_core::Tenant {
        &self.tenant
    }

    /// Queries and their incremental state.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Rules on top of the engine.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// The store (event log, catalogue, persisted state): its calls run on blocking threads.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Run `f` on a blocking thread with the app and its storage (see [`Cx`]).
    pub async fn blocking<R, F>(self: &Arc<Self>, f: F) -> R
    where
        F: FnOnce(&Cx<'_>) -> R + Send + 'static,
        R: Send + 'static,
    {
        let app = self.clone();
        self.store
            .run(move |store| f(&Cx { app: &app, store }))
            .await
    }

    /// Run `f` on one blocking thread with several apps of `node`, each with its storage, and
    /// the node's whole store (restoring every tenant at once, see [`crate::recovery`]).
    pub async fn blocking_all<R, F>(node: &Arc<Node>, apps: Vec<Arc<App>>, f: F) -> R
    where
        F: FnOnce(&[Cx<'_>], &dyn Storage) -> R + Send + 'static,
        R: Send + 'static,
    {
        node.store
            .run(move |whole| {
                let handles: Vec<Arc<dyn Storage>> =
                    apps.iter().map(|a| a.store.handle()).collect();
                let cxs: Vec<Cx<'_>> = apps
                    .iter()
                    .zip(&handles)
                    .map(|(app, store)| Cx {
                        app,
                        store: &**store,
                    })
                    .collect();
                f(&cxs, whole)
            })
            .await
    }

    /// Whether the event log is taking writes.
    pub fn log_health(&self) -> weir_storage::Health {
        self.node.log.health()
    }

    /// The event log writer's counters.
    pub fn log_stats(&self) -> weir_storage::GroupCommitStats {
        self.node.log.stats()
    }

    /// Wall clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.node.clock
    }

    /// Backfills in progress, by query name.
    pub fn backfills(&self) -> &crate::backfills::Backfills {
        &self.backfills
    }

    /// Field keys and stats of every written event.
    pub fn insights(&self) -> &InsightsFeed {
        &self.node.insights
    }

    /// Every type's JSON Schema, as it was given.
    pub fn schema_sources(&self) -> std::collections::BTreeMap<String, serde_json::Value> {
        self.schemas
            .read()
            .iter()
            .map(|(t, s)| (t.clone(), s.source().clone()))
            .collect()
    }

    /// The JSON Schema of one type, as it was given.
    pub fn schema_source(&self, ty: &str) -> Option<serde_json::Value> {
        self.schemas.read().get(ty).map(|s| s.source().clone())
    }

    /// Stored definitions that could not be restored on start, by (kind, name).
    pub fn catalog_errors(&self) -> &CatalogErrors {
        &self.catalog_errors
    }

    /// Per-rule, per-key decision counts for the Prometheus API.
    pub fn decision_series(&self) -> &crate::decisions::DecisionSeries {
        &self.decision_series
    }

    /// Alerts of every account, their sinks, and the decision log (the node's).
    pub fn alerts(&self) -> &Arc<crate::alerts::Alerts> {
        &self.node.alerts
    }

    /// Take the statement lock: DSL statements apply one at a time, so the catalogue and the
    /// engine change together (taken by `catalog::apply` and the drops).
    pub async fn lock_statements(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.statements.lock().await
    }

    /// The app of `tenant` on `node`, with no queries, rules or schemas yet.
    pub fn new(node: Arc<Node>, tenant: weir_core::Tenant) -> Self {
        let cfg = &node.cfg;
        let engine = Arc::new(Engine::new(weir_engine::EngineConfig {
            shards: cfg.shards,
            default_grace_ms: cfg.grace.as_millis() as i64,
            default_retention_ms: cfg.retention.as_millis() as i64,
        }));
        let rules = RuleSet::new(engine.clone());
        let store = node.store.scoped(&tenant);
        let counters = Counters::new(&tenant);
        Self {
            counters,
            node,
            tenant,
            engine,
            rules,
            store,
            statements: tokio::sync::Mutex::new(()),
            backfills: Default::default(),
            catalog_errors: Default::default(),
            schemas: RwLock::new(HashMap::new()),
            decision_series: Default::default(),
            persist: Default::default(),
        }
    }

    /// Check events against their types' schemas; every failure with its index and reason.
    pub fn validate(&self, events: &[Event]) -> Result<(), Vec<ShapeError>> {
        let errors = self.schema_errors(events);
        if errors.is_empty() {
            return Ok(());
        }
        let single = events.len() == 1;
        Err(errors
            .into_iter()
            .map(|(i, reason)| ShapeError {
                index: (!single).then_some(i),
                reason,
            })
            .collect())
    }

    /// The events that fail their type's schema: index and reason (counted in metrics).
    pub fn schema_errors(&self, events: &[Event]) -> Vec<(usize, String)> {
        let schemas = self.schemas.read();
        if schemas.is_empty() {
            return Vec::new();
        }
        events
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                let reason = schemas.get(&e.kind)?.validate(&e.fields).err()?;
                self.counters.invalid_schema.increment(1);
                Some((i, format!("event type '{}' schema: {reason}", e.kind)))
            })
            .collect()
    }
}

/// The app on a blocking thread, with its storage: what synchronous code that reads or
/// writes the store takes. Only [`App::blocking`] makes one, so storage calls never run on
/// an async worker (where a Cassandra round trip or an fsync would stall every task on it).
pub struct Cx<'a> {
    app: &'a App,
    store: &'a dyn Storage,
}

impl std::ops::Deref for Cx<'_> {
    type Target = App;

    fn deref(&self) -> &App {
        self.app
    }
}

impl<'a> Cx<'a> {
    /// The storage, on this blocking thread.
    pub fn store(&self) -> &'a dyn Storage {
        self.store
    }

    /// Set (or with `None` remove) the schema of an event type, and store the set. Returns
    /// whether the type had a schema before.
    pub fn set_schema(&self, ty: &str, schema: Option<Arc<Schema>>) -> anyhow::Result<bool> {
        let mut schemas = self.schemas.write();
        let had = schemas.contains_key(ty);
        if schema.is_none() && !had {
            return Ok(false);
        }
        // Stored first, applied after: a failed write changes nothing.
        let mut next = schemas.clone();
        match schema {
            Some(s) => next.insert(ty.to_string(), s),
            None => next.remove(ty),
        };
        let all: serde_json::Map<String, serde_json::Value> = next
            .iter()
            .map(|(t, s)| (t.clone(), s.source().clone()))
            .collect();
        self.store
            .meta_put(SCHEMAS_KEY, &serde_json::to_vec(&all)?)?;
        *schemas = next;
        Ok(had)
    }

    /// Load the stored schemas (on start).
    pub fn load_schemas(&self) -> anyhow::Result<()> {
        let Some(bytes) = self.store.meta_get(SCHEMAS_KEY)? else {
            return Ok(());
        };
        let all: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes)?;
        let mut schemas = self.schemas.write();
        for (ty, v) in all {
            let s =
                Schema::compile(&v).map_err(|e| anyhow::anyhow!("stored schema of '{ty}': {e}"))?;
            schemas.insert(ty, Arc::new(s));
        }
        Ok(())
    }

    /// Load the persisted query state and the analytics (on start; see [`crate::state`]).
    pub fn restore_state(&self) -> anyhow::Result<crate::state::Restored> {
        self.persist.restore(self)
    }

    /// Flush the query state that changed since the last flush (see [`crate::state`]).
    pub fn flush_state(&self) -> anyhow::Result<()> {
        self.persist.flush(self).map(|_| ())
    }
}

impl App {
    /// How events are read right now (time of arrival, future-skew limit).
    pub fn shape_opts(&self) -> ShapeOptions {
        ShapeOptions {
            now_ms: self.node.clock.now_ms(),
            max_future_skew_ms: self.node.cfg.max_future_skew.as_millis() as i64,
        }
    }

    /// The highest event id handed out so far.
    pub fn last_seq(&self) -> u64 {
        self.node.next_seq.load(Ordering::SeqCst) - 1
    }

    /// The id the next event will get (the boundary of a backfill).
    pub fn next_seq(&self) -> u64 {
        self.node.next_seq.load(Ordering::SeqCst)
    }

    /// Make `e` this tenant's (whatever it said it was: an event's owner is the key or input
    /// it came with).
    fn own(&self, e: &mut Event) {
        if e.account != self.tenant.account {
            e.account.clone_from(&self.tenant.account);
        }
        if e.project != self.tenant.project {
            e.project.clone_from(&self.tenant.project);
        }
    }

    fn next_id(&self) -> u64 {
        self.node.next_seq.fetch_add(1, Ordering::SeqCst)
    }

    /// Add events unconditionally (the asynchronous add of SPEC section 4), with the input
    /// positions they cover. Returns their ids and a receipt that resolves once all of them
    /// (and the positions) are durable.
    ///
    /// Refused, with nothing applied, while the log is retrying a failed write (a transient
    /// error: try again) or has failed for good. Once applied, the records are written by the
    /// log even if that needs retries, so a caller must never submit the same events again:
    /// they would be counted twice.
    pub fn add(
        &self,
        mut events: Vec<Event>,
        positions: Vec<(String, Vec<u8>)>,
    ) -> Result<(Vec<EventId>, Receipt), StorageError> {
        self.node.log.health().check()?;
        events.iter_mut().for_each(|e| self.own(e));
        let _gate = self.node.submitting.read();
        let ids = self.engine.apply_batch(&events, |_| self.next_id());
        self.counters.accepted.increment(events.len() as u64);
        let records = events
            .into_iter()
            .zip(&ids)
            .map(|(event, &seq)| LogRecord {
                seq,
                event,
                denied: false,
            })
            .collect();
        let receipt = self.node.log.submit(records, positions);
        Ok((ids, receipt))
    }

    /// Decide on the state including `event`; add it only if every matching rule allows it.
    /// Refused, with nothing decided or applied, when the log is not taking writes (see
    /// [`App::add`]).
    pub fn add_and_check(&self, mut event: Event) -> Result<Checked, StorageError> {
        self.node.log.health().check()?;
        self.own(&mut event);
        let _gate = self.node.submitting.read();
        let mut denied = false;
        let started = std::time::Instant::now();
        let now = self.node.clock.now_ms();
        // Alert changes are found under the decision's locks (see `crate::alerts`).
        let ((event_id, mut alerted), decision) = self.rules.add_and_check_with(&event, |d| {
            denied = !d.allowed;
            let id = self.next_id();
            let alerted =
                self.node
                    .alerts
                    .observe(&event.account, &event.project, d, Some(id), now);
            (id, alerted)
        });
        metrics::histogram!("weir_decision_duration_seconds", "call" => "add_and_check")
            .record(started.elapsed().as_secs_f64());
        // After the decision, outside the engine's locks.
        self.decision_series
            .record(&decision, self.node.clock.now_ms());
        if decision.allowed {
            self.counters.accepted.increment(1);
            self.counters.allowed.increment(1);
        } else {
            self.counters.denied.increment(1);
            self.counters.dropped_denied.increment(1);
        }
        self.node.alerts.decisions().record(
            "add_and_check",
            &event.account,
            &event.project,
            event_id,
            Some(event_id),
            &decision,
            now,
        );
        let record = LogRecord {
            seq: event_id,
            event,
            denied,
        };
        // The alert changes go in the event's group; their lock is let go once queued.
        let meta = alerted.as_mut().map(|a| a.take_meta()).unwrap_or_default();
        let receipt = self.node.log.submit(vec![record], meta);
        drop(alerted);
        Ok(Checked {
            decision,
            event_id,
            receipt,
        })
    }

    /// Decide from the current state without adding the event.
    pub fn check(&self, event: &Event) -> Decision {
        let started = std::time::Instant::now();
        let now = self.node.clock.now_ms();
        // Alert changes need the log (their meta is written alone); without it they wait
        // for a later decision.
        let logging = self.node.log.health().check().is_ok();
        let (alerted, decision) = self.rules.check_with(event, |d| {
            logging
                .then(|| {
                    self.node.alerts.observe(
                        &self.tenant.account,
                        &self.tenant.project,
                        d,
                        None,
                        now,
                    )
                })
                .flatten()
        });
        metrics::histogram!("weir_decision_duration_seconds", "call" => "check")
            .record(started.elapsed().as_secs_f64());
        if let Some(mut a) = alerted {
            // Nobody waits for it: a check answers from memory.
            drop(self.node.log.submit(Vec::new(), a.take_meta()));
        }
        self.node.alerts.decisions().record(
            "check",
            &self.tenant.account,
            &self.tenant.project,
            self.last_seq(),
            None,
            &decision,
            now,
        );
        decision
    }

    /// Wait until every event that already has an id is queued for the log, then until the
    /// log has made all of them durable.
    pub fn flush_blocking(&self) -> anyhow::Result<()> {
        drop(self.node.submitting.write());
        self.node
            .log
            .submit(Vec::new(), Vec::new())
            .wait_blocking()?;
        Ok(())
    }
}

impl crate::state::StateHost for Cx<'_> {
    fn store(&self) -> &dyn Storage {
        self.store
    }
    fn engine(&self) -> &Engine {
        &self.engine
    }
    fn last_seq(&self) -> u64 {
        App::last_seq(self.app)
    }
    fn wait_durable(&self) -> anyhow::Result<()> {
        self.flush_blocking()
    }
    fn insights(&self) -> Option<&InsightsFeed> {
        // The analytics are the node's, flushed and restored with the default tenant.
        self.tenant.is_default().then_some(&self.node.insights)
    }
}
