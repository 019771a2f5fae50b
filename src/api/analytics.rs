//! The event store and analytics API (SPEC section 8; seeds 001, 003, 004):
//! `GET /api/events`, `POST /api/events/query`, `POST /api/query`, `GET /api/query/schema`,
//! `GET /api/stats[/{type}]`, `GET /api/keys[?type=…]`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, RawQuery, State};
use axum::Json;
use serde_json::{json, Value};
use weir_analytics::{event_json, group_by_session, query_schema, JsonQuery, StoredEvent};
use weir_storage::{EventQuery, RangeQuery};

use super::error::{json_body, ApiError, ApiResult};
use crate::app::App;

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

async fn list(app: Arc<App>, l: Listing) -> ApiResult<Json<Value>> {
    let q = EventQuery {
        account: "default".into(),
        project: "default".into(),
        types: l.types,
        session: l.session,
        from_ts: l.from,
        to_ts: l.to,
        offset: (l.page - 1) * l.limit,
        limit: l.limit,
    };
    let store = app.store().clone();
    let page = tokio::task::spawn_blocking(move || store.scan(&q))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let mut answer = json!({ "page": l.page, "limit": l.limit, "total": page.total });
    if l.by_session {
        let grouped = group_by_session(page.events.into_iter().map(|e| StoredEvent {
            id: e.seq,
            event: e.event,
        }));
        answer["sessions"] = grouped["sessions"].clone();
    } else {
        answer["events"] = page
            .events
            .iter()
            .map(|e| event_json(e.seq, &e.event))
            .collect();
    }
    Ok(Json(answer))
}

/// `GET /api/events?page=&limit=&startDate=&endDate=&eventType=&session=&category=&groupBy=session`.
pub async fn list_events(
    State(app): State<Arc<App>>,
    RawQuery(qs): RawQuery,
) -> ApiResult<Json<Value>> {
    list(app, Listing::from_query(&qs.unwrap_or_default())?).await
}

/// `POST /api/events/query` with the same parameters as a JSON body.
pub async fn query_events(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let body = body?;
    let params = if body.is_empty() {
        json!({})
    } else {
        json_body(&body)?
    };
    list(app, Listing::from_json(&params)?).await
}

/// `POST /api/query`: the seed 001 JSON query (data sets, unique counts, funnel).
pub async fn json_query(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let body = json_body(&body?)?;
    let mut query = JsonQuery::compile(&body).map_err(|e| {
        ApiError::bad_request(e.to_string()).with("schema", json!("/api/query/schema"))
    })?;
    let (from, to) = query.time_range();
    let range = RangeQuery {
        account: "default".into(),
        project: "default".into(),
        types: query.event_types().unwrap_or_default(),
        from_ts: from.unwrap_or(i64::MIN),
        to_ts: to.unwrap_or(i64::MAX),
    };
    let store = app.store().clone();
    let answer = tokio::task::spawn_blocking(move || -> weir_storage::Result<Value> {
        for e in store.scan_range(&range)? {
            let e = e?;
            query.push(e.seq, &e.event);
        }
        Ok(query.finish())
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    Ok(Json(answer))
}

/// `GET /api/query/schema`: the JSON Schema of `POST /api/query`.
pub async fn json_query_schema() -> Json<Value> {
    Json(query_schema())
}

/// `GET /api/stats`: event counts for the last 48 h per type.
pub async fn stats(State(app): State<Arc<App>>) -> Json<Value> {
    Json(
        app.insights()
            .lock()
            .stats
            .stats(None, app.clock().now_ms()),
    )
}

/// `GET /api/stats/{type}`.
pub async fn stats_type(State(app): State<Arc<App>>, Path(ty): Path<String>) -> Json<Value> {
    Json(
        app.insights()
            .lock()
            .stats
            .stats(Some(&ty), app.clock().now_ms()),
    )
}

/// `GET /api/keys[?type=…][&prefix=…]`: field names seen and their most frequent values.
pub async fn keys(
    State(app): State<Arc<App>>,
    Query(p): Query<HashMap<String, String>>,
) -> Json<Value> {
    let insights = app.insights().lock();
    Json(match p.get("prefix") {
        Some(prefix) => insights
            .keys
            .keys_with_prefix(p.get("type").map(String::as_str), prefix),
        None => insights.keys.keys(p.get("type").map(String::as_str)),
    })
}
