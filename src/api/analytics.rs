//! The event store and analytics API (SPEC section 8; seeds 001, 003, 004):
//! `GET /api/events`, `POST /api/events/query`, `POST /api/query`, `GET /api/query/schema`,
//! `GET /api/stats[/{type}]`, `GET /api/keys[?type=…]`.
//!
//! The stats and keys are read after waiting (bounded) for the analytics to include every
//! event the log has written, so an acknowledged add is always in them (see
//! [`crate::insights`]).
//!
//! The answer types serialize their fields in alphabetical order, as the JSON maps these
//! answers were first built with did. The shapes built by `weir-analytics` (stored events,
//! sessions, stats, keys) are described here for the OpenAPI document.

use crate::api::access::Ctx;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, RawQuery};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use weir_analytics::Scope;
use weir_analytics::{event_json, group_by_session, query_schema, JsonQuery, StoredEvent};
use weir_storage::{EventQuery, RangeQuery};

use super::error::{json_body, ApiError, ApiResult, ErrorBody};
use crate::app::App;

/// A page of stored events: `events`, or with `groupBy=session` the page's events grouped
/// in `sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// The page's events, ordered by (ts, event_id).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<StoredEventJson>>)]
    pub events: Option<Vec<Value>>,
    /// The page size.
    pub limit: u64,
    /// The page (1-based).
    pub page: u64,
    /// `groupBy=session`: the page's events by session.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Session>>)]
    pub sessions: Option<Value>,
    /// Every matching event, not only this page's.
    pub total: u64,
}

/// A stored event (built by `weir-analytics`).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // describes JSON built elsewhere, for the OpenAPI document
pub struct StoredEventJson {
    /// Its id.
    pub event_id: u64,
    /// Its type.
    #[schema(rename = "type")]
    pub ty: String,
    /// Its time (unix ms).
    pub ts: i64,
    /// Its session, if it has one.
    #[schema(required = false, nullable = false)]
    pub session_id: Option<String>,
    /// Its weight, when not 1.
    #[schema(required = false, nullable = false)]
    pub samplerate: Option<f64>,
    /// Its fields.
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

/// One session's events (built by `weir-analytics`).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct Session {
    /// The session (null for the events without one, listed last).
    pub session_id: Option<String>,
    /// Its events, ordered by (ts, event_id).
    pub events: Vec<StoredEventJson>,
}

/// The filters of `POST /api/events/query` (those of `GET /api/events` as JSON).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ListingBody {
    /// The page (1-based; default 1).
    #[schema(value_type = Option<Value>)]
    pub page: Option<u64>,
    /// The page size (1..10000; default 100).
    #[schema(value_type = Option<Value>)]
    pub limit: Option<u64>,
    /// Events at or after this time (unix ms or s, RFC 3339, `YYYY-MM-DD HH:MM:SS`).
    #[serde(rename = "startDate")]
    #[schema(value_type = Option<Value>)]
    pub start_date: Option<String>,
    /// Events before this time.
    #[serde(rename = "endDate")]
    #[schema(value_type = Option<Value>)]
    pub end_date: Option<String>,
    /// Event types (a string, comma-separated, or an array).
    #[serde(rename = "eventType")]
    #[schema(value_type = Option<Value>)]
    pub event_type: Option<Vec<String>>,
    /// Seed 004's category: the event type.
    #[schema(value_type = Option<Value>)]
    pub category: Option<Vec<String>>,
    /// One session's events.
    #[schema(value_type = Option<Value>)]
    pub session: Option<String>,
    /// `session`: group the page by session.
    #[serde(rename = "groupBy")]
    pub group_by: Option<String>,
}

/// `GET /api/stats[/{type}]` (built by `weir-analytics`): counts in time buckets over the
/// last 48 h, `[from, to)`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct Stats {
    /// The bucket width (ms).
    pub granularity_ms: i64,
    /// The window's start (unix ms).
    pub from: i64,
    /// The window's end (unix ms, exclusive).
    pub to: i64,
    /// Events in the window.
    pub total: u64,
    /// Each type's counts.
    pub types: BTreeMap<String, TypeStats>,
}

/// One type's counts.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct TypeStats {
    /// Its events in the window.
    pub total: u64,
    /// Non-empty buckets, oldest first.
    pub buckets: Vec<StatsBucket>,
}

/// One bucket.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct StatsBucket {
    /// Its start (unix ms).
    pub start: i64,
    /// Its events.
    pub count: u64,
}

/// `GET /api/keys` (built by `weir-analytics`). With `type`: that type's `type`, `count`
/// and `keys`; without: `keys` over every type and `types`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct Keys {
    /// With `type`: the type.
    #[schema(rename = "type", required = false, nullable = false)]
    pub ty: Option<String>,
    /// With `type`: its events.
    #[schema(required = false, nullable = false)]
    pub count: Option<u64>,
    /// Field names (dotted paths) sorted by name, with their most frequent values.
    pub keys: Vec<KeyStats>,
    /// Without `type`: every type with its events, most first.
    #[schema(required = false, nullable = false)]
    pub types: Option<Vec<TypeCount>>,
}

/// One field name.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct KeyStats {
    /// The field (a dotted path for nested fields).
    pub key: String,
    /// Events that had it.
    pub count: u64,
    /// Its most frequent values.
    pub values: Vec<ValueCount>,
}

/// One value of a field.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ValueCount {
    /// The value, as text.
    pub value: String,
    /// How often.
    pub count: u64,
}

/// One event type.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct TypeCount {
    /// The type.
    #[schema(rename = "type")]
    pub ty: String,
    /// Its events.
    pub count: u64,
}

/// Largest page `GET /api/events` returns.
const MAX_LIMIT: u64 = 10_000;

/// The filters of an events listing, from a query string or a JSON body.
#[derive(Debug, Default)]
struct Listing {
    page: u64,
    limit: u64,
    from: Option<i64>,
    to: Option<i64>,
    types: Vec<String>,
    session: Option<String>,
    by_session: bool,
}

fn time(name: &str, v: &Value) -> ApiResult<Option<i64>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        v => weir_core::time::parse_time_value(v)
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("{name}: {e}"))),
    }
}

fn number(name: &str, v: &Value, default: u64) -> ApiResult<u64> {
    let n = unbounded_number(name, v, default)?;
    if n > i64::MAX as u64 {
        return Err(ApiError::bad_request(format!(
            "{name} must be at most {}",
            i64::MAX
        )));
    }
    Ok(n)
}

fn unbounded_number(name: &str, v: &Value, default: u64) -> ApiResult<u64> {
    match v {
        Value::Null => Ok(default),
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| ApiError::bad_request(format!("{name} must be a positive integer"))),
        Value::String(s) => s
            .parse()
            .map_err(|_| ApiError::bad_request(format!("{name}={s:?} is not a positive integer"))),
        _ => Err(ApiError::bad_request(format!(
            "{name} must be a positive integer"
        ))),
    }
}

fn strings(name: &str, v: &Value) -> ApiResult<Vec<String>> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(s
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()),
        Value::Array(a) => a
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::bad_request(format!("{name} must hold strings")))
            })
            .collect(),
        _ => Err(ApiError::bad_request(format!(
            "{name} must be a string or an array of strings"
        ))),
    }
}

impl Listing {
    /// Read the parameters of seeds 003/004 from a JSON object.
    fn from_json(o: &Value) -> ApiResult<Listing> {
        if let Some(map) = o.as_object() {
            for k in map.keys() {
                if !matches!(
                    k.as_str(),
                    "page"
                        | "limit"
                        | "startDate"
                        | "endDate"
                        | "eventType"
                        | "session"
                        | "category"
                        | "groupBy"
                ) {
                    return Err(ApiError::bad_request(format!(
                        "unknown parameter '{k}': expected page, limit, startDate, endDate, eventType, session, category or groupBy"
                    )));
                }
            }
        } else {
            return Err(ApiError::bad_request(
                "expected a JSON object of parameters",
            ));
        }
        let page = number("page", &o["page"], 1)?.max(1);
        let limit = number("limit", &o["limit"], 100)?;
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::bad_request(format!(
                "limit must be between 1 and {MAX_LIMIT}"
            )));
        }
        let mut types = strings("eventType", &o["eventType"])?;
        // Seed 004's category is the event type of its events.
        types.extend(strings("category", &o["category"])?);
        let by_session = match &o["groupBy"] {
            Value::Null => false,
            Value::String(s) if s == "session" => true,
            other => {
                return Err(ApiError::bad_request(format!(
                    "groupBy {other}: the only grouping is \"session\""
                )))
            }
        };
        let session = match &o["session"] {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        Ok(Listing {
            page,
            limit,
            from: time("startDate", &o["startDate"])?,
            to: time("endDate", &o["endDate"])?,
            types,
            session,
            by_session,
        })
    }

    /// Read it from a query string (`eventType` may repeat).
    fn from_query(qs: &str) -> ApiResult<Listing> {
        let mut obj = serde_json::Map::new();
        for pair in qs.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = weir_core::shape::percent_decode(k).map_err(ApiError::bad_request)?;
            let v = weir_core::shape::percent_decode(v).map_err(ApiError::bad_request)?;
            let k = k.trim_end_matches("[]").to_string();
            match obj.get_mut(&k) {
                Some(Value::String(prev)) => {
                    let joined = format!("{prev},{v}");
                    *prev = joined;
                }
                _ => {
                    obj.insert(k, Value::String(v));
                }
            }
        }
        Self::from_json(&Value::Object(obj))
    }
}

async fn list(app: Arc<App>, l: Listing) -> ApiResult<Json<EventPage>> {
    let q = EventQuery {
        account: app.tenant().account.clone(),
        project: app.tenant().project.clone(),
        types: l.types,
        session: l.session,
        from_ts: l.from,
        to_ts: l.to,
        // A page past every event is empty (saturating: a huge page number is not an error).
        offset: (l.page - 1).saturating_mul(l.limit),
        limit: l.limit,
    };
    let page = app
        .store()
        .run(move |store| store.scan(&q))
        .await
        .map_err(ApiError::internal)?;
    let mut answer = EventPage {
        events: None,
        limit: l.limit,
        page: l.page,
        sessions: None,
        total: page.total,
    };
    if l.by_session {
        let mut grouped = group_by_session(page.events.into_iter().map(|e| StoredEvent {
            id: e.seq,
            event: e.event,
        }));
        answer.sessions = Some(grouped["sessions"].take());
    } else {
        answer.events = Some(
            page.events
                .iter()
                .map(|e| event_json(e.seq, &e.event))
                .collect(),
        );
    }
    Ok(Json(answer))
}

/// `GET /api/events?page=&limit=&startDate=&endDate=&eventType=&session=&category=&groupBy=session`.
#[utoipa::path(
    get,
    path = "/api/events",
    tag = "event store",
    params(
        ("page" = Option<i64>, Query, minimum = 0, description = "the page (1-based; default 1)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 10000, description = "the page size (1..10000; default 100)"),
        ("startDate" = Option<String>, Query, description = "events at or after this time (unix ms or s, RFC 3339, YYYY-MM-DD HH:MM:SS)"),
        ("endDate" = Option<String>, Query, description = "events before this time"),
        ("eventType" = Option<Vec<String>>, Query, explode, description = "event types (repeated, or comma-separated)"),
        ("category" = Option<Vec<String>>, Query, explode, description = "seed 004's category: the event type"),
        ("session" = Option<String>, Query, description = "one session's events"),
        ("groupBy" = Option<String>, Query, description = "session: group the page by session"),
    ),
    responses(
        (status = 200, description = "a page of stored events", body = EventPage),
        (status = 400, description = "a bad parameter", body = ErrorBody),
        (status = 500, description = "storage failed", body = ErrorBody),
    )
)]
pub async fn list_events(Ctx(app): Ctx, RawQuery(qs): RawQuery) -> ApiResult<Json<EventPage>> {
    list(app, Listing::from_query(&qs.unwrap_or_default())?).await
}

/// `POST /api/events/query` with the same parameters as a JSON body.
#[utoipa::path(
    post,
    path = "/api/events/query",
    tag = "event store",
    request_body(content = Option<ListingBody>, description = "the filters (no body: the first page of every event)"),
    responses(
        (status = 200, description = "a page of stored events", body = EventPage),
        (status = 400, description = "invalid JSON or a bad parameter", body = ErrorBody),
        (status = 413, description = "the body is over the size limit", body = ErrorBody),
        (status = 500, description = "storage failed", body = ErrorBody),
    )
)]
pub async fn query_events(
    Ctx(app): Ctx,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<EventPage>> {
    let body = body?;
    let params = if body.is_empty() {
        json!({})
    } else {
        json_body(&body)?
    };
    list(app, Listing::from_json(&params)?).await
}

/// `POST /api/query`: the seed 001 JSON query (data sets, unique counts, funnel).
///
/// The body's JSON Schema is answered by `GET /api/query/schema`.
#[utoipa::path(
    post,
    path = "/api/query",
    tag = "event store",
    request_body(
        content = Object,
        description = "the query (JSON Schema: GET /api/query/schema)",
        example = json!({"data": [{"name": "views", "filters": [{"type": "eq", "key": "event_tag", "value": "product_view"}], "unique": ["user_id"]}]})
    ),
    responses(
        (status = 200, description = "the query's answer", body = Object),
        (status = 400, description = "invalid JSON or an invalid query (with schema: where the JSON Schema is)", body = ErrorBody),
        (status = 413, description = "the body is over the size limit", body = ErrorBody),
        (status = 500, description = "storage failed", body = ErrorBody),
    )
)]
pub async fn json_query(
    Ctx(app): Ctx,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let body = json_body(&body?)?;
    let mut query = JsonQuery::compile(&body).map_err(|e| {
        ApiError::bad_request(e.to_string()).with("schema", json!("/api/query/schema"))
    })?;
    let (from, to) = query.time_range();
    let range = RangeQuery {
        account: app.tenant().account.clone(),
        project: app.tenant().project.clone(),
        types: query.event_types().unwrap_or_default(),
        from_ts: from.unwrap_or(i64::MIN),
        to_ts: to.unwrap_or(i64::MAX),
    };
    let answer = app
        .store()
        .run(move |store| -> weir_storage::Result<Value> {
            for e in store.scan_range(&range)? {
                let e = e?;
                query.push(e.seq, &e.event);
            }
            Ok(query.finish())
        })
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(answer))
}

/// `GET /api/query/schema`: the JSON Schema of `POST /api/query`.
#[utoipa::path(
    get,
    path = "/api/query/schema",
    tag = "event store",
    responses((status = 200, description = "a JSON Schema (draft 2020-12)", body = Object))
)]
pub async fn json_query_schema() -> Json<Value> {
    Json(query_schema())
}

/// `GET /api/stats`: event counts for the last 48 h per type.
#[utoipa::path(
    get,
    path = "/api/stats",
    tag = "event store",
    responses((status = 200, description = "counts per type in time buckets", body = Stats))
)]
pub async fn stats(Ctx(app): Ctx) -> Json<Value> {
    app.insights().caught_up().await;
    Json(
        app.insights()
            .read()
            .stats
            .stats_in(&Scope::of(app.tenant()), None, app.clock().now_ms()),
    )
}

/// `GET /api/stats/{type}`.
#[utoipa::path(
    get,
    path = "/api/stats/{type}",
    tag = "event store",
    params(("type" = String, Path, example = "neworder", description = "the event type")),
    responses((status = 200, description = "the type's counts in time buckets (listed even without events)", body = Stats))
)]
pub async fn stats_type(Ctx(app): Ctx, Path(ty): Path<String>) -> Json<Value> {
    app.insights().caught_up().await;
    Json(app.insights().read().stats.stats_in(
        &Scope::of(app.tenant()),
        Some(&ty),
        app.clock().now_ms(),
    ))
}

/// `GET /api/keys[?type=…][&prefix=…]`: field names seen and their most frequent values.
#[utoipa::path(
    get,
    path = "/api/keys",
    tag = "event store",
    params(
        ("type" = Option<String>, Query, description = "one event type's fields"),
        ("prefix" = Option<String>, Query, description = "only field names that start with this"),
    ),
    responses((status = 200, description = "field names and their most frequent values", body = Keys))
)]
pub async fn keys(Ctx(app): Ctx, Query(p): Query<HashMap<String, String>>) -> Json<Value> {
    app.insights().caught_up().await;
    let insights = app.insights().read();
    let prefix = p.get("prefix").map_or("", String::as_str);
    Json(insights.keys.keys_in(
        &Scope::of(app.tenant()),
        p.get("type").map(String::as_str),
        prefix,
    ))
}
