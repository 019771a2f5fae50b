//! Per-type validation (SPEC section 1, seed 004): `GET /api/schemas`,
//! `GET/PUT/DELETE /api/schemas/{type}`. Events of a type with a schema must have fields that
//! satisfy it; the ones that do not are refused with the schema error, and counted.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Map, Value};
use weir_core::Schema;

use super::error::{json_body, ApiError, ApiResult};
use crate::app::App;

/// `GET /api/schemas`: every type's schema.
pub async fn list(State(app): State<Arc<App>>) -> Json<Value> {
    let all: Map<String, Value> = app
        .schemas()
        .read()
        .iter()
        .map(|(t, s)| (t.clone(), s.source().clone()))
        .collect();
    Json(json!({ "schemas": all }))
}

/// `GET /api/schemas/{type}`.
pub async fn get(State(app): State<Arc<App>>, Path(ty): Path<String>) -> ApiResult<Json<Value>> {
    app.schemas()
        .read()
        .get(&ty)
        .map(|s| Json(s.source().clone()))
        .ok_or_else(|| ApiError::not_found(format!("no schema for event type '{ty}'")))
}

/// `PUT /api/schemas/{type}` with a JSON Schema: events of that type are validated from now on.
pub async fn put(
    State(app): State<Arc<App>>,
    Path(ty): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let value = json_body(&body?)?;
    let schema = Schema::compile(&value)
        .map_err(|e| ApiError::bad_request(format!("invalid schema: {e}")))?;
    app.set_schema(&ty, Some(Arc::new(schema)))
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "type": ty, "schema": value })))
}

/// `DELETE /api/schemas/{type}`.
pub async fn delete(State(app): State<Arc<App>>, Path(ty): Path<String>) -> ApiResult<Json<Value>> {
    if !app.schemas().read().contains_key(&ty) {
        return Err(ApiError::not_found(format!(
            "no schema for event type '{ty}'"
        )));
    }
    app.set_schema(&ty, None).map_err(ApiError::internal)?;
    Ok(Json(json!({ "type": ty, "deleted": true })))
}
