//! Reading an events file for `weir replay`: NDJSON (any SPEC section 1 shape per line) or
//! CSV (a header row, a type and a time column, the rest fields), one buffered pass with
//! reused line buffers.
//!
//! Event time always comes from the event: replay has no arrival time, so an event without
//! one is a bad line (with its line number), as is anything [`parse_body`] refuses.

use std::io::BufRead;

use serde_json::{Map, Value};
use weir_core::shape::{parse_body, ShapeOptions};
use weir_core::time::{parse_time, parse_time_value};
use weir_core::{Event, Millis};

/// The events file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// One JSON event (or `{"events":[…]}` batch) per line.
    Ndjson,
    /// A header row, then one event per row.
    Csv,
}

/// Column names of a CSV events file.
#[derive(Debug, Clone)]
pub struct CsvColumns {
    /// The event type column.
    pub kind: String,
    /// The event time column.
    pub time: String,
}

/// Why a line could not be read as events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number in the file.
    pub line: u64,
    /// What is wrong, in words.
    pub reason: String,
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// The time [`parse_body`] gives an event that carries none; no real event time is this
/// large, so it marks "no time" (replay has no arrival time to give it).
const NO_TIME: Millis = Millis::MAX;

/// Keys that make an object more than a flat `{"type","ts",fields…}` event: other type and
/// time keys, field objects, meta keys and batches. Objects with none of them (the common
/// case) are read without copying their fields; all others go through [`parse_body`].
const NOT_FLAT: [&str; 12] = [
    "event_type",
    "evtname",
    "category",
    "timestamp",
    "time",
    "fields",
    "params",
    "data",
    "samplerate",
    "session_id",
    "event_id",
    "events",
];

/// A reader of events, line by line.
pub struct EventReader {
    src: Box<dyn BufRead + Send>,
    format: InputFormat,
    buf: String,
    line: u64,
    bytes: u64,
    opts: ShapeOptions,
    csv: Option<CsvLayout>,
    cells: Vec<String>,
}

/// Where the type and time are in a CSV row, and the other columns' names.
struct CsvLayout {
    names: Vec<String>,
    kind: usize,
    time: usize,
}

impl EventReader {
    /// A reader over `src` in `format`; CSV reads its header on the first call.
    pub fn new(src: Box<dyn BufRead + Send>, format: InputFormat, columns: CsvColumns) -> Self {
        let csv = (format == InputFormat::Csv).then(|| CsvLayout {
            names: vec![columns.kind, columns.time],
            kind: usize::MAX,
            time: usize::MAX,
        });
        Self {
            src,
            format,
            buf: String::with_capacity(1024),
            line: 0,
            bytes: 0,
            // No arrival time (events without one are refused) and no future limit: a file
            // is read as it was recorded, whatever the clock says now.
            opts: ShapeOptions {
                now_ms: NO_TIME,
                max_future_skew_ms: 0,
            },
            csv,
            cells: Vec::new(),
        }
    }

    /// Bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The next line's events, appended to `out` (a batch line gives several, a blank line
    /// none), with its line number. `Ok(None)` at the end of the file; `Err(Ok(bad))` for a
    /// line that is not events; `Err(Err(io))` when reading fails.
    pub fn next_into(
        &mut self,
        out: &mut Vec<Event>,
    ) -> Result<Option<u64>, Result<BadLine, std::io::Error>> {
        loop {
            self.buf.clear();
            let n = self.src.read_line(&mut self.buf).map_err(Err)?;
            if n == 0 {
                if let Some(l) = &self.csv {
                    if l.kind == usize::MAX {
                        return Err(Ok(BadLine {
                            line: 1,
                            reason: "the CSV file is empty: expected a header row".into(),
                        }));
                    }
                }
                return Ok(None);
            }
            self.line += 1;
            self.bytes += n as u64;
            let text = self.buf.trim_end_matches(['\n', '\r']);
            if text.trim().is_empty() {
                continue;
            }
            let line = self.line;
            let bad = |reason: String| Err(Ok(BadLine { line, reason }));
            match self.format {
                InputFormat::Ndjson => match ndjson_line(text, &self.opts, out) {
                    Ok(()) => return Ok(Some(line)),
                    Err(reason) => return bad(reason),
                },
                InputFormat::Csv => {
                    let layout = self.csv.as_mut().expect("csv layout");
                    if let Err(reason) = split_csv(text, &mut self.cells) {
                        return bad(reason);
                    }
                    if layout.kind == usize::MAX {
                        if let Err(reason) = layout.header(&self.cells) {
                            return bad(reason);
                        }
                        continue;
                    }
                    match layout.event(&mut self.cells) {
                        Ok(ev) => {
                            out.push(ev);
                            return Ok(Some(line));
                        }
                        Err(reason) => return bad(reason),
                    }
                }
            }
        }
    }
}

/// Read one NDJSON line: a flat event directly, any other shape through [`parse_body`].
pub fn ndjson_line(text: &str, opts: &ShapeOptions, out: &mut Vec<Event>) -> Result<(), String> {
    if let Some(ev) = flat_line(text) {
        out.push(ev);
        return Ok(());
    }
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    match parse_body(&v, opts) {
        Ok(events) => {
            let start = out.len();
            out.extend(events);
            if let Some(i) = out[start..].iter().position(|e| e.ts == NO_TIME) {
                out.truncate(start);
                let which = if v.get("events").is_some() {
                    format!("event {i}: ")
                } else {
                    String::new()
                };
                return Err(format!(
                    "{which}the event has no time (give 'ts', 'timestamp' or 'time'); replay \
                     takes every event's time from the event"
                ));
            }
            Ok(())
        }
        Err(errors) => Err(errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")),
    }
}

/// `{"type": "t", "ts": <number>, fields…}` with none of the [`NOT_FLAT`] keys, decoded
/// straight into the event [`parse_body`] would make of it (no intermediate JSON object).
/// None for anything else, which then takes the general path.
fn flat_line(text: &str) -> Option<Event> {
    use serde::de::Deserializer;
    let mut de = serde_json::Deserializer::from_str(text);
    let ev = de.deserialize_map(FlatVisitor).ok()?;
    de.end().ok()?;
    Some(ev)
}

/// A key of a flat event: the two it takes apart, one that makes it not flat, or a field.
enum Key {
    Type,
    Ts,
    NotFlat,
    Field(String),
}

struct KeySeed;

impl<'de> serde::de::DeserializeSeed<'de> for KeySeed {
    type Value = Key;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl serde::de::Visitor<'_> for KeySeed {
    type Value = Key;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: serde::de::Error>(self, k: &str) -> Result<Key, E> {
        Ok(match k {
            "type" => Key::Type,
            "ts" => Key::Ts,
            k if NOT_FLAT.contains(&k) => Key::NotFlat,
            k => Key::Field(k.to_string()),
        })
    }
}

struct FlatVisitor;

impl<'de> serde::de::Visitor<'de> for FlatVisitor {
    type Value = Event;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a flat event")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Event, A::Error> {
        use serde::de::Error;
        let mut kind: Option<Value> = None;
        let mut ts: Option<Value> = None;
        let mut fields = Map::new();
        while let Some(k) = m.next_key_seed(KeySeed)? {
            match k {
                Key::Type => kind = Some(m.next_value()?),
                Key::Ts => ts = Some(m.next_value()?),
                Key::NotFlat => return Err(A::Error::custom("not flat")),
                Key::Field(k) => {
                    fields.insert(k, m.next_value()?);
                }
            }
        }
        let (Some(Value::String(kind)), Some(ts @ Value::Number(_))) = (kind, ts) else {
            return Err(A::Error::custom("not flat"));
        };
        if kind.is_empty() {
            return Err(A::Error::custom("not flat"));
        }
        let ts = parse_time_value(&ts).map_err(A::Error::custom)?;
        Ok(Event::new(kind, ts, fields))
    }
}

impl CsvLayout {
    fn header(&mut self, cells: &[String]) -> Result<(), String> {
        let find = |name: &str, what: &str, flag: &str| {
            cells.iter().position(|c| c == name).ok_or_else(|| {
                format!(
                    "the CSV header has no {what} column {name:?} (name it with {flag}); \
                     columns: {}",
                    cells.join(",")
                )
            })
        };
        self.kind = find(&self.names[0], "event type", "--type-column")?;
        self.time = find(&self.names[1], "time", "--time-column")?;
        self.names = cells.to_vec();
        Ok(())
    }

    fn event(&self, cells: &mut [String]) -> Result<Event, String> {
        if cells.len() != self.names.len() {
            return Err(format!(
                "{} cells, but the header has {} columns",
                cells.len(),
                self.names.len()
            ));
        }
        let kind = std::mem::take(&mut cells[self.kind]);
        if kind.is_empty() {
            return Err(format!("the {:?} cell is empty", self.names[self.kind]));
        }
        let t = &cells[self.time];
        if t.is_empty() {
            return Err(format!(
                "the event has no time (the {:?} cell is empty)",
                self.names[self.time]
            ));
        }
        let ts = parse_time(t).map_err(|e| e.to_string())?;
        let mut fields = Map::new();
        for (i, cell) in cells.iter_mut().enumerate() {
            if i == self.kind || i == self.time || cell.is_empty() {
                continue;
            }
            fields.insert(
                self.names[i].clone(),
                weir_core::shape::scalar(std::mem::take(cell)),
            );
        }
        Ok(Event::new(kind, ts, fields))
    }
}

/// Split one CSV line (RFC 4180 quoting, `""` for a quote inside quotes) into `cells`,
/// reusing its strings. A quoted cell must end on the same line.
pub fn split_csv(line: &str, cells: &mut Vec<String>) -> Result<(), String> {
    let mut n = 0;
    let mut chars = line.chars().peekable();
    loop {
        if n == cells.len() {
            cells.push(String::new());
        }
        let cell = &mut cells[n];
        cell.clear();
        n += 1;
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        cell.push('"');
                    }
                    Some('"') => break,
                    Some(c) => cell.push(c),
                    None => {
                        return Err(format!(
                            "cell {n}: a quoted cell does not end on its line (cells spanning \
                             lines are not supported)"
                        ))
                    }
                }
            }
            match chars.next() {
                None => break,
                Some(',') => continue,
                Some(c) => return Err(format!("cell {n}: {c:?} after a closing quote")),
            }
        }
        loop {
            match chars.next() {
                None => {
                    cells.truncate(n);
                    return Ok(());
                }
                Some(',') => break,
                Some(c) => cell.push(c),
            }
        }
    }
    cells.truncate(n);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts() -> ShapeOptions {
        ShapeOptions {
            now_ms: NO_TIME,
            max_future_skew_ms: 0,
        }
    }

    #[test]
    fn the_flat_path_makes_the_event_parse_body_makes() {
        let cases = [
            json!({"type":"order","ts":1700000000123i64,"seller":"a","amount":12.5,"n":3}),
            json!({"type":"order","ts":1700000000,"nested":{"x":1},"account":"z"}),
            json!({"type":"order","ts":1.7e12,"s":null}),
        ];
        for c in cases {
            let fast = flat_line(&c.to_string()).expect("flat");
            let slow = parse_body(&c, &opts()).unwrap().remove(0);
            assert_eq!(fast, slow, "{c}");
        }
        for c in [
            json!({"type":"a","ts":"2024-01-01T00:00:00Z"}),
            json!({"type":"a","ts":1,"samplerate":2}),
            json!({"event_type":"a","ts":1}),
            json!({"type":"a","ts":1,"data":{"x":1}}),
            json!({"type":"","ts":1}),
            json!({"type":"a"}),
        ] {
            assert!(flat_line(&c.to_string()).is_none(), "{c}");
        }
        assert!(flat_line(r#"{"type":"a","ts":1} x"#).is_none());
    }

    #[test]
    fn an_event_without_a_time_is_refused() {
        let mut out = Vec::new();
        let e = ndjson_line(r#"{"type":"a","x":1}"#, &opts(), &mut out).unwrap_err();
        assert!(e.contains("no time"), "{e}");
        let e = ndjson_line(
            r#"{"events":[{"type":"a","ts":1},{"type":"b"}]}"#,
            &opts(),
            &mut out,
        )
        .unwrap_err();
        assert!(e.starts_with("event 1: ") && e.contains("no time"), "{e}");
        assert!(out.is_empty());
        ndjson_line(
            r#"{"events":[{"type":"a","ts":1},{"type":"b","time":2}]}"#,
            &opts(),
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        // Far in the future is fine: a file is read as recorded.
        ndjson_line(
            r#"{"type":"a","ts":"2999-01-01 00:00:00"}"#,
            &opts(),
            &mut out,
        )
        .unwrap();
    }

    #[test]
    fn csv_cells_split_with_quotes() {
        let mut cells = Vec::new();
        split_csv(r#"a,"b,c","say ""hi""",,7"#, &mut cells).unwrap();
        assert_eq!(cells, ["a", "b,c", r#"say "hi""#, "", "7"]);
        split_csv("x", &mut cells).unwrap();
        assert_eq!(cells, ["x"]);
        split_csv("x,", &mut cells).unwrap();
        assert_eq!(cells, ["x", ""]);
        assert!(split_csv(r#"a,"open"#, &mut cells)
            .unwrap_err()
            .contains("cell 2"));
    }
}
