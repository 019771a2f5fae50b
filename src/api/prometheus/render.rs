//! Prometheus's JSON envelope: `{"status":"success","data":…}` and
//! `{"status":"error","errorType":"bad_data","error":"…"}`, and the value shapes of query
//! answers (vector, matrix, scalar, string; sample values as strings, times in seconds).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::source::{Labels, Series};

/// An error as Prometheus answers it.
#[derive(Debug, Clone, PartialEq)]
pub struct PromError {
    /// `bad_data` (the request or the expression is wrong, or not supported: 400),
    /// `execution` (evaluation failed: 422) or `unavailable` (a cluster's partitions are
    /// moving: 503).
    pub kind: &'static str,
    /// What went wrong and where.
    pub message: String,
}

impl PromError {
    /// A `bad_data` error.
    pub fn bad_data(msg: impl Into<String>) -> Self {
        Self {
            kind: "bad_data",
            message: msg.into(),
        }
    }

    /// A `bad_data` error for PromQL Weir does not evaluate; the message starts with
    /// `unsupported:` and names the construct.
    pub fn unsupported(what: impl std::fmt::Display) -> Self {
        Self::bad_data(format!(
            "unsupported: {what} is not supported by Weir's PromQL (supported: selectors \
             with =, !=, =~, !~; sum, min, max, avg, count, group, stddev, stdvar, topk, \
             bottomk with by/without; arithmetic, comparisons and and/or/unless between \
             scalars and vectors with on/ignoring; offset)"
        ))
    }

    /// An `execution` error.
    pub fn execution(msg: impl Into<String>) -> Self {
        Self {
            kind: "execution",
            message: msg.into(),
        }
    }

    /// An `unavailable` error (503): in a cluster, partitions are moving between nodes
    /// right now; asking again shortly answers.
    pub fn unavailable(msg: impl Into<String>) -> Self {
        Self {
            kind: "unavailable",
            message: msg.into(),
        }
    }

    /// An error of the cluster's fan-out as Prometheus says it: `unavailable` while
    /// partitions move, `execution` otherwise (a read refused as inexact included).
    pub fn from_api(e: crate::api::error::ApiError) -> Self {
        let msg = e.body["error"].as_str().unwrap_or("error").to_string();
        if e.is_unavailable() {
            Self::unavailable(msg)
        } else {
            Self::execution(msg)
        }
    }

    fn status(&self) -> StatusCode {
        match self.kind {
            "execution" => StatusCode::UNPROCESSABLE_ENTITY,
            "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl std::fmt::Display for PromError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// Prometheus's error answer. Fields in alphabetical order, as the JSON map it was first
/// built with.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromErrorBody {
    /// What went wrong.
    pub error: String,
    /// `bad_data` (400) or `execution` (422).
    #[serde(rename = "errorType")]
    pub error_type: &'static str,
    /// `error`.
    #[schema(example = "error")]
    pub status: &'static str,
}

/// Prometheus's success answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromSuccess {
    /// The answer: for queries `{"resultType", "result"}`, for the listings an array or an
    /// object.
    pub data: Value,
    /// `success`.
    #[schema(example = "success")]
    pub status: &'static str,
}

impl IntoResponse for PromError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = PromErrorBody {
            error: self.message,
            error_type: self.kind,
            status: "error",
        };
        (status, Json(body)).into_response()
    }
}

/// `{"status":"success","data":…}`.
pub fn success(data: Value) -> Response {
    Json(PromSuccess {
        data,
        status: "success",
    })
    .into_response()
}

/// A sample value as Prometheus writes it.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// A time in unix ms as Prometheus writes it (seconds, a JSON number).
pub fn format_time(ms: i64) -> Value {
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

/// `[t, "v"]`.
pub fn point(t: i64, v: f64) -> Value {
    json!([format_time(t), format_value(v)])
}

/// Labels as a JSON object.
pub fn labels_json(l: &Labels) -> Value {
    Value::Object(
        l.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<String, Value>>(),
    )
}

/// An instant vector at time `t` (the one value of each series).
pub fn vector(series: &[Series], t: i64) -> Value {
    let result: Vec<Value> = series
        .iter()
        .filter_map(|s| {
            s.values
                .first()
                .copied()
                .flatten()
                .map(|v| json!({ "metric": labels_json(&s.labels), "value": point(t, v) }))
        })
        .collect();
    json!({ "resultType": "vector", "result": result })
}

/// A range answer: every series with its points at `times` (series without any left out).
pub fn matrix(series: &[Series], times: &[i64]) -> Value {
    let mut result: Vec<(String, Value)> = series
        .iter()
        .filter_map(|s| {
            let values: Vec<Value> = times
                .iter()
                .zip(&s.values)
                .filter_map(|(&t, v)| v.map(|v| point(t, v)))
                .collect();
            (!values.is_empty()).then(|| {
                let sort_key = labels_json(&s.labels).to_string();
                let v = json!({ "metric": labels_json(&s.labels), "values": values });
                (sort_key, v)
            })
        })
        .collect();
    result.sort_by(|a, b| a.0.cmp(&b.0));
    json!({ "resultType": "matrix", "result": result.into_iter().map(|r| r.1).collect::<Vec<_>>() })
}

/// A scalar answer at time `t`.
pub fn scalar(v: f64, t: i64) -> Value {
    json!({ "resultType": "scalar", "result": point(t, v) })
}

/// A string answer at time `t`.
pub fn string(s: &str, t: i64) -> Value {
    json!({ "resultType": "string", "result": [format_time(t), s] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_times_as_prometheus_writes_them() {
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(0.5), "0.5");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_time(1_700_000_000_000), json!(1_700_000_000));
        assert_eq!(format_time(1_700_000_000_500), json!(1_700_000_000.5));
    }

    #[test]
    fn error_shape() {
        let e = PromError::unsupported("function rate()");
        assert_eq!(e.kind, "bad_data");
        assert!(e
            .message
            .starts_with("unsupported: function rate() is not supported"));
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            PromError::execution("x").status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
}
