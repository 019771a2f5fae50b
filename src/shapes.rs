//! JSON shapes shared by the API and the statement results (SPEC section 13).

use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

/// One result row as the API answers it (SPEC section 13): `key`, `values`, and either
/// `bucket_start` (series) or `window_start`/`window_end` (sliding windows); unix ms.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResultRow {
    /// Series rows: the bucket's start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket_start: Option<i64>,
    /// The group key, field by field.
    #[schema(value_type = Object)]
    pub key: Map<String, Value>,
    /// The columns.
    #[schema(value_type = Object)]
    pub values: Map<String, Value>,
    /// Sliding windows: the window's end (exclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_end: Option<i64>,
    /// Sliding windows: the window's start (inclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_start: Option<i64>,
}

impl From<weir_engine::Row> for ResultRow {
    fn from(r: weir_engine::Row) -> Self {
        Self {
            bucket_start: r.bucket_start,
            key: r.key,
            values: r.values,
            window_end: r.window_end,
            window_start: r.window_start,
        }
    }
}

/// One result row as JSON ([`ResultRow`]).
pub fn row_json(r: weir_engine::Row) -> Value {
    json!(ResultRow::from(r))
}
