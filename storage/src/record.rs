//! Log records and their encodings.
//!
//! An event is stored as a small hand-written binary envelope (version, flags, ts,
//! samplerate, type, account, project, session) followed by the fields as MessagePack
//! (self-describing, so `serde_json::Value` round-trips, but without JSON's text escaping and
//! number parsing). Index keys are built so that byte order equals (ts, seq) order within one
//! (account, project[, type | session]) prefix: strings are length-prefixed (prefix-free) and
//! numbers are big-endian, with the sign bit of `ts` flipped.

use serde_json::{Map, Value};
use weir_core::{Event, Millis};

use crate::{Result, StorageError};

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// The event id, assigned by the server, increasing.
    pub seq: u64,
    /// The event.
    pub event: Event,
    /// Rejected by a rule in add_and_check: kept for the record, skipped by replay and absent
    /// from every index and scan.
    pub denied: bool,
}

/// First byte of every encoded record; bump when the layout changes.
const VERSION: u8 = 1;
const FLAG_DENIED: u8 = 1;
const FLAG_SESSION: u8 = 2;

/// Encode a record's value (everything but its seq, which is the key).
pub fn encode_record(rec: &LogRecord) -> Result<Vec<u8>> {
    let e = &rec.event;
    let mut out = Vec::with_capacity(64 + e.kind.len() + e.fields.len() * 16);
    out.push(VERSION);
    let mut flags = 0;
    if rec.denied {
        flags |= FLAG_DENIED;
    }
    if e.session_id.is_some() {
        flags |= FLAG_SESSION;
    }
    out.push(flags);
    out.extend_from_slice(&e.ts.to_le_bytes());
    out.extend_from_slice(&e.samplerate.to_le_bytes());
    put_str(&mut out, &e.kind);
    put_str(&mut out, &e.account);
    put_str(&mut out, &e.project);
    if let Some(s) = &e.session_id {
        put_str(&mut out, s);
    }
    rmp_serde::encode::write(&mut out, &e.fields)
        .map_err(|e| StorageError::Encode(e.to_string()))?;
    Ok(out)
}

/// Decode a record value written by [`encode_record`].
pub fn decode_record(seq: u64, bytes: &[u8]) -> Result<LogRecord> {
    let mut r = Reader { buf: bytes, seq };
    let version = r.u8()?;
    if version != VERSION {
        return Err(r.corrupt(&format!("unknown record version {version}")));
    }
    let flags = r.u8()?;
    let ts = i64::from_le_bytes(r.array()?);
    let samplerate = f64::from_le_bytes(r.array()?);
    let kind = r.string()?;
    let account = r.string()?;
    let project = r.string()?;
    let session_id = if flags & FLAG_SESSION != 0 {
        Some(r.string()?)
    } else {
        None
    };
    let fields: Map<String, Value> =
        rmp_serde::from_slice(r.buf).map_err(|e| r.corrupt(&e.to_string()))?;
    Ok(LogRecord {
        seq,
        denied: flags & FLAG_DENIED != 0,
        event: Event {
            kind,
            ts,
            fields,
            session_id,
            samplerate,
            account,
            project,
        },
    })
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    buf: &'a [u8],
    seq: u64,
}

impl<'a> Reader<'a> {
    fn corrupt(&self, why: &str) -> StorageError {
        StorageError::Corrupt(format!("log record {}: {why}", self.seq))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(self.corrupt("truncated"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.corrupt("varint too long"))
    }

    fn string(&mut self) -> Result<String> {
        let n = self.varint()? as usize;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.corrupt("string is not UTF-8"))
    }
}

/// The log key of `seq`: big-endian, so byte order is seq order.
pub fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Read a seq back from the first 8 bytes of a key.
pub fn seq_from_key(key: &[u8]) -> Result<u64> {
    let a: [u8; 8] = key
        .get(..8)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| StorageError::Corrupt("key shorter than 8 bytes".into()))?;
    Ok(u64::from_be_bytes(a))
}

/// `ts` as 8 bytes whose unsigned byte order is the signed order of `ts`.
pub fn ts_bytes(ts: Millis) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

/// The inverse of [`ts_bytes`].
pub fn ts_from_bytes(b: [u8; 8]) -> Millis {
    (u64::from_be_bytes(b) ^ (1 << 63)) as Millis
}

/// An index key prefix made of length-prefixed strings: unambiguous, so no prefix of one
/// (account, project, x) tuple is the prefix of another.
pub fn index_prefix(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum::<usize>() + 16);
    for p in parts {
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(p.as_bytes());
    }
    out
}

/// A full index key: `prefix` then ts then seq.
pub fn index_key(prefix: &[u8], ts: Millis, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 16);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&ts_bytes(ts));
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The (ts, seq) at the end of an index key.
pub fn ts_seq_from_index_key(key: &[u8]) -> Result<(Millis, u64)> {
    if key.len() < 16 {
        return Err(StorageError::Corrupt("index key too short".into()));
    }
    let tail = &key[key.len() - 16..];
    let ts = ts_from_bytes(tail[..8].try_into().expect("8 bytes"));
    let seq = u64::from_be_bytes(tail[8..].try_into().expect("8 bytes"));
    Ok((ts, seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(session: Option<&str>, denied: bool) -> LogRecord {
        let fields = json!({"seller": "x", "amount": 10.5, "n": -3, "big": u64::MAX,
                            "nested": {"a": [1, "two", null, true]}, "": "empty key"});
        let mut event = Event::new("order", -1234, fields.as_object().unwrap().clone());
        event.session_id = session.map(str::to_string);
        event.samplerate = 0.25;
        event.account = "acme".into();
        event.project = "shop".into();
        LogRecord {
            seq: 42,
            event,
            denied,
        }
    }

    #[test]
    fn record_round_trips() {
        for (session, denied) in [(None, false), (Some("s1"), true), (Some(""), false)] {
            let rec = sample(session, denied);
            let bytes = encode_record(&rec).unwrap();
            assert_eq!(decode_record(42, &bytes).unwrap(), rec);
        }
    }

    #[test]
    fn truncated_and_unknown_version_are_corrupt() {
        let bytes = encode_record(&sample(Some("s"), false)).unwrap();
        for cut in [0, 1, 5, 20, 30] {
            assert!(matches!(
                decode_record(1, &bytes[..cut]),
                Err(StorageError::Corrupt(_))
            ));
        }
        let mut bad = bytes.clone();
        bad[0] = 99;
        assert!(decode_record(1, &bad)
            .unwrap_err()
            .to_string()
            .contains("version 99"));
    }

    #[test]
    fn ts_bytes_preserve_order() {
        let ts = [i64::MIN, -5, -1, 0, 1, 1_700_000_000_000, i64::MAX];
        for w in ts.windows(2) {
            assert!(ts_bytes(w[0]) < ts_bytes(w[1]), "{} < {}", w[0], w[1]);
        }
        for t in ts {
            assert_eq!(ts_from_bytes(ts_bytes(t)), t);
        }
    }

    #[test]
    fn index_keys_order_by_ts_then_seq_and_round_trip() {
        let p = index_prefix(&["a", "p", "t"]);
        let k1 = index_key(&p, -10, 9);
        let k2 = index_key(&p, 5, 1);
        let k3 = index_key(&p, 5, 2);
        assert!(k1 < k2 && k2 < k3);
        assert_eq!(ts_seq_from_index_key(&k3).unwrap(), (5, 2));
        // "ab","c" and "a","bc" must not share a prefix.
        assert_ne!(index_prefix(&["ab", "c"]), index_prefix(&["a", "bc"]));
    }
}
