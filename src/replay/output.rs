//! Writing what `weir replay` finds: result rows, window rows and decisions, as JSON lines
//! or as one CSV table.
//!
//! JSON lines, one object each:
//! - `{"kind":"window","query":Q,"window_start":…,"window_end":…,"key":{…},"values":{…}}`
//!   (a tumbling query's window is its bucket: `bucket_start` instead of the two bounds);
//! - `{"kind":"result","query":Q,…}`: the same fields, the rows `GET /api/queries/Q/result`
//!   would answer at the end of the file;
//! - `{"kind":"decision","line":N,"allowed":…,"rules":[{rule,key,value,threshold,…}]}`.
//!
//! CSV: one header for every row kind — `kind,name,line,window_start,window_end,
//! bucket_start`, then `key.F` for every group field of any query or rule, every result
//! column of any query, and `allowed,value,threshold,decision` when decisions are written.
//! A decision row is one per matching rule (`name` is the rule), or one with an empty name
//! for an event no rule matches. Cells that do not apply are empty.

use std::io::Write;

use serde::Serialize;
use serde_json::{Map, Value};
use weir_engine::Row;
use weir_rules::Decision;

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One JSON object per line.
    Jsonl,
    /// One CSV table with a header row.
    Csv,
}

/// Window row or final result row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    /// A window, written as it closes.
    Window,
    /// A row read at the end of the file.
    Result,
}

impl RowKind {
    fn as_str(self) -> &'static str {
        match self {
            RowKind::Window => "window",
            RowKind::Result => "result",
        }
    }
}

#[derive(Serialize)]
struct JsonRow<'a> {
    kind: &'static str,
    query: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    window_start: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    window_end: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bucket_start: Option<i64>,
    key: &'a Map<String, Value>,
    values: &'a Map<String, Value>,
}

#[derive(Serialize)]
struct JsonDecision<'a> {
    kind: &'static str,
    line: u64,
    allowed: bool,
    rules: &'a [weir_rules::RuleDecision],
}

/// The CSV columns besides the fixed ones.
#[derive(Debug, Default, Clone)]
pub struct CsvHeader {
    /// Group fields (written `key.F`).
    pub keys: Vec<String>,
    /// Result columns.
    pub values: Vec<String>,
    /// Whether decision columns are written.
    pub decisions: bool,
}

/// Where rows go.
pub struct Output {
    w: Box<dyn Write>,
    csv: Option<CsvHeader>,
    line: String,
    /// Rows written, by kind: windows, results, decisions.
    pub counts: [u64; 3],
}

impl Output {
    /// Rows to `w`; `csv` gives the CSV columns (its header is written now), None for JSON
    /// lines.
    pub fn new(w: Box<dyn Write>, csv: Option<CsvHeader>) -> std::io::Result<Self> {
        let mut out = Self {
            w,
            csv,
            line: String::new(),
            counts: [0; 3],
        };
        if let Some(h) = &out.csv {
            let mut cols: Vec<String> = [
                "kind",
                "name",
                "line",
                "window_start",
                "window_end",
                "bucket_start",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            cols.extend(h.keys.iter().map(|k| format!("key.{k}")));
            cols.extend(h.values.iter().cloned());
            if h.decisions {
                cols.extend(["allowed", "value", "threshold", "decision"].map(String::from));
            }
            let mut line = String::new();
            for (i, c) in cols.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                push_cell(&mut line, c);
            }
            line.push('\n');
            out.w.write_all(line.as_bytes())?;
        }
        Ok(out)
    }

    /// One window or result row of `query`.
    pub fn row(&mut self, kind: RowKind, query: &str, r: &Row) -> std::io::Result<()> {
        self.counts[kind as usize] += 1;
        let Some(h) = &self.csv else {
            let j = JsonRow {
                kind: kind.as_str(),
                query,
                window_start: r.window_start,
                window_end: r.window_end,
                bucket_start: r.bucket_start,
                key: &r.key,
                values: &r.values,
            };
            serde_json::to_writer(&mut self.w, &j)?;
            return self.w.write_all(b"\n");
        };
        let l = &mut self.line;
        l.clear();
        l.push_str(kind.as_str());
        l.push(',');
        push_cell(l, query);
        l.push(',');
        for t in [r.window_start, r.window_end, r.bucket_start] {
            l.push(',');
            if let Some(t) = t {
                l.push_str(&t.to_string());
            }
        }
        for k in &h.keys {
            l.push(',');
            push_value(l, r.key.get(k));
        }
        for c in &h.values {
            l.push(',');
            push_value(l, r.values.get(c));
        }
        if h.decisions {
            l.push_str(",,,,");
        }
        l.push('\n');
        self.w.write_all(l.as_bytes())
    }

    /// The decision on the event of file line `line`.
    pub fn decision(&mut self, line: u64, d: &Decision) -> std::io::Result<()> {
        self.counts[2] += 1;
        let Some(h) = &self.csv else {
            let j = JsonDecision {
                kind: "decision",
                line,
                allowed: d.allowed,
                rules: &d.rules,
            };
            serde_json::to_writer(&mut self.w, &j)?;
            return self.w.write_all(b"\n");
        };
        let l = &mut self.line;
        l.clear();
        let empty = Map::new();
        let n = d.rules.len().max(1);
        for i in 0..n {
            let r = d.rules.get(i);
            l.push_str("decision,");
            if let Some(r) = r {
                push_cell(l, &r.rule);
            }
            l.push(',');
            l.push_str(&line.to_string());
            l.push_str(",,,");
            let key = r.map_or(&empty, |r| &r.key);
            for k in &h.keys {
                l.push(',');
                push_value(l, key.get(k));
            }
            for _ in &h.values {
                l.push(',');
            }
            l.push(',');
            l.push_str(if d.allowed { "true" } else { "false" });
            l.push(',');
            push_value(l, r.and_then(|r| r.value.as_ref()));
            l.push(',');
            if let Some(t) = r.and_then(|r| r.threshold) {
                l.push_str(&t.to_string());
            }
            l.push(',');
            if let Some(r) = r {
                l.push_str(match r.decision {
                    weir_rules::Verdict::Allow => "allow",
                    weir_rules::Verdict::Deny => "deny",
                });
            }
            l.push('\n');
        }
        self.w.write_all(l.as_bytes())
    }

    /// Flush everything written.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

/// A JSON value as a CSV cell: numbers and booleans as written, strings as themselves,
/// null or missing empty, arrays and objects as JSON text.
fn push_value(l: &mut String, v: Option<&Value>) {
    match v {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => push_cell(l, s),
        Some(Value::Number(n)) => l.push_str(&n.to_string()),
        Some(Value::Bool(b)) => l.push_str(if *b { "true" } else { "false" }),
        Some(other) => push_cell(l, &other.to_string()),
    }
}

/// A text cell, quoted when it holds a comma, a quote or a line break.
fn push_cell(l: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        l.push('"');
        l.push_str(&s.replace('"', "\"\""));
        l.push('"');
    } else {
        l.push_str(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_only_when_needed() {
        let mut l = String::new();
        push_cell(&mut l, "plain");
        l.push(',');
        push_cell(&mut l, "a,\"b\"");
        assert_eq!(l, "plain,\"a,\"\"b\"\"\"");
    }
}
