//! A group key stored compactly: 16 bytes, inline for small keys.
//!
//! A key's parts (the GROUP BY values of its first event) are encoded as bytes, one tagged
//! part after another, that give back exactly the JSON values they came from: integers
//! keep their JSON integer kind, floats their bits, strings their bytes. Keys whose
//! encoding fits in [`INLINE`] bytes (one or two integers, a short string) live inside the
//! key table's entry, so confirming a hit reads no other memory; longer ones sit in one
//! heap block; keys with an array or object part keep their JSON values on the heap.
//!
//! Equality is that of [`Val`] (the engine's comparison: `1` and `1.0` are one key), and
//! the hash is [`StableHasher::val`] over the parts, exactly as [`crate::shard::key_of`]
//! hashes an event's values.

use serde_json::{Number, Value};
use smallvec::SmallVec;

use crate::expr::Val;
use crate::hash::StableHasher;
use crate::shard::KeyPart;

/// Bytes of encoding kept inline.
pub const INLINE: usize = 14;

const NULL: u8 = 0x00;
const FALSE: u8 = 0x01;
const TRUE: u8 = 0x02;
/// Non-negative JSON integer; the low nibble is the number of little-endian bytes.
const POS: u8 = 0x10;
/// Negative JSON integer, stored as `!i`; the low nibble is the number of bytes.
const NEG: u8 = 0x20;
/// JSON float: eight bytes of bits.
const FLOAT: u8 = 0x30;
/// String: LEB128 length, then the bytes.
const STR: u8 = 0x40;

/// A stored group key (see the module docs).
#[derive(Debug, Clone)]
pub enum Key {
    /// Encoded parts, inline.
    Inline {
        /// Bytes of `bytes` in use.
        len: u8,
        /// The encoding.
        bytes: [u8; INLINE],
    },
    /// Encoded parts too long to keep inline, or parts that have no encoding.
    Heap(Box<HeapKey>),
}

/// The heap form of a [`Key`].
#[derive(Debug, Clone)]
pub enum HeapKey {
    /// Encoded parts.
    Bytes(Box<[u8]>),
    /// Parts with an array or object among them, as JSON.
    Values(Box<[Value]>),
}

/// One decoded part: a [`Val`] with strings as bytes (they were encoded from a `str`).
#[derive(Debug, Clone, Copy)]
enum Part<'a> {
    Null,
    Bool(bool),
    Pos(u64),
    Neg(i64),
    Float(f64),
    Str(&'a [u8]),
}

impl Part<'_> {
    #[inline]
    fn num(self) -> Option<f64> {
        match self {
            Part::Pos(u) => Some(u as f64),
            Part::Neg(i) => Some(i as f64),
            Part::Float(f) => Some(f),
            _ => None,
        }
    }

    /// Whether this part equals `v` as [`Val`]s.
    #[inline]
    fn eq_val(self, v: Val<'_>) -> bool {
        match (self, v) {
            (Part::Null, Val::Null) => true,
            (Part::Bool(a), Val::Bool(b)) => a == b,
            (Part::Str(a), Val::Str(b)) => a == b.as_bytes(),
            (p, Val::Num(x)) => p.num() == Some(x),
            _ => false,
        }
    }

    fn val(self) -> Val<'static> {
        match self {
            Part::Null => Val::Null,
            Part::Bool(b) => Val::Bool(b),
            Part::Str(_) => unreachable!("strings are borrowed"),
            p => Val::Num(p.num().unwrap_or(0.0)),
        }
    }

    fn to_value(self) -> Value {
        match self {
            Part::Null => Value::Null,
            Part::Bool(b) => Value::Bool(b),
            Part::Pos(u) => Value::from(u),
            Part::Neg(i) => Value::from(i),
            Part::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
            Part::Str(s) => Value::String(String::from_utf8_lossy(s).into_owned()),
        }
    }
}

/// Decode the part at the front of `b`, returning it and the rest.
#[inline]
fn next(b: &[u8]) -> Option<(Part<'_>, &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let n = (tag & 0x0f) as usize;
    // A byte loop: a variable-length copy would be a call to memcpy.
    let word = |rest: &[u8], n: usize| {
        rest[..n]
            .iter()
            .rev()
            .fold(0u64, |w, &b| (w << 8) | u64::from(b))
    };
    Some(match tag & 0xf0 {
        0x00 => match tag {
            NULL => (Part::Null, rest),
            FALSE => (Part::Bool(false), rest),
            _ => (Part::Bool(true), rest),
        },
        POS => (Part::Pos(word(rest, n)), &rest[n..]),
        NEG => (Part::Neg(!(word(rest, n) as i64)), &rest[n..]),
        FLOAT => (Part::Float(f64::from_bits(word(rest, 8))), &rest[8..]),
        _ => {
            let (mut len, mut i) = (0usize, 0);
            loop {
                let x = rest[i];
                len |= ((x & 0x7f) as usize) << (7 * i);
                i += 1;
                if x < 0x80 {
                    break;
                }
            }
            let s = &rest[i..i + len];
            (Part::Str(s), &rest[i + len..])
        }
    })
}

fn parts(mut b: &[u8]) -> impl Iterator<Item = Part<'_>> {
    std::iter::from_fn(move || {
        let (p, rest) = next(b)?;
        b = rest;
        Some(p)
    })
}

/// Append the encoding of one value; false if it has none (array, object).
fn encode(out: &mut SmallVec<[u8; 32]>, v: &Value) -> bool {
    let int = |out: &mut SmallVec<[u8; 32]>, tag: u8, w: u64| {
        let n = 8 - (w.leading_zeros() / 8) as usize;
        out.push(tag | n as u8);
        out.extend_from_slice(&w.to_le_bytes()[..n]);
    };
    match v {
        Value::Null => out.push(NULL),
        Value::Bool(b) => out.push(if *b { TRUE } else { FALSE }),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                int(out, POS, u);
            } else if let Some(i) = n.as_i64() {
                int(out, NEG, !i as u64);
            } else {
                out.push(FLOAT);
                out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_bits().to_le_bytes());
            }
        }
        Value::String(s) => encode_str(out, s),
        Value::Array(_) | Value::Object(_) => return false,
    }
    true
}

fn encode_str(out: &mut SmallVec<[u8; 32]>, s: &str) {
    out.push(STR);
    let mut len = s.len();
    loop {
        let x = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(x);
            break;
        }
        out.push(x | 0x80);
    }
    out.extend_from_slice(s.as_bytes());
}

impl Key {
    /// The key of an event's group-key values (missing fields are null).
    pub fn of_parts(vals: &[KeyPart<'_>]) -> Self {
        let mut b = SmallVec::<[u8; 32]>::new();
        for v in vals {
            let ok = match v {
                KeyPart::Field(Some(v)) => encode(&mut b, v),
                KeyPart::Field(None) => {
                    b.push(NULL);
                    true
                }
                KeyPart::Type(t) => {
                    encode_str(&mut b, t);
                    true
                }
            };
            if !ok {
                return Key::Heap(Box::new(HeapKey::Values(
                    vals.iter().map(|v| v.to_value()).collect(),
                )));
            }
        }
        Self::from_bytes(&b)
    }

    /// The key of stored JSON parts.
    pub fn of_values(vals: &[Value]) -> Self {
        let mut b = SmallVec::<[u8; 32]>::new();
        for v in vals {
            if !encode(&mut b, v) {
                return Key::Heap(Box::new(HeapKey::Values(vals.into())));
            }
        }
        Self::from_bytes(&b)
    }

    fn from_bytes(b: &[u8]) -> Self {
        if b.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..b.len()].copy_from_slice(b);
            Key::Inline {
                len: b.len() as u8,
                bytes,
            }
        } else {
            Key::Heap(Box::new(HeapKey::Bytes(b.into())))
        }
    }

    #[inline]
    fn encoded(&self) -> Option<&[u8]> {
        match self {
            Key::Inline { len, bytes } => Some(&bytes[..*len as usize]),
            Key::Heap(h) => match &**h {
                HeapKey::Bytes(b) => Some(b),
                HeapKey::Values(_) => None,
            },
        }
    }

    /// Whether this key equals an event's group-key values (as [`Val`]s).
    #[inline]
    pub fn eq_parts(&self, vals: &[KeyPart<'_>]) -> bool {
        match self.encoded() {
            Some(mut b) => {
                for v in vals {
                    match next(b) {
                        Some((p, rest)) if p.eq_val(v.val()) => b = rest,
                        _ => return false,
                    }
                }
                b.is_empty()
            }
            None => self.with_values(|ps| {
                ps.len() == vals.len() && ps.iter().zip(vals).all(|(p, v)| Val::of(p) == v.val())
            }),
        }
    }

    fn with_values<R>(&self, f: impl FnOnce(&[Value]) -> R) -> R {
        match self {
            Key::Heap(h) => match &**h {
                HeapKey::Values(v) => f(v),
                HeapKey::Bytes(_) => f(&self.values()),
            },
            Key::Inline { .. } => f(&self.values()),
        }
    }

    /// The parts as the JSON values they were encoded from.
    pub fn values(&self) -> SmallVec<[Value; 4]> {
        match self.encoded() {
            Some(b) => parts(b).map(Part::to_value).collect(),
            None => match self {
                Key::Heap(h) => match &**h {
                    HeapKey::Values(v) => v.iter().cloned().collect(),
                    HeapKey::Bytes(_) => SmallVec::new(),
                },
                Key::Inline { .. } => SmallVec::new(),
            },
        }
    }

    /// The stable hash of the parts (equal to [`crate::shard::key_of`]'s for equal values).
    pub fn hash(&self) -> u64 {
        let mut h = StableHasher::default();
        match self.encoded() {
            Some(b) => {
                for p in parts(b) {
                    match p {
                        Part::Str(s) => h.val(Val::Str(std::str::from_utf8(s).unwrap_or(""))),
                        p => h.val(p.val()),
                    }
                }
            }
            None => self.with_values(|ps| ps.iter().for_each(|p| h.val(Val::of(p)))),
        }
        h.finish()
    }

    /// Heap bytes owned (allocator overhead not included).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Key::Inline { .. } => 0,
            Key::Heap(h) => {
                std::mem::size_of::<HeapKey>()
                    + match &**h {
                        HeapKey::Bytes(b) => b.len(),
                        HeapKey::Values(v) => {
                            v.len() * std::mem::size_of::<Value>()
                                + v.iter().map(|x| x.to_string().len()).sum::<usize>()
                        }
                    }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash_val;
    use serde_json::json;

    fn hash_of(vals: &[Value]) -> u64 {
        let mut h = StableHasher::default();
        vals.iter().for_each(|v| h.val(Val::of(v)));
        h.finish()
    }

    #[test]
    fn key_is_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Key>(), 16);
    }

    #[test]
    fn parts_come_back_exactly_and_hash_as_values() {
        let long = "x".repeat(300);
        let cases = [
            vec![json!(0)],
            vec![json!(7), json!("ab")],
            vec![json!(u64::MAX), json!(-1), json!(i64::MIN)],
            vec![json!(1.0), json!(-0.0), json!(2.5e300)],
            vec![json!(null), json!(true), json!(false)],
            vec![json!(long), json!("é✓")],
            vec![json!([1, 2]), json!("a")],
            vec![json!({"a": 1})],
            vec![],
        ];
        for vals in cases {
            let k = Key::of_values(&vals);
            assert_eq!(k.values().to_vec(), vals);
            assert_eq!(k.hash(), hash_of(&vals), "{vals:?}");
            let parts: Vec<KeyPart<'_>> = vals.iter().map(|v| KeyPart::Field(Some(v))).collect();
            assert!(k.eq_parts(&parts), "{vals:?}");
            let k2 = Key::of_parts(&parts);
            assert_eq!(k2.values().to_vec(), vals);
        }
        assert_eq!(hash_val(Val::Num(3.0)), Key::of_values(&[json!(3)]).hash());
    }

    #[test]
    fn equality_is_val_equality() {
        let one = json!(1);
        let one_f = json!(1.0);
        let s = json!("1");
        let k = Key::of_values(std::slice::from_ref(&one));
        assert!(k.eq_parts(&[KeyPart::Field(Some(&one_f))]));
        assert!(!k.eq_parts(&[KeyPart::Field(Some(&s))]));
        assert!(!k.eq_parts(&[KeyPart::Field(Some(&one)), KeyPart::Field(None)]));
        assert!(!k.eq_parts(&[]));
        let t = Key::of_parts(&[KeyPart::Type("order")]);
        assert_eq!(t.values().to_vec(), vec![json!("order")]);
        assert!(t.eq_parts(&[KeyPart::Field(Some(&json!("order")))]));
        let n = Key::of_parts(&[KeyPart::Field(None)]);
        assert!(n.eq_parts(&[KeyPart::Field(Some(&Value::Null))]));
        let z = Key::of_values(&[json!(0)]);
        assert!(z.eq_parts(&[KeyPart::Field(Some(&json!(-0.0)))]));
    }
}
