//! The event shapes of SPEC section 1, turned into [`Event`]s.
//!
//! One function reads every JSON shape ([`parse_body`]), one the query-string form of seed 002
//! ([`parse_query_string`]). Inputs (HTTP, UDP, AMQP, Kafka) all go through these, so an event
//! means the same whichever way it arrived.

use serde_json::{Map, Number, Value};
use thiserror::Error;

use crate::event::Event;
use crate::time::{parse_time, parse_time_value, Millis};

/// What the shape reader needs to know: the current time and how far ahead events may be.
#[derive(Debug, Clone, Copy)]
pub struct ShapeOptions {
    /// Now, unix ms; events without a time get it.
    pub now_ms: Millis,
    /// Events further than this in the future are refused (default 5 minutes).
    pub max_future_skew_ms: Millis,
}

impl ShapeOptions {
    /// Options at `now_ms` with the default 5-minute skew limit.
    pub fn at(now_ms: Millis) -> Self {
        Self {
            now_ms,
            max_future_skew_ms: 5 * 60_000,
        }
    }
}

/// Why one event could not be read; `index` is its place in a batch.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{}{reason}", index.map(|i| format!("event {i}: ")).unwrap_or_default())]
pub struct ShapeError {
    /// Position in the batch (`None` for a single event).
    pub index: Option<usize>,
    /// What is wrong, in words.
    pub reason: String,
}

/// Keys of a JSON event that carry meta data rather than fields.
const TYPE_KEYS: [&str; 4] = ["type", "event_type", "evtname", "category"];
const TIME_KEYS: [&str; 3] = ["ts", "timestamp", "time"];
const FIELD_OBJECTS: [&str; 3] = ["fields", "params", "data"];
/// Keys read as the event's own attributes, not fields. `account` and `project` are not
/// among them: an event's owner comes from the key (or input) it arrived with, never from its
/// body (SPEC section 10), so in a body they are ordinary fields.
const META_KEYS: [&str; 3] = ["samplerate", "session_id", "event_id"];

/// Read a request body: one event in any shape, or a batch `{"events":[…]}` whose items may
/// take any single-event shape. A batch with any bad item is refused whole, listing each one.
pub fn parse_body(body: &Value, opts: &ShapeOptions) -> Result<Vec<Event>, Vec<ShapeError>> {
    match body.get("events") {
        Some(Value::Array(items)) => {
            let mut events = Vec::with_capacity(items.len());
            let mut errors = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match parse_event(item, opts) {
                    Ok(e) => events.push(e),
                    Err(reason) => errors.push(ShapeError {
                        index: Some(i),
                        reason,
                    }),
                }
            }
            if errors.is_empty() {
                Ok(events)
            } else {
                Err(errors)
            }
        }
        Some(_) => Err(vec![ShapeError {
            index: None,
            reason: "'events' must be an array".into(),
        }]),
        None => parse_event(body, opts).map(|e| vec![e]).map_err(|reason| {
            vec![ShapeError {
                index: None,
                reason,
            }]
        }),
    }
}

/// Whether a JSON event gives its own time (else it is stamped with the time it is read).
pub fn gives_time(v: &Value) -> bool {
    let Some(obj) = v.as_object() else {
        return false;
    };
    match TIME_KEYS.iter().find_map(|k| obj.get(*k)) {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// Whether an event given as a query string gives its own time.
pub fn query_gives_time(qs: &str) -> bool {
    qs.split('&').any(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        TIME_KEYS.contains(&k) && !v.is_empty()
    })
}

/// Read one JSON event in any single-event shape.
pub fn parse_event(v: &Value, opts: &ShapeOptions) -> Result<Event, String> {
    let obj = v.as_object().ok_or("an event must be a JSON object")?;
    let mut fields = Map::new();
    for key in FIELD_OBJECTS {
        match obj.get(key) {
            Some(Value::Object(m)) => fields.extend(m.iter().map(|(k, v)| (k.clone(), v.clone()))),
            Some(Value::Null) | None => {}
            Some(_) => return Err(format!("'{key}' must be an object")),
        }
    }
    for (k, val) in obj {
        let meta = TYPE_KEYS.contains(&k.as_str())
            || TIME_KEYS.contains(&k.as_str())
            || FIELD_OBJECTS.contains(&k.as_str())
            || META_KEYS.contains(&k.as_str());
        if !meta {
            fields.insert(k.clone(), val.clone());
        }
    }
    let kind = TYPE_KEYS
        .iter()
        .find_map(|k| obj.get(*k))
        .or_else(|| fields.get("event_tag"))
        .or_else(|| fields.get("event_type"));
    let kind = match kind {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) => return Err("event type is empty".into()),
        Some(other) => return Err(format!("event type must be a string, got {other}")),
        None => {
            return Err("missing event type: give 'type', 'event_type', 'evtname', 'category' or data.event_tag".into())
        }
    };
    let ts = match TIME_KEYS.iter().find_map(|k| obj.get(*k)) {
        None | Some(Value::Null) => opts.now_ms,
        Some(Value::String(s)) if s.is_empty() => opts.now_ms,
        Some(t) => parse_time_value(t).map_err(|e| e.to_string())?,
    };
    check_skew(ts, opts)?;
    let samplerate = match obj.get("samplerate") {
        None | Some(Value::Null) => 1.0,
        Some(Value::Number(n)) => n.as_f64().unwrap_or(1.0),
        Some(Value::String(s)) if s.is_empty() => 1.0,
        Some(Value::String(s)) => s
            .parse::<f64>()
            .map_err(|_| format!("samplerate {s:?} is not a number"))?,
        Some(other) => return Err(format!("samplerate must be a number, got {other}")),
    };
    if !(samplerate.is_finite() && samplerate > 0.0) {
        return Err(format!(
            "samplerate must be a positive number, got {samplerate}"
        ));
    }
    let session_id = match obj.get("session_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    let mut event = Event::new(kind, ts, fields);
    event.samplerate = samplerate;
    event.session_id = session_id;
    Ok(event)
}

fn check_skew(ts: Millis, opts: &ShapeOptions) -> Result<(), String> {
    if ts > opts.now_ms.saturating_add(opts.max_future_skew_ms) {
        return Err(format!(
            "event time {ts} is {} ms in the future; at most {} ms is allowed",
            ts - opts.now_ms,
            opts.max_future_skew_ms
        ));
    }
    Ok(())
}

/// Read the seed 002 query-string form: `evtname=neworder&amount=10&seller=x`. Values that
/// parse as numbers become numbers. Keys in `control` (e.g. `result`) are left out.
pub fn parse_query_string(
    qs: &str,
    control: &[&str],
    opts: &ShapeOptions,
) -> Result<Event, ShapeError> {
    let err = |reason: String| ShapeError {
        index: None,
        reason,
    };
    let mut obj = Map::new();
    for pair in qs.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k).map_err(err)?;
        let v = percent_decode(v).map_err(err)?;
        if control.contains(&k.as_str()) {
            continue;
        }
        let value = if TIME_KEYS.contains(&k.as_str()) || TYPE_KEYS.contains(&k.as_str()) {
            Value::String(v)
        } else {
            scalar(v)
        };
        obj.insert(k, value);
    }
    if let Some(Value::String(t)) = obj
        .get("ts")
        .or_else(|| obj.get("timestamp"))
        .or_else(|| obj.get("time"))
    {
        parse_time(t).map_err(|e| err(e.to_string()))?;
    }
    parse_event(&Value::Object(obj), opts).map_err(err)
}

/// A query-string value (or a CSV cell) as JSON: a number when it reads as one, else a string.
pub fn scalar(v: String) -> Value {
    if let Ok(i) = v.parse::<i64>() {
        return Value::Number(i.into());
    }
    if let Ok(f) = v.parse::<f64>() {
        if let Some(n) = Number::from_f64(f) {
            return Value::Number(n);
        }
    }
    Value::String(v)
}

/// Decode `%XX` escapes and `+` in a query-string component (`application/x-www-form-urlencoded`);
/// a malformed escape stays as written, as browsers and servers treat it.
pub fn percent_decode(s: &str) -> Result<String, String> {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| format!("query string {s:?} is not UTF-8 after decoding"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: Millis = 1_700_000_000_000;

    #[test]
    fn whether_an_event_gives_its_own_time() {
        assert!(gives_time(&json!({"type": "a", "ts": 5})));
        assert!(gives_time(
            &json!({"type": "a", "time": "2026-01-01T00:00:00Z"})
        ));
        assert!(!gives_time(&json!({"type": "a"})));
        assert!(!gives_time(&json!({"type": "a", "ts": null})));
        assert!(!gives_time(&json!({"type": "a", "timestamp": ""})));
        assert!(!gives_time(&json!([1])));
        assert!(query_gives_time("evtname=a&timestamp=5"));
        assert!(!query_gives_time("evtname=a&ts="));
        assert!(!query_gives_time("evtname=a&tsx=5"));
    }

    fn one(v: Value) -> Event {
        parse_body(&v, &ShapeOptions::at(NOW)).unwrap().remove(0)
    }

    #[test]
    fn query_string_components_decode() {
        assert_eq!(percent_decode("a+b%20c%2Fd").unwrap(), "a b c/d");
        assert_eq!(percent_decode("caf%C3%A9").unwrap(), "café");
        assert_eq!(percent_decode("100%zz").unwrap(), "100%zz");
        assert!(percent_decode("%FF").unwrap_err().contains("not UTF-8"));
    }

    #[test]
    fn event_type_params_shape() {
        let e = one(json!({"event_type":"click","ts":1456606932,"params":{"x":1}}));
        assert_eq!((e.kind.as_str(), e.ts), ("click", 1_456_606_932_000));
        assert_eq!(e.fields["x"], json!(1));
    }

    #[test]
    fn batch_001_shape_keeps_event_tag() {
        let body = json!({"events":[{"ts":1456606932000u64,"samplerate":2,"data":{"event_tag":"product_view","user_id":"u1"}}]});
        let e = parse_body(&body, &ShapeOptions::at(NOW)).unwrap().remove(0);
        assert_eq!(e.kind, "product_view");
        assert_eq!(e.fields["event_tag"], json!("product_view"));
        assert_eq!(e.samplerate, 2.0);
    }

    #[test]
    fn session_category_shape() {
        let e = one(
            json!({"session_id":"e2","category":"party","name":"AppName","data":{"host":"h","path":"/"},"timestamp":"2021-09-26 09:15:27.243860"}),
        );
        assert_eq!(e.kind, "party");
        assert_eq!(e.session_id.as_deref(), Some("e2"));
        assert_eq!(e.fields["name"], json!("AppName"));
        assert_eq!(e.fields["path"], json!("/"));
        assert_eq!(e.ts, 1_632_647_727_243);
    }

    #[test]
    fn query_string_numbers_are_numbers() {
        let e = parse_query_string(
            "evtname=neworder&amount=10&seller=used+car%21&result=true",
            &["result"],
            &ShapeOptions::at(NOW),
        )
        .unwrap();
        assert_eq!(e.kind, "neworder");
        assert_eq!(e.fields["amount"], json!(10));
        assert_eq!(e.fields["seller"], json!("used car!"));
        assert!(!e.fields.contains_key("result"));
        assert_eq!(e.ts, NOW);
    }

    #[test]
    fn bad_batch_lists_every_bad_index() {
        let body = json!({"events":[{"type":"a"},{"ts":1},{"type":"b","ts":"never"},{"type":"c","ts": NOW + 3_600_000}]});
        let errs = parse_body(&body, &ShapeOptions::at(NOW)).unwrap_err();
        let idx: Vec<_> = errs.iter().map(|e| e.index.unwrap()).collect();
        assert_eq!(idx, vec![1, 2, 3]);
        assert!(errs[0].reason.contains("missing event type"));
        assert!(errs[2].reason.contains("future"));
    }
}
