//! Small routes: health, the route list (seed 003's `/help`), 404. The page at `GET /` is
//! the web console ([`super::console`]).

use axum::http::{StatusCode, Uri};
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;

/// `GET /healthz`: 200 once the server is ready (it only listens once recovery is done).
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /help`: the routes as JSON.
pub async fn help() -> Json<Value> {
    Json(json!({
        "message": "Weir: continuous queries and allow/deny rules over event streams.",
        "routes": {
            "GET /": "the web console",
            "GET /healthz": "200 once ready",
            "GET /help": "this list",
            "GET /metrics": "Prometheus metrics",
            "GET|POST /prometheus/api/v1/{query,query_range,series,labels}": "the Prometheus query API over query results and rule decisions (Grafana datasource URL: /prometheus)",
            "POST /api/statements": "apply DSL text (text/plain): CREATE QUERY, CREATE RULE, DROP, SHOW, SELECT",
            "GET /api/queries": "query definitions and status",
            "GET /api/queries/{name}": "one query",
            "DELETE /api/queries/{name}": "drop a query",
            "GET /api/queries/{name}/result": "results: at=T for sliding windows; from=T&to=T[&step=D] for series; key.FIELD=VALUE to pick keys",
            "GET /api/rules": "rule definitions",
            "DELETE /api/rules/{name}": "drop a rule",
            "POST /api/events": "add one event or a batch {\"events\":[…]}; 202, or 200 with ?wait=durable",
            "GET /api/schemas": "per-type JSON Schemas; PUT/DELETE /api/schemas/{type} to set or remove one",
            "POST /api/check": "decide on an event (or an array) from the current state without adding it",
            "POST /api/add_and_check": "decide including the event (or each of an array) and add it if allowed",
            "POST /event?evtname=…&…": "add (seed form); with &result=true, add_and_check",
            "GET /event?evtname=…&… | ?id=N": "check (seed form)"
        }
    }))
}

/// Unknown routes.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route {}; see GET /help", uri.path()),
    )
}
