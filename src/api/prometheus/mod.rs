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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value as Json};

use crate::app::App;
use eval::Value;
use params::Params;
use render::{success, PromError};
use source::{Labels, SeriesSource, WeirSource};

/// The most points one range query may return per series (as Prometheus).
pub const MAX_POINTS: i64 = 11_000;

/// The routes under `/prometheus`, as `GET /help` lists them.
pub const HELP: &[(&str, &str)] = &[
    ("GET /prometheus/api/v1/query", "PromQL at one time over query results and rule decisions (Grafana datasource URL: /prometheus)"),
    ("POST /prometheus/api/v1/query", "the same, form-encoded (as Grafana sends it)"),
    ("GET /prometheus/api/v1/query_range", "PromQL over a time range: start, end, step"),
    ("POST /prometheus/api/v1/query_range", "the same, form-encoded"),
    ("GET /prometheus/api/v1/series", "the series matching match[] selectors"),
    ("POST /prometheus/api/v1/series", "the same, form-encoded"),
    ("GET /prometheus/api/v1/labels", "label names"),
    ("POST /prometheus/api/v1/labels", "the same, form-encoded"),
    ("GET /prometheus/api/v1/label/{name}/values", "one label's values"),
    ("GET /prometheus/api/v1/metadata", "metric metadata"),
    ("GET /prometheus/api/v1/status/buildinfo", "version, for Grafana's datasource check"),
];

/// The routes, to be nested under `/prometheus`.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route("/api/v1/query_exemplars", get(empty_list).post(empty_list))
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/alerts", get(alerts))
}

/// Read the parameters and run `f` on a blocking thread (reads lock engine shards).
async fn run(
    app: Arc<App>,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
    f: impl FnOnce(&App, Params) -> Result<Json, PromError> + Send + 'static,
) -> Response {
    let params = match Params::read(query.as_deref(), &headers, &body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match tokio::task::spawn_blocking(move || f(&app, params)).await {
        Ok(Ok(data)) => success(data),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "prometheus API request refused");
            e.into_response()
        }
        Err(e) => PromError::execution(format!("evaluation failed: {e}")).into_response(),
    }
}

/// `/api/v1/query?query=…&time=…`: an instant query (time defaults to now).
pub async fn query(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(app, q, headers, body, |app, p| {
        let expr = p.expr()?;
        let t = p.time("time")?.unwrap_or_else(|| app.clock().now_ms());
        Ok(match eval::eval(&expr, &WeirSource::new(app), &[t])? {
            Value::Scalar(v) => render::scalar(v[0], t),
            Value::Str(s) => render::string(&s, t),
            Value::Vector(vs) => render::vector(&vs, t),
        })
    })
    .await
}

/// `/api/v1/query_range?query=…&start=…&end=…&step=…`: the expression at every step.
pub async fn query_range(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(app, q, headers, body, |app, p| {
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
        Ok(match eval::eval(&expr, &WeirSource::new(app), &times)? {
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
fn matching_series(app: &App, p: &Params, required: bool) -> Result<Vec<Labels>, PromError> {
    let sets = p.matchers()?;
    if sets.is_empty() && required {
        return Err(PromError::bad_data("no match[] parameter provided"));
    }
    let (from, to) = (p.time("start")?, p.time("end")?);
    let src = WeirSource::new(app);
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
pub async fn labels(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(app, q, headers, body, |app, p| {
        let names: BTreeSet<String> = matching_series(app, &p, false)?
            .into_iter()
            .flat_map(|l| l.into_keys())
            .collect();
        Ok(json!(names))
    })
    .await
}

/// `/api/v1/label/{name}/values[?match[]=…]`: the values of one label.
pub async fn label_values(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(app, q, headers, body, move |app, p| {
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(PromError::bad_data(format!(
                "invalid label name: \"{name}\""
            )));
        }
        let values: BTreeSet<String> = matching_series(app, &p, false)?
            .into_iter()
            .filter_map(|mut l| l.remove(&name))
            .collect();
        Ok(json!(values))
    })
    .await
}

/// `/api/v1/series?match[]=…[&start=…&end=…]`: the label sets of matching series.
pub async fn series(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(app, q, headers, body, |app, p| {
        let list: Vec<Json> = matching_series(app, &p, true)?
            .iter()
            .map(render::labels_json)
            .collect();
        Ok(Json::Array(list))
    })
    .await
}

/// `/api/v1/metadata[?metric=…]`: every metric name with its type and help.
pub async fn metadata(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(app, q, headers, body, |app, p| {
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

/// An empty list (exemplars: Weir has none).
pub async fn empty_list() -> Response {
    success(json!([]))
}

/// `/api/v1/rules`: Weir's rules are not Prometheus alerting rules; none listed.
pub async fn rules() -> Response {
    success(json!({ "groups": [] }))
}

/// `/api/v1/alerts`: none (see `rules`).
pub async fn alerts() -> Response {
    success(json!({ "alerts": [] }))
}
