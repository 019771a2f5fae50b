//! The HTTP API (SPEC section 13) on axum.
//!
//! # Layout
//! - [`error`]: error answers (`{"error": …}`, with `line`/`column` for DSL errors).
//! - [`events`]: event intake, check and add_and_check, the seed 002 `/event` forms.
//! - [`statements`]: `POST /api/statements` (DSL text).
//! - [`queries`]: query and rule definitions, results.
//! - [`schemas`]: per-type JSON Schemas for event validation.
//! - [`decision`]: a rules decision as JSON.
//! - [`analytics`]: the event store and analytics (events listing, JSON query, stats, keys).
//! - [`metrics`]: `/metrics` for Prometheus, and the request-latency middleware.
//! - [`prometheus`]: the Prometheus-compatible query API under `/prometheus/api/v1/…`.
//! - [`console`]: the web console at `/` (built from `web/`, embedded).
//! - [`misc`]: `/healthz`, `/help`, 404.

pub mod analytics;
pub mod console;
pub mod decision;
pub mod error;
pub mod events;
pub mod metrics;
pub mod misc;
pub mod prometheus;
pub mod queries;
pub mod schemas;
pub mod statements;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use tower_http::cors::CorsLayer;

use crate::app::App;

/// Every route, with CORS and the body-size limit.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.cfg.max_body_bytes;
    Router::new()
        .route("/", get(console::index))
        .route("/console/{file}", get(console::asset))
        .route("/healthz", get(misc::healthz))
        .route("/help", get(misc::help))
        .route("/metrics", get(metrics::render))
        .route("/api/statements", post(statements::apply))
        .route("/api/queries", get(queries::list_queries))
        .route(
            "/api/queries/{name}",
            get(queries::get_query).delete(queries::delete_query),
        )
        .route("/api/queries/{name}/result", get(queries::result))
        .route("/api/rules", get(queries::list_rules))
        .route(
            "/api/rules/{name}",
            get(queries::get_rule).delete(queries::delete_rule),
        )
        .route(
            "/api/events",
            post(events::add_events).get(analytics::list_events),
        )
        .route("/api/events/query", post(analytics::query_events))
        .route("/api/query", post(analytics::json_query))
        .route("/api/query/schema", get(analytics::json_query_schema))
        .route("/api/stats", get(analytics::stats))
        .route("/api/stats/{type}", get(analytics::stats_type))
        .route("/api/keys", get(analytics::keys))
        .route("/api/schemas", get(schemas::list))
        .route(
            "/api/schemas/{type}",
            get(schemas::get).put(schemas::put).delete(schemas::delete),
        )
        .route("/api/check", post(events::check))
        .route("/api/add_and_check", post(events::add_and_check))
        .route("/event", post(events::post_event).get(events::get_event))
        .nest("/prometheus", prometheus::routes())
        .route_layer(middleware::from_fn(metrics::track))
        .fallback(misc::not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(CorsLayer::permissive())
        .with_state(app)
}
