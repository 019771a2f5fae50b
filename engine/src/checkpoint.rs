//! Checkpoint and restore of all query state.
//!
//! A checkpoint holds, per query (by name), the shape it was taken with and every shard's
//! watermark, counters and keys (their raw bucket buffers, exactly as held, so restore
//! reproduces the same floating-point prefixes). The server re-creates the queries from its
//! catalogue first, then restores: every query whose definition matches its checkpointed
//! one gets its state back; the others (new, changed, or missing from the checkpoint) start
//! empty and their names are returned, for the server to rebuild by backfill. Keys are
//! sorted so equal states give equal checkpoints. Shadows being backfilled are not
//! checkpointed.

use std::borrow::Borrow;

use parking_lot::MutexGuard;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agg::Other;
use crate::error::{EngineError, Result};
use crate::expr::Val;
use crate::hash::StableHasher;
use crate::shard::Shard;
use crate::window::KeyState;
use crate::{Engine, QueryRt};

/// All state of an engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineCheckpoint {
    /// Shards per query.
    pub shards: usize,
    /// Events applied.
    pub events_applied: u64,
    /// Per query.
    pub queries: Vec<QueryCheckpoint>,
}

/// One query's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryCheckpoint {
    /// Query name.
    pub name: String,
    /// The select it ran, printed (to check the shape on restore).
    pub shape: String,
    /// Shards, in order.
    pub shards: Vec<ShardCheckpoint>,
}

/// One shard's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardCheckpoint {
    /// Watermark.
    pub watermark: Option<i64>,
    /// Late events dropped.
    pub late_dropped: u64,
    /// Events applied.
    pub events: u64,
    /// Events since the last sweep.
    pub since_sweep: u64,
    /// Keys.
    pub keys: Vec<KeyCheckpoint>,
}

/// One key's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyCheckpoint {
    /// Key parts.
    pub parts: Vec<Value>,
    /// Bucket buffer (see [`crate::window`]).
    pub buf: Vec<f64>,
    /// Index of the sentinel entry in `buf`.
    pub head: usize,
    /// Non-invertible states per bucket.
    pub others: Vec<Vec<Other>>,
}

impl Engine {
    /// A consistent snapshot of every query's state (all shard locks are taken in order).
    pub fn checkpoint(&self) -> EngineCheckpoint {
        self.checkpoint_at(|| ()).1
    }

    /// A consistent snapshot, with `at` called while every shard lock is held (no event is
    /// being applied): it returns the log position the snapshot corresponds to.
    pub fn checkpoint_at<T>(&self, at: impl FnOnce() -> T) -> (T, EngineCheckpoint) {
        let cat = self.catalog();
        let cat: Vec<_> = cat.iter().filter(|q| q.is_visible()).collect();
        let guards: Vec<Vec<_>> = cat
            .iter()
            .map(|q| q.shards.iter().map(|s| s.lock()).collect())
            .collect();
        let t = at();
        let queries = cat
            .iter()
            .zip(&guards)
            .filter(|(q, _)| !q.is_view())
            .map(|(q, gs)| QueryCheckpoint {
                name: q.name.clone(),
                shape: q.plan.shape.clone(),
                shards: gs
                    .iter()
                    .map(|s| {
                        let mut keys: Vec<(String, KeyCheckpoint)> = s
                            .table
                            .iter()
                            .map(|k| {
                                let (buf, head, others) = k.raw();
                                let parts = k.parts.to_vec();
                                (
                                    Value::Array(parts.clone()).to_string(),
                                    KeyCheckpoint {
                                        parts,
                                        buf,
                                        head,
                                        others,
                                    },
                                )
                            })
                            .collect();
                        keys.sort_by(|a, b| a.0.cmp(&b.0));
                        ShardCheckpoint {
                            watermark: s.watermark,
                            late_dropped: s.late_dropped,
                            events: s.events,
                            since_sweep: s.since_sweep,
                            keys: keys.into_iter().map(|(_, k)| k).collect(),
                        }
                    })
                    .collect(),
            })
            .collect();
        let cp = EngineCheckpoint {
            shards: self.config().shards,
            events_applied: self.events_applied(),
            queries,
        };
        (t, cp)
    }

    /// Replace the state of every query with its checkpointed state where the definition
    /// matches; reset the others and return their names (sorted), for the server to rebuild
    /// by backfill. Queries in the checkpoint but not in the engine are ignored.
    pub fn restore(&self, cp: impl Borrow<EngineCheckpoint>) -> Result<Vec<String>> {
        let cp = cp.borrow();
        let cat = self.catalog();
        let cat: Vec<_> = cat
            .iter()
            .filter(|q| q.is_visible() && !q.is_view())
            .collect();
        let mut guards: Vec<Vec<_>> = cat
            .iter()
            .map(|q| q.shards.iter().map(|s| s.lock()).collect())
            .collect();
        let mut missing = Vec::new();
        for (q, gs) in cat.iter().zip(guards.iter_mut()) {
            for g in gs.iter_mut() {
                **g = Default::default();
            }
            let qc = cp.queries.iter().find(|c| c.name == q.name).filter(|c| {
                cp.shards == gs.len() && c.shape == q.plan.shape && c.shards.len() == gs.len()
            });
            let restored = qc.is_some_and(|qc| restore_query(q, qc, gs).is_ok());
            if !restored {
                for g in gs.iter_mut() {
                    **g = Default::default();
                }
                missing.push(q.name.clone());
            }
        }
        drop(guards);
        self.set_events_applied(cp.events_applied);
        missing.sort();
        Ok(missing)
    }
}

/// Load one query's checkpointed shards; an error if any key's buffer does not fit.
fn restore_query(
    q: &QueryRt,
    qc: &QueryCheckpoint,
    gs: &mut [MutexGuard<'_, Shard>],
) -> Result<()> {
    for (g, sc) in gs.iter_mut().zip(&qc.shards) {
        g.watermark = sc.watermark;
        g.late_dropped = sc.late_dropped;
        g.events = sc.events;
        g.since_sweep = sc.since_sweep;
        for k in &sc.keys {
            let stride = q.plan.stride;
            if k.buf.len() % stride != 0
                || k.buf.len() / stride <= k.head
                || k.others.len() + k.head + 1 != k.buf.len() / stride
                    && !q.plan.template.is_empty()
            {
                return Err(EngineError::Checkpoint("bad bucket buffer".into()));
            }
            let mut h = StableHasher::default();
            for p in &k.parts {
                h.val(Val::of(p));
            }
            let hash = h.finish();
            let ks = KeyState::from_raw(
                k.parts.clone().into_boxed_slice(),
                hash,
                stride,
                k.buf.clone(),
                k.head,
                k.others.clone(),
            );
            g.table.insert_unique(hash, ks, |k| k.hash);
        }
    }
    Ok(())
}
