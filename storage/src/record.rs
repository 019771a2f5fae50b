//! Log records and their encodings.
//!
//! An event is stored as a small hand-written binary envelope (version, flags, ts,
//! samplerate, type, account, project, session) followed by the fields in the tagged binary
//! encoding of [`crate::codec`] (self-describing, so `serde_json::Value` round-trips, but
//! without JSON's text escaping and number parsing). Several consecutive records can be
//! encoded as one chunk ([`encode_chunk`]), the unit of the embedded backend's log. Index keys are built so that byte order equals (ts, seq) order within one
//! (account, project[, type | session]) prefix: strings are length-prefixed (prefix-free) and
//! numbers are big-endian, with the sign bit of `ts` flipped.

use weir_core::{Event, Millis};

use crate::codec::{self, put_str, put_varint, Reader};
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

/// First byte of every encoded record and log chunk; bump when the layout changes.
/// Version 1 held the fields as MessagePack; version 2 uses [`crate::codec`].
pub const VERSION: u8 = 2;
const FLAG_DENIED: u8 = 1;
const FLAG_SESSION: u8 = 2;
/// The samplerate is 1 and not written.
const FLAG_RATE_ONE: u8 = 4;

/// Encode a record's value (everything but its seq, which is the key).
pub fn encode_record(rec: &LogRecord) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(record_size_hint(rec));
    out.push(VERSION);
    put_body(&mut out, rec)?;
    Ok(out)
}

/// A guess at the encoded size of `rec`, for buffer capacity.
fn record_size_hint(rec: &LogRecord) -> usize {
    let e = &rec.event;
    48 + e.kind.len() + e.account.len() + e.project.len() + e.fields.len() * 24
}

/// The record without its version byte: flags, ts, samplerate, strings, fields.
fn put_body(out: &mut Vec<u8>, rec: &LogRecord) -> Result<()> {
    let e = &rec.event;
    let mut flags = 0;
    if rec.denied {
        flags |= FLAG_DENIED;
    }
    if e.session_id.is_some() {
        flags |= FLAG_SESSION;
    }
    let rate_one = e.samplerate.to_bits() == 1f64.to_bits();
    if rate_one {
        flags |= FLAG_RATE_ONE;
    }
    out.push(flags);
    out.extend_from_slice(&e.ts.to_le_bytes());
    if !rate_one {
        out.extend_from_slice(&e.samplerate.to_le_bytes());
    }
    put_str(out, &e.kind);
    put_str(out, &e.account);
    put_str(out, &e.project);
    if let Some(s) = &e.session_id {
        put_str(out, s);
    }
    codec::put_object(out, &e.fields).map_err(StorageError::Encode)
}

/// Decode a record value written by [`encode_record`].
pub fn decode_record(seq: u64, bytes: &[u8]) -> Result<LogRecord> {
    let corrupt = |why: String| StorageError::Corrupt(format!("log record {seq}: {why}"));
    let mut r = Reader::new(bytes);
    check_version(&mut r).map_err(corrupt)?;
    let rec = read_body(&mut r, seq).map_err(corrupt)?;
    if !r.rest().is_empty() {
        return Err(corrupt("trailing bytes".into()));
    }
    Ok(rec)
}

fn check_version(r: &mut Reader<'_>) -> std::result::Result<(), String> {
    match r.u8()? {
        VERSION => Ok(()),
        v => Err(format!(
            "unknown format version {v} (this build reads version {VERSION})"
        )),
    }
}

fn read_body(r: &mut Reader<'_>, seq: u64) -> std::result::Result<LogRecord, String> {
    let flags = r.u8()?;
    if flags & !(FLAG_DENIED | FLAG_SESSION | FLAG_RATE_ONE) != 0 {
        return Err(format!("unknown flags {flags:#x}"));
    }
    let ts = i64::from_le_bytes(r.array()?);
    let samplerate = if flags & FLAG_RATE_ONE != 0 {
        1.0
    } else {
        f64::from_le_bytes(r.array()?)
    };
    let kind = r.string()?;
    let account = r.string()?;
    let project = r.string()?;
    let session_id = if flags & FLAG_SESSION != 0 {
        Some(r.string()?)
    } else {
        None
    };
    let fields = r.object()?;
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

/// Encode consecutive log records (seqs increasing) as one chunk: the version, the count,
/// the first seq, then each record's body preceded by its seq's distance from the previous.
/// The embedded backend stores the log as chunks keyed by their last seq.
pub fn encode_chunk(records: &[LogRecord]) -> Result<Vec<u8>> {
    let refs: Vec<&LogRecord> = records.iter().collect();
    encode_chunk_each(&refs, |_, _| {})
}

/// [`encode_chunk`], also handing `each` every record with its body: the bytes
/// [`encode_record`] would give after the version byte (see [`record_from_body`]), so a
/// caller needing both encodings encodes each record once.
pub fn encode_chunk_each(
    records: &[&LogRecord],
    mut each: impl FnMut(&LogRecord, &[u8]),
) -> Result<Vec<u8>> {
    let hint: usize = records.iter().map(|r| record_size_hint(r)).sum();
    let mut out = Vec::with_capacity(16 + hint);
    out.push(VERSION);
    put_varint(&mut out, records.len() as u64);
    let mut prev = records.first().map_or(0, |r| r.seq);
    put_varint(&mut out, prev);
    for rec in records {
        let delta = rec.seq.checked_sub(prev).ok_or_else(|| {
            StorageError::Encode(format!("seq {} after {prev}: seqs must increase", rec.seq))
        })?;
        put_varint(&mut out, delta);
        prev = rec.seq;
        let start = out.len();
        put_body(&mut out, rec)?;
        each(rec, &out[start..]);
    }
    Ok(out)
}

/// A record's standalone encoding (as [`encode_record`] gives) from its body.
pub fn record_from_body(body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + body.len());
    v.push(VERSION);
    v.extend_from_slice(body);
    v
}

/// Decode a chunk written by [`encode_chunk`]; `key_seq` (the chunk's key) names it in errors.
pub fn decode_chunk(key_seq: u64, bytes: &[u8]) -> Result<Vec<LogRecord>> {
    read_chunk(key_seq, bytes)?.collect()
}

/// Decode a chunk lazily, one record per `next` (so a replay consumes each record while the
/// memory just allocated for it is still warm). Reads the header at once; a problem further
/// in is the last item. `bytes` is any owner of the chunk (a `Vec`, a storage slice).
pub fn read_chunk<B: AsRef<[u8]>>(key_seq: u64, bytes: B) -> Result<ChunkReader<B>> {
    let corrupt = |why: String| StorageError::Corrupt(format!("log chunk {key_seq}: {why}"));
    let mut r = Reader::new(bytes.as_ref());
    check_version(&mut r).map_err(corrupt)?;
    let left = r.varint().map_err(corrupt)?;
    let seq = r.varint().map_err(corrupt)?;
    let pos = bytes.as_ref().len() - r.rest().len();
    Ok(ChunkReader {
        pos,
        left,
        seq,
        key_seq,
        done: false,
        bytes,
    })
}

/// The records of one chunk, decoded as they are asked for (see [`read_chunk`]).
pub struct ChunkReader<B> {
    bytes: B,
    pos: usize,
    left: u64,
    seq: u64,
    key_seq: u64,
    done: bool,
}

impl<B: AsRef<[u8]>> ChunkReader<B> {
    fn corrupt(&mut self, why: String) -> Option<Result<LogRecord>> {
        self.done = true;
        Some(Err(StorageError::Corrupt(format!(
            "log chunk {}: {why}",
            self.key_seq
        ))))
    }
}

impl<B: AsRef<[u8]>> Iterator for ChunkReader<B> {
    type Item = Result<LogRecord>;

    fn next(&mut self) -> Option<Result<LogRecord>> {
        if self.done {
            return None;
        }
        let all = self.bytes.as_ref();
        let mut r = Reader::new(&all[self.pos..]);
        if self.left == 0 {
            self.done = true;
            if !r.rest().is_empty() {
                return self.corrupt("trailing bytes".into());
            }
            return None;
        }
        let item = r.varint().and_then(|delta| {
            let seq = self.seq.checked_add(delta).ok_or("seq overflows")?;
            read_body(&mut r, seq)
        });
        let consumed = all.len() - self.pos - r.rest().len();
        match item {
            Err(why) => self.corrupt(why),
            Ok(rec) => {
                self.pos += consumed;
                self.left -= 1;
                self.seq = rec.seq;
                if self.left == 0 && rec.seq != self.key_seq {
                    return self.corrupt("last seq differs from the key".into());
                }
                Some(Ok(rec))
            }
        }
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
        // Version 1 (MessagePack fields) is refused, not misread.
        bad[0] = 1;
        assert!(decode_record(1, &bad)
            .unwrap_err()
            .to_string()
            .contains("version 1 "));
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            decode_record(1, &long),
            Err(StorageError::Corrupt(_))
        ));
    }

    #[test]
    fn samplerate_one_and_others_round_trip() {
        for rate in [1.0, 0.0, -0.0, 0.5, 1e-9, 100.0] {
            let mut rec = sample(None, false);
            rec.event.samplerate = rate;
            let back = decode_record(42, &encode_record(&rec).unwrap()).unwrap();
            assert_eq!(back.event.samplerate.to_bits(), rate.to_bits());
        }
    }

    #[test]
    fn chunks_round_trip_and_check_their_key() {
        let recs: Vec<LogRecord> = [5u64, 6, 9, 1000, 1001]
            .iter()
            .enumerate()
            .map(|(i, &seq)| {
                let mut r = sample(if i % 2 == 0 { Some("s") } else { None }, i == 3);
                r.seq = seq;
                r.event.ts += i as i64;
                r
            })
            .collect();
        let bytes = encode_chunk(&recs).unwrap();
        assert_eq!(decode_chunk(1001, &bytes).unwrap(), recs);
        assert!(decode_chunk(1000, &bytes).is_err(), "wrong key");
        for cut in [0, 1, 3, bytes.len() / 2, bytes.len() - 1] {
            assert!(matches!(
                decode_chunk(1001, &bytes[..cut]),
                Err(StorageError::Corrupt(_))
            ));
        }
        let mut old = bytes.clone();
        old[0] = 1;
        assert!(decode_chunk(1001, &old)
            .unwrap_err()
            .to_string()
            .contains("version"));
        let backwards = vec![recs[1].clone(), recs[0].clone()];
        assert!(matches!(
            encode_chunk(&backwards),
            Err(StorageError::Encode(_))
        ));
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
