//! Typed answers and request parameters.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The answer to an add: how many events were accepted and their ids.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Accepted {
    /// Events accepted.
    pub accepted: u64,
    /// Their event ids, in order.
    #[serde(default)]
    pub ids: Vec<u64>,
    /// Whether they were already durable when the answer came (`wait=durable`).
    #[serde(default)]
    pub durable: Option<bool>,
}

/// One matching rule's part of a decision.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct RuleDecision {
    /// The rule.
    pub rule: String,
    /// The group key the event falls in.
    #[serde(default)]
    pub key: Map<String, Value>,
    /// The calculated value the condition compares.
    #[serde(default)]
    pub value: Value,
    /// The threshold it is compared with (none for conditions that are not one comparison).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// The rule's window, e.g. `"1min"`.
    #[serde(default)]
    pub window: Option<String>,
    /// The window's start (unix ms).
    #[serde(default)]
    pub window_start: Option<i64>,
    /// The window's end (unix ms, exclusive).
    #[serde(default)]
    pub window_end: Option<i64>,
    /// `"allow"` or `"deny"`.
    pub decision: String,
}

/// The answer of check and add_and_check.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Decision {
    /// `"allow"` or `"deny"`.
    pub decision: String,
    /// The id the event got (none for `check`).
    #[serde(default)]
    pub event_id: Option<u64>,
    /// Every matching rule.
    #[serde(default)]
    pub rules: Vec<RuleDecision>,
}

impl Decision {
    /// Whether every matching rule allowed the event.
    pub fn allowed(&self) -> bool {
        self.decision == "allow"
    }
}

/// One result row.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Row {
    /// The group key.
    #[serde(default)]
    pub key: Map<String, Value>,
    /// The result columns.
    #[serde(default)]
    pub values: Map<String, Value>,
    /// A series row's bucket (unix ms).
    #[serde(default)]
    pub bucket_start: Option<i64>,
    /// A window's start (unix ms, inclusive).
    #[serde(default)]
    pub window_start: Option<i64>,
    /// A window's end (unix ms, exclusive).
    #[serde(default)]
    pub window_end: Option<i64>,
}

/// The answer of a result read: the rows, and any other field Weir adds.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ResultSet {
    /// The rows.
    pub rows: Vec<Row>,
    /// Other fields of the answer.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What to read of a query's result.
#[derive(Debug, Clone, Default)]
pub struct ResultParams {
    /// A sliding window's value at this time (unix ms or any time Weir parses).
    pub at: Option<String>,
    /// Series (or sliding-as-series) rows from this bucket start.
    pub from: Option<String>,
    /// … to this one (exclusive).
    pub to: Option<String>,
    /// One row every `step` (a multiple of the granularity), e.g. `"5min"`.
    pub step: Option<String>,
    /// Only rows whose group key has these values.
    pub keys: Vec<(String, String)>,
}

impl ResultParams {
    /// The value at `at`.
    pub fn at(at: impl ToString) -> Self {
        Self {
            at: Some(at.to_string()),
            ..Self::default()
        }
    }

    /// The rows between `from` and `to`.
    pub fn range(from: impl ToString, to: impl ToString) -> Self {
        Self {
            from: Some(from.to_string()),
            to: Some(to.to_string()),
            ..Self::default()
        }
    }

    /// Only the rows whose key has `field = value`.
    pub fn key(mut self, field: &str, value: impl ToString) -> Self {
        self.keys.push((field.to_string(), value.to_string()));
        self
    }

    /// One row every `step`.
    pub fn step(mut self, step: &str) -> Self {
        self.step = Some(step.to_string());
        self
    }

    pub(crate) fn to_query(&self) -> Vec<(String, String)> {
        let mut q: Vec<(String, String)> = [
            ("at", &self.at),
            ("from", &self.from),
            ("to", &self.to),
            ("step", &self.step),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), v.clone())))
        .collect();
        q.extend(
            self.keys
                .iter()
                .map(|(f, v)| (format!("key.{f}"), v.clone())),
        );
        q
    }
}

/// Filters and paging of `GET /api/events`.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Page, from 1.
    pub page: Option<u64>,
    /// Events per page.
    pub limit: Option<u64>,
    /// Earliest time.
    pub start: Option<String>,
    /// Latest time.
    pub end: Option<String>,
    /// Event types.
    pub event_types: Vec<String>,
    /// A session id.
    pub session: Option<String>,
    /// A seed 004 category.
    pub category: Option<String>,
    /// Group the answer by session.
    pub group_by_session: bool,
}

impl EventFilter {
    pub(crate) fn to_query(&self) -> Vec<(String, String)> {
        let mut q = Vec::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                q.push((k.to_string(), v));
            }
        };
        put("page", self.page.map(|p| p.to_string()));
        put("limit", self.limit.map(|l| l.to_string()));
        put("startDate", self.start.clone());
        put("endDate", self.end.clone());
        put("session", self.session.clone());
        put("category", self.category.clone());
        put(
            "groupBy",
            self.group_by_session.then(|| "session".to_string()),
        );
        q.extend(
            self.event_types
                .iter()
                .map(|t| ("eventType".to_string(), t.clone())),
        );
        q
    }
}
