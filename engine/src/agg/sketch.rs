//! A mergeable quantile sketch with 1% relative error (DDSketch-style log buckets).
//!
//! A positive value x goes to bucket `ceil(log_gamma(x))` with gamma = (1+a)/(1-a), a = 0.01;
//! the bucket's representative `2·gamma^i/(gamma+1)` is within a relative `a` of every value
//! in the bucket, so any quantile is answered within 1% of the exact value of that rank.
//! Negative values mirror the positive side; zeros are counted apart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The stated relative error of [`Sketch::quantile`].
pub const SKETCH_REL_ERROR: f64 = 0.01;

/// A weighted log-bucket histogram.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sketch {
    pos: BTreeMap<i32, f64>,
    neg: BTreeMap<i32, f64>,
    zero: f64,
    total: f64,
}

fn gamma() -> f64 {
    (1.0 + SKETCH_REL_ERROR) / (1.0 - SKETCH_REL_ERROR)
}

fn index(x: f64) -> i32 {
    (x.ln() / gamma().ln()).ceil() as i32
}

fn value(i: i32) -> f64 {
    let g = gamma();
    2.0 * g.powi(i) / (g + 1.0)
}

impl Sketch {
    /// Add a value with a weight.
    pub fn insert(&mut self, x: f64, w: f64) {
        if !x.is_finite() || w <= 0.0 {
            return;
        }
        if x > 1e-300 {
            *self.pos.entry(index(x)).or_insert(0.0) += w;
        } else if x < -1e-300 {
            *self.neg.entry(index(-x)).or_insert(0.0) += w;
        } else {
            self.zero += w;
        }
        self.total += w;
    }

    /// Merge another sketch in.
    pub fn merge(&mut self, o: &Sketch) {
        for (k, v) in &o.pos {
            *self.pos.entry(*k).or_insert(0.0) += v;
        }
        for (k, v) in &o.neg {
            *self.neg.entry(*k).or_insert(0.0) += v;
        }
        self.zero += o.zero;
        self.total += o.total;
    }

    /// The value at quantile q (0..=1): the value of rank `floor(q·(n−1))` within 1%.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.total <= 0.0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (self.total - 1.0)).floor();
        let mut cum = 0.0;
        for (k, c) in self.neg.iter().rev() {
            cum += c;
            if cum > rank {
                return Some(-value(*k));
            }
        }
        cum += self.zero;
        if cum > rank {
            return Some(0.0);
        }
        for (k, c) in &self.pos {
            cum += c;
            if cum > rank {
                return Some(value(*k));
            }
        }
        self.pos.keys().next_back().map(|k| value(*k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_one_percent() {
        let mut s = Sketch::default();
        let mut vals: Vec<f64> = (1..=1000).map(|i| (i as f64) * 0.37 - 50.0).collect();
        for v in &vals {
            s.insert(*v, 1.0);
        }
        vals.sort_by(f64::total_cmp);
        for q in [0.0, 0.1, 0.5, 0.9, 0.99, 1.0] {
            let exact = vals[(q * (vals.len() - 1) as f64).floor() as usize];
            let got = s.quantile(q).unwrap();
            assert!(
                (got - exact).abs() <= SKETCH_REL_ERROR * exact.abs() + 1e-9,
                "q={q} {got} vs {exact}"
            );
        }
    }
}
