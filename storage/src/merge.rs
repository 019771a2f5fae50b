//! Merging several streams, each ordered by (ts, seq), into one stream in (ts, seq) order.
//!
//! A query over several event types reads one index range per type; this interleaves them.
//! The number of streams is the number of types asked for, so a linear pick of the smallest
//! head is cheaper than a heap.

use weir_core::Millis;

use crate::Result;

/// An item of a merged stream: its (ts, seq) sort key and a payload.
pub type Keyed<T> = (Millis, u64, T);

/// Merges iterators that are each ordered by (ts, seq). An error from any input is passed on
/// at once (and that input is then dropped).
pub struct MergeByTsSeq<I, T> {
    inputs: Vec<I>,
    heads: Vec<Option<Result<Keyed<T>>>>,
    primed: bool,
}

impl<I, T> MergeByTsSeq<I, T>
where
    I: Iterator<Item = Result<Keyed<T>>>,
{
    /// Merge `inputs`.
    pub fn new(inputs: Vec<I>) -> Self {
        let heads = inputs.iter().map(|_| None).collect();
        Self {
            inputs,
            heads,
            primed: false,
        }
    }
}

impl<I, T> Iterator for MergeByTsSeq<I, T>
where
    I: Iterator<Item = Result<Keyed<T>>>,
{
    type Item = Result<Keyed<T>>;

    fn next(&mut self) -> Option<Self::Item> {
        if !self.primed {
            for (h, it) in self.heads.iter_mut().zip(self.inputs.iter_mut()) {
                *h = it.next();
            }
            self.primed = true;
        }
        let mut best: Option<usize> = None;
        for (i, h) in self.heads.iter().enumerate() {
            match h {
                None => {}
                Some(Err(_)) => {
                    best = Some(i);
                    break;
                }
                Some(Ok((ts, seq, _))) => {
                    let better = match best.and_then(|b| self.heads[b].as_ref()) {
                        Some(Ok((bts, bseq, _))) => (ts, seq) < (bts, bseq),
                        _ => true,
                    };
                    if better {
                        best = Some(i);
                    }
                }
            }
        }
        let i = best?;
        let item = self.heads[i].take();
        if matches!(item, Some(Ok(_))) {
            self.heads[i] = self.inputs[i].next();
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StorageError;

    fn stream(v: &[(Millis, u64)]) -> std::vec::IntoIter<Result<Keyed<()>>> {
        v.iter()
            .map(|&(t, s)| Ok((t, s, ())))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn merges_in_ts_seq_order() {
        let m = MergeByTsSeq::new(vec![
            stream(&[(1, 1), (5, 4), (9, 9)]),
            stream(&[]),
            stream(&[(1, 0), (5, 3), (5, 7), (10, 2)]),
        ]);
        let got: Vec<_> = m.map(|r| r.map(|(t, s, _)| (t, s)).unwrap()).collect();
        assert_eq!(
            got,
            vec![(1, 0), (1, 1), (5, 3), (5, 4), (5, 7), (9, 9), (10, 2)]
        );
    }

    #[test]
    fn passes_errors_on() {
        let bad: Vec<Result<Keyed<()>>> = vec![Err(StorageError::Corrupt("x".into()))];
        let mut m = MergeByTsSeq::new(vec![stream(&[(1, 1)]), bad.into_iter()]);
        let mut saw_err = false;
        for item in m.by_ref() {
            saw_err |= item.is_err();
        }
        assert!(saw_err);
    }
}
