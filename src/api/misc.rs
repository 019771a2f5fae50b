//! Small routes: health, the route list (seed 003's `/help`), 404. The page at `GET /` is
//! the web console ([`super::console`]).

use std::collections::BTreeMap;

use axum::http::{StatusCode, Uri};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// `GET /help`: every route as `"METHOD /path": "what it does"`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Help {
    /// What Weir is.
    pub message: &'static str,
    /// Every route, by `METHOD /path`.
    pub routes: BTreeMap<String, &'static str>,
}

/// `GET /healthz`: 200 once the server is ready (it only listens once recovery is done).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "server",
    responses((status = 200, description = "ready", body = Health))
)]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `GET /help`: every route of the router (from the same table, [`super::routes`]), as
/// `"METHOD /path": "what it does"`.
#[utoipa::path(
    get,
    path = "/help",
    tag = "server",
    responses((status = 200, description = "every route", body = Help))
)]
pub async fn help() -> Json<Help> {
    let mut routes = BTreeMap::new();
    for (method, path, what) in super::all_routes() {
        routes.insert(format!("{method} {path}"), what);
    }
    Json(Help {
        message: "Weir: continuous queries and allow/deny rules over event streams.",
        routes,
    })
}

/// Unknown routes.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route {}; see GET /help", uri.path()),
    )
}
