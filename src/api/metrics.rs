//! `GET /metrics`: Prometheus text format for operators (SPEC section 11).
//!
//! Counters and histograms bumped where things happen go through the `metrics` facade:
//! events accepted, invalid and dropped, decisions and their latency, per-input counters
//! (weir-inputs, and `input="http"` from the HTTP handlers), request latency per route
//! ([`track`]), log flushes and fsyncs (weir-storage's group commit), checkpoints. State
//! that already lives elsewhere (engine per-query counters, the log writer, backfill
//! progress) is read when scraped. Every histogram (`*_seconds`) has the buckets of
//! [`LATENCY_BUCKETS`]. The list, with types and labels, is in `docs/api.md`.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use parking_lot::Mutex;

use crate::tenants::Hub;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Histogram buckets (seconds) of every `*_seconds` metric: 50 µs to 30 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0,
];

fn builder() -> PrometheusBuilder {
    let b = PrometheusBuilder::new();
    match b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "histogram buckets refused; histograms render as summaries");
            PrometheusBuilder::new()
        }
    }
}

/// Install the process-wide Prometheus recorder (once; later calls reuse it).
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = builder()
                .install_recorder()
                .unwrap_or_else(|_| builder().build_recorder().handle());
            describe();
            handle
        })
        .clone()
}

/// HELP texts of the metrics recorded here and elsewhere.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_histogram!(
        "weir_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by route template, method and status"
    );
    describe_histogram!(
        "weir_decision_duration_seconds",
        Unit::Seconds,
        "Time to decide (and apply) one add_and_check or check event, by call"
    );
    describe_histogram!(
        "weir_checkpoint_duration_seconds",
        Unit::Seconds,
        "Time of one flush of the query state that changed (key-bucket rows) and the analytics"
    );
    describe_histogram!(
        "weir_log_flush_duration_seconds",
        Unit::Seconds,
        "Time to append one group of records to the event log, fsync included"
    );
    describe_histogram!(
        "weir_log_fsync_duration_seconds",
        Unit::Seconds,
        "Time of one fsync of the event log"
    );
    describe_counter!("weir_events_accepted_total", "Events accepted, all inputs");
    describe_counter!(
        "weir_insights_types_written_total",
        "Event types whose analytics (keys, stats) a state flush wrote"
    );
    describe_counter!(
        "weir_insights_rows_written_total",
        "Rows of analytics state written by flushes (only types that changed)"
    );
    describe_counter!(
        "weir_insights_read_timeouts_total",
        "Analytics reads answered before the analytics caught up with the log (after the wait limit)"
    );
    describe_counter!(
        "weir_insights_gaps_skipped_total",
        "Event ids the analytics stopped waiting for (never written)"
    );
    describe_gauge!(
        "weir_insights_lag_events",
        "Events written to the log and not yet counted in the analytics"
    );
    describe_counter!(
        "weir_requests_unauthorized_total",
        "Calls answered 401: no API key, or not a valid one"
    );
    describe_gauge!(
        "weir_tenants",
        "Tenants (account, project) served by this node"
    );
    describe_gauge!(
        "weir_api_keys",
        "API keys known (configured and created over the API)"
    );
    describe_counter!(
        "weir_requests_unavailable_total",
        "Calls answered 503 because the store was unavailable (nothing of them applied)"
    );
    describe_counter!(
        "weir_durable_timeouts_total",
        "Synchronous calls answered 503 because their applied events were not durable within durable_timeout"
    );
    describe_counter!(
        "weir_events_invalid_total",
        "Events refused as invalid, by input and reason"
    );
    describe_counter!(
        "weir_events_dropped_total",
        "Events not counted in results, by reason (late: below a query's retention, per query; denied: refused by a rule)"
    );
    describe_counter!("weir_decisions_total", "add_and_check decisions by outcome");
    describe_counter!("weir_checkpoints_total", "Query-state flushes, by outcome");
    describe_gauge!(
        "weir_state_keys_restored",
        "Group keys loaded from the persisted query state on start"
    );
    describe_counter!(
        "weir_state_rows_written_total",
        "Rows of query state written by flushes (only keys that changed)"
    );
    describe_counter!("weir_input_received_total", "Events received per input");
    describe_counter!("weir_input_accepted_total", "Events accepted per input");
    describe_counter!("weir_input_invalid_total", "Invalid events per input");
    describe_counter!(
        "weir_input_duplicate_total",
        "Redelivered events skipped per input"
    );
    describe_gauge!("weir_input_lag", "Consumer lag per input (messages)");
    describe_gauge!("weir_query_events", "Events counted per query");
    describe_gauge!(
        "weir_query_late_dropped",
        "Events dropped as late per query"
    );
    describe_gauge!("weir_query_keys", "Group keys held per query");
    describe_gauge!(
        "weir_catalog_errors",
        "Stored query and rule definitions that could not be restored (status error)"
    );
    describe_gauge!("weir_log_records", "Records written to the event log");
    describe_gauge!("weir_log_groups", "Group commits of the event log");
    describe_gauge!("weir_log_fsyncs", "fsync calls of the event log");
    describe_gauge!("weir_log_last_event_id", "The highest event id handed out");
    describe_gauge!(
        "weir_backfill_progress",
        "Backfill progress per query (0..1)"
    );
    describe_gauge!(
        "weir_backfill_replayed_events",
        "Events replayed by a backfill"
    );
    describe_gauge!(
        "weir_backfill_total_events",
        "Events a backfill replays (upper bound)"
    );
    describe_gauge!(
        "weir_backfill_running",
        "1 while a query is being backfilled"
    );
    describe_counter!(
        "weir_alerts_total",
        "Alert changes recorded, by change (fired: a rule and key turned to deny; resolved: it allowed again)"
    );
    describe_gauge!("weir_alerts_open", "Alert episodes open, every account");
    describe_counter!(
        "weir_alert_sink_deliveries_total",
        "Delivery attempts of alert changes, by sink and outcome (ok, error)"
    );
    describe_gauge!(
        "weir_alert_sink_backlog",
        "Alert changes in the outbox a sink has not delivered yet"
    );
    describe_counter!(
        "weir_decision_log_written_total",
        "Decisions written to the decision log"
    );
    describe_counter!(
        "weir_decision_log_dropped_total",
        "Decisions not logged: the writer's queue was full, or the store failed"
    );
}

/// Middleware: time every request, labelled by its route template (`/api/queries/{name}`,
/// never the concrete path, so label sets stay bounded), method and status.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_string();
    let started = Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::histogram!(
        "weir_http_request_duration_seconds",
        "route" => route,
        "method" => method,
        "status" => status
    )
    .record(started.elapsed().as_secs_f64());
    res
}

/// Queries that were being backfilled at an earlier scrape.
/// The lines of a text exposition that are `tenant`'s: its samples (labelled with its
/// account and project) and the `# HELP`/`# TYPE` lines. The default tenant's series carry
/// no tenant labels, like the node's own, so a default tenant's key gets no series at all
/// rather than the node's.
fn own_series(text: &str, tenant: &weir_core::Tenant) -> String {
    let account = format!("account=\"{}\"", tenant.account);
    let project = format!("project=\"{}\"", tenant.project);
    let mut out = String::with_capacity(text.len() / 4);
    for line in text.lines() {
        let keep = line.starts_with('#')
            || (!tenant.is_default() && line.contains(&account) && line.contains(&project));
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

static BACKFILLED: Mutex<BTreeSet<Vec<(&'static str, String)>>> = Mutex::new(BTreeSet::new());

/// Refresh the gauges read from other components, then render everything.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "server",
    responses((status = 200, description = "every metric, in Prometheus's text format 0.0.4", body = String, content_type = "text/plain"))
)]
pub async fn render(
    State(hub): State<Arc<Hub>>,
    caller: Option<axum::Extension<crate::access::Caller>>,
) -> Response {
    let apps = hub.apps();
    let mut catalog_errors = 0;
    let mut running: BTreeSet<Vec<(&'static str, String)>> = BTreeSet::new();
    for app in &apps {
        // The default tenant's series carry only the query; another tenant's also say whose.
        let labels = |name: &str| -> Vec<(&'static str, String)> {
            let mut l = vec![("query", name.to_string())];
            let t = app.tenant();
            if !t.is_default() {
                l.push(("account", t.account.clone()));
                l.push(("project", t.project.clone()));
            }
            l
        };
        for q in app.engine().metrics() {
            let l = labels(&q.name);
            metrics::gauge!("weir_query_events", &l).set(q.events as f64);
            metrics::gauge!("weir_query_late_dropped", &l).set(q.late_dropped as f64);
            let mut dropped = l.clone();
            dropped.insert(0, ("reason", "late".to_string()));
            metrics::counter!("weir_events_dropped_total", &dropped).absolute(q.late_dropped);
            metrics::gauge!("weir_query_keys", &l).set(q.keys as f64);
        }
        catalog_errors += crate::catalog::error_count(app);
        let backfills = app.backfills().lock();
        for (name, p) in backfills.iter() {
            let l = labels(name);
            let progress = p.json()["progress"].as_f64().unwrap_or(0.0);
            metrics::gauge!("weir_backfill_progress", &l).set(progress);
            metrics::gauge!("weir_backfill_replayed_events", &l).set(p.replayed as f64);
            metrics::gauge!("weir_backfill_total_events", &l).set(p.total as f64);
            running.insert(l);
        }
    }
    metrics::gauge!("weir_catalog_errors").set(catalog_errors as f64);
    metrics::gauge!("weir_tenants").set(apps.len() as f64);
    metrics::gauge!("weir_api_keys").set(hub.keys().list().len() as f64);
    let app = hub.default_app();
    let log = app.log_stats();
    metrics::gauge!("weir_log_records").set(log.records as f64);
    metrics::gauge!("weir_log_groups").set(log.groups as f64);
    metrics::gauge!("weir_log_fsyncs").set(log.syncs as f64);
    metrics::gauge!("weir_log_last_event_id").set(app.last_seq() as f64);
    {
        let mut seen = BACKFILLED.lock();
        seen.extend(running.iter().cloned());
        for l in seen.iter() {
            let on = running.contains(l);
            metrics::gauge!("weir_backfill_running", l).set(if on { 1.0 } else { 0.0 });
            if !on {
                metrics::gauge!("weir_backfill_progress", l).set(1.0);
            }
        }
    }
    let text = install().render();
    // Every series for an admin key, a server without keys, or a public /metrics; a
    // tenant's key gets only its own tenant's series.
    let text = match caller {
        Some(axum::Extension(c)) if !c.admin && hub.keys().enabled() => {
            own_series(&text, &c.tenant)
        }
        _ => text,
    };
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
