//! Query state persisted incrementally, as key-bucket rows.
//!
//! Every (query, shard) is persisted as rows keyed by (group key, bucket start):
//! - one **bucket row** per retained bucket: the key's buffer entry for it (event count and
//!   prefix components, see [`crate::window`]) and its non-invertible states;
//! - one **sentinel row** per key (bucket [`SENTINEL`]): the entry before the first retained
//!   bucket, the number of expired entries still held, and the event id the key's rows
//!   include (`pos`);
//! - one **mark row** per shard (key [`MARK_KEY`]): the shard's watermark and counters and
//!   the event id they include.
//!
//! Rows are kept exactly as the buffer holds them (prefixes, not per-bucket deltas), so a
//! restored key evolves bit for bit like the original.
//!
//! **Capture** ([`QueryRt::capture_shard`]) takes only what changed since the last capture:
//! the shard keeps the hashes of keys touched since (and which of their entries changed) and
//! the keys dropped since. The shard lock is taken once to swap those sets out and read the
//! mark, then once per chunk of keys to copy their rows, so an event never waits for more than
//! one chunk. Ids come from the caller's `pos` closure, read under the shard lock: every
//! event that touched the shard with a lower id is in what is read (ids are assigned while
//! the shard locks are held, see [`crate::Engine::apply`]).
//!
//! **Consistency without one atomic write.** Each key's rows are written together (one
//! atomic write per key) and carry the id they include; the mark is written after every key
//! of the capture. After a crash the last complete mark's id is where replay starts for the
//! shard; a key persisted later than that (a capture that did not finish) has its own events
//! up to its id skipped ([`Engine::replay`]), while the shard's watermark and counters replay
//! every event. Keys not touched since their last write had no event after it. So restore
//! plus replay gives exactly the state of a run that never stopped, whichever writes landed.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agg::Other;
use crate::error::{EngineError, Result};
use crate::expr::Val;
use crate::hash::StableHasher;
use crate::shard::{Dirty, Shard};
use crate::window::KeyState;
use crate::{Engine, QueryRt};

/// The bucket of a key's sentinel row.
pub const SENTINEL: i64 = i64::MIN;
/// The key of a shard's mark row (no group key encodes to nothing).
pub const MARK_KEY: &[u8] = b"";
/// Keys copied per shard-lock hold during a capture.
pub const CHUNK_KEYS: usize = 512;

/// A shard's watermark and counters, and the event id they include.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMark {
    /// Every event with a lower or equal id that touched the shard is included.
    pub pos: u64,
    /// Watermark.
    pub watermark: Option<i64>,
    /// Late events dropped.
    pub late_dropped: u64,
    /// Events applied.
    pub events: u64,
    /// Events since the last sweep.
    pub since_sweep: u64,
}

/// What to write for one group key; applied atomically by the store.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyWrite {
    /// The group key, encoded ([`encode_key`]).
    pub key: Vec<u8>,
    /// Remove every row of the key first (except those in `rows`).
    pub delete_all: bool,
    /// Remove the key's bucket rows with `SENTINEL < bucket <= this` (expired buckets).
    pub delete_through: Option<i64>,
    /// Rows to upsert: (bucket, value).
    pub rows: Vec<(i64, Vec<u8>)>,
}

/// One shard's changes since its last capture.
#[derive(Debug)]
pub struct ShardCapture {
    /// Shard index.
    pub shard: usize,
    /// The mark row's value, to write after every key.
    pub mark: Vec<u8>,
    /// Key writes.
    pub keys: Vec<KeyWrite>,
    /// What was taken from the shard, to put back with [`QueryRt::requeue`] if the writes
    /// fail.
    taken: Vec<(u64, Dirty)>,
    removed: Vec<Box<[Value]>>,
}

/// A stored row read back: (key, bucket, value).
pub type StateRow = (Vec<u8>, i64, Vec<u8>);

/// The group key as stored: its parts as a JSON array (never empty, unlike [`MARK_KEY`]).
pub fn encode_key(parts: &[Value]) -> Vec<u8> {
    serde_json::to_vec(parts).unwrap_or_else(|_| b"[]".to_vec())
}

fn put_f64s(out: &mut Vec<u8>, words: &[f64]) {
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

fn get_f64s(bytes: &[u8], n: usize) -> Result<Vec<f64>> {
    if bytes.len() < n * 8 {
        return Err(EngineError::Checkpoint("short state row".into()));
    }
    Ok(bytes[..n * 8]
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

fn sentinel_row(pos: u64, ks: &KeyState, stride: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(12 + stride * 8);
    v.extend_from_slice(&pos.to_le_bytes());
    v.extend_from_slice(&(ks.expired() as u32).to_le_bytes());
    put_f64s(&mut v, ks.sentinel(stride));
    v
}

fn bucket_row(ks: &KeyState, i: usize, stride: usize, has_others: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(stride * 8);
    put_f64s(&mut v, &ks.entry_words(i, stride)[1..]);
    if has_others {
        // Serialising plain data into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut v, ks.others_of(i));
    }
    v
}

fn key_write(pos: u64, ks: &KeyState, d: Dirty, stride: usize, has_others: bool) -> KeyWrite {
    let n = ks.len(stride);
    let first = if d.from == i64::MIN {
        0
    } else {
        ks.lower_bound(d.from, stride)
    };
    let mut rows = Vec::with_capacity(n - first.min(n) + 1);
    rows.push((SENTINEL, sentinel_row(pos, ks, stride)));
    for i in first..n {
        rows.push((ks.start(i, stride), bucket_row(ks, i, stride, has_others)));
    }
    KeyWrite {
        key: encode_key(&ks.parts),
        delete_all: false,
        delete_through: d.evicted.then(|| ks.sentinel(stride)[0] as i64),
        rows,
    }
}

impl QueryRt {
    /// Take what changed in shard `shard` since its last capture (see the module docs).
    /// `pos` gives the highest event id handed out so far; it is called under the shard lock.
    pub fn capture_shard(&self, shard: usize, pos: &dyn Fn() -> u64) -> ShardCapture {
        let plan = &self.plan;
        let (stride, has_others) = (plan.stride, !plan.template.is_empty());
        let (taken, removed, mark) = {
            let mut g = self.shards[shard].lock();
            let mark = ShardMark {
                pos: pos(),
                watermark: g.watermark,
                late_dropped: g.late_dropped,
                events: g.events,
                since_sweep: g.since_sweep,
            };
            let taken: Vec<(u64, Dirty)> = std::mem::take(&mut g.dirty).into_iter().collect();
            (taken, std::mem::take(&mut g.removed), mark)
        };
        let mut keys: Vec<KeyWrite> = removed
            .iter()
            .map(|parts| KeyWrite {
                key: encode_key(parts),
                delete_all: true,
                delete_through: None,
                rows: Vec::new(),
            })
            .collect();
        for chunk in taken.chunks(CHUNK_KEYS) {
            let g = self.shards[shard].lock();
            let at = pos();
            for &(hash, d) in chunk {
                for ks in g.table.iter_hash(hash).filter(|k| k.hash == hash) {
                    let w = key_write(at, ks, d, stride, has_others);
                    // A key dropped and seen again since the last capture: one write that
                    // removes its old rows and writes the new ones.
                    match keys.iter_mut().find(|k| k.delete_all && k.key == w.key) {
                        Some(k) => k.rows = w.rows,
                        None => keys.push(w),
                    }
                }
            }
        }
        ShardCapture {
            shard,
            mark: serde_json::to_vec(&mark).expect("a mark serialises"),
            keys,
            taken,
            removed,
        }
    }

    /// Put back what a capture took, after its writes failed: the next capture writes it.
    pub fn requeue(&self, cap: ShardCapture) {
        let mut g = self.shards[cap.shard].lock();
        for (hash, d) in cap.taken {
            g.dirty
                .entry(hash)
                .and_modify(|e| {
                    e.from = e.from.min(d.from);
                    e.evicted |= d.evicted;
                })
                .or_insert(d);
        }
        g.removed.extend(cap.removed);
    }

    /// Load shard `shard` from its rows (the rows of one key together, its sentinel first,
    /// then its buckets in start order; the mark row anywhere). Returns the keys loaded and
    /// the mark's event id: the shard then replays (see [`Engine::replay`]) the events after
    /// it. On an error the shard is left empty.
    pub fn restore_shard<E: std::fmt::Display>(
        &self,
        shard: usize,
        rows: impl Iterator<Item = std::result::Result<StateRow, E>>,
    ) -> Result<(usize, u64)> {
        let plan = &self.plan;
        let (stride, has_others) = (plan.stride, !plan.template.is_empty());
        let bad = |m: String| EngineError::Checkpoint(m);
        let mut s = Shard::default();
        let mut mark: Option<ShardMark> = None;
        let mut keys: Vec<(KeyState, u64)> = Vec::new();
        let mut cur: Option<KeyBuild> = None;
        for row in rows {
            let (key, bucket, value) = row.map_err(|e| bad(e.to_string()))?;
            if key.as_slice() == MARK_KEY {
                mark = Some(
                    serde_json::from_slice(&value)
                        .map_err(|e| bad(format!("bad shard mark: {e}")))?,
                );
                continue;
            }
            if bucket == SENTINEL {
                if let Some(kb) = cur.take() {
                    keys.push(kb.build(stride)?);
                }
                cur = Some(KeyBuild::new(&key, &value, stride)?);
                continue;
            }
            let kb = cur
                .as_mut()
                .filter(|kb| kb.key == key)
                .ok_or_else(|| bad("a bucket row without its key".into()))?;
            let words = get_f64s(&value, stride - 1)?;
            kb.buf.push(bucket as f64);
            kb.buf.extend_from_slice(&words);
            if has_others {
                let others: Vec<Other> = serde_json::from_slice(&value[(stride - 1) * 8..])
                    .map_err(|e| bad(format!("bad bucket states: {e}")))?;
                kb.others.push(others);
            }
        }
        if let Some(kb) = cur.take() {
            keys.push(kb.build(stride)?);
        }
        let mark = mark.ok_or_else(|| bad(format!("shard {shard} has no mark")))?;
        s.watermark = mark.watermark;
        s.late_dropped = mark.late_dropped;
        s.events = mark.events;
        s.since_sweep = mark.since_sweep;
        s.restored_pos = mark.pos;
        let loaded = keys.len();
        for (ks, pos) in keys {
            if pos > mark.pos {
                s.restored_keys.insert(ks.hash, pos);
            }
            s.table.insert_unique(ks.hash, ks, |k| k.hash);
        }
        *self.shards[shard].lock() = s;
        Ok((loaded, mark.pos))
    }

    /// Empty every shard (a restore that could not be completed).
    pub fn reset(&self) {
        for s in self.shards.iter() {
            *s.lock() = Shard::default();
        }
    }
}

/// A key being read back from its rows.
struct KeyBuild {
    key: Vec<u8>,
    parts: Vec<Value>,
    pos: u64,
    buf: Vec<f64>,
    others: Vec<Vec<Other>>,
    expired: usize,
}

impl KeyBuild {
    fn new(key: &[u8], sentinel: &[u8], stride: usize) -> Result<Self> {
        let parts: Vec<Value> = serde_json::from_slice(key)
            .map_err(|e| EngineError::Checkpoint(format!("bad stored key: {e}")))?;
        if sentinel.len() < 12 {
            return Err(EngineError::Checkpoint("short sentinel row".into()));
        }
        let pos = u64::from_le_bytes(sentinel[..8].try_into().expect("8 bytes"));
        let expired = u32::from_le_bytes(sentinel[8..12].try_into().expect("4 bytes")) as usize;
        let words = get_f64s(&sentinel[12..], stride)?;
        let mut buf = vec![0.0; expired * stride];
        buf.extend_from_slice(&words);
        Ok(Self {
            key: key.to_vec(),
            parts,
            pos,
            buf,
            others: Vec::new(),
            expired,
        })
    }

    fn build(self, stride: usize) -> Result<(KeyState, u64)> {
        let mut h = StableHasher::default();
        for p in &self.parts {
            h.val(Val::of(p));
        }
        let hash = h.finish();
        let live = self.buf.len() / stride - self.expired - 1;
        if !self.others.is_empty() && self.others.len() != live {
            return Err(EngineError::Checkpoint("bucket states do not fit".into()));
        }
        let ks = KeyState::from_raw(
            self.parts.into_boxed_slice(),
            hash,
            stride,
            self.buf,
            self.expired,
            self.others,
        );
        Ok((ks, self.pos))
    }
}

impl Engine {
    /// The query versions whose state is persisted: visible ones that read events.
    pub fn persisted_queries(&self) -> Vec<std::sync::Arc<QueryRt>> {
        self.catalog()
            .iter()
            .filter(|q| q.is_visible() && !q.is_view())
            .cloned()
            .collect()
    }

    /// Apply a logged event during the replay after a restore: to each shard only if the
    /// shard's restored state does not hold it yet, and to a key persisted later than its
    /// shard's mark only what the shard keeps (watermark, counters) when the key's rows
    /// already hold it.
    pub fn replay(&self, ev: &weir_core::Event, seq: u64) {
        self.locked(ev, |lk| lk.replay(seq));
    }

    /// The replay after a restore is over: forget the restored positions.
    pub fn end_replay(&self) {
        for q in self.catalog().iter() {
            for s in q.shards.iter() {
                let mut g = s.lock();
                g.restored_pos = 0;
                g.restored_keys = Default::default();
            }
        }
    }
}
