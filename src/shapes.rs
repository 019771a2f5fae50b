//! JSON shapes shared by the API and the statement results (SPEC section 13).

use serde_json::{json, Map, Value};

/// One result row as the API answers it (SPEC section 13): `key`, `values`, and either
/// `bucket_start` (series) or `window_start`/`window_end` (sliding windows).
pub fn row_json(r: weir_engine::Row) -> Value {
    let mut o = Map::new();
    o.insert("key".into(), Value::Object(r.key));
    o.insert("values".into(), Value::Object(r.values));
    for (k, t) in [
        ("bucket_start", r.bucket_start),
        ("window_start", r.window_start),
        ("window_end", r.window_end),
    ] {
        if let Some(t) = t {
            o.insert(k.into(), json!(t));
        }
    }
    Value::Object(o)
}
