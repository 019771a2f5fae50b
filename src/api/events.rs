//! Event intake: `POST /api/events`, `POST /api/check`, `POST /api/add_and_check`, and the
//! seed 002 forms `POST /event?…[&result=true]` and `GET /event?…` / `GET /event?id=N`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use weir_core::shape::{parse_body, parse_event, parse_query_string, ShapeError};
use weir_core::Event;

use super::decision::decision_json;
use super::error::{json_body, ApiError, ApiResult};
use crate::app::App;

/// Query-string options of `POST /api/events`.
#[derive(Debug, Deserialize)]
pub struct AddOptions {
    /// `durable`: answer 200 only once the events are durable and applied.
    wait: Option<String>,
}

/// Events that are not valid events at all (counted as `reason="shape"`), answered as
/// [`shape_errors`].
fn invalid_shape(errors: Vec<ShapeError>) -> ApiError {
    metrics::counter!("weir_events_invalid_total", "reason" => "shape")
        .increment(errors.len() as u64);
    shape_errors(errors)
}

/// Events accepted over HTTP (ingest per input, `input="http"`).
fn http_accepted(n: usize) {
    metrics::counter!("weir_input_accepted_total", "input" => "http").increment(n as u64);
}

/// The 400 answer for a batch with bad events: each index and why.
fn shape_errors(errors: Vec<ShapeError>) -> ApiError {
    let n = errors.len();
    metrics::counter!("weir_input_invalid_total", "input" => "http").increment(n as u64);
    let first = errors.first().map(|e| e.to_string()).unwrap_or_default();
    let list: Vec<Value> = errors
        .into_iter()
        .map(|e| json!({ "index": e.index, "error": e.reason }))
        .collect();
    let msg = if n == 1 {
        first
    } else {
        format!("{n} invalid events; first: {first}")
    };
    ApiError::bad_request(msg).with("errors", Value::Array(list))
}

/// The answer when the log does not take writes: 503 while it retries (try again), 500 once
/// it has failed for good. Nothing of the request was applied.
fn storage_error(e: weir_storage::StorageError) -> ApiError {
    if e.is_transient() {
        tracing::warn!(error = %e, "request refused: storage unavailable");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    } else {
        ApiError::internal(e)
    }
}

/// Read `items` (a batch's events) with their shapes, then check the well-formed ones against
/// their schemas: every bad index with its reason, in index order, shape and schema alike.
fn read_items(app: &App, items: &[Value]) -> Result<Vec<Event>, Vec<ShapeError>> {
    let opts = app.shape_opts();
    let mut events = Vec::with_capacity(items.len());
    let mut at = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match parse_event(item, &opts) {
            Ok(e) => {
                events.push(e);
                at.push(i);
            }
            Err(reason) => {
                metrics::counter!("weir_events_invalid_total", "reason" => "shape").increment(1);
                errors.push(ShapeError {
                    index: Some(i),
                    reason,
                })
            }
        }
    }
    for (j, reason) in app.schema_errors(&events) {
        errors.push(ShapeError {
            index: Some(at[j]),
            reason,
        });
    }
    if errors.is_empty() {
        Ok(events)
    } else {
        errors.sort_by_key(|e| e.index);
        Err(errors)
    }
}

/// A `POST /api/events` body: one event, or a batch `{"events":[…]}` read with [`read_items`].
fn read_add_body(app: &App, body: &Value) -> Result<Vec<Event>, Vec<ShapeError>> {
    match body.get("events") {
        Some(Value::Array(items)) => read_items(app, items),
        _ => {
            let events = parse_body(body, &app.shape_opts()).inspect_err(|e| {
                metrics::counter!("weir_events_invalid_total", "reason" => "shape")
                    .increment(e.len() as u64);
            })?;
            app.validate(&events)?;
            Ok(events)
        }
    }
}

/// `POST /api/events[?wait=durable]`: one event or a batch; a batch with any invalid event is
/// refused whole.
pub async fn add_events(
    State(app): State<Arc<App>>,
    Query(opts): Query<AddOptions>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let body = json_body(&body?)?;
    let events = read_add_body(&app, &body).map_err(shape_errors)?;
    let durable = match opts.wait.as_deref() {
        None => false,
        Some("durable") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown wait={other:?}: the only value is 'durable'"
            )))
        }
    };
    add_and_answer(&app, events, durable).await
}

async fn add_and_answer(
    app: &App,
    events: Vec<Event>,
    durable: bool,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (ids, receipt) = app.add(events, Vec::new()).map_err(storage_error)?;
    http_accepted(ids.len());
    let status = if durable {
        receipt.await.map_err(ApiError::internal)?;
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    // 202: applied and visible in results, queued for the log but not yet durable.
    Ok((
        status,
        Json(json!({ "accepted": ids.len(), "ids": ids, "durable": durable })),
    ))
}

/// One event, or an array of events for the batch form.
enum OneOrMany {
    One(Event),
    Many(Vec<Event>),
}

fn read_check_body(app: &App, body: Result<Bytes, BytesRejection>) -> ApiResult<OneOrMany> {
    let body = json_body(&body?)?;
    match body {
        Value::Array(items) => read_items(app, &items)
            .map(OneOrMany::Many)
            .map_err(shape_errors),
        other => {
            let e = parse_event(&other, &app.shape_opts()).map_err(|reason| {
                shape_errors(vec![ShapeError {
                    index: None,
                    reason,
                }])
            })?;
            app.validate(std::slice::from_ref(&e))
                .map_err(shape_errors)?;
            Ok(OneOrMany::One(e))
        }
    }
}

/// `POST /api/check`: decide from the current state, without adding the event. An array
/// body gives an array of decisions.
pub async fn check(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    Ok(Json(match read_check_body(&app, body)? {
        OneOrMany::One(e) => decision_json(&app.check(&e), None),
        OneOrMany::Many(es) => Value::Array(
            es.iter()
                .map(|e| decision_json(&app.check(e), None))
                .collect(),
        ),
    }))
}

/// `POST /api/add_and_check`: decide on the state including the event and add it only if
/// allowed; answers once the event is durable. An array body gives an array of decisions,
/// each atomic on its own.
pub async fn add_and_check(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    match read_check_body(&app, body)? {
        OneOrMany::One(e) => add_and_check_one(&app, e).await.map(Json),
        OneOrMany::Many(es) => {
            // Refuse the whole array up front if the log is not taking writes; a failure
            // that starts midway refuses the rest (each event is atomic on its own).
            app.log().health().check().map_err(storage_error)?;
            let checked = es
                .into_iter()
                .map(|e| app.add_and_check(e))
                .collect::<Result<Vec<_>, _>>()
                .map_err(storage_error)?;
            http_accepted(checked.iter().filter(|c| c.decision.allowed).count());
            let mut out = Vec::with_capacity(checked.len());
            for c in checked {
                c.receipt.await.map_err(ApiError::internal)?;
                out.push(decision_json(&c.decision, Some(c.event_id)));
            }
            Ok(Json(Value::Array(out)))
        }
    }
}

async fn add_and_check_one(app: &App, event: Event) -> ApiResult<Value> {
    let c = app.add_and_check(event).map_err(storage_error)?;
    http_accepted(usize::from(c.decision.allowed));
    c.receipt.await.map_err(ApiError::internal)?;
    Ok(decision_json(&c.decision, Some(c.event_id)))
}

/// Control parameters of the seed 002 form that are not event fields.
const CONTROL: [&str; 2] = ["result", "id"];

fn flag(qs: &str, name: &str) -> Option<String> {
    qs.split('&').find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        (k == name).then(|| v.to_string())
    })
}

/// `POST /event?evtname=…&…`: add (202 with the id), or with `result=true` add_and_check.
pub async fn post_event(
    State(app): State<Arc<App>>,
    RawQuery(qs): RawQuery,
) -> ApiResult<impl IntoResponse> {
    let qs = qs.unwrap_or_default();
    let event =
        parse_query_string(&qs, &CONTROL, &app.shape_opts()).map_err(|e| invalid_shape(vec![e]))?;
    app.validate(std::slice::from_ref(&event))
        .map_err(shape_errors)?;
    if matches!(flag(&qs, "result").as_deref(), Some("true") | Some("1")) {
        let v = add_and_check_one(&app, event).await?;
        Ok((StatusCode::OK, Json(v)))
    } else {
        add_and_answer(&app, vec![event], false).await
    }
}

/// `GET /event?evtname=…&…` checks that event; `GET /event?id=N` checks the stored event N.
pub async fn get_event(
    State(app): State<Arc<App>>,
    RawQuery(qs): RawQuery,
) -> ApiResult<Json<Value>> {
    let qs = qs.unwrap_or_default();
    if let Some(id) = flag(&qs, "id") {
        let id: u64 = id
            .parse()
            .map_err(|_| ApiError::bad_request(format!("id={id:?} is not an event id")))?;
        let store = app.store().clone();
        let record = tokio::task::spawn_blocking(move || -> weir_storage::Result<_> {
            let first = store.scan_seq(id.saturating_sub(1))?.next().transpose()?;
            Ok(first.filter(|r| r.seq == id && !r.denied))
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no event with id {id}")))?;
        return Ok(Json(decision_json(&app.check(&record.event), Some(id))));
    }
    let event =
        parse_query_string(&qs, &CONTROL, &app.shape_opts()).map_err(|e| invalid_shape(vec![e]))?;
    app.validate(std::slice::from_ref(&event))
        .map_err(shape_errors)?;
    Ok(Json(decision_json(&app.check(&event), None)))
}
