//! Queries and rules: definitions (`GET/DELETE /api/queries[/{name}]`, `GET/DELETE
//! /api/rules[/{name}]`) and results (`GET /api/queries/{name}/result`).
//!
//! The answer types serialize their fields in alphabetical order, as the JSON maps these
//! answers were first built with did (SPEC section 13 keeps the bytes).

use crate::api::access::Ctx;
use crate::api::cluster::InCluster;
use std::collections::HashMap;

use axum::extract::{Path, Query};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use weir_engine::ReadRequest;

use super::error::{ApiError, ApiResult, ErrorBody};
use crate::catalog;
use crate::shapes::ResultRow;

/// `GET /api/queries`.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueryList {
    /// Every query's definition and status.
    #[schema(value_type = Vec<QueryDefinition>)]
    pub queries: Vec<Value>,
}

/// `GET /api/rules`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleList {
    /// Every rule's definition and status.
    #[schema(value_type = Vec<RuleDefinition>)]
    pub rules: Vec<Value>,
}

/// A query's definition and status (built by the catalogue).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // describes the JSON the catalogue builds, for the OpenAPI document
pub struct QueryDefinition {
    /// Its name.
    pub name: String,
    /// Its DSL text (during a replace: the new definition's).
    pub text: String,
    /// `running`, `backfilling` (with `progress`), or `error` (with `error`).
    #[schema(inline)]
    pub status: DefinitionStatus,
    /// Why a stored definition could not be restored.
    pub error: Option<String>,
    /// Backfill progress, 0..1.
    pub progress: Option<f64>,
    /// Backfill: events replayed so far.
    pub replayed: Option<u64>,
    /// Backfill: events to replay (an upper bound).
    pub total: Option<u64>,
    /// Backfill: seconds left, estimated (null before any progress).
    pub eta_seconds: Option<f64>,
}

/// A rule's definition and status (built by the catalogue).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct RuleDefinition {
    /// Its name.
    pub name: String,
    /// Its DSL text.
    pub text: String,
    /// `running`, `backfilling`, or `error` (with `error`).
    #[schema(inline)]
    pub status: DefinitionStatus,
    /// Why a stored definition could not be restored.
    pub error: Option<String>,
}

/// A definition's status.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "snake_case")]
pub enum DefinitionStatus {
    /// Applied and answering.
    Running,
    /// Being backfilled (results still come from the definition it replaces).
    Backfilling,
    /// The stored definition could not be restored.
    Error,
}

/// What reads a query (built by the catalogue): `{"kind": "rule"|"query", "name": …}`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct Dependent {
    /// `rule` or `query`.
    #[schema(inline)]
    pub kind: DependentKind,
    /// Its name.
    pub name: String,
}

/// The kinds of [`Dependent`].
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "snake_case")]
pub enum DependentKind {
    /// A rule.
    Rule,
    /// A query.
    Query,
}

/// `DELETE /api/queries/{name}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueryDropped {
    /// What was dropped with it (`cascade=true`).
    #[schema(value_type = Vec<Dependent>)]
    pub dropped: Vec<Value>,
    /// The query.
    pub name: String,
    /// `drop_query`.
    #[schema(example = "drop_query")]
    pub statement: &'static str,
}

/// `DELETE /api/rules/{name}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleDropped {
    /// The rule.
    pub name: String,
    /// `drop_rule`.
    #[schema(example = "drop_rule")]
    pub statement: &'static str,
}

/// `GET /api/queries`: every query's definition and status.
#[utoipa::path(
    get,
    path = "/api/queries",
    tag = "queries",
    responses(
        (status = 200, description = "every query", body = QueryList),
        (status = 500, description = "storage failed", body = ErrorBody),
    )
)]
pub async fn list_queries(Ctx(app): Ctx) -> ApiResult<Json<QueryList>> {
    let queries = app
        .blocking(catalog::query_definitions)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(QueryList { queries }))
}

/// `GET /api/queries/{name}`.
#[utoipa::path(
    get,
    path = "/api/queries/{name}",
    tag = "queries",
    params(("name" = String, Path, example = "orders", description = "the query's name")),
    responses(
        (status = 200, description = "the query", body = QueryDefinition),
        (status = 404, description = "no such query", body = ErrorBody),
        (status = 500, description = "storage failed", body = ErrorBody),
    )
)]
pub async fn get_query(Ctx(app): Ctx, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    app.blocking(catalog::query_definitions)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .find(|q| q["name"] == name.as_str())
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no query named '{name}'")))
}

/// `DELETE /api/queries/{name}[?cascade=true]`: 409 naming every query and rule that reads
/// it, unless `cascade=true`, which drops those too and lists them in `dropped`.
#[utoipa::path(
    delete,
    path = "/api/queries/{name}",
    tag = "queries",
    params(
        ("name" = String, Path, example = "orders", description = "the query's name"),
        ("cascade" = Option<String>, Query, description = "true (or 1, or empty) drops what reads the query too; false (or 0) refuses"),
    ),
    responses(
        (status = 200, description = "dropped", body = QueryDropped),
        (status = 400, description = "a bad parameter", body = ErrorBody),
        (status = 404, description = "no such query", body = ErrorBody),
        (status = 409, description = "other queries or rules read it (named in dependents)", body = ErrorBody),
        (status = 500, description = "storage failed", body = ErrorBody),
    )
)]
pub async fn delete_query(
    Ctx(app): Ctx,
    InCluster(cl): InCluster,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<QueryDropped>> {
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
    if let Some(cl) = cl {
        let text = format!("DROP QUERY {name}{}", if cascade { " CASCADE" } else { "" });
        crate::api::cluster::after_statement(&cl, app.tenant(), &text).await?;
    }
    let dropped: Vec<Value> = dropped.iter().map(catalog::Dependent::json).collect();
    Ok(Json(QueryDropped {
        dropped,
        name,
        statement: "drop_query",
    }))
}

/// `GET /api/rules`.
#[utoipa::path(
    get,
    path = "/api/rules",
    tag = "rules",
    responses(
        (status = 200, description = "every rule", body = RuleList),
        (status = 500, description = "storage failed", body = ErrorBody),
    )
)]
pub async fn list_rules(Ctx(app): Ctx) -> ApiResult<Json<RuleList>> {
    let rules = app
        .blocking(catalog::rule_definitions)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(RuleList { rules }))
}

/// `GET /api/rules/{name}`.
#[utoipa::path(
    get,
    path = "/api/rules/{name}",
    tag = "rules",
    params(("name" = String, Path, example = "many_orders", description = "the rule's name")),
    responses(
        (status = 200, description = "the rule", body = RuleDefinition),
        (status = 404, description = "no such rule", body = ErrorBody),
        (status = 500, description = "storage failed", body = ErrorBody),
    )
)]
pub async fn get_rule(Ctx(app): Ctx, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    app.blocking(catalog::rule_definitions)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .find(|r| r["name"] == name.as_str())
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no rule named '{name}'")))
}

/// `DELETE /api/rules/{name}`.
#[utoipa::path(
    delete,
    path = "/api/rules/{name}",
    tag = "rules",
    params(("name" = String, Path, example = "many_orders", description = "the rule's name")),
    responses(
        (status = 200, description = "dropped", body = RuleDropped),
        (status = 404, description = "no such rule", body = ErrorBody),
        (status = 500, description = "storage failed", body = ErrorBody),
    )
)]
pub async fn delete_rule(
    Ctx(app): Ctx,
    InCluster(cl): InCluster,
    Path(name): Path<String>,
) -> ApiResult<Json<RuleDropped>> {
    catalog::drop_rule(&app, &name).await?;
    if let Some(cl) = cl {
        crate::api::cluster::after_statement(&cl, app.tenant(), &format!("DROP RULE {name}"))
            .await?;
    }
    Ok(Json(RuleDropped {
        name,
        statement: "drop_rule",
    }))
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
///
/// Parameters `key.FIELD=VALUE` (one per group field, any number) pick group keys; a value
/// that reads as a number is compared as one.
#[utoipa::path(
    get,
    path = "/api/queries/{name}/result",
    tag = "queries",
    params(
        ("name" = String, Path, example = "orders", description = "the query's name"),
        ("at" = Option<String>, Query, description = "sliding windows: the window end to read (unix ms or s, RFC 3339; default now)"),
        ("from" = Option<String>, Query, description = "a series read: the first bucket or window end"),
        ("to" = Option<String>, Query, description = "a series read: the last bucket or window end"),
        ("step" = Option<String>, Query, description = "a sliding query read as a series: the distance between windows (a duration such as 5min, or ms), a multiple of the granularity"),
    ),
    responses(
        (status = 200, description = "the rows", body = ResultAnswer),
        (status = 400, description = "a bad parameter", body = ErrorBody),
        (status = 404, description = "no such query", body = ErrorBody),
    )
)]
pub async fn result(
    Ctx(app): Ctx,
    InCluster(cl): InCluster,
    Path(name): Path<String>,
    Query(mut params): Query<HashMap<String, String>>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let mut req = read_request(&params, app.engine().query_shape(&name).as_ref())?;
    if req.at.is_none() && req.from.is_none() && req.to.is_none() {
        // SPEC section 13: a sliding window is read at `at`, default now.
        req.at = Some(app.clock().now_ms());
        params.insert("at".into(), app.clock().now_ms().to_string());
    }
    if let Some(cl) = cl {
        let ops = cluster_merge(&cl.cluster, &app, &name)?;
        if cl.local {
            let part =
                crate::cluster::forward::read_local(&cl.cluster, app.tenant(), &name, &req, &ops)?;
            return Ok(Json(part).into_response());
        }
        let all = crate::cluster::forward::read_all(
            &cl.cluster,
            app.tenant(),
            cl.auth.clone(),
            &name,
            &params,
            &req,
            &ops,
        )
        .await?;
        return Ok(Json(ResultAnswer {
            complete_from: all.complete_from,
            rows: all.rows.into_iter().map(ResultRow::from).collect(),
        })
        .into_response());
    }
    let answer = app
        .engine()
        .answer(&name, &req)
        .map_err(|e| ApiError::not_found(e.to_string()))?;
    Ok(Json(ResultAnswer::from(answer)).into_response())
}

/// How the rows of query `name` merge across partitions (see [`crate::cluster::merge`]):
/// refused up front when its groups span partitions and its columns do not merge exactly.
pub(crate) fn cluster_merge(
    cl: &crate::cluster::Cluster,
    app: &crate::app::App,
    name: &str,
) -> ApiResult<Result<std::collections::BTreeMap<String, crate::cluster::merge::Op>, String>> {
    let q = app
        .engine()
        .query(name)
        .ok_or_else(|| ApiError::not_found(format!("no query named '{name}'")))?;
    let ops = crate::cluster::merge::ops(name, &q.plan);
    if let Err(why) = &ops {
        if !cl.grouped_by_route(&q.plan.group) || q.is_view() {
            return Err(ApiError::conflict(why.clone()));
        }
    }
    Ok(ops)
}

/// A read's answer: `rows`, and for a windowed query `complete_from`, the first window end
/// from which rows are complete (windows ending earlier reach below the retained buckets and
/// are left out; null while every window is complete).
#[derive(Debug, Serialize, ToSchema)]
pub struct ResultAnswer {
    /// The first window end from which rows are complete (unix ms); null while all are.
    pub complete_from: Option<i64>,
    /// The rows.
    pub rows: Vec<ResultRow>,
}

impl From<weir_engine::Answer> for ResultAnswer {
    fn from(answer: weir_engine::Answer) -> Self {
        Self {
            complete_from: answer.complete_from,
            rows: answer.rows.into_iter().map(ResultRow::from).collect(),
        }
    }
}
