//! A compact binary encoding of `serde_json` values, written for speed.
//!
//! Every value starts with a tag byte; lengths and integers are LEB128 varints:
//!
//! | tag | value | payload |
//! |---|---|---|
//! | 0 | `null` | — |
//! | 1 / 2 | `false` / `true` | — |
//! | 3 | integer ≥ 0 | varint `n` |
//! | 4 | integer < 0 | varint `-(n + 1)` |
//! | 5 | float | 8 bytes, little-endian IEEE 754 |
//! | 6 | string | varint byte length, UTF-8 bytes |
//! | 7 | array | varint count, values |
//! | 8 | object | varint count, (string key, value) pairs |
//!
//! An object's fields are written with [`put_object`] (count then pairs) and read back with
//! [`Reader::object`], which builds the `Map` directly, with no intermediate tree. Decoding
//! checks every length against the bytes left, rejects unknown tags, non-UTF-8 strings,
//! non-finite floats and nesting deeper than [`MAX_DEPTH`], so corrupt bytes give an error,
//! never a panic or a huge allocation.

use serde_json::{Map, Number, Value};

/// Deepest nesting of arrays and objects accepted (serde_json's parser stops at 128).
pub const MAX_DEPTH: usize = 256;

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const POS_INT: u8 = 3;
const NEG_INT: u8 = 4;
const FLOAT: u8 = 5;
const STRING: u8 = 6;
const ARRAY: u8 = 7;
const OBJECT: u8 = 8;

/// Append a LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Append a length-prefixed string.
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Append an object's fields: the count, then each key and value. `Err` names the problem
/// when the value nests deeper than [`MAX_DEPTH`].
pub fn put_object(out: &mut Vec<u8>, map: &Map<String, Value>) -> Result<(), String> {
    put_fields(out, map, 0)
}

fn put_fields(out: &mut Vec<u8>, map: &Map<String, Value>, depth: usize) -> Result<(), String> {
    put_varint(out, map.len() as u64);
    for (k, v) in map {
        put_str(out, k);
        put_value(out, v, depth)?;
    }
    Ok(())
}

/// Append one value.
pub fn put_value(out: &mut Vec<u8>, v: &Value, depth: usize) -> Result<(), String> {
    match v {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push(POS_INT);
                put_varint(out, u);
            } else if let Some(i) = n.as_i64() {
                // i < 0 here, so -(i + 1) = !i is in 0..=i64::MAX.
                out.push(NEG_INT);
                put_varint(out, !i as u64);
            } else {
                let f = n
                    .as_f64()
                    .ok_or("a number that is not an integer or a float")?;
                out.push(FLOAT);
                out.extend_from_slice(&f.to_le_bytes());
            }
        }
        Value::String(s) => {
            out.push(STRING);
            put_str(out, s);
        }
        Value::Array(items) => {
            if depth >= MAX_DEPTH {
                return Err(format!("value nests deeper than {MAX_DEPTH} levels"));
            }
            out.push(ARRAY);
            put_varint(out, items.len() as u64);
            for item in items {
                put_value(out, item, depth + 1)?;
            }
        }
        Value::Object(map) => {
            if depth >= MAX_DEPTH {
                return Err(format!("value nests deeper than {MAX_DEPTH} levels"));
            }
            out.push(OBJECT);
            put_fields(out, map, depth + 1)?;
        }
    }
    Ok(())
}

/// A cursor over encoded bytes. Errors are plain descriptions; the caller adds context.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Read from the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }

    /// Take the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err("truncated".into());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// Take one byte.
    pub fn u8(&mut self) -> Result<u8, String> {
        let (&b, rest) = self.buf.split_first().ok_or("truncated")?;
        self.buf = rest;
        Ok(b)
    }

    /// Take `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// Take a LEB128 varint.
    pub fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    /// A varint used as a count or length: it cannot exceed the bytes left (every item takes
    /// at least one byte), which bounds allocations on corrupt input.
    fn len(&mut self) -> Result<usize, String> {
        let n = self.varint()?;
        if n > self.buf.len() as u64 {
            return Err("length past the end".into());
        }
        Ok(n as usize)
    }

    /// Take a length-prefixed string.
    pub fn string(&mut self) -> Result<String, String> {
        let n = self.len()?;
        let bytes = self.take(n)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err("string is not UTF-8".into()),
        }
    }

    /// Take an object's fields written by [`put_object`].
    pub fn object(&mut self) -> Result<Map<String, Value>, String> {
        self.fields(0)
    }

    fn fields(&mut self, depth: usize) -> Result<Map<String, Value>, String> {
        let n = self.len()?;
        let mut map = Map::new();
        for _ in 0..n {
            let k = self.string()?;
            let v = self.value(depth)?;
            map.insert(k, v);
        }
        Ok(map)
    }

    /// Take one value written by [`put_value`].
    pub fn value(&mut self, depth: usize) -> Result<Value, String> {
        Ok(match self.u8()? {
            NULL => Value::Null,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            POS_INT => Value::Number(self.varint()?.into()),
            NEG_INT => {
                let m = self.varint()?;
                if m > i64::MAX as u64 {
                    return Err("negative integer out of range".into());
                }
                Value::Number((!(m as i64)).into())
            }
            FLOAT => {
                let f = f64::from_le_bytes(self.array()?);
                Value::Number(Number::from_f64(f).ok_or("float is not finite")?)
            }
            STRING => Value::String(self.string()?),
            ARRAY => {
                if depth >= MAX_DEPTH {
                    return Err("nested too deep".into());
                }
                let n = self.len()?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            OBJECT => {
                if depth >= MAX_DEPTH {
                    return Err("nested too deep".into());
                }
                Value::Object(self.fields(depth + 1)?)
            }
            tag => return Err(format!("unknown value tag {tag}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(v: &Value) -> Value {
        let mut out = Vec::new();
        put_value(&mut out, v, 0).unwrap();
        let mut r = Reader::new(&out);
        let back = r.value(0).unwrap();
        assert!(r.rest().is_empty(), "bytes left over for {v}");
        back
    }

    #[test]
    fn every_json_type_round_trips() {
        let cases = [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(1),
            json!(127),
            json!(128),
            json!(u64::MAX),
            json!(-1),
            json!(-128),
            json!(i64::MIN),
            json!(i64::MAX),
            json!(0.5),
            json!(-0.0),
            json!(1e300),
            json!(-2.5e-300),
            json!(f64::MAX),
            json!(f64::MIN_POSITIVE),
            json!(""),
            json!("plain"),
            json!("unicode: héllo wörld 日本語 🎉 \u{0} \n\t\""),
            json!([]),
            json!({}),
            json!([1, "two", null, true, 3.25, [[]], {"a": {}}]),
            json!({"": "empty key", "ключ": [-7, {"x": {"y": {"z": [0.1]}}}]}),
        ];
        for v in cases {
            assert_eq!(round_trip(&v), v, "{v}");
        }
    }

    #[test]
    fn numbers_keep_their_kind() {
        for v in [json!(3), json!(-3), json!(3.0)] {
            let back = round_trip(&v);
            assert_eq!(back.is_u64(), v.is_u64(), "{v}");
            assert_eq!(back.is_i64(), v.is_i64(), "{v}");
            assert_eq!(back.is_f64(), v.is_f64(), "{v}");
        }
    }

    #[test]
    fn objects_round_trip_with_many_fields() {
        let mut m = Map::new();
        for i in 0..300 {
            m.insert(format!("k{i}"), json!(i * 7 - 1000));
        }
        let mut out = Vec::new();
        put_object(&mut out, &m).unwrap();
        assert_eq!(Reader::new(&out).object().unwrap(), m);
    }

    #[test]
    fn deep_nesting_is_refused_both_ways() {
        let mut v = json!(1);
        for _ in 0..MAX_DEPTH + 1 {
            v = json!([v]);
        }
        let mut out = Vec::new();
        assert!(put_value(&mut out, &v, 0).unwrap_err().contains("deeper"));
        // Hand-made bytes nesting past the limit are rejected, not a stack overflow.
        let mut bytes = [ARRAY, 1].repeat(100_000);
        bytes.push(NULL);
        assert!(Reader::new(&bytes).value(0).is_err());
    }

    #[test]
    fn corrupt_bytes_are_errors() {
        let v = json!({"a": [1, "xyz", 2.5, {"b": null}], "c": -9});
        let mut out = Vec::new();
        put_value(&mut out, &v, 0).unwrap();
        // Every truncation fails.
        for cut in 0..out.len() {
            assert!(Reader::new(&out[..cut]).value(0).is_err(), "cut at {cut}");
        }
        let bad_inputs: [&[u8]; 7] = [
            &[99],                                  // unknown tag
            &[STRING, 2, 0xff, 0xfe],               // not UTF-8
            &[ARRAY, 0xff, 0xff, 0xff, 0xff, 0x0f], // count past the end
            &[
                POS_INT, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
            &[
                NEG_INT, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
            ], // > i64::MAX
            &[FLOAT, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f], // NaN
            &[OBJECT, 1, 1, b'k'],                  // missing value
        ];
        for bad in bad_inputs {
            assert!(Reader::new(bad).value(0).is_err(), "{bad:?}");
        }
    }
}
