//! Alerts and decisions (SPEC section 9, seed 000): `GET /api/alerts`,
//! `GET /api/alerts/{project}/{dimension}/{key}`, `GET /api/alerts/sinks` and
//! `GET /api/decisions`. Every answer is confined to the caller's account and project.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::access::{Admin, Ctx};
use super::error::{ApiError, ApiResult, ErrorBody};
use crate::alerts::decision_log::{DecisionFilter, SCAN_MAX};
use crate::alerts::sinks::SinkStatus;
use crate::alerts::store::{account_alerts, AlertFilter};
use crate::alerts::Alert;
use crate::app::App;

/// Largest page of alerts or decisions.
const MAX_LIMIT: u64 = 1000;

/// A page of alerts, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertPage {
    /// This page's alerts, newest (highest id) first.
    pub alerts: Vec<Alert>,
    /// Every matching alert, not only this page's.
    pub total: u64,
    /// The page (1-based).
    pub page: u64,
    /// The page size.
    pub limit: u64,
}

/// The sinks' delivery counters.
#[derive(Debug, Serialize, ToSchema)]
pub struct SinkList {
    /// One entry per configured sink.
    pub sinks: Vec<SinkStatus>,
    /// Changes recorded so far (the outbox number of the next).
    pub outbox_next: u64,
    /// Episodes open right now, every account.
    pub open: u64,
}

/// Recent decisions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionList {
    /// `{"account","project","at","call","event_id","decision","rules":[…]}` each.
    #[schema(value_type = Vec<Object>)]
    pub decisions: Vec<Value>,
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> ApiResult<T> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

/// A listing's `limit` (default 100), refused outside 1..=[`MAX_LIMIT`].
fn limit_of<T: Into<u64>>(limit: Option<T>) -> ApiResult<u64> {
    let limit = limit.map_or(100, Into::into);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be 1..{MAX_LIMIT}"
        )));
    }
    Ok(limit)
}

fn page_of(mut all: Vec<Alert>, f: &AlertFilter) -> ApiResult<AlertPage> {
    let limit = limit_of(f.limit)?;
    if let Some(s) = f.state.as_deref() {
        if s != "open" && s != "resolved" {
            return Err(ApiError::bad_request("state must be open or resolved"));
        }
    }
    let page = u64::from(f.page.unwrap_or(1).max(1));
    all.retain(|a| f.matches(a));
    all.sort_by_key(|a| std::cmp::Reverse(a.id));
    let total = all.len() as u64;
    let skip = (page - 1).saturating_mul(limit) as usize;
    let alerts = all.into_iter().skip(skip).take(limit as usize).collect();
    Ok(AlertPage {
        alerts,
        total,
        page,
        limit,
    })
}

async fn tenant_alerts(app: &Arc<App>) -> ApiResult<Vec<Alert>> {
    let account = app.tenant().account.clone();
    // Alerts are kept by account in the node's store (see `crate::alerts::start`).
    let all = app
        .node()
        .store()
        .run(move |s| account_alerts(s, &account))
        .await
        .map_err(ApiError::storage)?;
    let project = &app.tenant().project;
    Ok(all
        .into_iter()
        .filter(|a| a.project_id == *project)
        .collect())
}

/// `GET /api/alerts`: the caller's alerts, newest first, filtered and paged.
#[utoipa::path(
    get,
    path = "/api/alerts",
    tag = "alerts",
    params(AlertFilter),
    responses(
        (status = 200, description = "a page of alerts", body = AlertPage),
        (status = 400, description = "a bad parameter", body = ErrorBody),
        (status = 503, description = "the store is unavailable", body = ErrorBody),
    )
)]
pub async fn list(
    Ctx(app): Ctx,
    q: Result<Query<AlertFilter>, QueryRejection>,
) -> ApiResult<Json<AlertPage>> {
    let f = query(q)?;
    Ok(Json(page_of(tenant_alerts(&app).await?, &f)?))
}

/// `GET /api/alerts/{project}/{dimension}/{key}` (seed 000): the alerts of one rule and key
/// in one of the caller's projects, newest first.
#[utoipa::path(
    get,
    path = "/api/alerts/{project}/{dimension}/{key}",
    tag = "alerts",
    params(
        ("project" = String, Path, description = "the project (the caller's own)"),
        ("dimension" = String, Path, example = "sales_per_seller", description = "the rule"),
        ("key" = String, Path, example = "seller=usedcardealer", description = "the key as text"),
    ),
    responses(
        (status = 200, description = "the key's alerts", body = AlertPage),
        (status = 404, description = "not a project of the caller", body = ErrorBody),
        (status = 503, description = "the store is unavailable", body = ErrorBody),
    )
)]
pub async fn by_key(
    Ctx(app): Ctx,
    Path((project, dimension, key)): Path<(String, String, String)>,
) -> ApiResult<Json<AlertPage>> {
    if project != app.tenant().project {
        return Err(ApiError::not_found(format!("no project {project:?}")));
    }
    let f = AlertFilter {
        rule: Some(dimension),
        key: Some(key),
        limit: Some(MAX_LIMIT as u32),
        ..Default::default()
    };
    Ok(Json(page_of(tenant_alerts(&app).await?, &f)?))
}

/// `GET /api/alerts/sinks`: each sink's deliveries, failures, last error and backlog.
#[utoipa::path(
    get,
    path = "/api/alerts/sinks",
    tag = "alerts",
    responses(
        (status = 200, description = "the sinks", body = SinkList),
        (status = 403, description = "not an admin key (the sinks are the node's)", body = ErrorBody),
    )
)]
pub async fn sinks(_: Admin, Ctx(app): Ctx) -> Json<SinkList> {
    let alerts = app.alerts();
    let outbox_next = alerts.outbox_next();
    Json(SinkList {
        sinks: alerts.sink_stats.statuses(outbox_next),
        outbox_next,
        open: alerts.open_count() as u64,
    })
}

/// `GET /api/decisions`: the caller's recent decisions with their rules' values, newest
/// first (filters: rule, key, decision, limit). Recording is best effort: under overload
/// decisions are dropped (counted), and a listing reads at most the last 10 000 records of
/// every caller before filtering.
#[utoipa::path(
    get,
    path = "/api/decisions",
    tag = "decisions",
    params(DecisionFilter),
    responses(
        (status = 200, description = "recent decisions", body = DecisionList),
        (status = 400, description = "a bad parameter", body = ErrorBody),
        (status = 503, description = "the store is unavailable", body = ErrorBody),
    )
)]
pub async fn decisions(
    Ctx(app): Ctx,
    q: Result<Query<DecisionFilter>, QueryRejection>,
) -> ApiResult<Json<DecisionList>> {
    let f = query(q)?;
    let limit = limit_of(f.limit)?;
    if let Some(d) = f.decision.as_deref() {
        if d != "allow" && d != "deny" {
            return Err(ApiError::bad_request("decision must be allow or deny"));
        }
    }
    let rows = app
        .node()
        .store()
        .run(|s| s.recent_decisions(SCAN_MAX))
        .await
        .map_err(ApiError::storage)?;
    let t = app.tenant();
    let decisions = rows
        .into_iter()
        .filter_map(|(_, json)| serde_json::from_slice::<Value>(&json).ok())
        .filter_map(|v| f.apply(&t.account, &t.project, v))
        .take(limit as usize)
        .collect();
    Ok(Json(DecisionList { decisions }))
}
