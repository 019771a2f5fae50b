//! Small routes: health, the route list (seed 003's `/help`), 404. The page at `GET /` is
//! the web console ([`super::console`]).

use axum::http::{StatusCode, Uri};
use axum::Json;
use serde_json::{json, Map, Value};

use super::error::ApiError;

/// `GET /healthz`: 200 once the server is ready (it only listens once recovery is done).
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /help`: every route of the router (from the same table, [`super::routes`]), as
/// `"METHOD /path": "what it does"`.
pub async fn help() -> Json<Value> {
    let mut routes = Map::new();
    for d in super::routes() {
        for (method, what) in d.help {
            routes.insert(format!("{method} {}", d.path), json!(what));
        }
    }
    for (route, what) in super::prometheus::HELP {
        routes.insert(route.to_string(), json!(what));
    }
    Json(json!({
        "message": "Weir: continuous queries and allow/deny rules over event streams.",
        "routes": routes,
    }))
}

/// Unknown routes.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route {}; see GET /help", uri.path()),
    )
}
