//! One payload (a UDP datagram, an AMQP message body, a Kafka record value) to events.
//!
//! Accepted forms, tried in this order:
//! 1. one JSON value in any shape of SPEC section 1 (one event, or a batch `{"events":[…]}`);
//! 2. JSON lines: several JSON objects separated by newlines, each in any shape;
//! 3. the seed 002 query string: `evtname=neworder&amount=10` (a leading `?` is allowed;
//!    several lines give several events).
//!
//! A payload is one unit: if any item in it is bad the whole payload is refused, as HTTP
//! refuses a batch, so an upstream reject or skip never leaves half a message applied.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use weir_core::shape::{parse_body, parse_query_string, ShapeOptions};
use weir_core::{Event, Millis};

/// The current wall-clock time in unix ms (events without a time get it).
pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// Read one payload into its events, or say why it is refused.
pub fn decode_payload(payload: &[u8], opts: &ShapeOptions) -> Result<Vec<Event>, String> {
    let text = std::str::from_utf8(payload).map_err(|_| "payload is not UTF-8".to_string())?;
    let text = text.trim();
    if text.is_empty() {
        return Err("empty payload".into());
    }
    if text.starts_with('{') || text.starts_with('[') {
        return match serde_json::from_str::<Value>(text) {
            Ok(v) => body(&v, opts),
            Err(_) if text.contains('\n') => json_lines(text, opts),
            Err(e) => Err(format!("invalid JSON: {e}")),
        };
    }
    let mut events = Vec::new();
    for (i, line) in lines(text).enumerate() {
        let qs = line.strip_prefix('?').unwrap_or(line);
        let e = parse_query_string(qs, &[], opts).map_err(|e| at_line(i, text, e.reason))?;
        events.push(e);
    }
    Ok(events)
}

fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty())
}

fn at_line(i: usize, text: &str, reason: String) -> String {
    if text.contains('\n') {
        format!("line {}: {reason}", i + 1)
    } else {
        reason
    }
}

fn body(v: &Value, opts: &ShapeOptions) -> Result<Vec<Event>, String> {
    parse_body(v, opts).map_err(|errs| {
        errs.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

fn json_lines(text: &str, opts: &ShapeOptions) -> Result<Vec<Event>, String> {
    let mut events = Vec::new();
    for (i, line) in lines(text).enumerate() {
        let v: Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: invalid JSON: {e}", i + 1))?;
        events.extend(body(&v, opts).map_err(|e| format!("line {}: {e}", i + 1))?);
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: Millis = 1_700_000_000_000;

    fn dec(s: &str) -> Result<Vec<Event>, String> {
        decode_payload(s.as_bytes(), &ShapeOptions::at(NOW))
    }

    #[test]
    fn one_json_object() {
        let e = dec(r#"{"type":"click","ts":1456606932,"x":1}"#).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].kind.as_str(), e[0].ts), ("click", 1_456_606_932_000));
        assert_eq!(e[0].fields["x"], json!(1));
    }

    #[test]
    fn batch_object() {
        let e = dec(r#"{"events":[{"type":"a"},{"event_type":"b"}]}"#).unwrap();
        let kinds: Vec<_> = e.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["a", "b"]);
        assert_eq!(e[0].ts, NOW);
    }

    #[test]
    fn json_lines_give_one_event_each() {
        let e = dec("{\"type\":\"a\",\"n\":1}\n\n{\"type\":\"b\",\"n\":2}\r\n").unwrap();
        let ns: Vec<_> = e.iter().map(|e| e.fields["n"].clone()).collect();
        assert_eq!(ns, [json!(1), json!(2)]);
    }

    #[test]
    fn query_string_form() {
        let e = dec("?evtname=neworder&amount=10&seller=x").unwrap();
        assert_eq!(e[0].kind, "neworder");
        assert_eq!(e[0].fields["amount"], json!(10));
        let two = dec("evtname=a&n=1\nevtname=b&n=2").unwrap();
        assert_eq!(two.len(), 2);
    }

    #[test]
    fn one_bad_line_refuses_the_payload() {
        let err = dec("{\"type\":\"a\"}\n{\"ts\":1}").unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
        assert!(err.contains("missing event type"), "{err}");
        let err = dec("{\"type\":\"a\"}\n{oops").unwrap_err();
        assert!(err.contains("line 2: invalid JSON"), "{err}");
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert_eq!(dec("   ").unwrap_err(), "empty payload");
        assert_eq!(
            decode_payload(&[0xff, 0xfe], &ShapeOptions::at(NOW)).unwrap_err(),
            "payload is not UTF-8"
        );
        assert!(dec("{\"type\":").unwrap_err().starts_with("invalid JSON"));
        assert!(dec("amount=10").unwrap_err().contains("missing event type"));
        assert!(dec("[1,2]").unwrap_err().contains("JSON object"));
    }
}
