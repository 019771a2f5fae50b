//! Queries and rules: definitions (`GET/DELETE /api/queries[/{name}]`, `GET/DELETE
//! /api/rules[/{name}]`) and results (`GET /api/queries/{name}/result`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::{json, Value};
use weir_engine::ReadRequest;

use super::error::{ApiError, ApiResult};
use crate::app::App;
use crate::catalog;

/// `GET /api/queries`: every query's definition and status.
pub async fn list_queries(State(app): State<Arc<App>>) -> ApiResult<Json<Value>> {
    let list = catalog::query_definitions(&app).map_err(ApiError::internal)?;
    Ok(Json(json!({ "queries": list })))
}

/// `GET /api/queries/{name}`.
pub async fn get_query(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    catalog::query_definitions(&app)
        .map_err(ApiError::internal)?
        .into_iter()
        .find(|q| q["name"] == name.as_str())
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no query named '{name}'")))
}

/// `DELETE /api/queries/{name}[?cascade=true]`: 409 naming every query and rule that reads
/// it, unless `cascade=true`, which drops those too and lists them in `dropped`.
pub async fn delete_query(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    for k in params.keys() {
        if k != "cascade" {
            return Err(ApiError::bad_request(format!(
                "unknown parameter '{k}': expected cascade"
            )));
        }
    }
    let cascade = match params.get("cascade").map(String::as_str) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "parameter 'cascade': {v:?} is not true or false"
            )))
        }
    };
    let dropped = catalog::drop_query(&app, &name, cascade).await?;
    let dropped: Vec<Value> = dropped.iter().map(catalog::Dependent::json).collect();
    Ok(Json(
        json!({ "statement": "drop_query", "name": name, "dropped": dropped }),
    ))
}

/// `GET /api/rules`.
pub async fn list_rules(State(app): State<Arc<App>>) -> ApiResult<Json<Value>> {
    let list = catalog::rule_definitions(&app).map_err(ApiError::internal)?;
    Ok(Json(json!({ "rules": list })))
}

/// `GET /api/rules/{name}`.
pub async fn get_rule(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    catalog::rule_definitions(&app)
        .map_err(ApiError::internal)?
        .into_iter()
        .find(|r| r["name"] == name.as_str())
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no rule named '{name}'")))
}

/// `DELETE /api/rules/{name}`.
pub async fn delete_rule(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    catalog::drop_rule(&app, &name).await?;
    Ok(Json(json!({ "statement": "drop_rule", "name": name })))
}

fn time_param(params: &HashMap<String, String>, name: &str) -> ApiResult<Option<i64>> {
    params
        .get(name)
        .map(|v| {
            weir_core::parse_time(v)
                .map_err(|e| ApiError::bad_request(format!("parameter '{name}': {e}")))
        })
        .transpose()
}

/// A `key.FIELD=VALUE` value: a number when it reads as one, else a string.
fn key_value(v: &str) -> Value {
    match v.parse::<f64>() {
        Ok(n) if v.parse::<i64>().is_ok() => json!(n as i64),
        Ok(n) => json!(n),
        Err(_) => json!(v),
    }
}

/// Turn the query string of a result read into a [`ReadRequest`]. With the query's `shape`
/// (its granularity and window), `step` is checked against SPEC section 3: only for a
/// sliding query read as a series (`from`/`to`), and a positive multiple of the granularity.
pub fn read_request(
    params: &HashMap<String, String>,
    shape: Option<&weir_query_lang::analyze::QueryShape>,
) -> ApiResult<ReadRequest> {
    for k in params.keys() {
        if !matches!(k.as_str(), "at" | "from" | "to" | "step") && !k.starts_with("key.") {
            return Err(ApiError::bad_request(format!(
                "unknown parameter '{k}': expected at, from, to, step or key.FIELD"
            )));
        }
    }
    let step = params
        .get("step")
        .map(|s| {
            weir_core::parse_duration(s)
                .or_else(|_| s.parse::<i64>().map_err(|_| ()))
                .map_err(|_| {
                    ApiError::bad_request(format!("parameter 'step': {s:?} is not a duration"))
                })
        })
        .transpose()?;
    if let (Some(step), Some(shape)) = (step, shape) {
        check_step(step, &params["step"], shape, params)?;
    }
    let mut keys: Vec<(String, Value)> = params
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("key.")
                .map(|f| (f.to_string(), key_value(v)))
        })
        .collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(ReadRequest {
        at: time_param(params, "at")?,
        from: time_param(params, "from")?,
        to: time_param(params, "to")?,
        step,
        keys,
    })
}

/// Refuse a `step` that cannot mean anything for this query, saying why.
fn check_step(
    step: i64,
    text: &str,
    shape: &weir_query_lang::analyze::QueryShape,
    params: &HashMap<String, String>,
) -> ApiResult<()> {
    let fmt = weir_core::format_duration;
    let (Some(g), Some(_)) = (shape.granularity, shape.window) else {
        let what = if shape.granularity.is_some() {
            "a tumbling series (its rows are its buckets)"
        } else {
            "not windowed"
        };
        return Err(ApiError::bad_request(format!(
            "parameter 'step': only a sliding query read as a series takes a step; this query is {what}"
        )));
    };
    if !params.contains_key("from") && !params.contains_key("to") {
        return Err(ApiError::bad_request(
            "parameter 'step': a step applies to a series read; give from and/or to (at reads one window)",
        ));
    }
    if step <= 0 || step % g != 0 {
        return Err(ApiError::bad_request(format!(
            "parameter 'step': {text:?} is not a positive multiple of the query's granularity {}",
            fmt(g)
        )));
    }
    Ok(())
}

/// `GET /api/queries/{name}/result?at=…|from=…&to=…[&step=…][&key.F=V…]`.
pub async fn result(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let mut req = read_request(&params, app.engine().query_shape(&name).as_ref())?;
    if req.at.is_none() && req.from.is_none() && req.to.is_none() {
        // SPEC section 13: a sliding window is read at `at`, default now.
        req.at = Some(app.clock().now_ms());
    }
    let answer = app
        .engine()
        .answer(&name, &req)
        .map_err(|e| ApiError::not_found(e.to_string()))?;
    Ok(Json(answer_json(answer)))
}

/// A read's answer: `rows`, and for a windowed query `complete_from`, the first window end
/// from which rows are complete (windows ending earlier reach below the retained buckets and
/// are left out; null while every window is complete).
pub fn answer_json(answer: weir_engine::Answer) -> Value {
    let rows: Vec<Value> = answer
        .rows
        .into_iter()
        .map(crate::shapes::row_json)
        .collect();
    json!({ "rows": rows, "complete_from": answer.complete_from })
}
