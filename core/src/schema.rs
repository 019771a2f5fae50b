//! Per-type validation (SPEC section 1, seed 004): an event type may have a JSON Schema that
//! its events' fields must satisfy.
//!
//! A subset of JSON Schema (draft 2020-12) is supported, enough for event payloads: `type`
//! (one or a list), `properties`, `required`, `additionalProperties` (boolean), `enum`,
//! `const`, `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `minLength`,
//! `maxLength`, `pattern`, `items`, `minItems`, `maxItems`. Annotations (`$schema`, `$id`,
//! `title`, `description`, `default`, `examples`, `$comment`) are accepted and ignored. Any
//! other keyword is refused when the schema is set, so a schema never silently checks less
//! than it says.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A compiled schema.
#[derive(Debug, Clone)]
pub struct Schema {
    root: Node,
    source: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Null,
    Boolean,
    Integer,
    Number,
    String,
    Array,
    Object,
}

impl Ty {
    fn parse(s: &str) -> Option<Ty> {
        Some(match s {
            "null" => Ty::Null,
            "boolean" => Ty::Boolean,
            "integer" => Ty::Integer,
            "number" => Ty::Number,
            "string" => Ty::String,
            "array" => Ty::Array,
            "object" => Ty::Object,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Ty::Null => "null",
            Ty::Boolean => "boolean",
            Ty::Integer => "integer",
            Ty::Number => "number",
            Ty::String => "string",
            Ty::Array => "array",
            Ty::Object => "object",
        }
    }

    fn matches(self, v: &Value) -> bool {
        match (self, v) {
            (Ty::Null, Value::Null) | (Ty::Boolean, Value::Bool(_)) => true,
            (Ty::Number, Value::Number(_)) | (Ty::String, Value::String(_)) => true,
            (Ty::Array, Value::Array(_)) | (Ty::Object, Value::Object(_)) => true,
            (Ty::Integer, Value::Number(n)) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            _ => false,
        }
    }
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[derive(Debug, Clone, Default)]
struct Node {
    types: Option<Vec<Ty>>,
    properties: BTreeMap<String, Node>,
    required: Vec<String>,
    additional: Option<bool>,
    one_of_values: Option<Vec<Value>>,
    constant: Option<Value>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    exclusive_minimum: Option<f64>,
    exclusive_maximum: Option<f64>,
    min_length: Option<usize>,
    max_length: Option<usize>,
    pattern: Option<regex::Regex>,
    items: Option<Box<Node>>,
    min_items: Option<usize>,
    max_items: Option<usize>,
}

const ANNOTATIONS: [&str; 7] = [
    "$schema",
    "$id",
    "title",
    "description",
    "default",
    "examples",
    "$comment",
];

fn number(v: &Value, at: &str, key: &str) -> Result<f64, String> {
    v.as_f64()
        .ok_or_else(|| format!("{at}/{key}: must be a number"))
}

fn count(v: &Value, at: &str, key: &str) -> Result<usize, String> {
    v.as_u64()
        .map(|n| n as usize)
        .ok_or_else(|| format!("{at}/{key}: must be a non-negative integer"))
}

impl Node {
    fn compile(v: &Value, at: &str) -> Result<Node, String> {
        let obj = match v {
            Value::Object(o) => o,
            Value::Bool(true) => return Ok(Node::default()),
            _ => return Err(format!("{}: a schema must be an object", display(at))),
        };
        let mut n = Node::default();
        for (key, val) in obj {
            match key.as_str() {
                "type" => {
                    let names: Vec<&Value> = match val {
                        Value::Array(a) => a.iter().collect(),
                        other => vec![other],
                    };
                    let types = names
                        .into_iter()
                        .map(|t| {
                            t.as_str()
                                .and_then(Ty::parse)
                                .ok_or_else(|| format!("{at}/type: unknown type {t}"))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    n.types = Some(types);
                }
                "properties" => {
                    let props = val
                        .as_object()
                        .ok_or_else(|| format!("{at}/properties: must be an object"))?;
                    for (name, sub) in props {
                        n.properties.insert(
                            name.clone(),
                            Node::compile(sub, &format!("{at}/properties/{name}"))?,
                        );
                    }
                }
                "required" => {
                    n.required = val
                        .as_array()
                        .and_then(|a| a.iter().map(|s| s.as_str().map(str::to_string)).collect())
                        .ok_or_else(|| format!("{at}/required: must be an array of strings"))?;
                }
                "additionalProperties" => {
                    n.additional = Some(val.as_bool().ok_or_else(|| {
                        format!("{at}/additionalProperties: only true or false is supported")
                    })?);
                }
                "enum" => {
                    n.one_of_values = Some(
                        val.as_array()
                            .cloned()
                            .ok_or_else(|| format!("{at}/enum: must be an array"))?,
                    );
                }
                "const" => n.constant = Some(val.clone()),
                "minimum" => n.minimum = Some(number(val, at, key)?),
                "maximum" => n.maximum = Some(number(val, at, key)?),
                "exclusiveMinimum" => n.exclusive_minimum = Some(number(val, at, key)?),
                "exclusiveMaximum" => n.exclusive_maximum = Some(number(val, at, key)?),
                "minLength" => n.min_length = Some(count(val, at, key)?),
                "maxLength" => n.max_length = Some(count(val, at, key)?),
                "minItems" => n.min_items = Some(count(val, at, key)?),
                "maxItems" => n.max_items = Some(count(val, at, key)?),
                "pattern" => {
                    let p = val
                        .as_str()
                        .ok_or_else(|| format!("{at}/pattern: must be a string"))?;
                    n.pattern =
                        Some(regex::Regex::new(p).map_err(|e| format!("{at}/pattern: {e}"))?);
                }
                "items" => n.items = Some(Box::new(Node::compile(val, &format!("{at}/items"))?)),
                k if ANNOTATIONS.contains(&k) => {}
                other => {
                    return Err(format!(
                        "{}: keyword '{other}' is not supported",
                        display(at)
                    ))
                }
            }
        }
        Ok(n)
    }

    fn check(&self, v: &Value, at: &str) -> Result<(), String> {
        let here = display(at);
        if let Some(types) = &self.types {
            if !types.iter().any(|t| t.matches(v)) {
                let want: Vec<&str> = types.iter().map(|t| t.name()).collect();
                return Err(format!(
                    "{here}: expected {}, got {}",
                    want.join(" or "),
                    type_of(v)
                ));
            }
        }
        if let Some(c) = &self.constant {
            if c != v {
                return Err(format!("{here}: must be {c}"));
            }
        }
        if let Some(values) = &self.one_of_values {
            if !values.contains(v) {
                return Err(format!(
                    "{here}: {v} is not one of {}",
                    Value::Array(values.clone())
                ));
            }
        }
        match v {
            Value::Number(num) => {
                let x = num.as_f64().unwrap_or(f64::NAN);
                let bounds = [
                    (self.minimum, x >= self.minimum.unwrap_or(f64::MIN), ">="),
                    (self.maximum, x <= self.maximum.unwrap_or(f64::MAX), "<="),
                    (
                        self.exclusive_minimum,
                        x > self.exclusive_minimum.unwrap_or(f64::MIN),
                        ">",
                    ),
                    (
                        self.exclusive_maximum,
                        x < self.exclusive_maximum.unwrap_or(f64::MAX),
                        "<",
                    ),
                ];
                for (bound, ok, op) in bounds {
                    if let (Some(b), false) = (bound, ok) {
                        return Err(format!("{here}: {x} must be {op} {b}"));
                    }
                }
            }
            Value::String(s) => {
                let len = s.chars().count();
                if self.min_length.is_some_and(|m| len < m)
                    || self.max_length.is_some_and(|m| len > m)
                {
                    return Err(format!("{here}: length {len} is outside the allowed range"));
                }
                if let Some(p) = &self.pattern {
                    if !p.is_match(s) {
                        return Err(format!("{here}: {s:?} does not match {}", p.as_str()));
                    }
                }
            }
            Value::Array(items) => {
                if self.min_items.is_some_and(|m| items.len() < m)
                    || self.max_items.is_some_and(|m| items.len() > m)
                {
                    return Err(format!(
                        "{here}: {} items is outside the allowed range",
                        items.len()
                    ));
                }
                if let Some(node) = &self.items {
                    for (i, item) in items.iter().enumerate() {
                        node.check(item, &format!("{at}/{i}"))?;
                    }
                }
            }
            Value::Object(map) => self.check_object(map, at)?,
            _ => {}
        }
        Ok(())
    }

    fn check_object(&self, map: &Map<String, Value>, at: &str) -> Result<(), String> {
        for r in &self.required {
            if !map.contains_key(r) {
                return Err(format!("{}: missing required field '{r}'", display(at)));
            }
        }
        for (k, v) in map {
            match self.properties.get(k) {
                Some(node) => node.check(v, &format!("{at}/{k}"))?,
                None if self.additional == Some(false) => {
                    return Err(format!("{}: field '{k}' is not allowed", display(at)));
                }
                None => {}
            }
        }
        Ok(())
    }
}

fn display(at: &str) -> &str {
    if at.is_empty() {
        "/"
    } else {
        at
    }
}

impl Schema {
    /// Compile a schema, refusing keywords it would not check.
    pub fn compile(v: &Value) -> Result<Schema, String> {
        Ok(Schema {
            root: Node::compile(v, "")?,
            source: v.clone(),
        })
    }

    /// Check an event's fields; the error names the JSON pointer and the problem.
    pub fn validate(&self, fields: &Map<String, Value>) -> Result<(), String> {
        self.root.check_object(fields, "").and_then(|()| {
            self.root.types.as_ref().map_or(Ok(()), |t| {
                if t.contains(&Ty::Object) {
                    Ok(())
                } else {
                    Err(
                        "/: the schema does not allow an object, and an event's fields are one"
                            .into(),
                    )
                }
            })
        })
    }

    /// The schema as it was given.
    pub fn source(&self) -> &Value {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::compile(&json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "required": ["host", "path"],
            "properties": {
                "host": {"type": "string", "minLength": 1},
                "path": {"type": "string", "pattern": "^/"},
                "status": {"type": "integer", "minimum": 100, "exclusiveMaximum": 600},
                "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2},
                "kind": {"const": "web"}
            },
            "additionalProperties": false
        }))
        .unwrap()
    }

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn valid_fields_pass() {
        schema()
            .validate(&fields(
                json!({"host":"h","path":"/","status":200,"tags":["a"],"kind":"web"}),
            ))
            .unwrap();
    }

    #[test]
    fn each_violation_is_named_with_its_path() {
        let s = schema();
        let cases = [
            (json!({"host":"h"}), "/: missing required field 'path'"),
            (
                json!({"host":"h","path":"x"}),
                "/path: \"x\" does not match ^/",
            ),
            (json!({"host":"","path":"/"}), "/host: length 0"),
            (
                json!({"host":"h","path":"/","status":600}),
                "/status: 600 must be < 600",
            ),
            (
                json!({"host":"h","path":"/","status":99.5}),
                "/status: expected integer, got number",
            ),
            (
                json!({"host":"h","path":"/","tags":["c"]}),
                "/tags/0: \"c\" is not one of",
            ),
            (
                json!({"host":"h","path":"/","tags":["a","a","b"]}),
                "/tags: 3 items",
            ),
            (
                json!({"host":"h","path":"/","kind":"app"}),
                "/kind: must be \"web\"",
            ),
            (
                json!({"host":"h","path":"/","extra":1}),
                "/: field 'extra' is not allowed",
            ),
            (
                json!({"host":1,"path":"/"}),
                "/host: expected string, got number",
            ),
        ];
        for (f, want) in cases {
            let err = s.validate(&fields(f.clone())).unwrap_err();
            assert!(err.starts_with(want), "{f}: got {err:?}, want {want:?}");
        }
    }

    #[test]
    fn unsupported_keywords_are_refused_not_ignored() {
        let err = Schema::compile(&json!({"properties": {"a": {"oneOf": []}}})).unwrap_err();
        assert_eq!(err, "/properties/a: keyword 'oneOf' is not supported");
        assert!(Schema::compile(&json!({"type": "strin"}))
            .unwrap_err()
            .contains("unknown type"));
        assert!(Schema::compile(&json!({"pattern": "("})).is_err());
    }
}
