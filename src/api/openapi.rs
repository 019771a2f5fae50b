//! `GET /api/openapi.json`: an OpenAPI 3.1 description of every route, generated at compile
//! time from the handlers' `#[utoipa::path]` annotations and the answer types' `ToSchema`
//! derives, so it follows the code. `tests/openapi.rs` checks that it lists exactly the
//! routes of the route table (the one the router and `GET /help` are built from), and
//! `scripts/schemathesis.sh` checks live answers against it.

use axum::Json;
use serde_json::Value;
use utoipa::OpenApi;

use super::{
    access, alerts, analytics, cluster, console, events, metrics, misc, prometheus, queries,
    schemas, statements,
};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Weir",
        description = "Weir's HTTP API: continuous queries and allow/deny rules over event streams, \
                       the event store and analytics, and a Prometheus-compatible query API. \
                       Errors are {\"error\": …} with a 4xx or 5xx status; times are unix ms."
    ),
    paths(
        console::index,
        console::asset,
        misc::healthz,
        misc::help,
        metrics::render,
        document,
        access::whoami,
        access::list_keys,
        access::create_key,
        access::delete_key,
        statements::apply,
        queries::list_queries,
        queries::get_query,
        queries::delete_query,
        queries::result,
        queries::list_rules,
        queries::get_rule,
        queries::delete_rule,
        events::add_events,
        events::check,
        events::add_and_check,
        events::post_event,
        events::get_event,
        analytics::list_events,
        analytics::query_events,
        analytics::json_query,
        analytics::json_query_schema,
        analytics::stats,
        analytics::stats_type,
        analytics::keys,
        schemas::list,
        schemas::get,
        schemas::put,
        schemas::delete,
        prometheus::query,
        prometheus::query_post,
        prometheus::query_range,
        prometheus::query_range_post,
        prometheus::labels,
        prometheus::labels_post,
        prometheus::label_values,
        prometheus::series,
        prometheus::series_post,
        prometheus::metadata,
        prometheus::buildinfo,
        prometheus::exemplars,
        prometheus::exemplars_post,
        prometheus::rules,
        prometheus::alerts,
        alerts::list,
        alerts::by_key,
        alerts::sinks,
        alerts::decisions,
        cluster::status,
        cluster::decisions,
    ),
    components(schemas(events::QueryFields, access::NewKey)),
    modifiers(&KeyScheme),
    tags(
        (name = "statements", description = "the query language: CREATE QUERY, CREATE RULE, DROP, SHOW, SELECT"),
        (name = "queries", description = "query definitions and results"),
        (name = "rules", description = "rule definitions"),
        (name = "events", description = "adding events"),
        (name = "decisions", description = "check and add_and_check"),
        (name = "cluster", description = "cluster mode: nodes and partition owners"),
        (name = "alerts", description = "alerts of rules turning to deny, and their sinks"),
        (name = "event store", description = "stored events and analytics"),
        (name = "schemas", description = "per-type JSON Schemas for event validation"),
        (name = "prometheus", description = "the Prometheus-compatible query API (Grafana's datasource URL: /prometheus)"),
        (name = "server", description = "health, the route list, metrics, this document, the web console"),
        (name = "access", description = "API keys: with keys configured every call but /healthz needs one (Authorization: Bearer KEY, X-Api-Key, or ?api_key=); 401 otherwise"),
    )
)]
pub struct ApiDoc;

/// The `bearer` security scheme: how a call presents its API key once keys are configured
/// (without keys, no call needs one, so operations do not require it).
struct KeyScheme;

impl utoipa::Modify for KeyScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document as JSON. utoipa 5 writes the fields of a Link Object in snake case
/// (`operation_id`); OpenAPI spells them in camel case, so they are renamed here.
pub fn document_json() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    fix_links(&mut doc);
    doc
}

fn fix_links(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if let Some(Value::Object(links)) = o.get_mut("links") {
                for link in links.values_mut() {
                    if let Value::Object(l) = link {
                        for (from, to) in [
                            ("operation_id", "operationId"),
                            ("operation_ref", "operationRef"),
                            ("request_body", "requestBody"),
                        ] {
                            if let Some(x) = l.remove(from) {
                                l.insert(to.to_string(), x);
                            }
                        }
                    }
                }
            }
            o.values_mut().for_each(fix_links);
        }
        Value::Array(a) => a.iter_mut().for_each(fix_links),
        _ => {}
    }
}

/// `GET /api/openapi.json`: this API's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "server",
    responses((status = 200, description = "the OpenAPI 3.1 document", body = Object))
)]
pub async fn document() -> Json<Value> {
    Json(document_json())
}
