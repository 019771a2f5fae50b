//! The seed 001 JSON query (`POST /api/query`, SPEC section 8).
//!
//! [`JsonQuery::compile`] checks a query (errors name the path: `data[1].filters[0].type:
//! expected one of eq, regex, all`); the server then pushes the stored events of
//! [`JsonQuery::time_range`] (and only the types of [`JsonQuery::event_types`], when that is
//! `Some`) in (ts, id) order, and [`JsonQuery::finish`] answers:
//!
//! ```json
//! {"data":{"product_view":{"count":3,"unique":{"user_id":2}}},
//!  "funnel":{"steps":[{"name":"product_view","count":3},
//!                     {"name":"add_to_cart","count":2,"conversions":1}]}}
//! ```
//!
//! Each event costs O(data sets × filters + funnel steps) hash-map operations; memory is the
//! distinct unique values and funnel match values seen.
//!
//! - [`schema`]: the JSON Schema published at `GET /api/query/schema`.

mod filter;
mod funnel;
pub mod schema;
mod spec;

use std::collections::HashSet;

use serde_json::{json, Map, Value};
use weir_core::{Event, EventId, Millis};

use crate::error::Result;
use crate::value::text_form;
use filter::Filter;
use funnel::Funnel;

pub use filter::TYPE_KEYS;
pub use schema::query_schema;

/// One data set being counted.
#[derive(Debug, Clone)]
struct DataSet {
    name: String,
    filters: Vec<Filter>,
    /// Sum of the matching events' samplerates (SPEC section 1: count scales by it).
    weight: f64,
    /// Distinct text forms per unique field.
    unique: Vec<(String, HashSet<String>)>,
}

impl DataSet {
    fn matches(&self, ev: &Event) -> bool {
        self.filters.iter().all(|f| f.matches(ev))
    }

    /// The types this set can match, if its filters pin them down.
    fn pinned_types(&self) -> Option<Vec<String>> {
        let mut pinned: Option<Option<&str>> = None;
        for t in self.filters.iter().filter_map(Filter::pinned_type) {
            pinned = match pinned {
                None => Some(t),
                Some(p) if p == t => Some(p),
                Some(_) => Some(None),
            };
        }
        pinned.map(|p| p.map(|t| vec![t.to_string()]).unwrap_or_default())
    }
}

/// A compiled JSON query, counting the events pushed into it.
#[derive(Debug, Clone)]
pub struct JsonQuery {
    start: Option<Millis>,
    end: Option<Millis>,
    sets: Vec<DataSet>,
    funnel: Option<Funnel>,
    /// Scratch: which sets the current event belongs to.
    in_set: Vec<bool>,
}

impl JsonQuery {
    /// Check and compile a query body. The error names the path and the problem.
    pub fn compile(query: &Value) -> Result<Self> {
        let spec = spec::parse_query(query)?;
        let sets: Vec<DataSet> = spec
            .data
            .iter()
            .map(|d| DataSet {
                name: d.name.clone(),
                filters: d.filters.iter().map(Filter::compile).collect(),
                weight: 0.0,
                unique: d
                    .unique
                    .iter()
                    .map(|u| (u.clone(), HashSet::new()))
                    .collect(),
            })
            .collect();
        let funnel = spec.funnel.map(|f| Funnel::new(f.steps, f.match_keys));
        Ok(Self {
            start: spec.start,
            end: spec.end,
            in_set: vec![false; sets.len()],
            sets,
            funnel,
        })
    }

    /// `(start, end)` in unix ms: start inclusive, end exclusive; `None` is unbounded.
    pub fn time_range(&self) -> (Option<Millis>, Option<Millis>) {
        (self.start, self.end)
    }

    /// The event types the filters pin down (sorted, no repeats), so the server can read
    /// only those; `None` when some data set may match any type. A set is pinned by an
    /// `eq` filter on one of [`TYPE_KEYS`].
    pub fn event_types(&self) -> Option<Vec<String>> {
        let mut all = Vec::new();
        for set in &self.sets {
            all.extend(set.pinned_types()?);
        }
        all.sort();
        all.dedup();
        Some(all)
    }

    /// Whether `ts` is inside the time range.
    fn in_range(&self, ts: Millis) -> bool {
        self.start.is_none_or(|s| ts >= s) && self.end.is_none_or(|e| ts < e)
    }

    /// Count one stored event. Events must come in (ts, id) order (the order storage
    /// streams them in): the funnel's "earlier" is "pushed before". Events outside the
    /// time range are ignored.
    pub fn push(&mut self, id: EventId, ev: &Event) {
        let _ = id;
        if !self.in_range(ev.ts) {
            return;
        }
        for (i, set) in self.sets.iter_mut().enumerate() {
            let hit = set.matches(ev);
            self.in_set[i] = hit;
            if !hit {
                continue;
            }
            set.weight += ev.samplerate;
            for (field, seen) in &mut set.unique {
                if let Some(t) = ev.field(field).and_then(text_form) {
                    if !seen.contains(t.as_ref()) {
                        seen.insert(t.into_owned());
                    }
                }
            }
        }
        if let Some(f) = &mut self.funnel {
            f.push(ev, &self.in_set);
        }
    }

    /// The answer so far: `{"data":{name:{"count","unique":{field:n}}},"funnel":{"steps":[…]}}`
    /// (`funnel` only when the query has one).
    pub fn finish(&self) -> Value {
        let mut data = Map::new();
        for set in &self.sets {
            let unique: Map<String, Value> = set
                .unique
                .iter()
                .map(|(f, seen)| (f.clone(), json!(seen.len())))
                .collect();
            data.insert(
                set.name.clone(),
                json!({"count": weight_json(set.weight), "unique": unique}),
            );
        }
        let mut out = Map::new();
        out.insert("data".into(), Value::Object(data));
        if let Some(f) = &self.funnel {
            let names: Vec<String> = self.sets.iter().map(|s| s.name.clone()).collect();
            out.insert("funnel".into(), f.answer(&names));
        }
        Value::Object(out)
    }
}

/// A weighted count as JSON: an integer when whole, else a float.
fn weight_json(w: f64) -> Value {
    if w.fract() == 0.0 && (0.0..9.0e15).contains(&w) {
        json!(w as u64)
    } else {
        json!(w)
    }
}
