//! Where PromQL selectors get their samples: the series model ([`Labels`], [`SeriesSource`])
//! and its implementation over the running server ([`WeirSource`]): every result column of
//! every query per group key, plus the rule-decision series of [`crate::decisions`].
//!
//! # Series naming (stable)
//! A query `q` with a column `c` gives, per group key, the series
//! `q_c{query="q", column="c", <group field>="<value>"…}`: the metric name is the query and
//! column names joined by `_`, with every character outside `[a-zA-Z0-9_:]` turned into `_`
//! (a rule's own query `rule:r` becomes `rule:r_c`, with `query="rule:r"`). Group fields are
//! labels under their own name (characters outside `[a-zA-Z0-9_]` become `_`); a field whose
//! label name would be reserved (`__name__`, `query`, `column`, `rule`, `decision`, or
//! starting with `__`) is prefixed with `key_`. Values are the key's text (numbers as
//! written in JSON).
//!
//! # Samples
//! The value of a series at time `t` is its row for the bucket holding `t`: for a series
//! query (`timeseries(time, g)`) the bucket starting at `floor(t/g)·g`; for a sliding query
//! the window ending with that bucket (the HOP row of SPEC section 3), exact, or no sample
//! when that window is not fully retained; for a query without `timeseries` the current
//! value at every `t` at or after the query's watermark (before it, no sample). A key with
//! no row there has no sample, so series disappear between their buckets as in Prometheus
//! after a staleness marker. Non-numeric values (strings, null) give no sample; booleans are
//! 0 and 1.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use axum::http::HeaderValue;

use promql_parser::label::Matcher;
use serde_json::{Map, Value};
use weir_engine::{ReadRequest, Row};

use super::render::PromError;
use crate::app::App;
use crate::cluster::Cluster;
use crate::decisions::DecisionSeries;

/// A series' labels, `__name__` included, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// One series with a value (or none) at each evaluation time.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its labels.
    pub labels: Labels,
    /// One value per evaluation time; `None`: no sample then.
    pub values: Vec<Option<f64>>,
}

/// What selectors read.
pub trait SeriesSource {
    /// Every series matching `matchers` at each of `times` (unix ms, ascending). Series with
    /// no sample at any of the times may be left out.
    fn select(&self, matchers: &[Matcher], times: &[i64]) -> Result<Vec<Series>, PromError>;

    /// The labels of every series matching `matchers` with a sample in `[from, to]`
    /// (unix ms; `None`: unbounded).
    fn series(
        &self,
        matchers: &[Matcher],
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<Vec<Labels>, PromError>;
}

/// Whether every matcher accepts `labels` (a missing label reads as "", as in Prometheus).
pub fn matches_all(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers
        .iter()
        .all(|m| m.is_match(labels.get(&m.name).map(String::as_str).unwrap_or("")))
}

/// Whether the matchers on the given labels accept them, ignoring matchers on other labels.
pub fn matches_known(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers
        .iter()
        .filter(|m| labels.contains_key(&m.name))
        .all(|m| m.is_match(&labels[&m.name]))
}

/// A metric name: characters outside `[a-zA-Z0-9_:]` become `_`, and a leading digit gets a
/// `_` in front.
pub fn metric_name(query: &str, column: &str) -> String {
    let raw = format!("{query}_{column}");
    let mut s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// Labels reserved for Weir's own use; group fields with these names get a `key_` prefix.
const RESERVED: [&str; 5] = ["__name__", "query", "column", "rule", "decision"];

/// The label name of a group field.
pub fn key_label(field: &str) -> String {
    let mut s: String = field
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    if RESERVED.contains(&s.as_str()) || s.starts_with("__") {
        s.insert_str(0, "key_");
    }
    s
}

/// A key value as label text: strings as they are, anything else as its JSON.
pub fn label_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Add a group key's labels.
pub fn add_key_labels(labels: &mut Labels, key: &Map<String, Value>) {
    for (f, v) in key {
        labels.insert(key_label(f), label_value(v));
    }
}

/// A result value as a sample: numbers, booleans as 0/1; anything else none.
pub fn sample(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// How a query's rows map to times.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// No `timeseries`: the current value, from the watermark on.
    Unbounded { watermark: Option<i64> },
    /// Tumbling buckets of g ms (rows carry `bucket_start`).
    Tumbling { g: i64 },
    /// Sliding windows advancing every g ms (rows carry `window_end`).
    Sliding { g: i64 },
}

impl Shape {
    /// The bucket (or, unbounded, 0) a time reads.
    fn slot(self, t: i64) -> Option<i64> {
        match self {
            Shape::Unbounded { watermark } => watermark.filter(|w| t >= *w).map(|_| 0),
            Shape::Tumbling { g } | Shape::Sliding { g } => Some(t.div_euclid(g) * g),
        }
    }

    /// The bucket a row belongs to.
    fn row_slot(self, r: &Row) -> Option<i64> {
        match self {
            Shape::Unbounded { .. } => Some(0),
            Shape::Tumbling { .. } => r.bucket_start,
            Shape::Sliding { g } => r.window_end.map(|e| e - g),
        }
    }
}

/// How a node of a cluster reads: every partition, its own cells' and its peers' (see
/// [`crate::cluster::forward`]), from a blocking thread of the runtime `handle`.
pub struct Fanout {
    /// This node's part of the cluster.
    pub cluster: Arc<Cluster>,
    /// The caller's key, passed on to the peers.
    pub auth: Option<HeaderValue>,
    /// The runtime the reads run on.
    pub handle: tokio::runtime::Handle,
}

/// The server's query results and rule decisions as series.
pub struct WeirSource<'a> {
    app: &'a App,
    /// In cluster mode: read over the cluster, merged exactly (or refused).
    fanout: Option<Fanout>,
    /// The cluster's decision series, gathered once per evaluation.
    cluster_decisions: OnceLock<DecisionSeries>,
}

impl<'a> WeirSource<'a> {
    /// Read from `app`.
    pub fn new(app: &'a App) -> Self {
        Self {
            app,
            fanout: None,
            cluster_decisions: OnceLock::new(),
        }
    }

    /// Read from `app`'s definitions and, with `fanout`, the whole cluster's state.
    pub fn with_fanout(app: &'a App, fanout: Option<Fanout>) -> Self {
        Self {
            fanout,
            ..Self::new(app)
        }
    }

    /// The decision series, if `matchers` can select any of them: this node's, or in a
    /// cluster every partition's (gathered once).
    fn decisions(&self, matchers: &[Matcher]) -> Result<Option<&DecisionSeries>, PromError> {
        let wanted = [
            "weir_rule_decisions",
            "weir_rule_value",
            "weir_rule_threshold",
        ]
        .iter()
        .any(|n| {
            matches_known(
                matchers,
                &Labels::from([("__name__".into(), n.to_string())]),
            )
        });
        if !wanted {
            return Ok(None);
        }
        let Some(f) = &self.fanout else {
            return Ok(Some(self.app.decision_series()));
        };
        if self.cluster_decisions.get().is_none() {
            let ds = f
                .handle
                .block_on(crate::cluster::forward::decisions_all(
                    &f.cluster,
                    self.app.tenant(),
                    f.auth.clone(),
                ))
                .map_err(PromError::from_api)?;
            let _ = self.cluster_decisions.set(ds);
        }
        Ok(self.cluster_decisions.get())
    }

    /// Every visible query with its shape and columns, and the base labels of each column.
    fn queries(&self, matchers: &[Matcher]) -> Vec<QueryColumns> {
        let mut out = Vec::new();
        for name in self.app.engine().query_names() {
            let Some(qs) = self.app.engine().query_shape(&name) else {
                continue;
            };
            let shape = match (qs.granularity, qs.window) {
                (Some(g), Some(_)) => Shape::Sliding { g },
                (Some(g), None) => Shape::Tumbling { g },
                _ => Shape::Unbounded {
                    watermark: self.app.engine().query(&name).and_then(|q| q.watermark()),
                },
            };
            let columns: Vec<(String, Labels)> = qs
                .columns
                .iter()
                .filter(|c| !qs.group_fields.contains(c))
                .map(|c| {
                    let labels = Labels::from([
                        ("__name__".to_string(), metric_name(&name, c)),
                        ("query".to_string(), name.clone()),
                        ("column".to_string(), c.clone()),
                    ]);
                    (c.clone(), labels)
                })
                .filter(|(_, l)| matches_known(matchers, l))
                .collect();
            if !columns.is_empty() {
                out.push((name, shape, columns));
            }
        }
        out
    }

    /// Whether, in a cluster, query `name`'s rows cannot be read exactly over every
    /// partition (its groups span partitions and its columns do not merge).
    fn refused(&self, name: &str) -> bool {
        self.fanout.as_ref().is_some_and(|f| {
            crate::api::queries::cluster_merge(&f.cluster, self.app, name)
                .is_err_and(|e| e.status == axum::http::StatusCode::CONFLICT)
        })
    }

    /// The rows of query `name` whose bucket (slot) is in `[from, to]`, and its shape as of
    /// the read (in a cluster, an unbounded query's watermark is the latest partition's).
    fn rows(
        &self,
        name: &str,
        shape: Shape,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<(Vec<Row>, Shape), PromError> {
        let mut req = ReadRequest::default();
        if let Shape::Tumbling { g } | Shape::Sliding { g } = shape {
            req.from = from.map(|f| f.div_euclid(g) * g);
            req.to = to.map(|t| t.div_euclid(g) * g + g);
        }
        let (rows, shape) = match &self.fanout {
            None => {
                let rows =
                    self.app.engine().result(name, &req).map_err(|e| {
                        PromError::execution(format!("reading query '{name}': {e}"))
                    })?;
                (rows, shape)
            }
            Some(f) => {
                let ops = crate::api::queries::cluster_merge(&f.cluster, self.app, name)
                    .map_err(PromError::from_api)?;
                if req.from.is_none() && req.to.is_none() {
                    // What every node's read takes then (SPEC section 13): now.
                    req.at = Some(self.app.clock().now_ms());
                }
                let mut params = HashMap::new();
                for (k, v) in [("at", req.at), ("from", req.from), ("to", req.to)] {
                    if let Some(ms) = v {
                        params.insert(k.to_string(), rfc3339_ms(ms)?);
                    }
                }
                let part = f
                    .handle
                    .block_on(crate::cluster::forward::read_all(
                        &f.cluster,
                        self.app.tenant(),
                        f.auth.clone(),
                        name,
                        &params,
                        &req,
                        &ops,
                    ))
                    .map_err(PromError::from_api)?;
                let shape = match shape {
                    Shape::Unbounded { .. } => Shape::Unbounded {
                        watermark: part.watermark,
                    },
                    other => other,
                };
                (part.rows, shape)
            }
        };
        if let (Shape::Unbounded { watermark: Some(w) }, Some(to)) = (shape, to) {
            if to < w {
                return Ok((Vec::new(), shape));
            }
        }
        Ok((rows, shape))
    }
}

/// A time as RFC 3339: read back exactly by every node (a bare number below 10^11 would
/// be taken as seconds).
fn rfc3339_ms(ms: i64) -> Result<String, PromError> {
    weir_core::format_time(ms)
        .ok_or_else(|| PromError::bad_data(format!("time {ms} ms is out of range")))
}

impl SeriesSource for WeirSource<'_> {
    fn select(&self, matchers: &[Matcher], times: &[i64]) -> Result<Vec<Series>, PromError> {
        let mut out = Vec::new();
        let (Some(&first), Some(&last)) = (times.iter().min(), times.iter().max()) else {
            return Ok(out);
        };
        for (name, shape, columns) in self.queries(matchers) {
            let (rows, shape) = self.rows(&name, shape, Some(first), Some(last))?;
            // key text → (key, slot → row)
            let mut by_key: KeyRows<'_> = HashMap::new();
            for r in &rows {
                let Some(slot) = shape.row_slot(r) else {
                    continue;
                };
                let k = Value::Object(r.key.clone()).to_string();
                by_key
                    .entry(k)
                    .or_insert_with(|| (&r.key, HashMap::new()))
                    .1
                    .insert(slot, r);
            }
            let slots: Vec<Option<i64>> = times.iter().map(|&t| shape.slot(t)).collect();
            for (key, by_slot) in by_key.values() {
                for (col, base) in &columns {
                    let mut labels = base.clone();
                    add_key_labels(&mut labels, key);
                    if !matches_all(matchers, &labels) {
                        continue;
                    }
                    let values: Vec<Option<f64>> = slots
                        .iter()
                        .map(|s| s.and_then(|s| by_slot.get(&s)))
                        .map(|r| r.and_then(|r| sample(r.values.get(col))))
                        .collect();
                    if values.iter().any(Option::is_some) {
                        out.push(Series { labels, values });
                    }
                }
            }
        }
        if let Some(ds) = self.decisions(matchers)? {
            out.extend(super::decisions::select(ds, matchers, times));
        }
        Ok(out)
    }

    fn series(
        &self,
        matchers: &[Matcher],
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<Vec<Labels>, PromError> {
        let mut out = Vec::new();
        for (name, shape, columns) in self.queries(matchers) {
            // A query a cluster cannot read exactly has no series to list (selecting it is
            // refused, saying why).
            if self.refused(&name) {
                continue;
            }
            let (rows, _) = self.rows(&name, shape, from, to)?;
            let mut seen = std::collections::HashSet::new();
            for r in &rows {
                for (col, base) in &columns {
                    if sample(r.values.get(col)).is_none() {
                        continue;
                    }
                    let mut labels = base.clone();
                    add_key_labels(&mut labels, &r.key);
                    if matches_all(matchers, &labels) && seen.insert(labels.clone()) {
                        out.push(labels);
                    }
                }
            }
        }
        if let Some(ds) = self.decisions(matchers)? {
            out.extend(super::decisions::series(ds, matchers, from, to));
        }
        Ok(out)
    }
}

/// Series held in memory, for tests of the evaluator: each sample is valid for `g` ms from
/// its timestamp (the bucket model of [`WeirSource`]).
#[cfg(test)]
pub struct MemSource {
    /// Bucket width.
    pub g: i64,
    /// Series and their samples by bucket start.
    pub series: Vec<(Labels, BTreeMap<i64, f64>)>,
}

#[cfg(test)]
impl SeriesSource for MemSource {
    fn select(&self, matchers: &[Matcher], times: &[i64]) -> Result<Vec<Series>, PromError> {
        Ok(self
            .series
            .iter()
            .filter(|(l, _)| matches_all(matchers, l))
            .map(|(l, s)| Series {
                labels: l.clone(),
                values: times
                    .iter()
                    .map(|t| s.get(&(t.div_euclid(self.g) * self.g)).copied())
                    .collect(),
            })
            .collect())
    }

    fn series(
        &self,
        matchers: &[Matcher],
        _from: Option<i64>,
        _to: Option<i64>,
    ) -> Result<Vec<Labels>, PromError> {
        Ok(self
            .series
            .iter()
            .filter(|(l, _)| matches_all(matchers, l))
            .map(|(l, _)| l.clone())
            .collect())
    }
}

/// A query's name, shape, and its columns with their base labels.
type QueryColumns = (String, Shape, Vec<(String, Labels)>);

/// Rows of one query by key text: the key, and the rows by time slot.
type KeyRows<'a> = HashMap<String, (&'a Map<String, Value>, HashMap<i64, &'a Row>)>;
