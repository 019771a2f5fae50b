//! The keys and stats of every accepted event together ([`Insights`]), and how they are
//! persisted incrementally: one state key per event type, rewritten only when the type
//! changed.
//!
//! # Rows
//! The server writes these rows in one scope of its state store, split over [`PARTS`] parts
//! by a hash of the type name (so no part grows with the number of types):
//!
//! | key | bucket | value |
//! |---|---|---|
//! | `t` + type | `i64::MIN` (the head) | JSON: the seq the type includes, the stats granularity, the watermark, the type's keys |
//! | `t` + type | a stats bucket index (`ts / granularity`) | the bucket's count, 8 bytes big-endian |
//! | `h` (part 0) | `i64::MIN` | JSON: the seq of the last complete flush, granularity, watermark, dropped events |
//!
//! A type's key is written as one [`KeyWrite`] (atomic on its own): its head and the buckets
//! that changed since its last write, and the removal of buckets that left the 48 h window.
//! The header is written after every type of a flush, so its seq says "every type's events
//! up to here are in the rows". After a crash in the middle of a flush some types may hold
//! a later seq than the header: [`Loaded::includes`] says per type which events the rows
//! hold, so a replay of the log counts each event once.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use weir_core::{Event, Millis};

use crate::keys::{KeyIndex, TypeKeys};
use crate::stats::StatsSeries;

/// Parts the rows are spread over.
pub const PARTS: u32 = 16;

/// The bucket of a key's head row (never removed by a `delete_through`).
const HEAD: i64 = i64::MIN;
/// The key of the header row.
const HEADER_KEY: &[u8] = b"h";
/// The first byte of a type's key.
const TYPE_PREFIX: u8 = b't';

/// Field keys and 48 h stats of every accepted event, and which types changed since the
/// last [`Insights::snapshot`].
#[derive(Debug, Clone)]
pub struct Insights {
    /// Field names and their most frequent values, per type.
    pub keys: KeyIndex,
    /// Counts per type in time buckets over the last 48 h.
    pub stats: StatsSeries,
    dirty: Dirty,
}

/// What changed since the last snapshot: per type, whether it must be rewritten whole and
/// which stats buckets were counted in.
#[derive(Debug, Clone, Default)]
pub struct Dirty {
    types: HashMap<String, DirtyType>,
}

#[derive(Debug, Clone, Default)]
struct DirtyType {
    /// Write the type's key with `delete_all` (its stored buckets are not to be kept).
    rewrite: bool,
    buckets: BTreeSet<i64>,
}

impl Dirty {
    /// Types changed.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    fn merge(&mut self, other: Dirty) {
        for (name, d) in other.types {
            let e = self.types.entry(name).or_default();
            e.rewrite |= d.rewrite;
            e.buckets.extend(d.buckets);
        }
    }
}

/// A type's head row, as written (borrowing the type's keys).
#[derive(Serialize)]
struct HeadOut<'a> {
    seq: u64,
    granularity_ms: Millis,
    watermark: Option<Millis>,
    keys: Option<&'a TypeKeys>,
    stats: bool,
}

/// A type's head row, as read.
#[derive(Debug, Deserialize)]
struct Head {
    seq: u64,
    granularity_ms: Millis,
    watermark: Option<Millis>,
    keys: Option<TypeKeys>,
    /// The type has a stats ring (it may have no bucket left in the window).
    stats: bool,
}

/// The header row.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    seq: u64,
    granularity_ms: Millis,
    watermark: Option<Millis>,
    dropped: u64,
}

/// One key's write: its rows and which stored rows go first (mirrors the server's state
/// store write, so this crate needs no storage types).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeyWrite {
    /// The part it goes to (`0..PARTS`).
    pub part: u32,
    /// The key.
    pub key: Vec<u8>,
    /// Remove every stored row of the key first, except those in `rows`.
    pub delete_all: bool,
    /// Remove the stored rows with `i64::MIN < bucket <= this`.
    pub delete_through: Option<i64>,
    /// Rows to upsert, as (bucket, value).
    pub rows: Vec<(i64, Vec<u8>)>,
}

/// One type as copied by [`Insights::snapshot`].
#[derive(Debug, Clone)]
struct TypeCopy {
    name: String,
    keys: Option<TypeKeys>,
    stats: bool,
    rewrite: bool,
    /// The changed buckets still in the window, with their counts.
    buckets: Vec<(i64, u64)>,
}

/// A copy of what changed since the previous snapshot, and the seq it includes (every event
/// up to it, none after). Encoded into rows by [`Snapshot::writes`] away from the thread that
/// feeds the insights.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The highest seq the copy includes.
    pub seq: u64,
    granularity_ms: Millis,
    watermark: Option<Millis>,
    expired_through: Option<i64>,
    dropped: u64,
    types: Vec<TypeCopy>,
    dirty: Dirty,
}

impl Snapshot {
    /// Whether nothing changed (nothing to write).
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// Types changed.
    pub fn types(&self) -> usize {
        self.types.len()
    }

    /// What changed, to hand back with [`Insights::requeue`] when writing failed.
    pub fn into_dirty(self) -> Dirty {
        self.dirty
    }

    /// The rows: one write per changed type, then the header (write it last, after the
    /// types are written).
    pub fn writes(&self) -> (Vec<KeyWrite>, KeyWrite) {
        let types = self
            .types
            .iter()
            .map(|t| {
                let head = HeadOut {
                    seq: self.seq,
                    granularity_ms: self.granularity_ms,
                    watermark: self.watermark,
                    keys: t.keys.as_ref(),
                    stats: t.stats,
                };
                let mut rows = vec![(HEAD, to_json(&head))];
                rows.extend(
                    t.buckets
                        .iter()
                        .map(|(i, c)| (*i, c.to_be_bytes().to_vec())),
                );
                KeyWrite {
                    part: part_of(&t.name),
                    key: type_key(&t.name),
                    delete_all: t.rewrite,
                    delete_through: self.expired_through.filter(|b| *b > HEAD),
                    rows,
                }
            })
            .collect();
        let header = Header {
            seq: self.seq,
            granularity_ms: self.granularity_ms,
            watermark: self.watermark,
            dropped: self.dropped,
        };
        let header = KeyWrite {
            part: 0,
            key: HEADER_KEY.to_vec(),
            delete_all: true,
            delete_through: None,
            rows: vec![(HEAD, to_json(&header))],
        };
        (types, header)
    }
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    // Plain structs with string map keys: serializing cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

/// The part a type's rows go to: FNV-1a of its name (stable across runs and builds).
pub fn part_of(ty: &str) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in ty.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(PARTS)) as u32
}

fn type_key(ty: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(ty.len() + 1);
    k.push(TYPE_PREFIX);
    k.extend_from_slice(ty.as_bytes());
    k
}

/// What [`Insights::load`] found: which events the rows include.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    /// The header's seq: every type's events up to it are in the rows (0 without a header).
    pub seq: u64,
    /// Types whose rows include a later seq than the header (written by a flush that did
    /// not finish).
    pub ahead: HashMap<String, u64>,
    /// Types loaded.
    pub types: u64,
    /// Rows read.
    pub rows: u64,
    /// The stored stats had another granularity: stats were not loaded (keys were).
    pub stats_reset: bool,
}

impl Loaded {
    /// Whether the loaded rows include the event `seq` of type `kind` (a replay of the log
    /// must then not count it again).
    pub fn includes(&self, kind: &str, seq: u64) -> bool {
        seq <= self.seq.max(self.ahead.get(kind).copied().unwrap_or(0))
    }
}

/// A problem with stored rows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored analytics row {key:?}: {problem}")]
pub struct RowError {
    /// The row's key, as text.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

impl Insights {
    /// Empty insights.
    pub fn new(keys: KeyIndex, stats: StatsSeries) -> Self {
        Self {
            keys,
            stats,
            dirty: Dirty::default(),
        }
    }

    /// Count one accepted event, and note its type as changed.
    pub fn observe(&mut self, event: &Event) {
        let ty = crate::scope::type_key(event);
        self.keys.observe_as(&ty, event);
        let bucket = self.stats.observe_at(&ty, event.ts);
        if self.keys.type_keys(&ty).is_none() && !self.stats.has_type(&ty) {
            return; // a type over the limits: nothing kept, nothing to write
        }
        let d = self.dirty.types.entry(ty.into_owned()).or_default();
        d.buckets.extend(bucket);
    }

    /// Note every kept type as changed, to be written whole (after a migration, or when the
    /// stored rows could not be used).
    pub fn mark_all(&mut self) {
        let names: BTreeSet<String> = self
            .keys
            .types()
            .into_iter()
            .map(|(t, _)| t.to_string())
            .collect();
        for name in names {
            self.dirty.types.entry(name).or_default().rewrite = true;
        }
        // Types with stats and no keys (their events were all too old for the window, or
        // the key index was full) are rewritten with the others they are kept with.
        let stats_only: Vec<String> = self.stats.type_names().map(str::to_string).collect();
        for name in stats_only {
            self.dirty.types.entry(name).or_default().rewrite = true;
        }
    }

    /// Types changed since the last snapshot.
    pub fn dirty(&self) -> &Dirty {
        &self.dirty
    }

    /// Copy what changed since the last snapshot (and forget it changed); `seq` is the
    /// highest seq these insights include. A copy, not an encoding, is all the caller waits
    /// for.
    pub fn snapshot(&mut self, seq: u64) -> Snapshot {
        let dirty = std::mem::take(&mut self.dirty);
        let expired_through = self.stats.expired_through();
        let mut types: Vec<TypeCopy> = dirty
            .types
            .iter()
            .map(|(name, d)| {
                let live = |i: &i64| expired_through.is_none_or(|e| *i > e);
                let buckets = if d.rewrite {
                    let mut all = self.stats.buckets_of(name);
                    all.retain(|(i, _)| live(i));
                    all.sort_unstable();
                    all
                } else {
                    d.buckets
                        .iter()
                        .filter(|i| live(i))
                        .filter_map(|i| Some((*i, self.stats.bucket(name, *i)?)))
                        .collect()
                };
                TypeCopy {
                    name: name.clone(),
                    keys: self.keys.type_keys(name).cloned(),
                    stats: self.stats.has_type(name),
                    rewrite: d.rewrite,
                    buckets,
                }
            })
            .collect();
        types.sort_by(|a, b| a.name.cmp(&b.name));
        Snapshot {
            seq,
            granularity_ms: self.stats.config().granularity_ms,
            watermark: self.stats.watermark(),
            expired_through,
            dropped: self.stats.dropped(),
            types,
            dirty,
        }
    }

    /// Hand back what a snapshot copied when writing it failed: it is written by the next.
    pub fn requeue(&mut self, dirty: Dirty) {
        self.dirty.merge(dirty);
    }

    /// Load stored rows (the rows of one key together, in bucket order, as a state store
    /// reads them back) into these (empty) insights. Stats written with another granularity
    /// are not loaded; those types are rewritten by the next snapshot.
    pub fn load(
        &mut self,
        rows: impl IntoIterator<Item = (Vec<u8>, i64, Vec<u8>)>,
    ) -> Result<Loaded, RowError> {
        let g = self.stats.config().granularity_ms;
        let mut out = Loaded::default();
        let mut header: Option<Header> = None;
        // Types whose head was read, with whether their buckets are to be loaded.
        let mut heads: HashMap<String, bool> = HashMap::new();
        let mut buckets: Vec<(String, i64, u64)> = Vec::new();
        let mut watermark: Option<Millis> = None;
        let mut seqs: HashMap<String, u64> = HashMap::new();
        for (key, bucket, value) in rows {
            out.rows += 1;
            let err = |problem: String| RowError {
                key: String::from_utf8_lossy(&key).into_owned(),
                problem,
            };
            if key == HEADER_KEY {
                let h: Header = serde_json::from_slice(&value).map_err(|e| err(e.to_string()))?;
                header = Some(h);
                continue;
            }
            let Some(name) = key.strip_prefix(&[TYPE_PREFIX]) else {
                return Err(err("not an analytics key".into()));
            };
            let name = std::str::from_utf8(name).map_err(|e| err(e.to_string()))?;
            if bucket != HEAD {
                let count: [u8; 8] = value
                    .as_slice()
                    .try_into()
                    .map_err(|_| err(format!("bucket {bucket}: not an 8-byte count")))?;
                buckets.push((name.to_string(), bucket, u64::from_be_bytes(count)));
                continue;
            }
            let head: Head = serde_json::from_slice(&value).map_err(|e| err(e.to_string()))?;
            out.types += 1;
            seqs.insert(name.to_string(), head.seq);
            if let Some(k) = head.keys {
                self.keys.restore_type(name, k);
            }
            let same = head.granularity_ms == g;
            if same {
                watermark = watermark.max(head.watermark);
                if head.stats {
                    self.stats.restore_type(name);
                }
            } else {
                out.stats_reset = true;
                self.dirty
                    .types
                    .entry(name.to_string())
                    .or_default()
                    .rewrite = true;
            }
            heads.insert(name.to_string(), same);
        }
        // Buckets of a type written with another granularity (or without a head, which is
        // never written so) are not loaded.
        for (name, idx, count) in buckets {
            if heads.get(&name) == Some(&true) {
                self.stats.restore_bucket(&name, idx, count);
            }
        }
        let dropped = match &header {
            Some(h) if h.granularity_ms == g => {
                watermark = watermark.max(h.watermark);
                h.dropped
            }
            Some(_) => {
                out.stats_reset = true;
                0
            }
            None => 0,
        };
        self.stats.restore_totals(watermark, dropped);
        out.seq = header.map_or(0, |h| h.seq);
        out.ahead = seqs.into_iter().filter(|(_, s)| *s > out.seq).collect();
        Ok(out)
    }
}
