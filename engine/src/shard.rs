//! One shard of one query: its keys, watermark and counters.
//!
//! A query's keys are spread over a fixed number of shards by a stable hash of the group
//! key; each shard sits behind its own mutex, so events of different keys rarely wait for
//! each other. The watermark, lateness and eviction are decided **per (query, shard)**:
//! they depend only on the order of the events within that shard, which the engine's
//! lock discipline makes equal to the event-log order (the log id is assigned while the
//! shard locks are held). Replaying the log therefore reproduces the state exactly, even
//! when the live run was concurrent.

use hashbrown::HashTable;
use serde_json::Value;
use smallvec::SmallVec;
use weir_core::Event;

use crate::agg::Other;
use crate::expr::Val;
use crate::hash::StableHasher;
use crate::plan::{Plan, TimeShape};
use crate::window::{Evicted, KeyState};

/// A hasher for maps keyed by a key hash that is already well mixed.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHashHasher(u64);

impl std::hash::Hasher for KeyHashHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A map keyed by key hash.
pub type ByKeyHash<V> = hashbrown::HashMap<u64, V, std::hash::BuildHasherDefault<KeyHashHasher>>;

/// What changed in one key since its state was last persisted (see [`crate::persist`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dirty {
    /// Start of the oldest bucket whose entry changed (`i64::MIN`: every entry).
    pub from: i64,
    /// Buckets expired, so the sentinel moved and the rows of expired buckets go.
    pub evicted: bool,
}

impl Dirty {
    #[inline]
    fn touch(&mut self, bucket: i64, ev: Evicted) {
        self.from = match ev {
            Evicted::Compacted => i64::MIN,
            _ => self.from.min(bucket),
        };
        self.evicted |= ev != Evicted::Nothing;
    }

    #[inline]
    fn of(bucket: i64, ev: Evicted) -> Self {
        let mut d = Dirty {
            from: i64::MAX,
            evicted: false,
        };
        d.touch(bucket, ev);
        d
    }
}

/// Events between two full sweeps of a shard for expired keys.
static SWEEP_EVERY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(16_384);

/// Set how many events a shard applies between two sweeps for expired keys (default 16 384;
/// process-wide). Small values make tests exercise key removal.
pub fn set_sweep_interval(events: u64) {
    SWEEP_EVERY.store(events.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// What happened to an event in one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingest {
    /// Counted.
    Applied,
    /// Older than the retention of this shard's watermark: dropped and counted.
    Late,
}

/// The state of one shard.
#[derive(Debug, Default)]
pub struct Shard {
    /// Keys.
    pub table: HashTable<KeyState>,
    /// Largest event time accepted in this shard.
    pub watermark: Option<i64>,
    /// Events dropped as late.
    pub late_dropped: u64,
    /// Events applied.
    pub events: u64,
    /// Events since the last sweep.
    pub since_sweep: u64,
    scratch: Vec<f64>,
    /// Keys changed since their state was last captured for persistence, by key hash.
    pub(crate) dirty: ByKeyHash<Dirty>,
    /// Keys dropped (all buckets expired) since the last capture: their rows go.
    pub(crate) removed: Vec<Box<[Value]>>,
    /// While replaying the log after a restore: events up to this id are in the restored
    /// state already.
    pub(crate) restored_pos: u64,
    /// While replaying: keys persisted later than `restored_pos`, with the id their state
    /// includes (their own events up to it are not applied again).
    pub(crate) restored_keys: ByKeyHash<u64>,
    /// The retention line [`keep_from`] gives for any watermark in `[line_lo, line_hi)`
    /// (the watermark's bucket), so it is recomputed only when the watermark enters a new
    /// bucket. Checked against the watermark on every use, so a restored or reset
    /// watermark can never see a stale line.
    line: i64,
    line_lo: i64,
    line_hi: i64,
}

/// Merged state of a run of buckets: event count and components, and non-invertible states.
#[derive(Debug, Clone)]
pub struct Acc {
    /// `[event count, components…]`.
    pub comps: Vec<f64>,
    /// Non-invertible states.
    pub others: Vec<Other>,
}

impl Acc {
    /// Fold one more event in (used for the would-be value of add_and_check).
    pub fn fold(&mut self, plan: &Plan, ev: &Event) {
        self.comps[0] += 1.0;
        for a in &plan.aggs {
            a.fold_comps(ev, &mut self.comps);
            a.fold_other(ev, &mut self.others);
        }
    }

    /// Finalised aggregate values, by slot.
    pub fn finish(&self, plan: &Plan) -> Vec<Value> {
        plan.aggs
            .iter()
            .map(|a| a.finish(&self.comps, &self.others))
            .collect()
    }
}

/// One group-key value of an event: a field's value (None when missing), or the event's
/// type (`GROUP BY type`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyPart<'a> {
    /// A field's value, borrowed from the event.
    Field(Option<&'a Value>),
    /// The event's type.
    Type(&'a str),
}

impl<'a> KeyPart<'a> {
    /// Look up `path` in the event: a field, else `type` is the event's type.
    #[inline]
    pub fn of(ev: &'a Event, path: &str) -> Self {
        match ev.field(path) {
            None if path == TYPE_FIELD => KeyPart::Type(&ev.kind),
            v => KeyPart::Field(v),
        }
    }

    /// As a value for comparisons and hashing.
    #[inline]
    pub fn val(self) -> Val<'a> {
        match self {
            KeyPart::Field(v) => v.map(Val::of).unwrap_or(Val::Null),
            KeyPart::Type(t) => Val::Str(t),
        }
    }

    /// An owned JSON value (missing → null).
    pub fn to_value(self) -> Value {
        match self {
            KeyPart::Field(v) => v.cloned().unwrap_or(Value::Null),
            KeyPart::Type(t) => Value::String(t.to_string()),
        }
    }
}

/// The name that means the event's type in a query when the event has no field of that name.
pub const TYPE_FIELD: &str = "type";

/// An event's group-key values, looked up once (inline up to four parts).
pub type KeyVals<'a> = SmallVec<[KeyPart<'a>; 4]>;

/// The group-key values of an event and their hash (no allocation for up to four parts).
#[inline]
pub fn key_of<'a>(plan: &Plan, ev: &'a Event) -> (u64, KeyVals<'a>) {
    let vals: KeyVals<'a> = plan.group.iter().map(|g| KeyPart::of(ev, g)).collect();
    let mut h = StableHasher::default();
    for v in &vals {
        h.val(v.val());
    }
    (h.finish(), vals)
}

/// Append the event's group-key values to `out` and return their hash.
#[inline]
pub fn key_into<'a>(plan: &Plan, ev: &'a Event, out: &mut KeyVals<'a>) -> u64 {
    let mut h = StableHasher::default();
    for g in &plan.group {
        let v = KeyPart::of(ev, g);
        h.val(v.val());
        out.push(v);
    }
    h.finish()
}

/// The group-key hash of an event.
#[inline]
pub fn key_hash(plan: &Plan, ev: &Event) -> u64 {
    key_of(plan, ev).0
}

/// Whether a stored key equals the event's key values.
#[inline]
fn key_eq(ks: &KeyState, vals: &[KeyPart<'_>]) -> bool {
    ks.parts
        .iter()
        .zip(vals)
        .all(|(p, v)| Val::of(p) == v.val())
}

/// The shard a key hash belongs to.
#[inline]
pub fn shard_of(hash: u64, shards: usize) -> usize {
    ((hash as u128 * shards as u128) >> 64) as usize
}

/// First bucket start retained under watermark `wm`.
pub fn keep_from(plan: &Plan, wm: Option<i64>) -> i64 {
    match (plan.time, wm) {
        (TimeShape::Unbounded, _) | (_, None) => i64::MIN,
        (t, Some(w)) => t.bucket(w) + t.granularity().unwrap_or(0) - plan.retention,
    }
}

impl Shard {
    /// Whether an event at `ts` would be dropped as late.
    pub fn is_late(&self, plan: &Plan, ts: i64) -> bool {
        plan.time.bucket(ts) < self.keep_line(plan)
    }

    /// [`keep_from`] of the current watermark, from the cache when it is valid.
    #[inline]
    pub(crate) fn keep_line(&self, plan: &Plan) -> i64 {
        match self.watermark {
            Some(w) if self.line_lo <= w && w < self.line_hi => self.line,
            wm => keep_from(plan, wm),
        }
    }

    /// [`keep_from`] of the current watermark, refreshing the cache.
    #[inline]
    fn update_line(&mut self, plan: &Plan) -> i64 {
        let Some(w) = self.watermark else {
            return i64::MIN;
        };
        if !(self.line_lo <= w && w < self.line_hi) {
            self.line = keep_from(plan, self.watermark);
            (self.line_lo, self.line_hi) = match plan.time {
                TimeShape::Unbounded => (i64::MIN, i64::MAX),
                t => {
                    let b = t.bucket(w);
                    (b, b.saturating_add(t.granularity().unwrap_or(1)))
                }
            };
        }
        self.line
    }

    /// Add an event whose key values and hash are `vals`, `hash` (from [`key_of`]; the plan
    /// has accepted it).
    #[inline]
    pub fn ingest(&mut self, plan: &Plan, ev: &Event, hash: u64, vals: &[KeyPart<'_>]) -> Ingest {
        self.ingest_ext(plan, ev, hash, vals, true)
    }

    /// [`Shard::ingest`], or with `to_key` false only what the event does to the shard
    /// (watermark, counters, sweeps): replay uses that for a key whose persisted state
    /// already holds the event.
    #[inline]
    pub(crate) fn ingest_ext(
        &mut self,
        plan: &Plan,
        ev: &Event,
        hash: u64,
        vals: &[KeyPart<'_>],
        to_key: bool,
    ) -> Ingest {
        let bucket = plan.time.bucket(ev.ts);
        if bucket < self.keep_line(plan) {
            self.late_dropped += 1;
            return Ingest::Late;
        }
        if self.watermark.is_none_or(|w| ev.ts > w) {
            self.watermark = Some(ev.ts);
        }
        let keep = self.update_line(plan);
        if to_key {
            self.ingest_key(plan, ev, hash, vals, bucket, keep);
        }
        self.events += 1;
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY.load(std::sync::atomic::Ordering::Relaxed) {
            self.sweep(plan);
        }
        Ingest::Applied
    }

    #[inline]
    fn ingest_key(
        &mut self,
        plan: &Plan,
        ev: &Event,
        hash: u64,
        vals: &[KeyPart<'_>],
        bucket: i64,
        keep: i64,
    ) {
        let stride = plan.stride;
        let ks = match self.table.find_mut(hash, |k| key_eq(k, vals)) {
            Some(k) => k,
            None => {
                let parts: Box<[Value]> = vals.iter().map(|v| v.to_value()).collect();
                self.table
                    .insert_unique(hash, KeyState::new(parts, hash, stride), |k| k.hash)
                    .into_mut()
            }
        };
        let evicted = if keep != i64::MIN {
            ks.evict_before(keep, stride)
        } else {
            Evicted::Nothing
        };
        self.dirty
            .entry(hash)
            .and_modify(|d| d.touch(bucket, evicted))
            .or_insert_with(|| Dirty::of(bucket, evicted));
        let i = ks.entry(bucket, stride, &plan.template);
        if i + 1 == ks.len(stride) {
            // The newest bucket (the in-order case): no later prefix to update.
            let comps = ks.last_comps_mut(stride);
            comps[0] += 1.0;
            for a in &plan.aggs {
                a.fold_comps(ev, comps);
            }
        } else {
            self.scratch.clear();
            self.scratch.resize(stride - 1, 0.0);
            self.scratch[0] = 1.0;
            for a in &plan.aggs {
                a.fold_comps(ev, &mut self.scratch);
            }
            ks.add(i, &self.scratch, stride);
        }
        if !plan.template.is_empty() {
            let others = ks.others_mut(i);
            for a in &plan.aggs {
                a.fold_other(ev, others);
            }
        }
    }

    /// Drop expired buckets of every key, and keys left empty.
    pub fn sweep(&mut self, plan: &Plan) {
        self.since_sweep = 0;
        let keep = self.keep_line(plan);
        if keep == i64::MIN {
            return;
        }
        let stride = plan.stride;
        let (dirty, removed) = (&mut self.dirty, &mut self.removed);
        self.table.retain(|k| {
            let evicted = k.evict_before(keep, stride);
            if k.is_empty(stride) {
                removed.push(std::mem::take(&mut k.parts));
                return false;
            }
            if evicted != Evicted::Nothing {
                dirty
                    .entry(k.hash)
                    .and_modify(|d| d.touch(i64::MAX, evicted))
                    .or_insert_with(|| Dirty::of(i64::MAX, evicted));
            }
            true
        });
    }

    /// Find a key by its values and hash (from [`key_of`]).
    pub fn find(&self, hash: u64, vals: &[KeyPart<'_>]) -> Option<&KeyState> {
        self.table.find(hash, |k| key_eq(k, vals))
    }

    /// Merge a key's buckets with starts in `[lo, hi)` (and retained). None if no events.
    pub fn acc(&self, plan: &Plan, ks: &KeyState, lo: i64, hi: i64) -> Option<Acc> {
        let stride = plan.stride;
        let lo = lo.max(self.keep_line(plan));
        let a = ks.lower_bound(lo, stride);
        let b = ks.lower_bound(hi, stride);
        if b <= a {
            return None;
        }
        let mut acc = Acc {
            comps: vec![0.0; stride - 1],
            others: plan.template.clone(),
        };
        ks.sum_range(a, b, stride, &mut acc.comps);
        if acc.comps[0] <= 0.0 {
            return None;
        }
        ks.merge_others(a, b, &mut acc.others);
        Some(acc)
    }

    /// An empty accumulator for a key not seen yet.
    pub fn empty_acc(plan: &Plan) -> Acc {
        Acc {
            comps: vec![0.0; plan.stride - 1],
            others: plan.template.clone(),
        }
    }

    /// Heap bytes and number of non-empty key-buckets.
    pub fn memory(&self, plan: &Plan) -> (usize, usize) {
        let mut bytes = self.table.capacity() * (std::mem::size_of::<KeyState>() + 1);
        let mut buckets = 0;
        for k in self.table.iter() {
            bytes += k.heap_bytes();
            buckets += k.len(plan.stride);
        }
        (bytes, buckets)
    }
}
