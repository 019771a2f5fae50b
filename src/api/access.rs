//! API keys on the HTTP API (SPEC section 10): the middleware that says who a call acts for,
//! the [`Ctx`] extractor that hands a handler its tenant's app, and the key routes.
//!
//! A key is read from `Authorization: Bearer KEY`, `X-Api-Key: KEY` or, for the seed 002
//! `GET /event?…` form and simple clients, the `api_key` query parameter. With keys
//! configured, a call without a valid key gets 401 with `WWW-Authenticate`; only `/healthz`,
//! the console's static files (no data in them) and, if configured, `/metrics` are open.
//! `GET /` without a key answers 401 too, with the console page, which asks for a key.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use weir_core::Tenant;

use super::error::{ApiError, ApiResult};
use crate::access::{Caller, RemoveError};
use crate::app::App;
use crate::tenants::{DeleteKeyError, Hub};

/// The app of the caller's tenant.
pub struct Ctx(pub Arc<App>);

/// The challenge of a 401.
const CHALLENGE: &str = "Bearer realm=\"weir\"";

fn unauthorized(msg: &str) -> Response {
    metrics::counter!("weir_requests_unauthorized_total").increment(1);
    let mut r = (StatusCode::UNAUTHORIZED, Json(json!({ "error": msg }))).into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(CHALLENGE),
    );
    r
}

pub(crate) fn forbidden(msg: &str) -> Response {
    (StatusCode::FORBIDDEN, Json(json!({ "error": msg }))).into_response()
}

/// The key a request presents, if any.
fn presented(parts: &Parts) -> Option<String> {
    let h = &parts.headers;
    if let Some(v) = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if let Some(k) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
        {
            return Some(k.trim().to_string());
        }
    }
    if let Some(v) = h.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_string());
    }
    let q = parts.uri.query()?;
    serde_urlencoded::from_str::<Vec<(String, String)>>(q)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == "api_key")
        .map(|(_, v)| v)
}

/// Routes open without a key once keys are on.
fn open(path: &str, hub: &Hub) -> bool {
    path == "/healthz"
        || path.starts_with("/console/")
        || (path == "/metrics" && hub.node().cfg().auth.metrics_public)
}

/// Say who the call acts for (a [`Caller`] in its extensions), or answer 401.
pub async fn authenticate(State(hub): State<Arc<Hub>>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    if !hub.keys().enabled() {
        parts.extensions.insert(Caller {
            tenant: Tenant::default(),
            admin: true,
        });
        return next.run(Request::from_parts(parts, body)).await;
    }
    let path = parts.uri.path().to_string();
    let caller = presented(&parts).and_then(|k| hub.keys().find(&k));
    match caller {
        Some(c) => {
            parts.extensions.insert(c);
        }
        None if open(&path, &hub) => {}
        None => {
            let why = if presented(&parts).is_some() {
                "the API key is not valid"
            } else {
                "an API key is needed: send Authorization: Bearer KEY (or X-Api-Key)"
            };
            if path == "/" {
                let mut page = super::console::index().await;
                *page.status_mut() = StatusCode::UNAUTHORIZED;
                page.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(CHALLENGE),
                );
                return page;
            }
            return unauthorized(why);
        }
    }
    next.run(Request::from_parts(parts, body)).await
}

impl FromRequestParts<Arc<Hub>> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, hub: &Arc<Hub>) -> Result<Self, Response> {
        let Some(caller) = parts.extensions.get::<Caller>() else {
            return Err(unauthorized("an API key is needed"));
        };
        if let Some(app) = hub.app(&caller.tenant) {
            return Ok(Ctx(app));
        }
        let tenant = caller.tenant.clone();
        hub.ensure(&tenant)
            .await
            .map(Ctx)
            .map_err(|e| ApiError::internal(e).into_response())
    }
}

/// The caller, for the key routes.
pub struct Admin;

impl FromRequestParts<Arc<Hub>> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &Arc<Hub>) -> Result<Self, Response> {
        match parts.extensions.get::<Caller>() {
            Some(c) if c.admin => Ok(Admin),
            Some(_) => Err(forbidden("managing keys needs an admin key")),
            None => Err(unauthorized("an API key is needed")),
        }
    }
}

/// `GET /api/whoami`: the account and project the caller's key acts for.
#[utoipa::path(
    get,
    path = "/api/whoami",
    tag = "access",
    responses(
        (status = 200, description = "the caller's account, project and whether the key is an admin key", body = Object),
        (status = 401, description = "no valid key", body = super::error::ErrorBody),
    )
)]
pub async fn whoami(Ctx(app): Ctx, State(hub): State<Arc<Hub>>) -> Json<Value> {
    let t = app.tenant();
    Json(json!({
        "account": t.account,
        "project": t.project,
        "keys_enabled": hub.keys().enabled(),
    }))
}

/// `GET /api/admin/keys`: every key (never the key itself nor its hash).
#[utoipa::path(
    get,
    path = "/api/admin/keys",
    tag = "access",
    responses(
        (status = 200, description = "the keys", body = Object),
        (status = 403, description = "not an admin key", body = super::error::ErrorBody),
    )
)]
pub async fn list_keys(_: Admin, State(hub): State<Arc<Hub>>) -> Json<Value> {
    let keys: Vec<Value> = hub.keys().list().iter().map(|e| e.json()).collect();
    Json(json!({ "keys": keys }))
}

/// The body of `POST /api/admin/keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// The account the key acts for.
    pub account: String,
    /// The project.
    pub project: String,
    /// A label.
    #[serde(default)]
    pub name: String,
    /// Whether it may manage keys.
    #[serde(default)]
    pub admin: bool,
}

/// `POST /api/admin/keys`: create a key; the answer shows it once (only its hash is kept).
#[utoipa::path(
    post,
    path = "/api/admin/keys",
    tag = "access",
    request_body = NewKey,
    responses(
        (status = 201, description = "the new key (shown only now) and its entry", body = Object),
        (status = 400, description = "a bad account or project name", body = super::error::ErrorBody),
        (status = 403, description = "not an admin key", body = super::error::ErrorBody),
    )
)]
pub async fn create_key(
    _: Admin,
    State(hub): State<Arc<Hub>>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: NewKey = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the key request: {e}")))?;
    if !hub.keys().enabled() && !req.admin {
        return Err(ApiError::bad_request(
            "the first key must be an admin key (\"admin\": true): once a key exists, every call needs one",
        ));
    }
    for (what, v) in [("account", &req.account), ("project", &req.project)] {
        crate::access::check_name(what, v).map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let (key, entry) = hub
        .create_key(Tenant::new(req.account, req.project), req.name, req.admin)
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(id = %entry.id, tenant = %entry.tenant, admin = entry.admin, "API key created");
    let mut v = entry.json();
    v["key"] = json!(key);
    Ok((StatusCode::CREATED, Json(v)))
}

/// `DELETE /api/admin/keys/{id}`: remove a key created over the API; calls with it get 401
/// from then on.
#[utoipa::path(
    delete,
    path = "/api/admin/keys/{id}",
    tag = "access",
    params(("id" = String, Path, description = "the key's id")),
    responses(
        (status = 200, description = "removed", body = Object),
        (status = 403, description = "not an admin key", body = super::error::ErrorBody),
        (status = 404, description = "no such key", body = super::error::ErrorBody),
        (status = 409, description = "a key of the configuration (remove it there)", body = super::error::ErrorBody),
    )
)]
pub async fn delete_key(
    _: Admin,
    State(hub): State<Arc<Hub>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    match hub.delete_key(&id).await {
        Ok(e) => {
            tracing::info!(id = %e.id, tenant = %e.tenant, "API key deleted");
            Ok(Json(json!({ "deleted": e.id })))
        }
        Err(DeleteKeyError::Refused(RemoveError::Unknown)) => {
            Err(ApiError::not_found(format!("no key with id {id}")))
        }
        Err(DeleteKeyError::Refused(RemoveError::Configured)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("key {id} comes from the configuration: remove it there"),
        )),
        Err(DeleteKeyError::Storage(e)) => Err(ApiError::internal(e)),
    }
}
