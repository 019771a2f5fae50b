//! Event intake: `POST /api/events`, `POST /api/check`, `POST /api/add_and_check`, and the
//! seed 002 forms `POST /event?…[&result=true]` and `GET /event?…` / `GET /event?id=N`.

use crate::api::access::Ctx;
use crate::api::cluster::{ClusterCall, InCluster};
use crate::cluster::forward::Decide;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, RawQuery};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use weir_core::shape::{parse_body, parse_event, parse_query_string, ShapeError};
use weir_core::{Event, EventId};

use super::decision::{decision_answer, DecisionAnswer};
use super::error::{json_body, ApiError, ApiResult, ErrorBody};
use crate::app::App;

/// One event in any shape of SPEC section 1 (`event_type`/`params`, `data` with
/// `event_tag`, `session_id`/`category`/`data`, or `type`/`ts` and fields).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // describes the request bodies, for the OpenAPI document
#[schema(value_type = Object, example = json!({"event_type": "order", "ts": 1456606932000_i64, "params": {"seller": "s1", "amount": 10}}))]
pub struct EventInput(Map<String, Value>);

/// The body of `POST /api/check` and `POST /api/add_and_check`: one event, or an array.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
#[serde(untagged)]
pub enum CheckBody {
    /// An array of events: an array of decisions.
    Many(Vec<EventInput>),
    /// One event: one decision.
    One(EventInput),
}

/// One decision, or an array of them for an array of events.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Decisions {
    /// For one event.
    One(DecisionAnswer),
    /// For an array of events, in order.
    Many(Vec<DecisionAnswer>),
}

/// Events added: `{"accepted": N, "durable": …, "ids": […]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// How many events were added.
    pub accepted: usize,
    /// Whether they are durable yet (true with `wait=durable`).
    pub durable: bool,
    /// Their ids, in order.
    #[schema(value_type = Vec<u64>)]
    pub ids: Vec<EventId>,
}

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
pub(crate) fn storage_error(e: weir_storage::StorageError) -> ApiError {
    ApiError::storage(e)
}

/// Wait until the events `ids` are durable, at most `durable_timeout`. When the store does
/// not answer in time (a node down), 503 says so: the events were applied and stay queued
/// for the log, which writes them once the store is back, so they must not be sent again.
pub(crate) async fn wait_durable(
    app: &App,
    receipt: weir_storage::Receipt,
    ids: &[u64],
) -> ApiResult<()> {
    match tokio::time::timeout(app.cfg().durable_timeout, receipt).await {
        Ok(written) => written.map_err(storage_error),
        Err(_) => {
            metrics::counter!("weir_durable_timeouts_total").increment(1);
            tracing::warn!(
                events = ids.len(),
                "events not durable in time: the store is not answering"
            );
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "not durable within {}: the store is not answering. The events were applied and are queued; \
                     they are written when the store is back, so do not send them again",
                    weir_core::format_duration(app.cfg().durable_timeout.as_millis() as i64)
                ),
            )
            .with("pending_ids", serde_json::json!(ids)))
        }
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
#[utoipa::path(
    post,
    path = "/api/events",
    tag = "events",
    params(("wait" = Option<String>, Query, description = "durable: answer 200 once the events are durable")),
    request_body(
        content = EventInput,
        description = "one event, or a batch {\"events\": [event, …]} (refused whole if any event is invalid)"
    ),
    responses(
        (status = 200, description = "added and durable (wait=durable)", body = Accepted, links(
            ("CheckStored" = (operation_id = "get_event", parameters(("id" = "$response.body#/ids/0")))),
        )),
        (status = 202, description = "added and applied, not yet durable", body = Accepted),
        (status = 400, description = "invalid JSON or events (each bad index and why); nothing added", body = ErrorBody),
        (status = 413, description = "the body is over the size limit", body = ErrorBody),
        (status = 500, description = "the event log has failed", body = ErrorBody),
        (status = 503, description = "the event log is not taking writes; try again", body = ErrorBody),
    )
)]
pub async fn add_events(
    Ctx(app): Ctx,
    InCluster(cl): InCluster,
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
    if let Some(cl) = cl {
        return produce_and_answer(&cl, &app, events).await;
    }
    add_and_answer(&app, events, durable).await
}

/// Cluster mode: produce the events to the cluster topic, each to its partition; answered
/// once the broker has them all (durable there; they reach results when their partition's
/// owner has consumed them). Ids are given by the owners, so none are listed.
async fn produce_and_answer(
    cl: &ClusterCall,
    app: &App,
    events: Vec<Event>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    use crate::cluster::sink::ProduceError;
    let n = events.len();
    crate::cluster::sink::produce(&cl.cluster, app.tenant(), &events)
        .await
        .map_err(|e| match e {
            ProduceError::Route { index, reason } if n == 1 || index == usize::MAX => {
                ApiError::bad_request(reason)
            }
            ProduceError::Route { index, reason } => {
                ApiError::bad_request(format!("event {index}: {reason}"))
            }
            e @ ProduceError::Broker(_) => ApiError::unavailable(e.to_string()),
        })?;
    http_accepted(n);
    Ok((
        StatusCode::OK,
        Json(Accepted {
            accepted: n,
            durable: true,
            ids: Vec::new(),
        }),
    ))
}

/// Cluster mode: decide at the events' partitions' owners (or, for a call forwarded here,
/// at this node's cell of its partition).
async fn decide_in_cluster(
    cl: &ClusterCall,
    app: &App,
    how: Decide,
    body: OneOrMany,
    timed: Vec<bool>,
) -> ApiResult<axum::response::Response> {
    let (one, events) = match body {
        OneOrMany::One(e) => (true, vec![e]),
        OneOrMany::Many(es) => (false, es),
    };
    let answers = match cl.partition {
        Some(p) => {
            crate::cluster::forward::decide_local(&cl.cluster, app.tenant(), how, p, events).await?
        }
        None => {
            let events = events.into_iter().zip(timed).collect();
            crate::cluster::forward::decide(&cl.cluster, app.tenant(), cl.auth.clone(), how, events)
                .await?
        }
    };
    if one && cl.partition.is_none() {
        let first = answers.into_iter().next().unwrap_or(Value::Null);
        return Ok(Json(first).into_response());
    }
    Ok(Json(Value::Array(answers)).into_response())
}

async fn add_and_answer(
    app: &App,
    events: Vec<Event>,
    durable: bool,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let (ids, receipt) = app.add(events, Vec::new()).map_err(storage_error)?;
    http_accepted(ids.len());
    let status = if durable {
        wait_durable(app, receipt, &ids).await?;
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    // 202: applied and visible in results, queued for the log but not yet durable.
    Ok((
        status,
        Json(Accepted {
            accepted: ids.len(),
            durable,
            ids,
        }),
    ))
}

/// One event, or an array of events for the batch form.
enum OneOrMany {
    One(Event),
    Many(Vec<Event>),
}

/// The events of a check body and, in cluster mode (`timed`), for each whether it gave its
/// own time (one that did not is stamped again where it is decided); else no flags.
fn read_check_body(
    app: &App,
    body: Result<Bytes, BytesRejection>,
    timed: bool,
) -> ApiResult<(OneOrMany, Vec<bool>)> {
    let body = json_body(&body?)?;
    let timed = match &body {
        _ if !timed => Vec::new(),
        Value::Array(items) => items.iter().map(weir_core::gives_time).collect(),
        one => vec![weir_core::gives_time(one)],
    };
    Ok((read_check_events(app, body)?, timed))
}

fn read_check_events(app: &App, body: Value) -> ApiResult<OneOrMany> {
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
#[utoipa::path(
    post,
    path = "/api/check",
    tag = "decisions",
    request_body = CheckBody,
    responses(
        (status = 200, description = "the decision (an array for an array)", body = Decisions),
        (status = 400, description = "invalid JSON or events", body = ErrorBody),
        (status = 413, description = "the body is over the size limit", body = ErrorBody),
    )
)]
pub async fn check(
    Ctx(app): Ctx,
    InCluster(cl): InCluster,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<axum::response::Response> {
    let (body, timed) = read_check_body(&app, body, cl.is_some())?;
    if let Some(cl) = cl {
        return decide_in_cluster(&cl, &app, Decide::Check, body, timed).await;
    }
    Ok(Json(match body {
        OneOrMany::One(e) => Decisions::One(decision_answer(&app.check(&e), None)),
        OneOrMany::Many(es) => Decisions::Many(
            es.iter()
                .map(|e| decision_answer(&app.check(e), None))
                .collect(),
        ),
    })
    .into_response())
}

/// `POST /api/add_and_check`: decide on the state including the event and add it only if
/// allowed; answers once the event is durable. An array body gives an array of decisions,
/// each atomic on its own.
#[utoipa::path(
    post,
    path = "/api/add_and_check",
    tag = "decisions",
    request_body = CheckBody,
    responses(
        (status = 200, description = "the decision (an array for an array); allowed events are added and durable", body = Decisions, links(
            ("CheckStored" = (operation_id = "get_event", parameters(("id" = "$response.body#/event_id")))),
        )),
        (status = 400, description = "invalid JSON or events", body = ErrorBody),
        (status = 413, description = "the body is over the size limit", body = ErrorBody),
        (status = 500, description = "the event log has failed", body = ErrorBody),
        (status = 503, description = "the event log is not taking writes; try again", body = ErrorBody),
    )
)]
pub async fn add_and_check(
    Ctx(app): Ctx,
    InCluster(cl): InCluster,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<axum::response::Response> {
    let (body, timed) = read_check_body(&app, body, cl.is_some())?;
    if let Some(cl) = cl {
        return decide_in_cluster(&cl, &app, Decide::AddAndCheck, body, timed).await;
    }
    match body {
        OneOrMany::One(e) => add_and_check_one(&app, e)
            .await
            .map(|d| Json(Decisions::One(d)).into_response()),
        OneOrMany::Many(es) => {
            // Refuse the whole array up front if the log is not taking writes; a failure
            // that starts midway refuses the rest (each event is atomic on its own).
            app.log_health().check().map_err(storage_error)?;
            let checked = es
                .into_iter()
                .map(|e| app.add_and_check(e))
                .collect::<Result<Vec<_>, _>>()
                .map_err(storage_error)?;
            http_accepted(checked.iter().filter(|c| c.decision.allowed).count());
            let mut out = Vec::with_capacity(checked.len());
            for c in checked {
                wait_durable(&app, c.receipt, &[c.event_id]).await?;
                out.push(decision_answer(&c.decision, Some(c.event_id)));
            }
            Ok(Json(Decisions::Many(out)).into_response())
        }
    }
}

async fn add_and_check_one(app: &App, event: Event) -> ApiResult<DecisionAnswer> {
    let c = app.add_and_check(event).map_err(storage_error)?;
    http_accepted(usize::from(c.decision.allowed));
    wait_durable(app, c.receipt, &[c.event_id]).await?;
    Ok(decision_answer(&c.decision, Some(c.event_id)))
}

/// Control parameters of the seed 002 form that are not event fields.
/// Query-string keys of the seed 002 forms that are not event fields (`api_key`: a key given
/// in the URL, see [`crate::api::access`], is never stored with the event).
const CONTROL: [&str; 3] = ["result", "id", "api_key"];

fn flag(qs: &str, name: &str) -> Option<String> {
    qs.split('&').find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        (k == name).then(|| v.to_string())
    })
}

/// The event of the seed 002 form: every query parameter but `result` and `id` is a field.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
#[schema(value_type = Object, example = json!({"amount": 10, "seller": "usedcardealer"}))]
pub struct QueryFields(Map<String, Value>);

/// An add (202) or, with `result=true`, a decision (200).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum PostEventAnswer {
    /// `result=true`.
    Decision(DecisionAnswer),
    /// An add.
    Accepted(Accepted),
}

/// `POST /event?evtname=…&…`: add (202 with the id), or with `result=true` add_and_check.
///
/// Every parameter but `result` is a field of the event (a value that reads as a number is
/// one); `evtname` (or `event_type`, `type`) is its type.
#[utoipa::path(
    post,
    path = "/event",
    tag = "events",
    params(
        ("evtname" = String, Query, description = "the event type"),
        ("result" = Option<String>, Query, description = "true or 1: add_and_check, answering the decision"),
        ("fields" = Option<QueryFields>, Query, style = Form, explode, description = "the event's fields, one parameter each"),
    ),
    responses(
        (status = 200, description = "result=true: the decision", body = DecisionAnswer),
        (status = 202, description = "added, not yet durable", body = Accepted),
        (status = 400, description = "an invalid event", body = ErrorBody),
        (status = 500, description = "the event log has failed", body = ErrorBody),
        (status = 503, description = "the event log is not taking writes; try again", body = ErrorBody),
    )
)]
pub async fn post_event(
    Ctx(app): Ctx,
    InCluster(cl): InCluster,
    RawQuery(qs): RawQuery,
) -> ApiResult<axum::response::Response> {
    let qs = qs.unwrap_or_default();
    let event =
        parse_query_string(&qs, &CONTROL, &app.shape_opts()).map_err(|e| invalid_shape(vec![e]))?;
    app.validate(std::slice::from_ref(&event))
        .map_err(shape_errors)?;
    let decide = matches!(flag(&qs, "result").as_deref(), Some("true") | Some("1"));
    if let Some(cl) = cl {
        if decide {
            let timed = vec![weir_core::query_gives_time(&qs)];
            return decide_in_cluster(&cl, &app, Decide::AddAndCheck, OneOrMany::One(event), timed)
                .await;
        }
        return Ok(produce_and_answer(&cl, &app, vec![event])
            .await?
            .into_response());
    }
    if decide {
        let v = add_and_check_one(&app, event).await?;
        Ok((StatusCode::OK, Json(PostEventAnswer::Decision(v))).into_response())
    } else {
        let (status, Json(a)) = add_and_answer(&app, vec![event], false).await?;
        Ok((status, Json(PostEventAnswer::Accepted(a))).into_response())
    }
}

/// `GET /event?evtname=…&…` checks that event; `GET /event?id=N` checks the stored event N.
#[utoipa::path(
    get,
    path = "/event",
    tag = "decisions",
    params(
        ("evtname" = Option<String>, Query, description = "the event type (without id)"),
        ("id" = Option<u64>, Query, description = "check the stored event with this id instead"),
        ("fields" = Option<QueryFields>, Query, style = Form, explode, description = "the event's fields, one parameter each"),
    ),
    responses(
        (status = 200, description = "the decision", body = DecisionAnswer),
        (status = 400, description = "an invalid event or id", body = ErrorBody),
        (status = 404, description = "no stored event with that id", body = ErrorBody),
        (status = 500, description = "storage failed", body = ErrorBody),
    )
)]
pub async fn get_event(Ctx(app): Ctx, RawQuery(qs): RawQuery) -> ApiResult<Json<DecisionAnswer>> {
    let qs = qs.unwrap_or_default();
    if let Some(id) = flag(&qs, "id") {
        let id: u64 = id
            .parse()
            .map_err(|_| ApiError::bad_request(format!("id={id:?} is not an event id")))?;
        let record = app
            .store()
            .run(move |store| -> weir_storage::Result<_> {
                let first = store.scan_seq(id.saturating_sub(1))?.next().transpose()?;
                Ok(first.filter(|r| r.seq == id && !r.denied))
            })
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found(format!("no event with id {id}")))?;
        return Ok(Json(decision_answer(&app.check(&record.event), Some(id))));
    }
    let event =
        parse_query_string(&qs, &CONTROL, &app.shape_opts()).map_err(|e| invalid_shape(vec![e]))?;
    app.validate(std::slice::from_ref(&event))
        .map_err(shape_errors)?;
    Ok(Json(decision_answer(&app.check(&event), None)))
}
