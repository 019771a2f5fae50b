//! One group key's buckets, stored together.
//!
//! All of a key's non-empty buckets live in one `Vec<f64>`, sorted by bucket start, one
//! entry of `stride` words each: `[bucket start, event count, numeric components…]`. The
//! numeric components are stored as **prefix sums** over the key's retained buckets, so the
//! value of any run of buckets (a sliding window at any reference time) is the difference
//! of two entries found by binary search: O(log(w/g)) whatever the window length.
//!
//! Entry 0 (at `head`) is a sentinel holding the prefix before the first retained bucket.
//! Expiring the oldest bucket just moves `head` forward: the expired entry becomes the new
//! sentinel. When more than half the buffer is expired entries it is compacted and the
//! prefixes rebased to zero (amortised O(1), and it keeps the magnitudes small).
//!
//! An in-order event updates the last entry only (O(1)); a late event that lands in an older
//! bucket adds its delta to that bucket and every later one (O(buckets after it)).
//!
//! Non-invertible aggregates keep one [`Other`] state per bucket as the leaves of a
//! [`Tree`] (a segment tree addressed by buffer position), so a window merges O(log n)
//! nodes instead of every bucket in it.

use serde_json::Value;

use crate::agg::Other;
use crate::tree::Tree;

/// Words per entry before the numeric components: start and event count.
pub const HEAD_WORDS: usize = 2;

/// What [`KeyState::evict_before`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evicted {
    /// No bucket was old enough.
    Nothing,
    /// Buckets expired: the sentinel moved, the other entries are unchanged.
    Buckets,
    /// Buckets expired and the buffer was compacted: every prefix was rebased.
    Compacted,
}

/// The state of one group key in one query. Exactly one cache line, aligned to one, so a
/// key-table probe touches one line for the whole header.
#[derive(Debug, Clone)]
#[repr(align(64))]
pub struct KeyState {
    /// The group-key parts (GROUP BY fields in order; missing = null).
    pub parts: Box<[Value]>,
    /// Hash of the parts.
    pub hash: u64,
    buf: Vec<f64>,
    /// Index of the sentinel entry (entries before it are expired).
    head: u32,
    /// Entries in `buf` (`buf.len() / stride`), kept so the hot path never divides.
    ents: u32,
    /// Leaf p holds the states of the bucket at buffer entry p + 1 (None when the plan has
    /// no non-invertible aggregate).
    others: Option<Box<Tree>>,
}

impl KeyState {
    /// A key with no buckets.
    pub fn new(parts: Box<[Value]>, hash: u64, stride: usize) -> Self {
        Self {
            parts,
            hash,
            buf: {
                let mut b = Vec::with_capacity(2 * stride);
                b.resize(stride, 0.0);
                b
            },
            head: 0,
            ents: 1,
            others: None,
        }
    }

    /// Rebuild from checkpointed parts (see [`KeyState::raw`]).
    pub fn from_raw(
        parts: Box<[Value]>,
        hash: u64,
        stride: usize,
        buf: Vec<f64>,
        head: usize,
        others: Vec<Vec<Other>>,
    ) -> Self {
        let others = (!others.is_empty()).then(|| {
            let leaves = std::iter::repeat_with(|| Box::new([]) as Box<[Other]>)
                .take(head)
                .chain(others.into_iter().map(Vec::into_boxed_slice))
                .collect();
            Box::new(Tree::from_leaves(leaves))
        });
        let ents = (buf.len() / stride.max(1)) as u32;
        Self {
            parts,
            hash,
            buf,
            head: head as u32,
            ents,
            others,
        }
    }

    /// The raw buffer, the sentinel's index and the per-bucket states (for checkpoints:
    /// kept exactly as held, so a restored key evolves bit for bit like the original).
    /// Expired entries before the sentinel are never read again and come back as zeros.
    pub fn raw(&self) -> (Vec<f64>, usize, Vec<Vec<Other>>) {
        let others = match &self.others {
            Some(t) => (self.head as usize..t.len())
                .map(|p| t.leaf(p).to_vec())
                .collect(),
            None => Vec::new(),
        };
        let mut buf = self.buf.clone();
        let stride = buf.len() / self.ents.max(1) as usize;
        buf[..self.head as usize * stride].fill(0.0);
        (buf, self.head as usize, others)
    }

    /// Number of expired entries still held before the sentinel (they decide when the
    /// buffer is next compacted, so persisted state keeps the count).
    pub fn expired(&self) -> usize {
        self.head as usize
    }

    /// The sentinel entry: `[start, event count, prefix components…]` before bucket 0.
    pub fn sentinel(&self, stride: usize) -> &[f64] {
        let o = self.head as usize * stride;
        &self.buf[o..o + stride]
    }

    /// Entry of bucket i: `[start, event count, prefix components…]`.
    pub fn entry_words(&self, i: usize, stride: usize) -> &[f64] {
        let o = self.off(i, stride);
        &self.buf[o..o + stride]
    }

    /// The non-invertible states of bucket i (empty when the plan has none).
    pub fn others_of(&self, i: usize) -> &[Other] {
        match &self.others {
            Some(t) => t.leaf(self.head as usize + i),
            None => &[],
        }
    }

    /// Number of retained non-empty buckets.
    #[inline]
    pub fn len(&self, _stride: usize) -> usize {
        (self.ents - self.head - 1) as usize
    }

    /// Whether the key has no buckets.
    pub fn is_empty(&self, stride: usize) -> bool {
        self.len(stride) == 0
    }

    #[inline]
    fn off(&self, i: usize, stride: usize) -> usize {
        (self.head as usize + 1 + i) * stride
    }

    /// Start of bucket i.
    #[inline]
    pub fn start(&self, i: usize, stride: usize) -> i64 {
        self.buf[self.off(i, stride)] as i64
    }

    /// First bucket index whose start is >= `t`.
    pub fn lower_bound(&self, t: i64, stride: usize) -> usize {
        let (mut lo, mut hi) = (0, self.len(stride));
        // Fast path: at or after the last bucket.
        if hi > 0 && self.start(hi - 1, stride) < t {
            return hi;
        }
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.start(mid, stride) < t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The index of the bucket starting at `start`, inserting an empty one if needed.
    #[inline]
    pub fn entry(&mut self, start: i64, stride: usize, template: &[Other]) -> usize {
        let n = self.len(stride);
        if n > 0 && self.start(n - 1, stride) == start {
            return n - 1;
        }
        let pos = self.lower_bound(start, stride);
        if pos < n && self.start(pos, stride) == start {
            return pos;
        }
        // New entry: its prefix equals the previous entry's (or the sentinel's).
        let prev = self.off(pos, stride) - stride;
        let at = prev + stride;
        self.grow(stride);
        self.buf.extend_from_within(prev..prev + stride);
        self.ents += 1;
        if pos < n {
            self.buf[at..].rotate_right(stride);
        }
        self.buf[at] = start as f64;
        if !template.is_empty() {
            let head = self.head as usize;
            self.others
                .get_or_insert_with(|| Box::new(Tree::from_leaves(vec![Box::new([]); head])))
                .insert(head + pos, template.into());
        }
        pos
    }

    /// Make room for one more entry, growing by an eighth (at least two entries) instead of
    /// doubling: still amortised O(1), with at most ~12% slack.
    #[inline]
    fn grow(&mut self, stride: usize) {
        if self.buf.len() + stride > self.buf.capacity() {
            let extra = (self.buf.len() / 8).div_ceil(stride).max(2) * stride;
            self.buf.reserve_exact(extra);
        }
    }

    /// Add `deltas` (event count then components) to bucket i and every later prefix.
    #[inline]
    pub fn add(&mut self, i: usize, deltas: &[f64], stride: usize) {
        let n = self.len(stride);
        for k in i..n {
            let o = self.off(k, stride) + 1;
            for (x, d) in self.buf[o..o + stride - 1].iter_mut().zip(deltas) {
                *x += d;
            }
        }
    }

    /// The non-invertible states of bucket i.
    #[inline]
    pub fn others_mut(&mut self, i: usize) -> &mut [Other] {
        let p = self.head as usize + i;
        match &mut self.others {
            Some(t) => t.leaf_mut(p),
            None => &mut [],
        }
    }

    /// The event count and components of the last bucket (adding to them adds to that
    /// bucket only: no later prefix exists). None when the key has no bucket.
    #[inline]
    pub fn last_comps_mut(&mut self, stride: usize) -> &mut [f64] {
        let o = (self.ents as usize - 1) * stride;
        &mut self.buf[o + 1..o + stride]
    }

    /// Drop buckets starting before `keep_from`; says what changed (persisted state needs
    /// to know: an eviction moves the sentinel, a compaction rebases every prefix).
    #[inline]
    pub fn evict_before(&mut self, keep_from: i64, stride: usize) -> Evicted {
        if self.len(stride) == 0 || self.start(0, stride) >= keep_from {
            return Evicted::Nothing;
        }
        self.evict_slow(keep_from, stride)
    }

    #[inline(never)]
    fn evict_slow(&mut self, keep_from: i64, stride: usize) -> Evicted {
        let mut n = self.len(stride);
        while n > 0 && self.start(0, stride) < keep_from {
            if let Some(t) = &mut self.others {
                t.expire(self.head as usize);
            }
            self.head += 1;
            n -= 1;
        }
        if self.head > 0 && self.head as usize >= n {
            self.compact(stride);
            return Evicted::Compacted;
        }
        Evicted::Buckets
    }

    /// Remove expired entries and rebase the prefixes on zero.
    fn compact(&mut self, stride: usize) {
        if let Some(t) = &mut self.others {
            t.drop_front(self.head as usize);
        }
        self.buf.drain(..self.head as usize * stride);
        self.ents -= self.head;
        self.head = 0;
        let (base, rest) = self.buf.split_at_mut(stride);
        for e in rest.chunks_exact_mut(stride) {
            for (x, b) in e[1..].iter_mut().zip(&base[1..]) {
                *x -= b;
            }
        }
        base[1..].iter_mut().for_each(|x| *x -= *x);
        if self.buf.capacity() > 2 * self.buf.len() + 4 * stride {
            self.buf
                .shrink_to(self.buf.len() + self.buf.len() / 8 + stride);
        }
    }

    /// Event count and components summed over buckets `a..b` into `out`.
    #[inline]
    pub fn sum_range(&self, a: usize, b: usize, stride: usize, out: &mut [f64]) {
        if b <= a {
            out.iter_mut().for_each(|x| *x = 0.0);
            return;
        }
        let hi = self.off(b - 1, stride) + 1;
        let lo = self.off(a, stride) - stride + 1;
        for (j, o) in out.iter_mut().enumerate().take(stride - 1) {
            *o = self.buf[hi + j] - self.buf[lo + j];
        }
    }

    /// Merge the non-invertible states of buckets `a..b` into `out` (fresh states):
    /// O(log n) tree nodes.
    pub fn merge_others(&self, a: usize, b: usize, out: &mut [Other]) {
        if let (Some(t), false) = (&self.others, out.is_empty() || b <= a) {
            let h = self.head as usize;
            t.query(h + a, h + b, out);
        }
    }

    /// Rough heap bytes owned by this key (buffer capacity, key parts, states).
    pub fn heap_bytes(&self) -> usize {
        let parts: usize = self
            .parts
            .iter()
            .map(|v| 32 + v.as_str().map_or(0, str::len))
            .sum();
        let others = self
            .others
            .as_ref()
            .map_or(0, |t| std::mem::size_of::<Tree>() + t.heap_bytes());
        self.buf.capacity() * 8 + parts + others
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_header_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<KeyState>(), 64);
        assert_eq!(std::mem::align_of::<KeyState>(), 64);
    }

    #[test]
    fn prefix_sums_survive_out_of_order_and_eviction() {
        let stride = HEAD_WORDS + 1;
        let mut k = KeyState::new(Box::new([]), 0, stride);
        for (start, v) in [(10, 1.0), (30, 2.0), (20, 4.0), (10, 8.0), (40, 16.0)] {
            let i = k.entry(start, stride, &[]);
            k.add(i, &[1.0, v], stride);
        }
        assert_eq!(k.len(stride), 4);
        let mut out = [0.0; 2];
        let (a, b) = (k.lower_bound(20, stride), k.lower_bound(40, stride));
        k.sum_range(a, b, stride, &mut out);
        assert_eq!(out, [2.0, 6.0]);
        k.evict_before(30, stride);
        assert_eq!(k.len(stride), 2);
        k.sum_range(0, 2, stride, &mut out);
        assert_eq!(out, [2.0, 18.0]);
        k.sum_range(1, 2, stride, &mut out);
        assert_eq!(out, [1.0, 16.0]);
    }
}
