//! Checkpoint and restore of all query state.
//!
//! A checkpoint holds, per query (by name), the shape it was taken with and every shard's
//! watermark, counters and keys (their raw bucket buffers, exactly as held, so restore
//! reproduces the same floating-point prefixes). The server re-creates the queries from its
//! catalogue first, then restores; a query whose shape differs is refused. Keys are sorted
//! so equal states give equal checkpoints.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agg::Other;
use crate::error::{EngineError, Result};
use crate::expr::Val;
use crate::hash::StableHasher;
use crate::window::KeyState;
use crate::Engine;

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
        let cat = self.catalog();
        let guards: Vec<Vec<_>> = cat
            .iter()
            .map(|q| q.shards.iter().map(|s| s.lock()).collect())
            .collect();
        let queries = cat
            .iter()
            .zip(&guards)
            .filter(|(q, _)| !q.is_view())
            .map(|(q, gs)| QueryCheckpoint {
                name: q.name.clone(),
                shape: q.plan.select.to_string(),
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
        EngineCheckpoint {
            shards: self.config().shards,
            events_applied: self.events_applied(),
            queries,
        }
    }

    /// Replace the state of the named queries with a checkpoint's. Every query in the
    /// checkpoint must exist with the same shape; queries not in it are reset.
    pub fn restore(&self, cp: &EngineCheckpoint) -> Result<()> {
        if cp.shards != self.config().shards {
            return Err(EngineError::Checkpoint(format!(
                "taken with {} shards, engine has {}",
                cp.shards,
                self.config().shards
            )));
        }
        let cat = self.catalog();
        for qc in &cp.queries {
            let q = cat
                .iter()
                .find(|q| q.name == qc.name)
                .ok_or_else(|| EngineError::Checkpoint(format!("no query {:?}", qc.name)))?;
            if q.plan.select.to_string() != qc.shape || qc.shards.len() != q.shards.len() {
                return Err(EngineError::Checkpoint(format!(
                    "query {:?} has another shape",
                    qc.name
                )));
            }
        }
        let mut guards: Vec<Vec<_>> = cat
            .iter()
            .map(|q| q.shards.iter().map(|s| s.lock()).collect())
            .collect();
        for (q, gs) in cat.iter().zip(guards.iter_mut()) {
            let qc = cp.queries.iter().find(|c| c.name == q.name);
            for (i, g) in gs.iter_mut().enumerate() {
                **g = Default::default();
                let Some(sc) = qc.map(|c| &c.shards[i]) else {
                    continue;
                };
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
                        k.buf.clone(),
                        k.head,
                        k.others.clone(),
                    );
                    g.table.insert_unique(hash, ks, |k| k.hash);
                }
            }
        }
        drop(guards);
        self.set_events_applied(cp.events_applied);
        Ok(())
    }
}
