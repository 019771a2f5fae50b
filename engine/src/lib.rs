//! # weir-engine
//!
//! Keeps the results of continuous queries up to date event by event (SPEC sections 3–4)
//! and exposes the locked, atomic per-event context the rules crate decides in. No I/O:
//! the server persists [`EngineCheckpoint`]s and the event log, and calls in here.
//!
//! # Layout
//! - [`plan`]: a select compiled once into a [`plan::Plan`] (predicate, key paths, kernels).
//! - [`expr`]: compiled per-event and per-row expressions and their evaluation.
//! - [`agg`]: aggregate kernels, HyperLogLog and the quantile sketch.
//! - [`window`]: one key's buckets, stored together as prefix sums.
//! - [`tree`]: the segment tree over a key's non-invertible per-bucket states.
//! - [`shard`]: a (query, shard) state: key table, watermark, lateness, eviction.
//! - [`locked`]: the per-event context holding every touched shard lock.
//! - [`read`]: results: window rows, series rows, HOP rows, views over queries.
//! - [`checkpoint`]: a whole-engine snapshot (tests compare states with it).
//! - [`persist`]: state persisted incrementally as key-bucket rows, and its restore.
//! - [`backfill`]: shadow versions of a query, fed live and from the log, then promoted.
//! - [`hash`]: the stable key hash.
//!
//! # Design
//! Each query has `shards` mutex-guarded shards; a key lives in the shard given by a stable
//! hash, so concurrent events on different keys rarely contend and there is no global
//! lock on the hot path (only a read lock on the query catalogue). A key's retained
//! buckets sit in one contiguous buffer as prefix sums, so one event is one hash lookup
//! plus an update of the last entry, and any window is two binary searches and a
//! subtraction — O(log(w/g)) whatever its length. Non-invertible aggregates keep one state
//! per bucket as the leaves of a segment tree, so a window merges O(log(w/g)) nodes.
//!
//! Sequencing: [`Engine::apply`] calls its `seq` closure exactly once while it holds the
//! locks of every shard the event touches (taken in the global order (query id, shard)).
//! The closure assigns the event id and enqueues the event to the log, so the log order
//! equals, per shard, the order state was mutated in. The watermark, lateness and eviction
//! are kept per (query, shard), so they depend only on that order: replaying the log after
//! restoring a checkpoint reproduces exactly the state of a run that never stopped.

pub mod agg;
pub mod backfill;
pub mod checkpoint;
pub mod error;
pub mod expr;
pub mod hash;
pub mod locked;
pub mod persist;
pub mod plan;
pub mod read;
pub mod shard;
pub mod tree;
pub mod window;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use weir_core::Event;
use weir_query_lang::analyze::analyze_select;
use weir_query_lang::ast::{Expr, Select};
use weir_query_lang::{AnalyzerConfig, Catalog, QueryShape, ResolvedSource};

pub use backfill::Shadow;
pub use checkpoint::EngineCheckpoint;
pub use error::{EngineError, Result};
pub use locked::{Check, Condition, Evaluation, Locked};
pub use plan::{Plan, TimeShape};
pub use read::{Answer, ReadRequest, Row};

use plan::{Retention, SourceKind};
use shard::Shard;

/// The visible queries of a catalogue, except the one being (re)defined, as the analyzer
/// sees them.
struct Shapes<'a> {
    cat: &'a [Arc<QueryRt>],
    except: &'a str,
}

impl Shapes<'_> {
    fn get(&self, name: &str) -> Option<&Arc<QueryRt>> {
        if name == self.except {
            return None;
        }
        self.cat.iter().find(|q| q.name == name && q.is_visible())
    }
}

impl Catalog for Shapes<'_> {
    fn query(&self, name: &str) -> Option<QueryShape> {
        self.get(name).map(|q| q.plan.reader_shape())
    }
}

/// Analyse `select` against the catalogue and compile the plan from the analysis; a view
/// that only passes its source's columns through is compiled as the select it derives
/// (see [`plan::derive_view`]).
fn compile(
    cat: &[Arc<QueryRt>],
    name: &str,
    select: &Select,
    extra: &[&Expr],
    ret: Retention,
) -> Result<Plan> {
    let shapes = Shapes { cat, except: name };
    // The server checks the configured bucket limit; the engine runs what it is given.
    let cfg = AnalyzerConfig {
        max_buckets_per_window: u64::MAX,
    };
    let analysis = analyze_select(select, &shapes, &cfg).map_err(EngineError::Query)?;
    if let Some(ResolvedSource::Query { name: up, .. }) = &analysis.source {
        if let Some(upq) = shapes.get(up) {
            if let Some(derived) = plan::derive_view(select, &analysis, &upq.plan) {
                if let Ok(a) = analyze_select(&derived, &shapes, &cfg) {
                    return Plan::compile(&derived, &a, extra, ret, Some(up.clone()));
                }
            }
        }
    }
    Plan::compile(select, &analysis, extra, ret, None)
}

/// Engine settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// Shards per query (fixed for the life of the data; stored in checkpoints).
    pub shards: usize,
    /// Grace kept after a sliding window, ms.
    pub default_grace_ms: i64,
    /// Retention of a tumbling series, ms.
    pub default_retention_ms: i64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            shards: 64,
            default_grace_ms: 600_000,
            default_retention_ms: 172_800_000,
        }
    }
}

/// What [`Engine::apply`] did with an event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Queries that counted it.
    pub applied: u32,
    /// Queries that dropped it as late.
    pub late: u32,
}

/// One continuous query at run time.
#[derive(Debug)]
pub struct QueryRt {
    /// Unique, increasing id (the lock order).
    pub id: u64,
    /// Name.
    pub name: String,
    /// Owned by a rule (hidden from listings).
    pub owned: bool,
    /// Compiled plan.
    pub plan: Plan,
    /// Shards.
    pub shards: Box<[Mutex<Shard>]>,
    /// False while this version is a [`Shadow`] being backfilled: it receives events but
    /// is invisible to reads, listings, rules and checkpoints. Changed only under the
    /// catalogue write lock.
    visible: AtomicBool,
}

impl QueryRt {
    /// Whether this version is the one reads and rules see (not a shadow).
    #[inline]
    pub fn is_visible(&self) -> bool {
        self.visible.load(Ordering::Relaxed)
    }

    /// Largest watermark over the shards.
    pub fn watermark(&self) -> Option<i64> {
        self.shards.iter().filter_map(|s| s.lock().watermark).max()
    }

    /// Whether this query reads another query rather than events.
    pub fn is_view(&self) -> bool {
        matches!(self.plan.source, SourceKind::Query { .. })
    }
}

/// Per-query counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryMetrics {
    /// Query name.
    pub name: String,
    /// Events counted.
    pub events: u64,
    /// Events dropped as late.
    pub late_dropped: u64,
    /// Group keys held.
    pub keys: u64,
}

/// The engine: every query's state.
#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    catalog: RwLock<Vec<Arc<QueryRt>>>,
    next_id: AtomicU64,
    events_applied: AtomicU64,
}

impl Engine {
    /// An engine with no queries.
    pub fn new(cfg: EngineConfig) -> Self {
        Self {
            cfg: EngineConfig {
                shards: cfg.shards.max(1),
                ..cfg
            },
            catalog: RwLock::new(Vec::new()),
            next_id: AtomicU64::new(1),
            events_applied: AtomicU64::new(0),
        }
    }

    /// The settings.
    pub fn config(&self) -> EngineConfig {
        self.cfg
    }

    fn retention(&self) -> Retention {
        Retention {
            grace_ms: self.cfg.default_grace_ms,
            series_ms: self.cfg.default_retention_ms,
        }
    }

    /// Create (or replace, with fresh state) a query.
    pub fn create_query(&self, name: &str, select: &Select) -> Result<()> {
        self.create_query_ext(name, select, &[], false)
    }

    /// Create or replace a query whose state is also read by `extra` conditions (a rule's
    /// DENY WHEN), marked `owned` when a rule owns it.
    pub fn create_query_ext(
        &self,
        name: &str,
        select: &Select,
        extra: &[&Expr],
        owned: bool,
    ) -> Result<()> {
        let mut cat = self.catalog.write();
        let q = self.new_query(&cat, name, select, extra, owned, true)?;
        cat.retain(|q| q.name != name || !q.is_visible());
        cat.push(Arc::new(q));
        Ok(())
    }

    /// Compile `select` as query `name` would be compiled, without creating it: the errors a
    /// create would give, so a statement text can be refused before any of it applies.
    pub fn check_query(&self, name: &str, select: &Select) -> Result<()> {
        let cat = self.catalog.read();
        compile(&cat, name, select, &[], self.retention()).map(|_| ())
    }

    /// Compile a new version of a query (not yet in the catalogue).
    pub(crate) fn new_query(
        &self,
        cat: &[Arc<QueryRt>],
        name: &str,
        select: &Select,
        extra: &[&Expr],
        owned: bool,
        visible: bool,
    ) -> Result<QueryRt> {
        let plan = compile(cat, name, select, extra, self.retention())?;
        Ok(QueryRt {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            name: name.to_string(),
            owned,
            plan,
            shards: (0..self.cfg.shards).map(|_| Mutex::default()).collect(),
            visible: AtomicBool::new(visible),
        })
    }

    /// Drop a query (and any shadow of it being backfilled: promoting that fails).
    pub fn drop_query(&self, name: &str) -> Result<()> {
        let mut cat = self.catalog.write();
        let existed = cat.iter().any(|q| q.name == name && q.is_visible());
        cat.retain(|q| q.name != name);
        if !existed {
            return Err(EngineError::UnknownQuery(name.to_string()));
        }
        Ok(())
    }

    /// Names of the queries not owned by rules, in creation order.
    pub fn query_names(&self) -> Vec<String> {
        let cat = self.catalog.read();
        cat.iter()
            .filter(|q| !q.owned && q.is_visible())
            .map(|q| q.name.clone())
            .collect()
    }

    /// The query that query `name` reads, if it reads one (rule-owned queries included).
    pub fn upstream_of(&self, name: &str) -> Option<String> {
        self.query(name)?.plan.reads().map(str::to_string)
    }

    /// A query by name.
    pub fn query(&self, name: &str) -> Option<Arc<QueryRt>> {
        self.catalog
            .read()
            .iter()
            .find(|q| q.name == name && q.is_visible())
            .cloned()
    }

    /// What the analyzer needs to know about query `name`: its columns, group fields and
    /// time shape (None if there is no such query).
    pub fn query_shape(&self, name: &str) -> Option<QueryShape> {
        Some(self.query(name)?.plan.reader_shape())
    }

    /// Compile a condition (HAVING-like, over the query's columns) for a query.
    pub fn condition(&self, query: &str, e: &Expr) -> Result<Condition> {
        let q = self
            .query(query)
            .ok_or_else(|| EngineError::UnknownQuery(query.to_string()))?;
        Condition::compile(&q, e)
    }

    /// Run `f` with every shard the event touches locked (see [`Locked`]).
    pub fn locked<R>(&self, ev: &Event, f: impl FnOnce(&mut Locked<'_>) -> R) -> R {
        let cat = self.catalog.read();
        let (r, applied) = Locked::with(ev, &cat, self.cfg.shards, f);
        if applied {
            self.events_applied.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    /// Add an event to every query it matches. `seq` is called exactly once, while the
    /// locks of every touched shard are held, and returns the event id (the server logs
    /// the event in it). Replay calls this with the stored id.
    pub fn apply(&self, ev: &Event, seq: impl FnOnce() -> u64) -> (u64, ApplyOutcome) {
        self.locked(ev, |lk| {
            let out = lk.apply();
            (seq(), out)
        })
    }

    /// Apply many events, each as [`Engine::apply`]; `seq(i)` is called for event i.
    pub fn apply_batch(&self, events: &[Event], mut seq: impl FnMut(usize) -> u64) -> Vec<u64> {
        events
            .iter()
            .enumerate()
            .map(|(i, ev)| self.apply(ev, || seq(i)).0)
            .collect()
    }

    /// Result rows of a query (SPEC sections 3 and 13).
    pub fn result(&self, name: &str, req: &ReadRequest) -> Result<Vec<Row>> {
        let q = self
            .query(name)
            .ok_or_else(|| EngineError::UnknownQuery(name.to_string()))?;
        read::read(self, &q, req)
    }

    /// Result rows of a query and from which window end they are complete (see
    /// [`Answer`]): only windows whose buckets are all still retained are returned.
    pub fn answer(&self, name: &str, req: &ReadRequest) -> Result<Answer> {
        let q = self
            .query(name)
            .ok_or_else(|| EngineError::UnknownQuery(name.to_string()))?;
        read::answer(self, &q, req)
    }

    /// Events applied to at least one query.
    pub fn events_applied(&self) -> u64 {
        self.events_applied.load(Ordering::Relaxed)
    }

    /// Counters per query.
    pub fn metrics(&self) -> Vec<QueryMetrics> {
        let cat = self.catalog.read();
        cat.iter()
            .filter(|q| q.is_visible())
            .map(|q| {
                let mut m = QueryMetrics {
                    name: q.name.clone(),
                    events: 0,
                    late_dropped: 0,
                    keys: 0,
                };
                for s in q.shards.iter() {
                    let s = s.lock();
                    m.events += s.events;
                    m.late_dropped += s.late_dropped;
                    m.keys += s.table.len() as u64;
                }
                m
            })
            .collect()
    }

    /// Approximate heap bytes of a query's state and its number of non-empty key-buckets.
    pub fn memory(&self, name: &str) -> Option<(usize, usize)> {
        let q = self.query(name)?;
        let mut total = (0, 0);
        for s in q.shards.iter() {
            let (b, n) = s.lock().memory(&q.plan);
            total.0 += b;
            total.1 += n;
        }
        Some(total)
    }

    pub(crate) fn catalog(&self) -> parking_lot::RwLockReadGuard<'_, Vec<Arc<QueryRt>>> {
        self.catalog.read()
    }

    pub(crate) fn catalog_mut(&self) -> parking_lot::RwLockWriteGuard<'_, Vec<Arc<QueryRt>>> {
        self.catalog.write()
    }

    pub(crate) fn set_events_applied(&self, n: u64) {
        self.events_applied.store(n, Ordering::Relaxed);
    }
}
