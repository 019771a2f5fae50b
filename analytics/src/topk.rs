//! A bounded top-k counter (Space-Saving, Metwally et al. 2005).
//!
//! Keeps at most `k` values with counts. A value already kept is counted exactly from the
//! moment it entered; a new value, when the table is full, replaces the value with the
//! smallest count and inherits that count plus one (its `error` records the inherited
//! part). So while at most `k` distinct values have been seen, every count is exact; after
//! that, every value whose true count exceeds `total / k` is kept, and each kept count
//! overestimates by at most its `error`.

use serde::{Deserialize, Serialize};

/// One kept value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopEntry {
    /// The value.
    pub value: String,
    /// Its estimated count (exact while no value has been evicted).
    pub count: u64,
    /// How much of `count` may belong to evicted values.
    pub error: u64,
}

/// A Space-Saving table of at most `k` values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopK {
    k: usize,
    entries: Vec<TopEntry>,
}

impl TopK {
    /// An empty table keeping at most `k` values (at least 1).
    pub fn new(k: usize) -> Self {
        Self {
            k: k.max(1),
            entries: Vec::new(),
        }
    }

    /// Count one occurrence of `value`. Allocates only when `value` enters the table.
    /// O(k) comparisons; k is small (20 in [`crate::KeyIndex`]).
    pub fn add(&mut self, value: &str) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.value == value) {
            e.count += 1;
            return;
        }
        if self.entries.len() < self.k {
            self.entries.push(TopEntry {
                value: value.to_string(),
                count: 1,
                error: 0,
            });
            return;
        }
        let min = self
            .entries
            .iter_mut()
            .min_by_key(|e| e.count)
            .expect("k >= 1 so a full table is not empty");
        min.error = min.count;
        min.count += 1;
        min.value.clear();
        min.value.push_str(value);
    }

    /// The kept values, highest count first (ties by value).
    pub fn top(&self) -> Vec<&TopEntry> {
        let mut v: Vec<&TopEntry> = self.entries.iter().collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        v
    }

    /// How many values are kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing has been counted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_while_few_values() {
        let mut t = TopK::new(3);
        for v in ["a", "b", "a", "c", "a", "b"] {
            t.add(v);
        }
        let top: Vec<(&str, u64, u64)> = t
            .top()
            .iter()
            .map(|e| (e.value.as_str(), e.count, e.error))
            .collect();
        assert_eq!(top, vec![("a", 3, 0), ("b", 2, 0), ("c", 1, 0)]);
    }

    #[test]
    fn heavy_hitter_survives_many_rare_values() {
        let mut t = TopK::new(4);
        for i in 0..1000 {
            t.add("hot");
            t.add(&format!("rare{i}"));
        }
        assert_eq!(t.len(), 4);
        let top = t.top();
        assert_eq!(top[0].value, "hot");
        assert!(top[0].count >= 1000 && top[0].count - top[0].error <= 1000);
    }
}
