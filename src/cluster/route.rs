//! Which partition an event belongs to: the routing fields' value as the record key, and
//! Kafka's default partitioner on it, so Weir and the user's own producers agree.

use serde_json::Value;
use weir_core::Event;

/// Kafka's `murmur2` (the Java client's `Utils.murmur2`), the hash of its default
/// partitioner.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() == 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner gives `key` among `partitions`.
pub fn partition_of(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// The record key of an event: its routing fields' values, each a string's own text or
/// another value's JSON text, joined by `|` when there are several. An event without one
/// of them cannot be routed: the error names the field.
pub fn route_key(event: &Event, fields: &[String]) -> Result<Vec<u8>, String> {
    let mut key = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        let v = lookup(&event.fields, f).ok_or_else(|| {
            format!(
                "event type '{}' lacks the routing field '{f}' (cluster route: {})",
                event.kind,
                fields.join(", ")
            )
        })?;
        if i > 0 {
            key.push(b'|');
        }
        match v {
            Value::String(s) => key.extend_from_slice(s.as_bytes()),
            other => key.extend_from_slice(other.to_string().as_bytes()),
        }
    }
    Ok(key)
}

/// A field by its dotted path (`data.user_id`).
fn lookup<'a>(fields: &'a serde_json::Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = fields.get(path) {
        return Some(v).filter(|v| !v.is_null());
    }
    let mut parts = path.split('.');
    let mut v = fields.get(parts.next()?)?;
    for p in parts {
        v = v.as_object()?.get(p)?;
    }
    Some(v).filter(|v| !v.is_null())
}

/// An event as the JSON body a Kafka record carries (SPEC section 2's flat shape, with the
/// time in unix ms), read back by the same decoder as any producer's records.
pub fn wire(event: &Event) -> Vec<u8> {
    let mut obj = event.fields.clone();
    obj.insert("type".into(), Value::String(event.kind.clone()));
    obj.insert("ts".into(), Value::from(event.ts));
    if let Some(s) = &event.session_id {
        obj.insert("session_id".into(), Value::String(s.clone()));
    }
    if event.samplerate != 1.0 {
        obj.insert("samplerate".into(), Value::from(event.samplerate));
    }
    serde_json::to_vec(&Value::Object(obj)).expect("a JSON map serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn murmur2_matches_kafka() {
        // The vectors of Kafka's own UtilsTest.testMurmur2.
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (s, want) in cases {
            assert_eq!(murmur2(s.as_bytes()), want, "{s}");
        }
        assert!((0..6).contains(&partition_of(b"foobar", 6)));
    }

    #[test]
    fn keys_from_fields() {
        let e = Event::new(
            "neworder",
            5,
            json!({"seller":"s1","n":3,"data":{"u":"x"}})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert_eq!(route_key(&e, &["seller".into()]).unwrap(), b"s1");
        assert_eq!(route_key(&e, &["n".into()]).unwrap(), b"3");
        assert_eq!(
            route_key(&e, &["seller".into(), "data.u".into()]).unwrap(),
            b"s1|x"
        );
        let err = route_key(&e, &["region".into()]).unwrap_err();
        assert!(err.contains("'region'"), "{err}");
        let back: Value = serde_json::from_slice(&wire(&e)).unwrap();
        assert_eq!(back["type"], "neworder");
        assert_eq!(back["ts"], 5);
    }
}
