//! Aggregate kernels.
//!
//! Each aggregate of a plan is an [`AggSpec`]. Invertible aggregates (count, sum, avg) keep
//! plain numeric components that the bucket ring stores as prefix sums, so a window is a
//! difference of two prefixes. The others keep an [`Other`] state per bucket that merges
//! into a window state: min/max, first/last (and the last value of a bare field), exact
//! distinct sets, [`hll::Hll`] and [`sketch::Sketch`].

pub mod hll;
pub mod sketch;

use hashbrown::HashTable;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::expr::{num_json, EventExpr, Val};
use crate::hash::hash_val;

/// Which kernel an aggregate uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AggKind {
    /// `count(*)` / `count(e)`: weighted count (of non-null values).
    Count,
    /// `sum(e)`: weighted sum of numbers.
    Sum,
    /// `avg(e)`: weighted mean of numbers.
    Avg,
    /// `min(e)` over numbers.
    Min,
    /// `max(e)` over numbers.
    Max,
    /// `first(e)`: value of the earliest event.
    First,
    /// `last(e)`, and a bare non-grouped field: value of the latest event.
    Last,
    /// `count(distinct e)`: exact.
    Distinct,
    /// `approx_count_distinct(e)`: HyperLogLog.
    ApproxDistinct,
    /// `percentile(e, q)`.
    Percentile(f64),
}

/// One aggregate of a plan, with where its state lives.
#[derive(Debug, Clone)]
pub struct AggSpec {
    /// Kernel.
    pub kind: AggKind,
    /// Argument; None for `count(*)`.
    pub arg: Option<EventExpr>,
    /// First numeric component (invertible kinds).
    pub comp: usize,
    /// Index into the bucket's [`Other`] states (non-invertible kinds).
    pub other: usize,
}

impl AggKind {
    /// Numeric components this kind needs.
    pub fn comps(self) -> usize {
        match self {
            AggKind::Count | AggKind::Sum => 1,
            AggKind::Avg => 2,
            _ => 0,
        }
    }

    /// A fresh non-invertible state, or None for invertible kinds.
    pub fn new_other(self) -> Option<Other> {
        Some(match self {
            AggKind::Count | AggKind::Sum | AggKind::Avg => return None,
            AggKind::Min => Other::Min(None),
            AggKind::Max => Other::Max(None),
            AggKind::First => Other::First(None),
            AggKind::Last => Other::Last(None),
            AggKind::Distinct => Other::Distinct(Distinct::default()),
            AggKind::ApproxDistinct => Other::Hll(Box::default()),
            AggKind::Percentile(_) => Other::Pct(Box::default()),
        })
    }
}

/// Exact set of distinct values (no allocation when the value is already present).
#[derive(Debug, Clone, Default)]
pub struct Distinct {
    table: HashTable<(u64, Value)>,
}

impl Distinct {
    /// Add a value (nulls are not counted).
    pub fn insert(&mut self, v: Val<'_>) {
        if v == Val::Null {
            return;
        }
        let h = hash_val(v);
        if self.table.find(h, |(_, x)| Val::of(x) == v).is_none() {
            self.table.insert_unique(h, (h, v.to_json()), |e| e.0);
        }
    }

    /// Whether a value is present.
    pub fn contains(&self, v: Val<'_>) -> bool {
        self.table
            .find(hash_val(v), |(_, x)| Val::of(x) == v)
            .is_some()
    }

    /// Union another set in.
    pub fn merge(&mut self, o: &Distinct) {
        for (h, v) in o.table.iter() {
            if self.table.find(*h, |(_, x)| x == v).is_none() {
                self.table.insert_unique(*h, (*h, v.clone()), |e| e.0);
            }
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

impl PartialEq for Distinct {
    fn eq(&self, o: &Self) -> bool {
        self.len() == o.len() && self.table.iter().all(|(_, v)| o.contains(Val::of(v)))
    }
}

impl Serialize for Distinct {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut vals: Vec<(String, &Value)> =
            self.table.iter().map(|(_, v)| (v.to_string(), v)).collect();
        vals.sort_by(|a, b| a.0.cmp(&b.0));
        s.collect_seq(vals.into_iter().map(|(_, v)| v))
    }
}

impl<'de> Deserialize<'de> for Distinct {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let vals = Vec::<Value>::deserialize(d)?;
        let mut out = Distinct::default();
        for v in &vals {
            out.insert(Val::of(v));
        }
        Ok(out)
    }
}

/// The state of a non-invertible aggregate in one bucket (or merged over a window).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Other {
    /// Smallest number seen.
    Min(Option<f64>),
    /// Largest number seen.
    Max(Option<f64>),
    /// (event time, value) of the earliest event; ties keep the earlier arrival.
    First(Option<(i64, Value)>),
    /// (event time, value) of the latest event; ties take the later arrival.
    Last(Option<(i64, Value)>),
    /// Exact distinct values.
    Distinct(Distinct),
    /// HyperLogLog.
    Hll(Box<hll::Hll>),
    /// Quantile sketch.
    Pct(Box<sketch::Sketch>),
}

impl Other {
    /// Fold one event's value in (`ts` its time, `w` its samplerate).
    #[inline]
    pub fn add(&mut self, v: Val<'_>, ts: i64, w: f64) {
        match self {
            Other::Min(m) => {
                if let Some(x) = v.num() {
                    *m = Some(m.map_or(x, |y| y.min(x)));
                }
            }
            Other::Max(m) => {
                if let Some(x) = v.num() {
                    *m = Some(m.map_or(x, |y| y.max(x)));
                }
            }
            Other::First(f) => {
                if v != Val::Null && f.as_ref().is_none_or(|(t, _)| ts < *t) {
                    *f = Some((ts, v.to_json()));
                }
            }
            Other::Last(l) => {
                if v != Val::Null {
                    match l {
                        Some((t, old)) if ts >= *t => {
                            if Val::of(old) != v {
                                *old = v.to_json();
                            }
                            *t = ts;
                        }
                        Some(_) => {}
                        None => *l = Some((ts, v.to_json())),
                    }
                }
            }
            Other::Distinct(d) => d.insert(v),
            Other::Hll(h) => {
                if v != Val::Null {
                    h.insert_hash(hash_val(v));
                }
            }
            Other::Pct(s) => {
                if let Some(x) = v.num() {
                    s.insert(x, w);
                }
            }
        }
    }

    /// Merge the state of a later bucket in.
    pub fn merge(&mut self, o: &Other) {
        match (self, o) {
            (Other::Min(a), Other::Min(Some(y))) => *a = Some(a.map_or(*y, |x| x.min(*y))),
            (Other::Max(a), Other::Max(Some(y))) => *a = Some(a.map_or(*y, |x| x.max(*y))),
            (Other::First(a), Other::First(Some((tb, vb))))
                if a.as_ref().is_none_or(|(ta, _)| tb < ta) =>
            {
                *a = Some((*tb, vb.clone()));
            }
            (Other::Last(a), Other::Last(Some((tb, vb))))
                if a.as_ref().is_none_or(|(ta, _)| tb >= ta) =>
            {
                *a = Some((*tb, vb.clone()));
            }
            (Other::Distinct(a), Other::Distinct(b)) => a.merge(b),
            (Other::Hll(a), Other::Hll(b)) => a.merge(b),
            (Other::Pct(a), Other::Pct(b)) => a.merge(b),
            _ => {}
        }
    }

    /// Rough heap size, for the memory report.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Other::Distinct(d) => d.len() * 48,
            Other::Hll(_) => 4096,
            Other::Pct(_) => 256,
            _ => 0,
        }
    }
}

impl AggSpec {
    /// Add this event's contribution to the numeric components (`w` = samplerate).
    #[inline]
    pub fn fold_comps(&self, ev: &weir_core::Event, comps: &mut [f64]) {
        let w = ev.samplerate;
        match self.kind {
            AggKind::Count => match &self.arg {
                None => comps[self.comp] += w,
                Some(e) => {
                    if e.eval(ev) != Val::Null {
                        comps[self.comp] += w
                    }
                }
            },
            AggKind::Sum => {
                if let Some(x) = self.arg.as_ref().and_then(|e| e.eval(ev).num()) {
                    comps[self.comp] += w * x;
                }
            }
            AggKind::Avg => {
                if let Some(x) = self.arg.as_ref().and_then(|e| e.eval(ev).num()) {
                    comps[self.comp] += w * x;
                    comps[self.comp + 1] += w;
                }
            }
            _ => {}
        }
    }

    /// Add this event to the non-invertible state.
    #[inline]
    pub fn fold_other(&self, ev: &weir_core::Event, others: &mut [Other]) {
        if self.kind.comps() == 0 {
            let v = self.arg.as_ref().map(|e| e.eval(ev)).unwrap_or(Val::Null);
            others[self.other].add(v, ev.ts, ev.samplerate);
        }
    }

    /// The final value over merged components and states.
    pub fn finish(&self, comps: &[f64], others: &[Other]) -> Value {
        match self.kind {
            AggKind::Count | AggKind::Sum => num_json(comps[self.comp]),
            AggKind::Avg => {
                let c = comps[self.comp + 1];
                if c == 0.0 {
                    Value::Null
                } else {
                    num_json(comps[self.comp] / c)
                }
            }
            _ => match (&others[self.other], self.kind) {
                (Other::Min(m) | Other::Max(m), _) => m.map(num_json).unwrap_or(Value::Null),
                (Other::First(f) | Other::Last(f), _) => {
                    f.as_ref().map(|(_, v)| v.clone()).unwrap_or(Value::Null)
                }
                (Other::Distinct(d), _) => Value::from(d.len()),
                (Other::Hll(h), _) => Value::from(h.estimate().round() as i64),
                (Other::Pct(s), AggKind::Percentile(q)) => {
                    s.quantile(q).map(num_json).unwrap_or(Value::Null)
                }
                _ => Value::Null,
            },
        }
    }
}
