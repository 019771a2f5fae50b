//! Reading results (SPEC sections 3 and 13).
//!
//! - Sliding query, `at` (default: its watermark): one row per key with events in the
//!   window ending with the bucket of `at`, carrying `window_start`/`window_end`.
//! - Sliding query, `from`/`to`: the HOP rows — for each bucket start b in `[from, to)`
//!   aligned to `step` (default g), the window ending with that bucket, per key.
//! - Tumbling query: one row per (bucket, key) with `from <= bucket_start < to`
//!   (`at` alone picks the bucket holding `at`; nothing picks every retained bucket).
//! - No timeseries: one row per key, cumulative since creation.
//! - A query over a query: the upstream's rows over the last `(duration)` of its
//!   watermark, passed through this query's select (projected, or aggregated again).
//!
//! Rows are ordered by time then key; HAVING filters them and LIMIT cuts them.
//!
//! **Only complete windows are returned.** A key's buckets below its shard's retention line
//! are gone (and events below it were dropped as late), so a window reaching below that line
//! would come back with buckets missing. Every windowed read therefore computes the highest
//! retention line over the query's shards, K, and returns only windows that start at or
//! after it (a series bucket is a window of one bucket). [`Answer::complete_from`] says
//! where that leaves the caller: the first window end from which rows are complete
//! (`K + w` for a sliding query, `K + g` for a series). No event at or after K was ever
//! dropped (the line only rises) and no bucket at or after it was evicted, so every row
//! returned equals a recount of the raw events.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weir_core::Event;

use crate::expr::{RowCtx, Val};
use crate::plan::{Plan, SourceKind, TimeShape};
use crate::shard::Acc;
use crate::{Engine, EngineConfig, QueryRt, Result};

/// What to read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadRequest {
    /// Reference time of a sliding window (default: the query's watermark).
    pub at: Option<i64>,
    /// Series start (inclusive bucket start).
    pub from: Option<i64>,
    /// Series end (exclusive bucket start).
    pub to: Option<i64>,
    /// HOP step for a sliding query read as a series (a multiple of g).
    pub step: Option<i64>,
    /// `key.FIELD=VALUE` filters.
    pub keys: Vec<(String, Value)>,
}

/// One result row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Group key.
    pub key: Map<String, Value>,
    /// Columns.
    pub values: Map<String, Value>,
    /// Window start (sliding).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_start: Option<i64>,
    /// Window end (sliding).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_end: Option<i64>,
    /// Bucket start (series).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket_start: Option<i64>,
}

/// The rows of a read, and from which window end they are complete.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The rows (see the module docs).
    pub rows: Vec<Row>,
    /// For a windowed query: the first window end (`window_end`, or `bucket_start + g` for
    /// a series row) for which rows are complete — windows ending earlier reach below the
    /// retained buckets and are not returned. None when every window is complete (no event
    /// yet, no time window, or a query over a query).
    pub complete_from: Option<i64>,
}

/// The group key as a map.
pub fn key_map(plan: &Plan, parts: &[Value]) -> Map<String, Value> {
    plan.group
        .iter()
        .cloned()
        .zip(parts.iter().cloned())
        .collect()
}

/// The columns of a row (as a map and in order).
pub fn row_values(
    plan: &Plan,
    aggs: &[Value],
    key: &[Value],
    start: Option<i64>,
    end: Option<i64>,
) -> (Map<String, Value>, Vec<Value>) {
    let mut cols: Vec<Value> = Vec::with_capacity(plan.columns.len());
    for (_, e) in &plan.columns {
        let v = e
            .eval(&RowCtx {
                aggs,
                key,
                cols: &cols,
                start,
                end,
            })
            .to_json();
        cols.push(v);
    }
    let map = plan
        .columns
        .iter()
        .map(|(n, _)| n.clone())
        .zip(cols.iter().cloned())
        .collect();
    (map, cols)
}

/// Loose equality for `key.FIELD=VALUE` filters (a string filter matches a number key).
fn loose_eq(a: &Value, b: &Value) -> bool {
    if a == b || Val::of(a) == Val::of(b) {
        return true;
    }
    match (a, b) {
        (Value::String(s), other) | (other, Value::String(s)) => {
            !other.is_string() && other.to_string().as_str() == s.as_str()
        }
        _ => false,
    }
}

fn key_ok(plan: &Plan, parts: &[Value], req: &ReadRequest) -> bool {
    req.keys.iter().all(|(f, v)| {
        plan.group
            .iter()
            .position(|g| g == f)
            .is_some_and(|i| loose_eq(&parts[i], v))
    })
}

/// What one row is made of before its columns are computed.
struct Raw {
    parts: Vec<Value>,
    acc: Acc,
    start: Option<i64>,
    end: Option<i64>,
    bucket: Option<i64>,
}

fn ord_key(r: &Row) -> (i64, i64, String) {
    (
        r.bucket_start.or(r.window_end).unwrap_or(i64::MIN),
        r.window_start.unwrap_or(i64::MIN),
        Value::Object(r.key.clone()).to_string(),
    )
}

/// Read a query: its rows only (see [`answer`]).
pub fn read(engine: &Engine, q: &QueryRt, req: &ReadRequest) -> Result<Vec<Row>> {
    Ok(answer(engine, q, req)?.rows)
}

/// Read a query: its rows and from which window end they are complete.
pub fn answer(engine: &Engine, q: &QueryRt, req: &ReadRequest) -> Result<Answer> {
    if let SourceKind::Query { name, window } = &q.plan.source {
        return Ok(Answer {
            rows: read_view(engine, q, name, *window, req)?,
            complete_from: None,
        });
    }
    let plan = &q.plan;
    let wm = q.watermark();
    let mut raws: Vec<Raw> = Vec::new();
    // The highest retention line seen over the shards: windows starting below it are
    // incomplete in at least one shard.
    let mut line = i64::MIN;
    for s in q.shards.iter() {
        let s = s.lock();
        let keep = s.keep_line(plan);
        line = line.max(keep);
        for ks in s.table.iter() {
            if !key_ok(plan, &ks.parts, req) {
                continue;
            }
            let mut push = |acc: Option<Acc>, start, end, bucket| {
                if let Some(acc) = acc {
                    raws.push(Raw {
                        parts: ks.parts.to_vec(),
                        acc,
                        start,
                        end,
                        bucket,
                    });
                }
            };
            let n = ks.len(plan.stride);
            match plan.time {
                TimeShape::Unbounded => push(s.acc(plan, ks, i64::MIN, i64::MAX), None, None, None),
                TimeShape::Tumbling { g } => {
                    let (from, to) = match (req.from, req.to, req.at) {
                        (None, None, Some(at)) => (plan.time.bucket(at), plan.time.bucket(at) + 1),
                        (f, t, _) => (f.unwrap_or(i64::MIN), t.unwrap_or(i64::MAX)),
                    };
                    let a = ks.lower_bound(from.max(keep), plan.stride);
                    let b = ks.lower_bound(to, plan.stride);
                    for i in a..b.min(n) {
                        let st = ks.start(i, plan.stride);
                        push(s.acc(plan, ks, st, st + g), None, None, Some(st));
                    }
                }
                TimeShape::Sliding { g, w } => {
                    if req.from.is_some() || req.to.is_some() {
                        if n == 0 {
                            continue;
                        }
                        let step = req.step.filter(|s| *s > 0 && s % g == 0).unwrap_or(g);
                        // Last buckets b of the windows to compute: the window [b + g - w,
                        // b + g) must start at or after this shard's line (else buckets of
                        // it are gone) and reach this key's first bucket.
                        let complete = keep.saturating_add(w - g);
                        let first = ks.start(0, plan.stride).max(complete);
                        let last = ks.start(n - 1, plan.stride) + w - g;
                        let from = req.from.unwrap_or(complete).max(first);
                        let to = req.to.unwrap_or(i64::MAX).min(last + 1);
                        let mut b = from.div_euclid(step) * step;
                        if b < from {
                            b += step;
                        }
                        while b < to {
                            let end = b + g;
                            push(
                                s.acc(plan, ks, end - w, end),
                                Some(end - w),
                                Some(end),
                                None,
                            );
                            b += step;
                        }
                    } else {
                        let Some(at) = req.at.or(wm) else { continue };
                        let (lo, hi) = plan.time.window_at(at);
                        if lo >= keep {
                            push(s.acc(plan, ks, lo, hi), Some(lo), Some(hi), None);
                        }
                    }
                }
            }
        }
    }
    // Keep only the windows complete in every shard (a row's window starts at its
    // `window_start`, or its bucket for a series row).
    let complete_from = match plan.time {
        _ if line == i64::MIN => None,
        TimeShape::Unbounded => None,
        TimeShape::Tumbling { g } => Some(line.saturating_add(g)),
        TimeShape::Sliding { w, .. } => Some(line.saturating_add(w)),
    };
    if line != i64::MIN {
        raws.retain(|r| r.bucket.or(r.start).is_none_or(|t| t >= line));
    }
    let mut rows: Vec<Row> = raws
        .into_iter()
        .filter_map(|r| finish_row(plan, &r))
        .collect();
    rows.sort_by_cached_key(ord_key);
    if let Some(l) = plan.limit {
        rows.truncate(l as usize);
    }
    Ok(Answer {
        rows,
        complete_from,
    })
}

/// Columns and HAVING of one raw row.
fn finish_row(plan: &Plan, r: &Raw) -> Option<Row> {
    let aggs = r.acc.finish(plan);
    let (lo, hi) = match (r.bucket, plan.time.granularity()) {
        (Some(b), Some(g)) => (Some(b), Some(b + g)),
        _ => (r.start, r.end),
    };
    let (values, cols) = row_values(plan, &aggs, &r.parts, lo, hi);
    if let Some(h) = &plan.having {
        let cx = RowCtx {
            aggs: &aggs,
            key: &r.parts,
            cols: &cols,
            start: lo,
            end: hi,
        };
        if !h.eval(&cx).truthy() {
            return None;
        }
    }
    Some(Row {
        key: key_map(plan, &r.parts),
        values,
        window_start: r.start,
        window_end: r.end,
        bucket_start: r.bucket,
    })
}

/// A query over a query: evaluated when read from the upstream's rows.
fn read_view(
    engine: &Engine,
    q: &QueryRt,
    upstream: &str,
    window: Option<i64>,
    req: &ReadRequest,
) -> Result<Vec<Row>> {
    let up = engine
        .query(upstream)
        .ok_or_else(|| crate::EngineError::UnknownQuery(upstream.to_string()))?;
    let Some(wm) = up.watermark() else {
        return Ok(Vec::new());
    };
    let end = up
        .plan
        .time
        .granularity()
        .map_or(wm + 1, |g| up.plan.time.bucket(wm) + g);
    let up_req = match up.plan.time {
        TimeShape::Unbounded => ReadRequest::default(),
        _ => ReadRequest {
            from: Some(window.map_or(i64::MIN, |w| end - w)),
            to: Some(end),
            ..ReadRequest::default()
        },
    };
    let up_rows = read(engine, &up, &up_req)?;
    // Each upstream row becomes an event: its key and values as fields, its time the
    // bucket (or window) start.
    let events: Vec<Event> = up_rows
        .iter()
        .map(|r| {
            let mut fields = r.key.clone();
            fields.extend(r.values.clone());
            let ts = r.bucket_start.or(r.window_start).unwrap_or(wm);
            Event::new(upstream, ts, fields)
        })
        .collect();
    let plan = &q.plan;
    let simple = plan.aggs.is_empty() && plan.group.is_empty() && plan.time == TimeShape::Unbounded;
    if simple || plan.wildcard {
        // Projection: one row per upstream row that passes WHERE.
        let mut rows = Vec::new();
        for (ev, r) in events.iter().zip(&up_rows) {
            if !plan.filter.as_ref().is_none_or(|f| f.eval(ev).truthy()) {
                continue;
            }
            let mut acc = crate::shard::Shard::empty_acc(plan);
            acc.fold(plan, ev);
            let aggs = acc.finish(plan);
            let (cols, _) = row_values(plan, &aggs, &[], r.bucket_start, None);
            let mut values = if plan.wildcard {
                r.values.clone()
            } else {
                Map::new()
            };
            values.extend(cols);
            rows.push(Row {
                values,
                ..r.clone()
            });
        }
        if let Some(l) = plan.limit {
            rows.truncate(l as usize);
        }
        return Ok(rows);
    }
    // Aggregation over the upstream rows: a scratch engine runs this plan over them.
    let scratch = Engine::new(EngineConfig {
        shards: 1,
        ..engine.config()
    });
    let mut sel = plan.select.clone();
    sel.from = weir_query_lang::ast::Source::Named {
        name: weir_query_lang::ast::Ident::new(upstream),
        window: None,
    };
    scratch.create_query("view", &sel)?;
    for ev in &events {
        scratch.apply(ev, || 0);
    }
    scratch.result("view", req)
}
