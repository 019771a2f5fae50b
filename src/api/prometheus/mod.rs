//! A Prometheus-compatible query API over query results and rule decisions, under
//! `/prometheus/api/v1/…`, so Grafana's built-in Prometheus datasource (URL
//! `http://HOST:PORT/prometheus`) and any Prometheus client read Weir directly.
//! The series model and naming are in [`source`]; `docs/grafana.md` is the user's guide.
//!
//! # Layout
//! - [`params`]: query-string and form parameters, times, step widths, `match[]`.
//! - [`source`]: series naming and where samples come from ([`source::WeirSource`]).
//! - `crate::decisions`: per-rule, per-key decision counters kept as series.
//! - [`eval`]: PromQL evaluation (parsed by the `promql-parser` crate).
//! - [`render`]: the JSON envelope, errors and value shapes.

pub mod decisions;
pub mod eval;
pub mod params;
pub mod render;
pub mod source;

use crate::api::access::Ctx;
use crate::api::cluster::{ClusterCall, InCluster};
use crate::tenants::Hub;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value as Json};
use utoipa::ToSchema;

use super::{def, RouteDef};
use crate::app::App;
use eval::Value;
use params::Params;
use render::{success, PromError, PromErrorBody, PromSuccess};
use source::{Labels, SeriesSource, WeirSource};

/// The most points one range query may return per series (as Prometheus).
pub const MAX_POINTS: i64 = 11_000;

/// Every route under `/prometheus` (paths relative to it), with what `GET /help` says per
/// method: the router is built from this table, so the two cannot drift.
pub fn route_defs() -> Vec<RouteDef> {
    vec![
        def(
            "/api/v1/query",
            &[
                ("GET", "PromQL at one time over query results and rule decisions (Grafana datasource URL: /prometheus)"),
                ("POST", "the same, form-encoded (as Grafana sends it)"),
            ],
            get(query).post(query_post),
        ),
        def(
            "/api/v1/query_range",
            &[
                ("GET", "PromQL over a time range: start, end, step"),
                ("POST", "the same, form-encoded"),
            ],
            get(query_range).post(query_range_post),
        ),
        def(
            "/api/v1/labels",
            &[("GET", "label names"), ("POST", "the same, form-encoded")],
            get(labels).post(labels_post),
        ),
        def(
            "/api/v1/label/{name}/values",
            &[("GET", "one label's values")],
            get(label_values),
        ),
        def(
            "/api/v1/series",
            &[
                ("GET", "the series matching match[] selectors"),
                ("POST", "the same, form-encoded"),
            ],
            get(series).post(series_post),
        ),
        def("/api/v1/metadata", &[("GET", "metric metadata")], get(metadata)),
        def(
            "/api/v1/status/buildinfo",
            &[("GET", "version, for Grafana's datasource check")],
            get(buildinfo),
        ),
        def(
            "/api/v1/query_exemplars",
            &[
                ("GET", "exemplars: always none (Weir keeps none)"),
                ("POST", "the same, form-encoded"),
            ],
            get(exemplars).post(exemplars_post),
        ),
        def(
            "/api/v1/rules",
            &[("GET", "alerting and recording rules: none (Weir's rules are not Prometheus rules)")],
            get(rules),
        ),
        def("/api/v1/alerts", &[("GET", "alerts: none")], get(alerts)),
    ]
}

/// The routes, to be nested under `/prometheus`.
pub fn routes() -> Router<Arc<Hub>> {
    route_defs()
        .into_iter()
        .fold(Router::new(), |r, d| r.route(d.path, d.handlers))
}

/// The form body of a `POST` query (the parameters of the `GET`).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // describes the form, for the OpenAPI document
pub struct QueryForm {
    /// The PromQL expression.
    pub query: String,
    /// The evaluation time (unix seconds or RFC 3339; default now).
    pub time: Option<String>,
}

/// The form body of a `POST` range query.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct RangeForm {
    /// The PromQL expression.
    pub query: String,
    /// The first evaluation time (unix seconds or RFC 3339).
    pub start: String,
    /// The last evaluation time.
    pub end: String,
    /// The step (a duration such as `15s`, or seconds).
    pub step: String,
}

/// The form body of a `POST` exemplars query (read, and answered with none).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ExemplarForm {
    /// The PromQL expression.
    pub query: Option<String>,
    /// From this time.
    pub start: Option<String>,
    /// To this time.
    pub end: Option<String>,
}

/// The form body of a `POST` series or labels listing.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct SeriesForm {
    /// A series selector (repeat the parameter for more).
    #[schema(rename = "match[]")]
    pub matches: Option<String>,
    /// From this time.
    pub start: Option<String>,
    /// To this time.
    pub end: Option<String>,
}

/// Read the parameters and run `f` on a blocking thread (reads lock engine shards; in a
/// cluster, they wait for the peers) with the series of `app`, or of the whole cluster.
async fn run(
    app: Arc<App>,
    cl: Option<ClusterCall>,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
    f: impl FnOnce(&App, &WeirSource, Params) -> Result<Json, PromError> + Send + 'static,
) -> Response {
    let params = match Params::read(query.as_deref(), &headers, &body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let fanout = cl.map(|c| source::Fanout {
        cluster: c.cluster,
        auth: c.auth,
        handle: tokio::runtime::Handle::current(),
    });
    let work = move || f(&app, &WeirSource::with_fanout(&app, fanout), params);
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(data)) => success(data),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "prometheus API request refused");
            e.into_response()
        }
        Err(e) => PromError::execution(format!("evaluation failed: {e}")).into_response(),
    }
}

/// `/api/v1/query?query=…&time=…`: an instant query (time defaults to now).
#[utoipa::path(
    get,
    path = "/prometheus/api/v1/query",
    operation_id = "prometheus_query",
    tag = "prometheus",
    params(
        ("query" = String, Query, description = "the PromQL expression"),
        ("time" = Option<String>, Query, description = "the evaluation time (unix seconds or RFC 3339; default now)"),
    ),
    responses(
        (status = 200, description = "the answer", body = PromSuccess),
        (status = 400, description = "bad_data: a bad parameter or expression, or PromQL Weir does not evaluate", body = PromErrorBody),
        (status = 422, description = "execution: evaluation failed", body = PromErrorBody),
    )
)]
pub async fn query(
    Ctx(app): Ctx,
    InCluster(cl): InCluster,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(app, cl, q, headers, body, |app, src, p| {
        let expr = p.expr()?;
        let t = p.time("time")?.unwrap_or_else(|| app.clock().now_ms());
        Ok(match eval::eval(&expr, src, &[t])? {
            Value::Scalar(v) => render::scalar(v[0], t),
            Value::Str(s) => render::string(&s, t),
            Value::Vector(vs) => render::vector(&vs, t),
        })
    })
    .await
}

/// `/api/v1/query_range?query=…&start=…&end=…&step=…`: the expression at every step.
#[utoipa::path(
    get,
    path = "/prometheus/api/v1/query_range",
    operation_id = "prometheus_query_range",
    tag = "prometheus",
    params(
        ("query" = String, Query, description = "the PromQL expression"),
        ("start" = String, Query, description = "the first evaluation time (unix seconds or RFC 3339)"),
        ("end" = String, Query, description = "the last evaluation time"),
        ("step" = String, Query, description = "the step (a duration such as 15s, or seconds)"),
    ),
    responses(
        (status = 200, description = "the answer", body = PromSuccess),
        (status = 400, description = "bad_data: a bad parameter or expression, or PromQL Weir does not evaluate", body = PromErrorBody),
        (status = 422, description = "execution: evaluation failed", body = PromErrorBody),
    )
)]
pub async fn query_range(
    Ctx(app): Ctx,
    InCluster(cl): InCluster,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(app, cl, q, headers, body, |_, src, p| {
        let expr = p.expr()?;
        let start = p.required_time("start")?;
        let end = p.required_time("end")?;
        let step = params::parse_step(p.get("step").unwrap_or(""))?;
        if end < start {
            return Err(PromError::bad_data(
                "invalid parameter \"end\": end timestamp must not be before start time",
            ));
        }
        if (end - start) / step >= MAX_POINTS {
            return Err(PromError::bad_data(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing \
                 the query resolution (?step=XX)",
            ));
        }
        let times: Vec<i64> = (0..=(end - start) / step)
            .map(|i| start + i * step)
            .collect();
        Ok(match eval::eval(&expr, src, &times)? {
            Value::Scalar(v) => render::matrix(
                &[source::Series {
                    labels: Labels::new(),
                    values: v.into_iter().map(Some).collect(),
                }],
                &times,
            ),
            Value::Vector(vs) => render::matrix(&vs, &times),
            Value::Str(_) => {
                return Err(PromError::bad_data(
                    "invalid expression type \"string\" for range query, must be Scalar or \
                     instant Vector",
                ))
            }
        })
    })
    .await
}

/// The series matching any of the `match[]` selectors (every series without one).
fn matching_series(src: &WeirSource, p: &Params, required: bool) -> Result<Vec<Labels>, PromError> {
    let sets = p.matchers()?;
    if sets.is_empty() && required {
        return Err(PromError::bad_data("no match[] parameter provided"));
    }
    let (from, to) = (p.time("start")?, p.time("end")?);
    let mut all: BTreeSet<Labels> = BTreeSet::new();
    if sets.is_empty() {
        all.extend(src.series(&[], from, to)?);
    }
    for ms in sets {
        all.extend(src.series(&ms, from, to)?);
    }
    Ok(all.into_iter().collect())
}

/// `/api/v1/labels[?match[]=…&start=…&end=…]`: label names.
#[utoipa::path(
    get,
    path = "/prometheus/api/v1/labels",
    operation_id = "prometheus_labels",
    tag = "prometheus",
    params(
        ("match[]" = Option<Vec<String>>, Query, explode, description = "series selectors"),
        ("start" = Option<String>, Query, description = "from this time"),
        ("end" = Option<String>, Query, description = "to this time"),
    ),
    responses(
        (status = 200, description = "the list", body = PromSuccess),
        (status = 400, description = "bad_data: a bad parameter or selector", body = PromErrorBody),
        (status = 422, description = "execution: evaluation failed", body = PromErrorBody),
    )
)]
pub async fn labels(
    Ctx(app): Ctx,
    InCluster(cl): InCluster,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(app, cl, q, headers, body, |_, src, p| {
        let names: BTreeSet<String> = matching_series(src, &p, false)?
            .into_iter()
            .flat_map(|l| l.into_keys())
            .collect();
        Ok(json!(names))
    })
    .await
}

/// `/api/v1/label/{name}/values[?match[]=…]`: the values of one label.
#[utoipa::path(
    get,
    path = "/prometheus/api/v1/label/{name}/values",
    operation_id = "prometheus_label_values",
    tag = "prometheus",
    params(
        ("name" = String, Path, example = "__name__", description = "the label name"),
        ("match[]" = Option<Vec<String>>, Query, explode, description = "series selectors"),
        ("start" = Option<String>, Query, description = "from this time"),
        ("end" = Option<String>, Query, description = "to this time"),
    ),
    responses(
        (status = 200, description = "the list", body = PromSuccess),
        (status = 400, description = "bad_data: a bad parameter or selector", body = PromErrorBody),
        (status = 422, description = "execution: evaluation failed", body = PromErrorBody),
    )
)]
pub async fn label_values(
    Ctx(app): Ctx,
    InCluster(cl): InCluster,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(app, cl, q, headers, body, move |_, src, p| {
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(PromError::bad_data(format!(
                "invalid label name: \"{name}\""
            )));
        }
        let values: BTreeSet<String> = matching_series(src, &p, false)?
            .into_iter()
            .filter_map(|mut l| l.remove(&name))
            .collect();
        Ok(json!(values))
    })
    .await
}

/// `/api/v1/series?match[]=…[&start=…&end=…]`: the label sets of matching series.
#[utoipa::path(
    get,
    path = "/prometheus/api/v1/series",
    operation_id = "prometheus_series",
    tag = "prometheus",
    params(
        ("match[]" = Vec<String>, Query, explode, description = "series selectors (at least one)"),
        ("start" = Option<String>, Query, description = "from this time"),
        ("end" = Option<String>, Query, description = "to this time"),
    ),
    responses(
        (status = 200, description = "the list", body = PromSuccess),
        (status = 400, description = "bad_data: a bad parameter or selector", body = PromErrorBody),
        (status = 422, description = "execution: evaluation failed", body = PromErrorBody),
    )
)]
pub async fn series(
    Ctx(app): Ctx,
    InCluster(cl): InCluster,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(app, cl, q, headers, body, |_, src, p| {
        let list: Vec<Json> = matching_series(src, &p, true)?
            .iter()
            .map(render::labels_json)
            .collect();
        Ok(Json::Array(list))
    })
    .await
}

/// `/api/v1/metadata[?metric=…]`: every metric name with its type and help.
#[utoipa::path(
    get,
    path = "/prometheus/api/v1/metadata",
    operation_id = "prometheus_metadata",
    tag = "prometheus",
    params(
        ("metric" = Option<String>, Query, description = "one metric's metadata"),
        ("limit" = Option<String>, Query, description = "at most this many metrics (0: all)"),
    ),
    responses(
        (status = 200, description = "the list", body = PromSuccess),
        (status = 400, description = "bad_data: a bad parameter or selector", body = PromErrorBody),
        (status = 422, description = "execution: evaluation failed", body = PromErrorBody),
    )
)]
pub async fn metadata(
    Ctx(app): Ctx,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(app, None, q, headers, body, |app, _, p| {
        let mut out: BTreeMap<String, Json> = BTreeMap::new();
        for name in app.engine().query_names() {
            let Some(shape) = app.engine().query_shape(&name) else {
                continue;
            };
            for c in shape
                .columns
                .iter()
                .filter(|c| !shape.group_fields.contains(c))
            {
                let help = format!("Weir query '{name}', column '{c}', per group key");
                out.insert(
                    source::metric_name(&name, c),
                    json!([{ "type": "gauge", "help": help, "unit": "" }]),
                );
            }
        }
        for (n, t, help) in [
            (
                "weir_rule_decisions",
                "counter",
                "add_and_check decisions per rule, group key and decision since start",
            ),
            (
                "weir_rule_value",
                "gauge",
                "the compared value of a rule's latest decision per group key",
            ),
            (
                "weir_rule_threshold",
                "gauge",
                "the threshold of a rule's latest decision per group key",
            ),
        ] {
            out.insert(n.into(), json!([{ "type": t, "help": help, "unit": "" }]));
        }
        if let Some(m) = p.get("metric") {
            out.retain(|k, _| k == m);
        }
        if let Some(limit) = p.get("limit").and_then(|l| l.parse::<usize>().ok()) {
            if limit > 0 {
                out = out.into_iter().take(limit).collect();
            }
        }
        Ok(json!(out))
    })
    .await
}

/// `/api/v1/status/buildinfo`: what Grafana probes to learn the server's version.
#[utoipa::path(
    get,
    path = "/prometheus/api/v1/status/buildinfo",
    operation_id = "prometheus_buildinfo",
    tag = "prometheus",
    responses((status = 200, description = "the version Weir answers as", body = PromSuccess))
)]
pub async fn buildinfo() -> Response {
    success(json!({
        "version": "2.45.0",
        "revision": format!("weir-{}", env!("CARGO_PKG_VERSION")),
        "branch": "weir",
        "buildUser": "weir",
        "buildDate": "",
        "goVersion": "none (weir)",
        "application": "weir",
    }))
}

/// `/api/v1/query_exemplars`: an empty list (Weir keeps no exemplars).
#[utoipa::path(
    get,
    path = "/prometheus/api/v1/query_exemplars",
    operation_id = "prometheus_exemplars",
    tag = "prometheus",
    params(
        ("query" = Option<String>, Query, description = "the PromQL expression (ignored)"),
        ("start" = Option<String>, Query, description = "ignored"),
        ("end" = Option<String>, Query, description = "ignored"),
    ),
    responses((status = 200, description = "an empty list", body = PromSuccess))
)]
pub async fn exemplars() -> Response {
    success(json!([]))
}

/// `POST /api/v1/query_exemplars`: the same, form-encoded.
#[utoipa::path(
    post,
    path = "/prometheus/api/v1/query_exemplars",
    operation_id = "prometheus_exemplars_post",
    tag = "prometheus",
    request_body(content = Option<ExemplarForm>, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "an empty list", body = PromSuccess))
)]
pub async fn exemplars_post() -> Response {
    success(json!([]))
}

/// `/api/v1/rules`: Weir's rules are not Prometheus alerting rules; none listed.
#[utoipa::path(
    get,
    path = "/prometheus/api/v1/rules",
    operation_id = "prometheus_rules",
    tag = "prometheus",
    responses((status = 200, description = "no rule groups", body = PromSuccess))
)]
pub async fn rules() -> Response {
    success(json!({ "groups": [] }))
}

/// `/api/v1/alerts`: none (see `rules`).
#[utoipa::path(
    get,
    path = "/prometheus/api/v1/alerts",
    operation_id = "prometheus_alerts",
    tag = "prometheus",
    responses((status = 200, description = "no alerts", body = PromSuccess))
)]
pub async fn alerts() -> Response {
    success(json!({ "alerts": [] }))
}

/// `POST /api/v1/query`: [`query`] with a form body.
#[utoipa::path(
    post,
    path = "/prometheus/api/v1/query",
    operation_id = "prometheus_query_post",
    tag = "prometheus",
    request_body(content = QueryForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "the answer", body = PromSuccess),
        (status = 400, description = "bad_data: a bad parameter or expression, or PromQL Weir does not evaluate", body = PromErrorBody),
        (status = 422, description = "execution: evaluation failed", body = PromErrorBody),
    )
)]
pub async fn query_post(
    app: Ctx,
    cl: InCluster,
    q: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    query(app, cl, q, headers, body).await
}

/// `POST /api/v1/query_range`: [`query_range`] with a form body.
#[utoipa::path(
    post,
    path = "/prometheus/api/v1/query_range",
    operation_id = "prometheus_query_range_post",
    tag = "prometheus",
    request_body(content = RangeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "the answer", body = PromSuccess),
        (status = 400, description = "bad_data: a bad parameter or expression, or PromQL Weir does not evaluate", body = PromErrorBody),
        (status = 422, description = "execution: evaluation failed", body = PromErrorBody),
    )
)]
pub async fn query_range_post(
    app: Ctx,
    cl: InCluster,
    q: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    query_range(app, cl, q, headers, body).await
}

/// `POST /api/v1/labels`: [`labels`] with a form body.
#[utoipa::path(
    post,
    path = "/prometheus/api/v1/labels",
    operation_id = "prometheus_labels_post",
    tag = "prometheus",
    request_body(content = Option<SeriesForm>, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "the list", body = PromSuccess),
        (status = 400, description = "bad_data: a bad parameter or selector", body = PromErrorBody),
        (status = 422, description = "execution: evaluation failed", body = PromErrorBody),
    )
)]
pub async fn labels_post(
    app: Ctx,
    cl: InCluster,
    q: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    labels(app, cl, q, headers, body).await
}

/// `POST /api/v1/series`: [`series`] with a form body.
#[utoipa::path(
    post,
    path = "/prometheus/api/v1/series",
    operation_id = "prometheus_series_post",
    tag = "prometheus",
    request_body(content = Option<SeriesForm>, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "the list", body = PromSuccess),
        (status = 400, description = "bad_data: a bad parameter or selector", body = PromErrorBody),
        (status = 422, description = "execution: evaluation failed", body = PromErrorBody),
    )
)]
pub async fn series_post(
    app: Ctx,
    cl: InCluster,
    q: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    series(app, cl, q, headers, body).await
}
