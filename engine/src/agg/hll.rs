//! HyperLogLog with 2^12 registers: standard error 1.04/sqrt(4096) ≈ 1.6%.
//!
//! Mergeable (register-wise max), so bucket sketches combine into window sketches.

use serde::{Deserialize, Serialize};

/// Register-index bits.
const P: u32 = 12;
/// Register count.
const M: usize = 1 << P;

/// The stated relative standard error of [`Hll::estimate`].
pub const HLL_STD_ERROR: f64 = 0.0163;

/// A HyperLogLog sketch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hll {
    regs: Vec<u8>,
}

impl Default for Hll {
    fn default() -> Self {
        Self { regs: vec![0; M] }
    }
}

impl Hll {
    /// Add a 64-bit hash of a value.
    #[inline]
    pub fn insert_hash(&mut self, h: u64) {
        let idx = (h >> (64 - P)) as usize;
        let w = (h << P) | (1 << (P - 1));
        let rho = w.leading_zeros() as u8 + 1;
        if self.regs[idx] < rho {
            self.regs[idx] = rho;
        }
    }

    /// Merge another sketch in.
    pub fn merge(&mut self, o: &Hll) {
        for (a, b) in self.regs.iter_mut().zip(&o.regs) {
            *a = (*a).max(*b);
        }
    }

    /// Estimated number of distinct values.
    pub fn estimate(&self) -> f64 {
        let m = M as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let mut sum = 0.0;
        let mut zeros = 0usize;
        for &r in &self.regs {
            sum += 2f64.powi(-(r as i32));
            zeros += (r == 0) as usize;
        }
        let e = alpha * m * m / sum;
        if e <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            e
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::Val;
    use crate::hash::hash_val;

    #[test]
    fn estimate_is_within_error_and_merge_is_union() {
        for n in [10usize, 1000, 50_000] {
            let mut a = Hll::default();
            let mut b = Hll::default();
            for i in 0..n {
                let h = hash_val(Val::Num(i as f64));
                if i % 2 == 0 {
                    a.insert_hash(h)
                } else {
                    b.insert_hash(h)
                }
            }
            a.merge(&b);
            let e = a.estimate();
            let err = (e - n as f64).abs() / n as f64;
            assert!(err < 4.0 * HLL_STD_ERROR, "n={n} estimate={e}");
        }
    }
}
