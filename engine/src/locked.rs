//! The per-event context: every shard an event touches, locked, in the global order.
//!
//! [`Locked`] is what makes add_and_check atomic per group key and all-or-nothing across
//! rules: while it lives, no other event can change any state this event reads or writes.
//! The rules crate evaluates each rule on the would-be state (the window including the
//! event, computed without mutating anything) and then either [`Locked::apply`]s the event
//! to every matching query or to none.

use std::sync::Arc;

use parking_lot::MutexGuard;
use serde_json::{Map, Value};
use smallvec::SmallVec;
use weir_core::Event;
use weir_query_lang::ast::{BinaryOp, Expr, ExprKind, Literal};

use crate::error::{EngineError, Result};
use crate::expr::{RowCtx, RowExpr};
use crate::read::{key_map, row_values};
use crate::shard::{key_of, shard_of, Ingest, KeyVals, Shard};
use crate::{ApplyOutcome, QueryRt, TimeShape};

/// A condition on a query's rows, with what a decision reports.
#[derive(Debug, Clone)]
pub struct Condition {
    /// Id of the query version it was compiled for.
    pub query_id: u64,
    /// The condition.
    pub expr: RowExpr,
    /// The side compared with a literal (`orders` in `orders > 100`), if simple.
    pub value: Option<RowExpr>,
    /// The literal side (`100`), if simple.
    pub threshold: Option<f64>,
}

fn is_cmp(op: BinaryOp) -> bool {
    use BinaryOp::*;
    matches!(op, Eq | NotEq | Lt | LtEq | Gt | GtEq)
}

impl Condition {
    /// Compile `e` over the rows of query `q`.
    pub fn compile(q: &QueryRt, e: &Expr) -> Result<Condition> {
        let expr = q.plan.condition(e)?;
        let (mut value, mut threshold) = (None, None);
        if let ExprKind::Binary { op, left, right } = &e.kind {
            if is_cmp(*op) {
                match (&left.kind, &right.kind) {
                    (_, ExprKind::Literal(Literal::Number(x))) => {
                        value = Some(q.plan.condition(left)?);
                        threshold = Some(*x);
                    }
                    (ExprKind::Literal(Literal::Number(x)), _) => {
                        value = Some(q.plan.condition(right)?);
                        threshold = Some(*x);
                    }
                    _ => {}
                }
            }
        }
        Ok(Condition {
            query_id: q.id,
            expr,
            value,
            threshold,
        })
    }
}

/// A condition evaluated for one event's key.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The group key.
    pub key: Map<String, Value>,
    /// The result columns.
    pub values: Map<String, Value>,
    /// Whether the condition holds (deny).
    pub holds: bool,
    /// The compared value.
    pub value: Option<Value>,
    /// The threshold.
    pub threshold: Option<f64>,
    /// Window width (sliding: w, tumbling: g, unbounded: None).
    pub window_ms: Option<i64>,
    /// Window start (inclusive), if bounded.
    pub window_start: Option<i64>,
    /// Window end (exclusive), if bounded.
    pub window_end: Option<i64>,
}

struct Item<'a> {
    q: &'a Arc<QueryRt>,
    hash: u64,
    vals: KeyVals<'a>,
    guard: MutexGuard<'a, Shard>,
}

/// Every shard one event touches, locked (see the module docs).
pub struct Locked<'a> {
    ev: &'a Event,
    cat: &'a [Arc<QueryRt>],
    /// Inline for up to four matching queries: no allocation per event.
    items: SmallVec<[Item<'a>; 4]>,
    applied: bool,
}

impl<'a> Locked<'a> {
    /// Lock the shard of every query the event matches, in (query id, shard) order.
    pub(crate) fn new(ev: &'a Event, cat: &'a [Arc<QueryRt>], shards: usize) -> Self {
        let mut items = SmallVec::new();
        // The catalogue is kept in increasing id order, and an event touches one shard
        // per query, so this is the global lock order.
        for q in cat {
            if q.is_view() || !q.plan.accepts(ev) {
                continue;
            }
            let (hash, vals) = key_of(&q.plan, ev);
            let guard = q.shards[shard_of(hash, shards)].lock();
            items.push(Item {
                q,
                hash,
                vals,
                guard,
            });
        }
        Self {
            ev,
            cat,
            items,
            applied: false,
        }
    }

    pub(crate) fn applied_events(&self) -> bool {
        self.applied
    }

    /// The event.
    pub fn event(&self) -> &Event {
        self.ev
    }

    /// Names of the (visible) queries the event matches. Shadows being backfilled are
    /// locked and receive the event on [`Locked::apply`] but are not listed.
    pub fn matched(&self) -> impl Iterator<Item = &str> + use<'_, 'a> {
        self.items
            .iter()
            .filter(|i| i.q.is_visible())
            .map(|i| i.q.name.as_str())
    }

    fn item(&self, name: &str) -> Option<&Item<'a>> {
        self.items
            .iter()
            .find(|i| i.q.name == name && i.q.is_visible())
    }

    /// Whether query `name` matches the event.
    pub fn matches(&self, name: &str) -> bool {
        self.item(name).is_some()
    }

    /// Id of query `name`, if it exists.
    pub fn query_id(&self, name: &str) -> Option<u64> {
        self.cat
            .iter()
            .find(|q| q.name == name && q.is_visible())
            .map(|q| q.id)
    }

    /// Compile a condition for query `name` (used when a query was replaced).
    pub fn condition(&self, name: &str, e: &Expr) -> Result<Condition> {
        let q = self
            .cat
            .iter()
            .find(|q| q.name == name && q.is_visible())
            .ok_or_else(|| EngineError::UnknownQuery(name.to_string()))?;
        Condition::compile(q, e)
    }

    /// Add the event to every matching query (and to every shadow being backfilled).
    pub fn apply(&mut self) -> ApplyOutcome {
        let mut out = ApplyOutcome::default();
        for it in &mut self.items {
            match it.guard.ingest(&it.q.plan, self.ev, it.hash, &it.vals) {
                Ingest::Applied => out.applied += 1,
                Ingest::Late => out.late += 1,
            }
        }
        self.applied |= out.applied > 0;
        out
    }

    /// Evaluate `cond` on query `name` for the event's key, on the window holding the
    /// event's time, with or without the event itself. None when the query does not match
    /// the event; an error when the condition was compiled for another version.
    pub fn evaluate(
        &self,
        name: &str,
        cond: &Condition,
        include_event: bool,
    ) -> Result<Option<Evaluation>> {
        let Some(it) = self.item(name) else {
            return Ok(None);
        };
        if it.q.id != cond.query_id {
            return Err(EngineError::Invalid(format!(
                "condition compiled for an older version of {name:?}"
            )));
        }
        let plan = &it.q.plan;
        let shard = &*it.guard;
        let (lo, hi) = plan.time.window_at(self.ev.ts);
        let ks = shard.find(it.hash, &it.vals);
        let mut acc = ks
            .and_then(|k| shard.acc(plan, k, lo, hi))
            .unwrap_or_else(|| Shard::empty_acc(plan));
        if include_event && !shard.is_late(plan, self.ev.ts) {
            acc.fold(plan, self.ev);
        }
        let parts: Vec<Value> = it
            .vals
            .iter()
            .map(|v| v.cloned().unwrap_or(Value::Null))
            .collect();
        let aggs = acc.finish(plan);
        let (start, end, window_ms) = match plan.time {
            TimeShape::Unbounded => (None, None, None),
            TimeShape::Tumbling { g } => (Some(lo), Some(hi), Some(g)),
            TimeShape::Sliding { w, .. } => (Some(lo), Some(hi), Some(w)),
        };
        let (values, cols) = row_values(plan, &aggs, &parts, start, end);
        let cx = RowCtx {
            aggs: &aggs,
            key: &parts,
            cols: &cols,
            start,
            end,
        };
        Ok(Some(Evaluation {
            key: key_map(plan, &parts),
            values,
            holds: cond.expr.eval(&cx).truthy(),
            value: cond.value.as_ref().map(|v| v.eval(&cx).to_json()),
            threshold: cond.threshold,
            window_ms,
            window_start: start,
            window_end: end,
        }))
    }
}
