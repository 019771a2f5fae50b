//! A segment tree over one key's per-bucket states of non-invertible aggregates.
//!
//! min, max, first, last, exact distinct, HyperLogLog and the quantile sketch cannot be
//! subtracted, so a window cannot be a difference of prefixes. Instead every bucket's
//! states are a leaf of a bottom-up segment tree whose inner nodes hold the merge of their
//! children: any run of buckets is the merge of at most 2·log2(buckets) nodes, never a scan
//! of the window's buckets.
//!
//! Costs (n = the key's retained buckets):
//! - an event in the newest bucket (the usual case) updates that leaf only — O(1): the leaf
//!   is *dirty* and its ancestors are refreshed when another leaf is touched (so once per
//!   bucket, O(log n) merges), and reads merge the dirty leaf apart from the tree;
//! - a late event in an older bucket refreshes that bucket's ancestors: O(log n) merges;
//! - a late event that creates a bucket between others rebuilds the tree: O(n) merges (the
//!   prefix sums shift the same way);
//! - expiry frees the leaf; the tree is rebuilt when the key's buffer is compacted
//!   (amortised O(1) merges per bucket).
//!
//! A merge costs O(1) for min/max/first/last, 4 KiB of register maxima for HyperLogLog, the
//! number of occupied log buckets for the sketch (bounded by the value range: about 700
//! for values spanning six orders of magnitude), and the size of the smaller set for exact
//! distinct. Inner nodes double the memory of the leaves (and exact-distinct inner nodes
//! hold unions, so up to log n copies of each value).
//!
//! Leaves are addressed by the key's buffer position (expired ones included until
//! compaction), and the capacity is always the next power of two of the leaf count, so a
//! tree rebuilt from checkpointed leaves has the same shape as the original.

use crate::agg::Other;

/// The states of one bucket (or of a merged run); empty = no events (the identity).
type States = Box<[Other]>;

/// See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    cap: usize,
    len: usize,
    nodes: Vec<States>,
    dirty: Option<usize>,
}

fn empty() -> States {
    Box::new([])
}

fn combine(l: &States, r: &States) -> States {
    if l.is_empty() {
        return r.clone();
    }
    if r.is_empty() {
        return l.clone();
    }
    let mut out = l.clone();
    for (o, s) in out.iter_mut().zip(r.iter()) {
        o.merge(s);
    }
    out
}

fn merge_into(out: &mut [Other], s: &States) {
    for (o, x) in out.iter_mut().zip(s.iter()) {
        o.merge(x);
    }
}

impl Tree {
    /// A tree over the given leaves.
    pub fn from_leaves(leaves: Vec<States>) -> Self {
        let mut t = Tree::default();
        t.rebuild(leaves);
        t
    }

    /// Number of leaves (expired ones included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no leaves.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn rebuild(&mut self, leaves: Vec<States>) {
        self.len = leaves.len();
        self.cap = self.len.next_power_of_two().max(1);
        let mut nodes = vec![empty(); 2 * self.cap];
        for (i, l) in leaves.into_iter().enumerate() {
            nodes[self.cap + i] = l;
        }
        for i in (1..self.cap).rev() {
            nodes[i] = combine(&nodes[2 * i], &nodes[2 * i + 1]);
        }
        self.nodes = nodes;
        self.dirty = None;
    }

    fn take_leaves(&mut self) -> Vec<States> {
        let cap = self.cap;
        let len = self.len;
        self.nodes.drain(..).skip(cap).take(len).collect::<Vec<_>>()
    }

    /// Refresh the ancestors of the dirty leaf.
    fn flush(&mut self) {
        if let Some(d) = self.dirty.take() {
            let mut i = (self.cap + d) / 2;
            while i >= 1 {
                self.nodes[i] = combine(&self.nodes[2 * i], &self.nodes[2 * i + 1]);
                i /= 2;
            }
        }
    }

    /// Insert a leaf at position `p` (`p == len` appends).
    pub fn insert(&mut self, p: usize, leaf: States) {
        if p == self.len && self.len < self.cap {
            self.flush();
            self.nodes[self.cap + p] = leaf;
            self.len += 1;
            self.dirty = Some(p);
            return;
        }
        let mut leaves = self.take_leaves();
        leaves.insert(p, leaf);
        self.rebuild(leaves);
    }

    /// The states of leaf `p`, to fold events into.
    #[inline]
    pub fn leaf_mut(&mut self, p: usize) -> &mut [Other] {
        if self.dirty != Some(p) {
            self.flush();
            self.dirty = Some(p);
        }
        &mut self.nodes[self.cap + p]
    }

    /// The states of leaf `p`.
    pub fn leaf(&self, p: usize) -> &[Other] {
        &self.nodes[self.cap + p]
    }

    /// Free an expired leaf (never read again; its stale ancestors are never read either,
    /// since every read lies after it).
    pub fn expire(&mut self, p: usize) {
        if self.dirty == Some(p) {
            self.dirty = None;
        }
        self.nodes[self.cap + p] = empty();
    }

    /// Drop the first `k` leaves and rebuild.
    pub fn drop_front(&mut self, k: usize) {
        let mut leaves = self.take_leaves();
        leaves.drain(..k.min(leaves.len()));
        self.rebuild(leaves);
    }

    /// Merge leaves `a..b` into `out` (fresh states): O(log n) node merges.
    pub fn query(&self, a: usize, b: usize, out: &mut [Other]) {
        match self.dirty {
            Some(d) if a <= d && d < b => {
                self.query_clean(a, d, out);
                merge_into(out, &self.nodes[self.cap + d]);
                self.query_clean(d + 1, b, out);
            }
            _ => self.query_clean(a, b, out),
        }
    }

    /// The bottom-up range query; `a..b` must not contain the dirty leaf.
    fn query_clean(&self, a: usize, b: usize, out: &mut [Other]) {
        let (mut l, mut r) = (a + self.cap, b + self.cap);
        while l < r {
            if l & 1 == 1 {
                merge_into(out, &self.nodes[l]);
                l += 1;
            }
            if r & 1 == 1 {
                r -= 1;
                merge_into(out, &self.nodes[r]);
            }
            l /= 2;
            r /= 2;
        }
    }

    /// Rough heap bytes.
    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<States>()
            + self
                .nodes
                .iter()
                .map(|n| {
                    n.len() * std::mem::size_of::<Other>()
                        + n.iter().map(Other::heap_bytes).sum::<usize>()
                })
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(x: Option<f64>) -> States {
        match x {
            Some(_) => Box::new([Other::Min(x), Other::Max(x)]),
            None => empty(),
        }
    }

    #[test]
    fn every_range_equals_a_scan_through_appends_updates_inserts_and_expiry() {
        let mut vals: Vec<Option<f64>> = Vec::new();
        let mut t = Tree::default();
        let mut seed = 12345u64;
        let mut rnd = |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        let mut expired = 0;
        for step in 0..400 {
            match rnd(10) {
                0..=4 => {
                    let x = rnd(1000) as f64;
                    t.insert(vals.len(), leaf(Some(x)));
                    vals.push(Some(x));
                }
                5..=6 if vals.len() > expired => {
                    let p = expired + rnd((vals.len() - expired) as u64) as usize;
                    let x = rnd(1000) as f64;
                    for o in t.leaf_mut(p).iter_mut() {
                        o.add(crate::expr::Val::Num(x), 0, 1.0);
                    }
                    vals[p] = vals[p].map(|v| v.min(x)).or(Some(x));
                }
                7 => {
                    let p = expired + rnd((vals.len() - expired + 1) as u64) as usize;
                    let x = rnd(1000) as f64;
                    t.insert(p, leaf(Some(x)));
                    vals.insert(p, Some(x));
                }
                8 if vals.len() > expired => {
                    t.expire(expired);
                    vals[expired] = None;
                    expired += 1;
                }
                _ if step % 50 == 0 => {
                    t.drop_front(expired);
                    vals.drain(..expired);
                    expired = 0;
                }
                _ => {}
            }
            assert_eq!(t.len(), vals.len());
            if step % 7 != 0 {
                continue;
            }
            for a in expired..=vals.len() {
                for b in a..=vals.len() {
                    let mut out = [Other::Min(None), Other::Max(None)];
                    t.query(a, b, &mut out);
                    let want = vals[a..b].iter().flatten().copied().reduce(f64::min);
                    assert_eq!(out[0], Other::Min(want), "step {step} {a}..{b}");
                }
            }
        }
    }
}
