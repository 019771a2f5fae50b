//! Field names and their most frequent values per event type, for autocomplete
//! (`GET /api/keys[?type=…]`, seed 001's "expose event keys").
//!
//! [`KeyIndex::observe`] is fed every accepted event. Nested objects give dotted paths
//! (`user.id`); any other value (string, number, boolean, null, array) is a leaf whose text
//! form (`crate::value::text_form`, `null` for null, arrays as compact JSON) is counted in a
//! [`TopK`] table. Memory is bounded by [`KeyIndexConfig`]: per field at most `top_k` values
//! of at most `max_value_chars` characters, per type at most `max_fields_per_type` fields
//! (later new fields are not recorded), at most `max_types` types, paths of at most
//! `max_path_bytes` bytes and `max_depth` levels. Counts are exact while a field has at most
//! `top_k` distinct values, and Space-Saving estimates after that.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use weir_core::Event;

use crate::scope::Scope;
use crate::topk::TopK;
use crate::value::{text_form, truncate_chars};

/// Bounds on what a [`KeyIndex`] keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeyIndexConfig {
    /// Values kept per field (default 20).
    pub top_k: usize,
    /// Values are cut to this many characters (default 100).
    pub max_value_chars: usize,
    /// Fields kept per event type (default 1000).
    pub max_fields_per_type: usize,
    /// Event types kept (default 1000).
    pub max_types: usize,
    /// Longer field paths are not recorded (default 200 bytes).
    pub max_path_bytes: usize,
    /// Objects nested deeper than this are recorded as leaves (default 8).
    pub max_depth: usize,
}

impl Default for KeyIndexConfig {
    fn default() -> Self {
        Self {
            top_k: 20,
            max_value_chars: 100,
            max_fields_per_type: 1000,
            max_types: 1000,
            max_path_bytes: 200,
            max_depth: 8,
        }
    }
}

/// One field of one type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FieldKeys {
    count: u64,
    top: TopK,
}

/// The fields of one type: what [`KeyIndex`] keeps per type, serializable on its own so a
/// type can be persisted apart from the others (see [`crate::insights`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TypeKeys {
    count: u64,
    fields: HashMap<String, FieldKeys>,
}

/// Field names and top values per event type. Serializable, so the server can checkpoint it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct KeyIndex {
    config: KeyIndexConfig,
    types: HashMap<String, TypeKeys>,
}

impl KeyIndex {
    /// An empty index with the default bounds.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty index with these bounds.
    pub fn with_config(config: KeyIndexConfig) -> Self {
        Self {
            config,
            types: HashMap::new(),
        }
    }

    /// Record one event's type, field paths and values.
    pub fn observe(&mut self, ev: &Event) {
        self.observe_as(&ev.kind, ev);
    }

    /// Record one event's field paths and values under the type name `ty` (see
    /// [`crate::scope::type_key`]).
    pub fn observe_as(&mut self, ty: &str, ev: &Event) {
        let cfg = &self.config;
        if !self.types.contains_key(ty) {
            if self.types.len() >= cfg.max_types {
                return;
            }
            self.types.insert(ty.to_string(), TypeKeys::default());
        }
        let Some(tk) = self.types.get_mut(ty) else {
            return;
        };
        tk.count += 1;
        let mut path = String::new();
        for (k, v) in &ev.fields {
            walk(cfg, &mut tk.fields, &mut path, k, v, 1);
        }
    }

    /// The bounds this index keeps to.
    pub fn config(&self) -> &KeyIndexConfig {
        &self.config
    }

    /// The fields of one type, if it is kept.
    pub fn type_keys(&self, ty: &str) -> Option<&TypeKeys> {
        self.types.get(ty)
    }

    /// Put back the fields of one type (restoring persisted state); refused (`false`) when
    /// the index already keeps `max_types` other types.
    pub fn restore_type(&mut self, ty: &str, keys: TypeKeys) -> bool {
        if !self.types.contains_key(ty) && self.types.len() >= self.config.max_types {
            return false;
        }
        self.types.insert(ty.to_string(), keys);
        true
    }

    /// Types seen, with their event counts, most frequent first.
    pub fn types(&self) -> Vec<(&str, u64)> {
        let mut v: Vec<(&str, u64)> = self
            .types
            .iter()
            .map(|(t, k)| (t.as_str(), k.count))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        v
    }

    /// The answer of `GET /api/keys[?type=…]`.
    ///
    /// With a type: `{"type":T,"count":N,"keys":[{"key","count","values":[{"value","count"}]}]}`
    /// (an unknown type has count 0 and no keys). Without: the union over types (a key's
    /// counts summed, its values merged and cut to the top `top_k`) and the type list
    /// `"types":[{"type","count"}]`. Keys are sorted by name, values by count then value.
    pub fn keys(&self, ty: Option<&str>) -> Value {
        self.keys_with_prefix(ty, "")
    }

    /// [`KeyIndex::keys`] keeping only keys that start with `prefix`.
    pub fn keys_with_prefix(&self, ty: Option<&str>, prefix: &str) -> Value {
        self.keys_in(&Scope::default(), ty, prefix)
    }

    /// [`KeyIndex::keys_with_prefix`] over the types of one tenant's `scope`.
    pub fn keys_in(&self, scope: &Scope, ty: Option<&str>, prefix: &str) -> Value {
        match ty {
            Some(t) => {
                let tk = self.types.get(scope.stored(t).as_str());
                let mut keys: Vec<(&String, &FieldKeys)> = tk
                    .map(|tk| {
                        tk.fields
                            .iter()
                            .filter(|(k, _)| k.starts_with(prefix))
                            .collect()
                    })
                    .unwrap_or_default();
                keys.sort_by(|a, b| a.0.cmp(b.0));
                let keys: Vec<Value> = keys
                    .into_iter()
                    .map(|(k, f)| {
                        let values: Vec<(&str, u64)> = f
                            .top
                            .top()
                            .iter()
                            .map(|e| (e.value.as_str(), e.count))
                            .collect();
                        key_json(k, f.count, &values)
                    })
                    .collect();
                json!({"type": t, "count": tk.map_or(0, |tk| tk.count), "keys": keys})
            }
            None => {
                let mut merged: HashMap<&str, (u64, HashMap<&str, u64>)> = HashMap::new();
                let own = self.types.iter().filter(|(t, _)| scope.own(t).is_some());
                for (_, tk) in own {
                    for (k, f) in tk.fields.iter().filter(|(k, _)| k.starts_with(prefix)) {
                        let m = merged.entry(k.as_str()).or_default();
                        m.0 += f.count;
                        for e in f.top.top() {
                            *m.1.entry(e.value.as_str()).or_default() += e.count;
                        }
                    }
                }
                let mut names: Vec<&str> = merged.keys().copied().collect();
                names.sort_unstable();
                let keys: Vec<Value> = names
                    .into_iter()
                    .map(|k| {
                        let (count, vals) = &merged[k];
                        let mut values: Vec<(&str, u64)> =
                            vals.iter().map(|(v, c)| (*v, *c)).collect();
                        values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
                        values.truncate(self.config.top_k);
                        key_json(k, *count, &values)
                    })
                    .collect();
                let types: Vec<Value> = self
                    .types()
                    .into_iter()
                    .filter_map(|(t, c)| scope.own(t).map(|t| json!({"type": t, "count": c})))
                    .collect();
                json!({"keys": keys, "types": types})
            }
        }
    }
}

fn key_json(key: &str, count: u64, values: &[(&str, u64)]) -> Value {
    let values: Vec<Value> = values
        .iter()
        .map(|(v, c)| json!({"value": v, "count": c}))
        .collect();
    json!({"key": key, "count": count, "values": values})
}

/// Record `value` under `path.key`, descending into objects.
fn walk(
    cfg: &KeyIndexConfig,
    fields: &mut HashMap<String, FieldKeys>,
    path: &mut String,
    key: &str,
    value: &Value,
    depth: usize,
) {
    let before = path.len();
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
    if path.len() <= cfg.max_path_bytes {
        match value {
            Value::Object(m) if depth < cfg.max_depth => {
                for (k, v) in m {
                    walk(cfg, fields, path, k, v, depth + 1);
                }
            }
            leaf => record(cfg, fields, path, leaf),
        }
    }
    path.truncate(before);
}

fn record(cfg: &KeyIndexConfig, fields: &mut HashMap<String, FieldKeys>, path: &str, v: &Value) {
    let text = text_form(v);
    let text = truncate_chars(text.as_deref().unwrap_or("null"), cfg.max_value_chars);
    if let Some(f) = fields.get_mut(path) {
        f.count += 1;
        f.top.add(text);
    } else if fields.len() < cfg.max_fields_per_type {
        let mut top = TopK::new(cfg.top_k);
        top.add(text);
        fields.insert(path.to_string(), FieldKeys { count: 1, top });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn ev(kind: &str, fields: Value) -> Event {
        let Value::Object(m) = fields else {
            return Event::new(kind, 0, Map::new());
        };
        Event::new(kind, 0, m)
    }

    #[test]
    fn nested_paths_and_exact_counts() {
        let mut ix = KeyIndex::new();
        ix.observe(&ev("click", json!({"user": {"id": "u1"}, "n": 1})));
        ix.observe(&ev("click", json!({"user": {"id": "u1"}, "n": null})));
        ix.observe(&ev("click", json!({"user": {"id": "u2"}})));
        let ans = ix.keys(Some("click"));
        assert_eq!(ans["count"], 3);
        assert_eq!(
            ans["keys"],
            json!([
                {"key": "n", "count": 2, "values": [{"value": "1", "count": 1}, {"value": "null", "count": 1}]},
                {"key": "user.id", "count": 3, "values": [{"value": "u1", "count": 2}, {"value": "u2", "count": 1}]}
            ])
        );
        assert_eq!(
            ix.keys(Some("nope")),
            json!({"type": "nope", "count": 0, "keys": []})
        );
    }

    #[test]
    fn bounds_hold() {
        let cfg = KeyIndexConfig {
            top_k: 2,
            max_value_chars: 3,
            max_fields_per_type: 2,
            max_types: 1,
            max_path_bytes: 5,
            max_depth: 2,
        };
        let mut ix = KeyIndex::with_config(cfg);
        ix.observe(&ev(
            "a",
            json!({"x": "abcdef", "toolongkey": 1, "y": {"z": {"w": 1}}, "q": 1}),
        ));
        ix.observe(&ev("b", json!({"x": 1})));
        let ans = ix.keys(None);
        assert_eq!(ans["types"], json!([{"type": "a", "count": 1}]));
        let keys: Vec<&str> = ans["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["key"].as_str().unwrap())
            .collect();
        // "toolongkey" is over 5 bytes; "y.z" is at max depth so it is a leaf; "q" is
        // the third field, over the limit of 2 (map order decides which two are kept).
        assert_eq!(keys.len(), 2);
        assert!(!keys.contains(&"toolongkey"));
        if keys.contains(&"x") {
            assert_eq!(
                ans["keys"][keys.iter().position(|k| *k == "x").unwrap()]["values"][0]["value"],
                "abc"
            );
        }
    }
}
