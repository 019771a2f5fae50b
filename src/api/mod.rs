//! The HTTP API (SPEC section 13) on axum.
//!
//! # Layout
//! - [`error`]: error answers (`{"error": …}`, with `line`/`column` for DSL errors).
//! - [`events`]: event intake, check and add_and_check, the seed 002 `/event` forms.
//! - [`statements`]: `POST /api/statements` (DSL text).
//! - [`queries`]: query and rule definitions, results.
//! - [`schemas`]: per-type JSON Schemas for event validation.
//! - [`decision`]: a rules decision as JSON.
//! - [`alerts`]: alerts, their sinks' status, and the decision log.
//! - [`analytics`]: the event store and analytics (events listing, JSON query, stats, keys).
//! - [`metrics`]: `/metrics` for Prometheus, and the request-latency middleware.
//! - [`prometheus`]: the Prometheus-compatible query API under `/prometheus/api/v1/…`.
//! - [`console`]: the web console at `/` (built from `web/`, embedded).
//! - [`access`]: API keys: who a call acts for ([`access::Ctx`]), the key routes.
//! - [`misc`]: `/healthz`, `/help`, 404.
//! - [`openapi`]: `/api/openapi.json`, generated from the handlers' annotations.

pub mod access;
pub mod alerts;
pub mod analytics;
pub mod cluster;
pub mod console;
pub mod decision;
pub mod error;
pub mod events;
pub mod metrics;
pub mod misc;
pub mod openapi;
pub mod prometheus;
pub mod queries;
pub mod schemas;
pub mod statements;

use crate::tenants::Hub;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use tower_http::cors::CorsLayer;

/// One path: its handlers and, per method, what `GET /help` says about it.
pub struct RouteDef {
    /// The axum path.
    pub path: &'static str,
    /// `(method, description)` for each method the handlers answer.
    pub help: &'static [(&'static str, &'static str)],
    /// The handlers.
    pub handlers: MethodRouter<Arc<Hub>>,
}

pub(crate) fn def(
    path: &'static str,
    help: &'static [(&'static str, &'static str)],
    handlers: MethodRouter<Arc<Hub>>,
) -> RouteDef {
    RouteDef {
        path,
        help,
        handlers,
    }
}

/// Every route, once: the router is built from this table and `GET /help` lists it, so the
/// two cannot drift.
pub fn routes() -> Vec<RouteDef> {
    vec![
        def("/", &[("GET", "the web console")], get(console::index)),
        def(
            "/console/{file}",
            &[("GET", "the web console's scripts and styles (embedded)")],
            get(console::asset),
        ),
        def("/healthz", &[("GET", "200 once ready")], get(misc::healthz)),
        def("/help", &[("GET", "this list")], get(misc::help)),
        def("/metrics", &[("GET", "Prometheus metrics")], get(metrics::render)),
        def(
            "/api/openapi.json",
            &[("GET", "this API as an OpenAPI 3.1 document")],
            get(openapi::document),
        ),
        def(
            "/api/statements",
            &[("POST", "apply DSL text (text/plain): CREATE QUERY, CREATE RULE, DROP, SHOW, SELECT")],
            post(statements::apply),
        ),
        def("/api/cluster", &[("GET", "cluster mode: the nodes, who owns which partition, positions and lag")], get(cluster::status)),
        def(
            "/api/cluster/decisions",
            &[("GET", "cluster mode: this node's part of the rule-decision series (what a node merges for the Prometheus API)")],
            get(cluster::decisions),
        ),
        def("/api/whoami", &[("GET", "the account and project the caller's key acts for")], get(access::whoami)),
        def(
            "/api/admin/keys",
            &[("GET", "every API key (admin key)"), ("POST", "create a key {account, project, name?, admin?}; the answer shows it once (admin key)")],
            get(access::list_keys).post(access::create_key),
        ),
        def(
            "/api/admin/keys/{id}",
            &[("DELETE", "remove a key created over the API (admin key)")],
            axum::routing::delete(access::delete_key),
        ),
        def("/api/queries", &[("GET", "query definitions and status")], get(queries::list_queries)),
        def(
            "/api/queries/{name}",
            &[("GET", "one query"), ("DELETE", "drop a query")],
            get(queries::get_query).delete(queries::delete_query),
        ),
        def(
            "/api/queries/{name}/result",
            &[("GET", "results: at=T for sliding windows; from=T&to=T[&step=D] for series (step: sliding queries only, a multiple of the granularity); key.FIELD=VALUE to pick keys")],
            get(queries::result),
        ),
        def("/api/rules", &[("GET", "rule definitions")], get(queries::list_rules)),
        def(
            "/api/rules/{name}",
            &[("GET", "one rule"), ("DELETE", "drop a rule")],
            get(queries::get_rule).delete(queries::delete_rule),
        ),
        def(
            "/api/events",
            &[
                ("POST", "add one event or a batch {\"events\":[…]}; 202 with \"durable\":false (applied, not yet durable), or 200 with ?wait=durable"),
                ("GET", "stored events, newest pages: page, limit, startDate, endDate, eventType, session, category, groupBy=session"),
            ],
            post(events::add_events).get(analytics::list_events),
        ),
        def(
            "/api/events/query",
            &[("POST", "stored events, with the parameters of GET /api/events as a JSON body")],
            post(analytics::query_events),
        ),
        def(
            "/api/query",
            &[("POST", "the seed 001 JSON query over stored events: data sets, unique counts, funnel")],
            post(analytics::json_query),
        ),
        def(
            "/api/query/schema",
            &[("GET", "the JSON Schema of POST /api/query")],
            get(analytics::json_query_schema),
        ),
        def("/api/stats", &[("GET", "event counts per type over the last 48 h (seed 003)")], get(analytics::stats)),
        def("/api/stats/{type}", &[("GET", "one type's 48 h counts in time buckets")], get(analytics::stats_type)),
        def("/api/keys", &[("GET", "field names seen and their most frequent values ([?type=…][&prefix=…])")], get(analytics::keys)),
        def("/api/schemas", &[("GET", "per-type JSON Schemas")], get(schemas::list)),
        def(
            "/api/schemas/{type}",
            &[("GET", "one type's schema"), ("PUT", "set a type's schema (events of that type must satisfy it)"), ("DELETE", "remove a type's schema")],
            get(schemas::get).put(schemas::put).delete(schemas::delete),
        ),
        def(
            "/api/check",
            &[("POST", "decide on an event (or an array) from the current state without adding it")],
            post(events::check),
        ),
        def(
            "/api/add_and_check",
            &[("POST", "decide including the event (or each of an array) and add it if allowed; answers once durable")],
            post(events::add_and_check),
        ),
        def(
            "/event",
            &[
                ("POST", "?evtname=…&…: add (seed 002 form); with &result=true, add_and_check"),
                ("GET", "?evtname=…&…: check (seed 002 form); ?id=N: check the stored event N"),
            ],
            post(events::post_event).get(events::get_event),
        ),
        def(
            "/api/alerts",
            &[("GET", "alerts, newest first: rule (or dimension), key, state=open|resolved, from, to, page, limit")],
            get(alerts::list),
        ),
        def("/api/alerts/sinks", &[("GET", "the alert sinks: deliveries, failures, last error, backlog")], get(alerts::sinks)),
        def(
            "/api/alerts/{project}/{dimension}/{key}",
            &[("GET", "the alerts of one rule (dimension) and key (seed 000)")],
            get(alerts::by_key),
        ),
        def(
            "/api/decisions",
            &[("GET", "recent decisions with their rules' values: rule, key, decision=allow|deny, limit")],
            get(alerts::decisions),
        ),
    ]
}

/// Every `(method, path, description)` the router answers: [`routes`] and, under
/// `/prometheus`, [`prometheus::route_defs`].
pub fn all_routes() -> Vec<(&'static str, String, &'static str)> {
    let top = routes().into_iter().map(|d| (String::new(), d));
    let prom = prometheus::route_defs()
        .into_iter()
        .map(|d| ("/prometheus".to_string(), d));
    top.chain(prom)
        .flat_map(|(prefix, d)| {
            let (path, help) = (d.path, d.help);
            help.iter()
                .map(move |(method, what)| (*method, format!("{prefix}{path}"), *what))
        })
        .collect()
}

/// Every route, with API keys, CORS and the body-size limit.
pub fn router(hub: Arc<Hub>) -> Router {
    let limit = hub.node().cfg().max_body_bytes;
    routes()
        .into_iter()
        .fold(Router::new(), |r, d| r.route(d.path, d.handlers))
        .nest("/prometheus", prometheus::routes())
        .route_layer(middleware::from_fn(metrics::track))
        .fallback(misc::not_found)
        .layer(middleware::from_fn_with_state(
            hub.clone(),
            access::authenticate,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .layer(CorsLayer::permissive())
        .with_state(hub)
}
