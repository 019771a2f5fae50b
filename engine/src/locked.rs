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
use crate::shard::{key_into, shard_of, Ingest, KeyPart, KeyVals, Shard};
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
    /// How many leading result columns `expr` and `value` read (the rest are not computed
    /// for a [`Locked::check`]).
    cols: usize,
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
        let cols = expr
            .cols_needed()
            .max(value.as_ref().map_or(0, RowExpr::cols_needed));
        Ok(Condition {
            query_id: q.id,
            cols,
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
    /// The decision itself: whether the condition holds, the value, threshold and window.
    pub check: Check,
}

struct Item<'a> {
    q: &'a Arc<QueryRt>,
    hash: u64,
    guard: MutexGuard<'a, Shard>,
    /// This query's key values are `Locked::vals[key.0..key.1]`.
    key: (u32, u32),
}

/// Every shard one event touches, locked (see the module docs).
pub struct Locked<'a> {
    ev: &'a Event,
    cat: &'a [Arc<QueryRt>],
    /// Inline for up to four matching queries: no allocation per event.
    items: SmallVec<[Item<'a>; 4]>,
    /// The group-key values of every item, one run each (inline up to four values).
    vals: KeyVals<'a>,
    applied: bool,
}

impl<'a> Locked<'a> {
    /// Lock the shard of every query the event matches, in (query id, shard) order. Done in
    /// place so the inline buffers are not copied around.
    #[inline]
    fn lock_all(&mut self, shards: usize) {
        let ev = self.ev;
        // The catalogue is kept in increasing id order, and an event touches one shard
        // per query, so this is the global lock order.
        for q in self.cat {
            if q.is_view() || !q.plan.accepts(ev) {
                continue;
            }
            let from = self.vals.len() as u32;
            let hash = key_into(&q.plan, ev, &mut self.vals);
            let guard = q.shards[shard_of(hash, shards)].lock();
            self.items.push(Item {
                q,
                hash,
                guard,
                key: (from, self.vals.len() as u32),
            });
        }
    }

    /// Run `f` on the locked context of `ev` (the engine's entry point).
    #[inline]
    pub(crate) fn with<R>(
        ev: &'a Event,
        cat: &'a [Arc<QueryRt>],
        shards: usize,
        f: impl FnOnce(&mut Locked<'a>) -> R,
    ) -> (R, bool) {
        let mut lk = Self {
            ev,
            cat,
            items: SmallVec::new(),
            vals: SmallVec::new(),
            applied: false,
        };
        lk.lock_all(shards);
        let r = f(&mut lk);
        (r, lk.applied)
    }

    #[inline]
    fn key_vals(&self, it: &Item<'a>) -> &[KeyPart<'a>] {
        &self.vals[it.key.0 as usize..it.key.1 as usize]
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
        let vals = &self.vals;
        for it in &mut self.items {
            let kv = &vals[it.key.0 as usize..it.key.1 as usize];
            match it.guard.ingest(&it.q.plan, self.ev, it.hash, kv) {
                Ingest::Applied => out.applied += 1,
                Ingest::Late => out.late += 1,
            }
        }
        self.applied |= out.applied > 0;
        out
    }

    /// Replay the logged event `seq` after a restore (see [`crate::Engine::replay`]).
    pub(crate) fn replay(&mut self, seq: u64) {
        let vals = &self.vals;
        let mut applied = false;
        for it in &mut self.items {
            if seq <= it.guard.restored_pos {
                continue;
            }
            let kv = &vals[it.key.0 as usize..it.key.1 as usize];
            let to_key = it
                .guard
                .restored_keys
                .get(&it.hash)
                .is_none_or(|&pos| seq > pos);
            let out = it
                .guard
                .ingest_ext(&it.q.plan, self.ev, it.hash, kv, to_key);
            applied |= out == Ingest::Applied;
        }
        self.applied |= applied;
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
        let Some(it) = self.item_for(name, cond)? else {
            return Ok(None);
        };
        let plan = &it.q.plan;
        Ok(Some(self.row(
            it,
            include_event,
            plan.columns.len(),
            |cx, w| {
                let check = Check::of(cond, cx, w);
                let values = plan
                    .columns
                    .iter()
                    .map(|(n, _)| n.clone())
                    .zip(cx.cols.iter().cloned())
                    .collect();
                Evaluation {
                    key: self.key_map_of(it),
                    values,
                    check,
                }
            },
        )))
    }

    /// [`Locked::evaluate`] without the key and column maps: what a rule decision needs
    /// per rule (get the key with [`Locked::key`]). No allocation for numeric results.
    pub fn check(
        &self,
        name: &str,
        cond: &Condition,
        include_event: bool,
    ) -> Result<Option<Check>> {
        let Some(it) = self.item_for(name, cond)? else {
            return Ok(None);
        };
        Ok(Some(self.row(it, include_event, cond.cols, |cx, w| {
            Check::of(cond, cx, w)
        })))
    }

    /// The event's group key in query `name` (field → value), if the query matches.
    pub fn key(&self, name: &str) -> Option<Map<String, Value>> {
        self.item(name).map(|it| self.key_map_of(it))
    }

    fn key_map_of(&self, it: &Item<'a>) -> Map<String, Value> {
        it.q.plan
            .group
            .iter()
            .cloned()
            .zip(self.key_vals(it).iter().map(|v| v.to_value()))
            .collect()
    }

    fn item_for(&self, name: &str, cond: &Condition) -> Result<Option<&Item<'a>>> {
        let Some(it) = self.item(name) else {
            return Ok(None);
        };
        if it.q.id != cond.query_id {
            return Err(EngineError::Invalid(format!(
                "condition compiled for an older version of {name:?}"
            )));
        }
        Ok(Some(it))
    }

    /// Build the row of the event's key over the window holding the event (with the event
    /// folded in if `include_event` and it is not late) and pass it to `f`, with the window
    /// (start, end, width). Only the first `ncols` result columns are computed. Buffers are
    /// inline for small plans: no allocation.
    fn row<R>(
        &self,
        it: &Item<'a>,
        include_event: bool,
        ncols: usize,
        f: impl FnOnce(&RowCtx<'_>, Window) -> R,
    ) -> R {
        let plan = &it.q.plan;
        let shard = &*it.guard;
        let ev = self.ev;
        let stride = plan.stride;
        let (lo, hi) = plan.time.window_at(ev.ts);
        let vals = self.key_vals(it);
        let ks = shard.find(it.hash, vals);
        let mut stack = [0.0f64; 16];
        let mut heap = Vec::new();
        let comps: &mut [f64] = if stride - 1 <= stack.len() {
            &mut stack[..stride - 1]
        } else {
            heap.resize(stride - 1, 0.0);
            &mut heap
        };
        let mut others = plan.template.clone();
        if let Some(k) = ks {
            // As Shard::acc: buckets in [lo, hi) above the retention line; nothing if the
            // merged count is not positive.
            let a = k.lower_bound(lo.max(shard.keep_line(plan)), stride);
            let b = k.lower_bound(hi, stride);
            if b > a {
                k.sum_range(a, b, stride, comps);
                if comps[0] > 0.0 {
                    k.merge_others(a, b, &mut others);
                } else {
                    comps.iter_mut().for_each(|x| *x = 0.0);
                }
            }
        }
        if include_event && !shard.is_late(plan, ev.ts) {
            comps[0] += 1.0;
            for a in &plan.aggs {
                a.fold_comps(ev, comps);
                a.fold_other(ev, &mut others);
            }
        }
        let mut aggs: SmallVec<[Value; 6]> = SmallVec::new();
        for a in &plan.aggs {
            aggs.push(a.finish(comps, &others));
        }
        let owned: SmallVec<[Value; 4]>;
        let key: &[Value] = match ks {
            // Equal to the event's values (same Val), so every row expression agrees.
            Some(k) => &k.parts,
            None => {
                owned = vals.iter().map(|v| v.to_value()).collect();
                &owned
            }
        };
        let (start, end, width) = match plan.time {
            TimeShape::Unbounded => (None, None, None),
            TimeShape::Tumbling { g } => (Some(lo), Some(hi), Some(g)),
            TimeShape::Sliding { w, .. } => (Some(lo), Some(hi), Some(w)),
        };
        let mut cols: SmallVec<[Value; 6]> = SmallVec::new();
        for (_, e) in plan.columns.iter().take(ncols) {
            let v = e
                .eval(&RowCtx {
                    aggs: &aggs,
                    key,
                    cols: &cols,
                    start,
                    end,
                })
                .to_json();
            cols.push(v);
        }
        let cx = RowCtx {
            aggs: &aggs,
            key,
            cols: &cols,
            start,
            end,
        };
        f(&cx, Window { start, end, width })
    }
}

/// Bounds of the window a decision used.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Option<i64>,
    end: Option<i64>,
    width: Option<i64>,
}

/// A condition evaluated for one event's key, without the row maps (see [`Locked::check`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
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

impl Check {
    fn of(cond: &Condition, cx: &RowCtx<'_>, w: Window) -> Check {
        Check {
            holds: cond.expr.eval(cx).truthy(),
            value: cond.value.as_ref().map(|v| v.eval(cx).to_json()),
            threshold: cond.threshold,
            window_ms: w.width,
            window_start: w.start,
            window_end: w.end,
        }
    }
}
