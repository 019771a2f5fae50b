//! `GET /metrics`: Prometheus text format (SPEC section 11).
//!
//! Counters bumped on the hot path (events accepted, decisions, per-input counters from
//! weir-inputs) go through the `metrics` facade; state that already lives elsewhere (engine
//! per-query counters, the log writer, backfill progress) is read when scraped.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::app::App;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the process-wide Prometheus recorder (once; later calls reuse it).
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle())
        })
        .clone()
}

/// Refresh the gauges read from other components, then render everything.
pub async fn render(State(app): State<Arc<App>>) -> impl IntoResponse {
    for q in app.engine.metrics() {
        let name = q.name.clone();
        metrics::gauge!("weir_query_events", "query" => name.clone()).set(q.events as f64);
        metrics::gauge!("weir_query_late_dropped", "query" => name.clone())
            .set(q.late_dropped as f64);
        metrics::gauge!("weir_query_keys", "query" => name).set(q.keys as f64);
    }
    metrics::gauge!("weir_catalog_errors").set(crate::catalog::error_count(&app) as f64);
    let log = app.log.stats();
    metrics::gauge!("weir_log_records").set(log.records as f64);
    metrics::gauge!("weir_log_groups").set(log.groups as f64);
    metrics::gauge!("weir_log_fsyncs").set(log.syncs as f64);
    metrics::gauge!("weir_log_last_event_id").set(app.last_seq() as f64);
    for (name, p) in app.backfills.lock().iter() {
        let progress = p.json()["progress"].as_f64().unwrap_or(0.0);
        metrics::gauge!("weir_backfill_progress", "query" => name.clone()).set(progress);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        install().render(),
    )
}
