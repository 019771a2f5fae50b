//! A small deterministic hash for group keys and distinct values.
//!
//! Shard placement must not change between runs (checkpoints store per-shard state and the
//! per-shard watermark decides lateness), so the hash is fixed: a multiply-rotate mix per
//! word with a murmur finaliser, not a randomly seeded hasher.

use crate::expr::Val;

/// A fixed-seed 64-bit hasher.
#[derive(Debug, Clone, Copy)]
pub struct StableHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl Default for StableHasher {
    fn default() -> Self {
        Self(0x243f_6a88_85a3_08d3)
    }
}

impl StableHasher {
    /// Mix one word.
    #[inline]
    pub fn word(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
    }

    /// Mix bytes, eight at a time, then their length.
    #[inline]
    pub fn bytes(&mut self, b: &[u8]) {
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(w));
        }
        self.word(b.len() as u64);
    }

    /// Mix a value: equal values (by [`Val`] equality) hash equal.
    #[inline]
    pub fn val(&mut self, v: Val<'_>) {
        match v {
            Val::Null => self.word(1),
            Val::Bool(b) => self.word(2 + b as u64),
            Val::Num(x) => {
                self.word(4);
                self.word((x + 0.0).to_bits());
            }
            Val::Str(s) => {
                self.word(5);
                self.bytes(s.as_bytes());
            }
            Val::Other(o) => {
                self.word(6);
                self.bytes(o.to_string().as_bytes());
            }
        }
    }

    /// The final hash.
    #[inline]
    pub fn finish(self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// Hash one value.
pub fn hash_val(v: Val<'_>) -> u64 {
    let mut h = StableHasher::default();
    h.val(v);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_hash_equal_and_types_differ() {
        assert_eq!(hash_val(Val::Num(1.0)), hash_val(Val::Num(1.0)));
        assert_eq!(hash_val(Val::Num(0.0)), hash_val(Val::Num(-0.0)));
        assert_ne!(hash_val(Val::Num(1.0)), hash_val(Val::Str("1")));
        assert_ne!(hash_val(Val::Str("ab")), hash_val(Val::Str("ba")));
    }
}
