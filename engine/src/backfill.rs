//! Shadow versions of a query: built from the log while the old version keeps serving,
//! then swapped in atomically (SPEC section 5).
//!
//! The protocol, with the server's event ids:
//! 1. [`Engine::create_shadow`] compiles the new version and adds it to the catalogue,
//!    invisible, under the catalogue **write** lock. While that lock is held no event is
//!    being applied (every apply holds the read lock from its shard locks until its `seq`
//!    closure has returned the event id), so the `boundary` closure called there returns an
//!    id S that splits the log exactly: every event with id < S was applied before the
//!    shadow existed, every event with id ≥ S is applied with the shadow in the lock set and
//!    reaches it live.
//! 2. [`Engine::backfill`] applies stored events with ids < S to the shadow only (the server
//!    reads them from its log; ids ≥ S are skipped defensively, so nothing counts twice).
//! 3. [`Engine::promote`] makes the shadow *the* query under the write lock: reads, rules on
//!    it, queries over it and checkpoints see the new version from the next call on. Or
//!    [`Engine::abort`] drops it.
//!
//! Order of arrival does not change what a shadow reports: an event is dropped as late only
//! when its bucket is below the retention line of the shard's watermark, that line only
//! rises, and reads never look below the final line, so any event a read can see is kept
//! whatever the order. (What order can change: the `late_dropped` counter, and which of two
//! events with the *same* event time `first`/`last` keep — arrival order breaks that tie.)

use std::sync::Arc;

use weir_core::Event;
use weir_query_lang::ast::{Expr, Select};

use crate::error::{EngineError, Result};
use crate::plan::SourceKind;
use crate::shard::{key_of, shard_of};
use crate::{Engine, QueryRt, TimeShape};

/// A new version of a query being backfilled; see the module docs.
#[derive(Debug)]
pub struct Shadow {
    q: Arc<QueryRt>,
    boundary: u64,
}

impl Shadow {
    /// The query name it will replace (or create) when promoted.
    pub fn name(&self) -> &str {
        &self.q.name
    }

    /// The first event id it received live: backfill exactly the events with smaller ids.
    pub fn boundary(&self) -> u64 {
        self.boundary
    }

    /// Id of this version (conditions compiled for it keep working after promotion).
    pub fn query_id(&self) -> u64 {
        self.q.id
    }

    /// The event types it reads: None for every type; an empty list when it reads another
    /// query (nothing to replay: it is evaluated from the upstream when read).
    pub fn source_types(&self) -> Option<Vec<String>> {
        match &self.q.plan.source {
            SourceKind::All => None,
            SourceKind::Type(t) => Some(vec![t.clone()]),
            SourceKind::Query { .. } => Some(Vec::new()),
        }
    }

    /// How far back from the newest event time its state reaches, in ms: window + grace for
    /// a sliding window, the retention for a series, None when unbounded (replay all).
    /// Zero for a query over a query.
    pub fn largest_window_ms(&self) -> Option<i64> {
        if matches!(self.q.plan.source, SourceKind::Query { .. }) {
            return Some(0);
        }
        match self.q.plan.time {
            TimeShape::Unbounded => None,
            _ => Some(self.q.plan.retention),
        }
    }

    /// Whether there is anything to replay (false for a query over a query).
    pub fn needs_backfill(&self) -> bool {
        !matches!(self.q.plan.source, SourceKind::Query { .. })
    }

    /// The version itself (for conditions compiled before promotion).
    pub fn query(&self) -> &Arc<QueryRt> {
        &self.q
    }
}

impl Engine {
    /// Register a new, invisible version of query `name` that receives every event applied
    /// from now on. `boundary` runs under the catalogue write lock (no apply in flight) and
    /// returns the next event id S; see the module docs.
    pub fn create_shadow(
        &self,
        name: &str,
        select: &Select,
        extra: &[&Expr],
        owned: bool,
        boundary: impl FnOnce() -> u64,
    ) -> Result<Shadow> {
        let mut cat = self.catalog_mut();
        let q = Arc::new(self.new_query(&cat, name, select, extra, owned, false)?);
        let boundary = boundary();
        cat.push(q.clone());
        Ok(Shadow { q, boundary })
    }

    /// Apply stored events (id, event) to the shadow only, in the order given (id order is
    /// expected). Events with id ≥ the boundary were applied live and are skipped.
    pub fn backfill(&self, shadow: &Shadow, events: &[(u64, Event)]) {
        let q = &shadow.q;
        if q.is_view() {
            return;
        }
        let shards = self.config().shards;
        for (id, ev) in events {
            if *id >= shadow.boundary || !q.plan.accepts(ev) {
                continue;
            }
            let (hash, vals) = key_of(&q.plan, ev);
            q.shards[shard_of(hash, shards)]
                .lock()
                .ingest(&q.plan, ev, hash, &vals);
        }
    }

    /// Make the shadow THE query of its name, replacing the current version atomically.
    /// Fails if the shadow was aborted or its query dropped meanwhile.
    pub fn promote(&self, shadow: Shadow) -> Result<()> {
        let mut cat = self.catalog_mut();
        if !cat.iter().any(|q| Arc::ptr_eq(q, &shadow.q)) {
            return Err(EngineError::UnknownQuery(shadow.q.name.clone()));
        }
        let name = &shadow.q.name;
        cat.retain(|q| &q.name != name || !q.is_visible());
        shadow
            .q
            .visible
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Drop a shadow without promoting it.
    pub fn abort(&self, shadow: Shadow) {
        self.catalog_mut().retain(|q| !Arc::ptr_eq(q, &shadow.q));
    }
}
