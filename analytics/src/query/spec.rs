//! Reading a JSON query: hand-written checks that mirror [`super::query_schema`], each
//! error naming the path and the problem (`data[1].filters[0].type: expected one of eq,
//! regex, all`). The result is a [`QuerySpec`] that [`super::JsonQuery`] compiles.

use serde_json::{Map, Value};
use weir_core::{parse_time, Millis};

use crate::error::{AnalyticsError, Result};

/// Properties allowed at the top of a query.
pub(crate) const QUERY_PROPS: [&str; 4] = ["start", "end", "data", "funnel"];
/// Properties allowed in a data set.
pub(crate) const DATA_SET_PROPS: [&str; 5] = ["name", "filters", "unique", "keys", "operations"];
/// Properties allowed in a filter.
pub(crate) const FILTER_PROPS: [&str; 3] = ["type", "key", "value"];
/// Filter types.
pub(crate) const FILTER_TYPES: [&str; 3] = ["eq", "regex", "all"];
/// Operation types.
pub(crate) const OPERATION_TYPES: [&str; 1] = ["unique"];
/// Properties allowed in an operation.
pub(crate) const OPERATION_PROPS: [&str; 2] = ["type", "key"];
/// Properties allowed in a funnel.
pub(crate) const FUNNEL_PROPS: [&str; 4] = ["type", "data", "order", "match"];
/// Funnel types.
pub(crate) const FUNNEL_TYPES: [&str; 1] = ["exact_order"];

/// A checked query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QuerySpec {
    pub start: Option<Millis>,
    pub end: Option<Millis>,
    pub data: Vec<DataSetSpec>,
    pub funnel: Option<FunnelSpec>,
}

/// One named data set.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DataSetSpec {
    pub name: String,
    pub filters: Vec<FilterSpec>,
    /// Fields to count distinct values of (from `unique` and `operations`, no repeats).
    pub unique: Vec<String>,
}

/// One filter, as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FilterSpec {
    Eq { key: String, value: Value },
    Regex { key: String, pattern: String },
    All { key: String },
}

/// The funnel: data-set indexes in step order and the match keys.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FunnelSpec {
    pub steps: Vec<usize>,
    pub match_keys: Vec<String>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn shown(path: &str) -> &str {
    if path.is_empty() {
        "query"
    } else {
        path
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn object<'a>(v: &'a Value, path: &str, allowed: &[&str]) -> Result<&'a Map<String, Value>> {
    let m = v.as_object().ok_or_else(|| {
        AnalyticsError::invalid(
            shown(path),
            format!("expected an object, got {}", type_name(v)),
        )
    })?;
    if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(AnalyticsError::invalid(
            join(path, k),
            format!("unknown property; expected one of {}", allowed.join(", ")),
        ));
    }
    Ok(m)
}

fn array<'a>(v: &'a Value, path: &str, min: usize) -> Result<&'a [Value]> {
    let a = v.as_array().ok_or_else(|| {
        AnalyticsError::invalid(path, format!("expected an array, got {}", type_name(v)))
    })?;
    if a.len() < min {
        return Err(AnalyticsError::invalid(
            path,
            format!("expected at least {min} item(s)"),
        ));
    }
    Ok(a)
}

fn name(v: &Value, path: &str) -> Result<String> {
    match v {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        Value::String(_) => Err(AnalyticsError::invalid(path, "must not be empty")),
        other => Err(AnalyticsError::invalid(
            path,
            format!("expected a string, got {}", type_name(other)),
        )),
    }
}

fn names(v: &Value, path: &str, min: usize) -> Result<Vec<String>> {
    array(v, path, min)?
        .iter()
        .enumerate()
        .map(|(i, item)| name(item, &format!("{path}[{i}]")))
        .collect()
}

fn one_of(v: &Value, path: &str, allowed: &[&str]) -> Result<String> {
    match v.as_str() {
        Some(s) if allowed.contains(&s) => Ok(s.to_string()),
        _ => Err(AnalyticsError::invalid(
            path,
            format!("expected one of {}", allowed.join(", ")),
        )),
    }
}

fn required<'a>(m: &'a Map<String, Value>, path: &str, key: &str) -> Result<&'a Value> {
    m.get(key)
        .ok_or_else(|| AnalyticsError::invalid(join(path, key), "is required"))
}

fn time(v: Option<&Value>, path: &str) -> Result<Option<Millis>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| {
            AnalyticsError::invalid(path, "expected an integer (unix milliseconds)")
        }),
        Some(Value::String(s)) => parse_time(s)
            .map(Some)
            .map_err(|e| AnalyticsError::invalid(path, e.to_string())),
        Some(other) => Err(AnalyticsError::invalid(
            path,
            format!(
                "expected an integer (unix milliseconds) or a time string, got {}",
                type_name(other)
            ),
        )),
    }
}

/// Check a whole query.
pub(crate) fn parse_query(v: &Value) -> Result<QuerySpec> {
    let m = object(v, "", &QUERY_PROPS)?;
    let start = time(m.get("start"), "start")?;
    let end = time(m.get("end"), "end")?;
    if let (Some(s), Some(e)) = (start, end) {
        if e < s {
            return Err(AnalyticsError::invalid(
                "end",
                format!("must not be before start ({e} < {s})"),
            ));
        }
    }
    let items = array(required(m, "", "data")?, "data", 1)?;
    let mut data: Vec<DataSetSpec> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let set = parse_data_set(item, &format!("data[{i}]"))?;
        if data.iter().any(|d| d.name == set.name) {
            return Err(AnalyticsError::invalid(
                format!("data[{i}].name"),
                format!("duplicate data set name {:?}", set.name),
            ));
        }
        data.push(set);
    }
    let funnel = match m.get("funnel") {
        None | Some(Value::Null) => None,
        Some(f) => Some(parse_funnel(f, &data)?),
    };
    Ok(QuerySpec {
        start,
        end,
        data,
        funnel,
    })
}

fn parse_data_set(v: &Value, path: &str) -> Result<DataSetSpec> {
    let m = object(v, path, &DATA_SET_PROPS)?;
    let set_name = name(required(m, path, "name")?, &join(path, "name"))?;
    let mut filters = Vec::new();
    if let Some(fs) = m.get("filters") {
        let fpath = join(path, "filters");
        for (i, f) in array(fs, &fpath, 0)?.iter().enumerate() {
            filters.push(parse_filter(f, &format!("{fpath}[{i}]"))?);
        }
    }
    let mut unique: Vec<String> = Vec::new();
    if let Some(u) = m.get("unique") {
        unique = names(u, &join(path, "unique"), 0)?;
    }
    if let Some(k) = m.get("keys") {
        // Accepted for the seed's second form; the answer does not depend on it.
        names(k, &join(path, "keys"), 0)?;
    }
    if let Some(ops) = m.get("operations") {
        let opath = join(path, "operations");
        for (i, op) in array(ops, &opath, 0)?.iter().enumerate() {
            let p = format!("{opath}[{i}]");
            let om = object(op, &p, &OPERATION_PROPS)?;
            one_of(
                required(om, &p, "type")?,
                &join(&p, "type"),
                &OPERATION_TYPES,
            )?;
            unique.push(name(required(om, &p, "key")?, &join(&p, "key"))?);
        }
    }
    let mut seen = std::collections::HashSet::new();
    unique.retain(|u| seen.insert(u.clone()));
    Ok(DataSetSpec {
        name: set_name,
        filters,
        unique,
    })
}

fn parse_filter(v: &Value, path: &str) -> Result<FilterSpec> {
    let m = object(v, path, &FILTER_PROPS)?;
    let kind = one_of(
        required(m, path, "type")?,
        &join(path, "type"),
        &FILTER_TYPES,
    )?;
    let key = name(required(m, path, "key")?, &join(path, "key"))?;
    let vpath = join(path, "value");
    match kind.as_str() {
        "eq" => match required(m, path, "value")? {
            v @ (Value::Array(_) | Value::Object(_)) => Err(AnalyticsError::invalid(
                vpath,
                format!(
                    "expected a string, number, boolean or null, got {}",
                    type_name(v)
                ),
            )),
            v => Ok(FilterSpec::Eq {
                key,
                value: v.clone(),
            }),
        },
        "regex" => {
            let pattern = match required(m, path, "value")? {
                Value::String(s) => s.clone(),
                other => {
                    return Err(AnalyticsError::invalid(
                        vpath,
                        format!(
                            "expected a regular expression string, got {}",
                            type_name(other)
                        ),
                    ))
                }
            };
            super::filter::compile_regex(&pattern)
                .map_err(|e| AnalyticsError::invalid(&vpath, e))?;
            Ok(FilterSpec::Regex { key, pattern })
        }
        _ => {
            if m.contains_key("value") {
                return Err(AnalyticsError::invalid(
                    vpath,
                    "not allowed for type all (it tests that the field is present and not null)",
                ));
            }
            Ok(FilterSpec::All { key })
        }
    }
}

fn parse_funnel(v: &Value, data: &[DataSetSpec]) -> Result<FunnelSpec> {
    let m = object(v, "funnel", &FUNNEL_PROPS)?;
    one_of(required(m, "funnel", "type")?, "funnel.type", &FUNNEL_TYPES)?;
    let (list, lpath) = match (m.get("order"), m.get("data")) {
        (Some(_), Some(_)) => {
            return Err(AnalyticsError::invalid(
                "funnel",
                "give either order or data (the step names), not both",
            ))
        }
        (Some(o), None) => (o, "funnel.order"),
        (None, Some(d)) => (d, "funnel.data"),
        (None, None) => {
            return Err(AnalyticsError::invalid(
                "funnel.order",
                "is required (or funnel.data): the data set names in step order",
            ))
        }
    };
    let mut steps = Vec::new();
    for (i, step) in names(list, lpath, 1)?.iter().enumerate() {
        let idx = data.iter().position(|d| &d.name == step).ok_or_else(|| {
            let known: Vec<&str> = data.iter().map(|d| d.name.as_str()).collect();
            AnalyticsError::invalid(
                format!("{lpath}[{i}]"),
                format!("unknown data set {step:?}; known: {}", known.join(", ")),
            )
        })?;
        steps.push(idx);
    }
    let match_keys = match m.get("match") {
        None => Vec::new(),
        Some(k) => names(k, "funnel.match", 0)?,
    };
    Ok(FunnelSpec { steps, match_keys })
}
