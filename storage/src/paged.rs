//! Reading a long key range of the embedded store a page at a time.
//!
//! A fjall range iterator holds read locks on its partition's active memtable, sealed
//! memtables and level manifest for as long as it lives. Rotating a full memtable (done by
//! the writer inside an append, while it holds the journal) and installing a flushed or
//! compacted segment need those locks for writing, so one iterator kept open across a long
//! scan — a backfill replaying millions of events — stalls every append until the scan
//! ends. [`PagedRange`] reads at most [`PAGE`] entries per iterator, drops it, and reopens
//! the range after the last key it returned; all pages read the same snapshot, so the scan
//! still sees one consistent state of the store.

use std::collections::VecDeque;
use std::ops::Bound;

use fjall::{Slice, Snapshot};
use weir_core::Millis;

use crate::embedded::be;
use crate::record::ts_seq_from_index_key;
use crate::Result;

/// Entries read per iterator: about a millisecond of backfill, so a writer waiting to rotate
/// a memtable waits at most that long.
pub const PAGE: usize = 1024;

/// The index entries of one key range, as (ts, seq, value), read a page at a time.
pub struct PagedRange {
    snapshot: Snapshot,
    next: Bound<Vec<u8>>,
    end: Vec<u8>,
    page: VecDeque<Result<(Millis, u64, Slice)>>,
    done: bool,
}

impl PagedRange {
    /// The entries of `snapshot` with keys in `[start, end)`.
    pub fn new(snapshot: Snapshot, start: Vec<u8>, end: Vec<u8>) -> Self {
        Self {
            snapshot,
            next: Bound::Included(start),
            end,
            page: VecDeque::new(),
            done: false,
        }
    }

    fn fill(&mut self) {
        let range = (self.next.clone(), Bound::Excluded(self.end.clone()));
        let mut read = 0;
        for kv in self.snapshot.range(range) {
            let item = kv.map_err(be).and_then(|(k, v)| {
                let (ts, seq) = ts_seq_from_index_key(&k)?;
                self.next = Bound::Excluded(k.to_vec());
                Ok((ts, seq, v))
            });
            let failed = item.is_err();
            self.page.push_back(item);
            read += 1;
            if failed {
                self.done = true;
                return;
            }
            if read == PAGE {
                return;
            }
        }
        self.done = true;
    }
}

impl Iterator for PagedRange {
    type Item = Result<(Millis, u64, Slice)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page.is_empty() && !self.done {
            self.fill();
        }
        self.page.pop_front()
    }
}
