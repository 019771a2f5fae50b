//! Per-type validation (SPEC section 1, seed 004): `GET /api/schemas`,
//! `GET/PUT/DELETE /api/schemas/{type}`. Events of a type with a schema must have fields that
//! satisfy it; the ones that do not are refused with the schema error, and counted.
//!
//! The answer types serialize their fields in alphabetical order, as the JSON maps these
//! answers were first built with did (SPEC section 13 keeps the bytes).

use crate::api::access::Ctx;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::Path;
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use weir_core::Schema;

use super::error::{json_body, ApiError, ApiResult, ErrorBody};

/// The body of `PUT /api/schemas/{type}`: a JSON Schema for the events' fields, an object
/// (or `true`, which allows every event).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // describes the request body, for the OpenAPI document
#[serde(untagged)]
pub enum SchemaBody {
    /// A schema object.
    #[schema(value_type = Object)]
    Object(serde_json::Map<String, Value>),
    /// `true`.
    Any(bool),
}

/// `GET /api/schemas`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaList {
    /// Each event type's JSON Schema, by type.
    pub schemas: BTreeMap<String, Value>,
}

/// `PUT /api/schemas/{type}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaSet {
    /// The schema now in force.
    pub schema: Value,
    /// The event type.
    #[serde(rename = "type")]
    pub ty: String,
}

/// `DELETE /api/schemas/{type}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaDeleted {
    /// Always true.
    pub deleted: bool,
    /// The event type.
    #[serde(rename = "type")]
    pub ty: String,
}

/// `GET /api/schemas`: every type's schema.
#[utoipa::path(
    get,
    path = "/api/schemas",
    operation_id = "list_schemas",
    tag = "schemas",
    responses((status = 200, description = "every type's schema", body = SchemaList))
)]
pub async fn list(Ctx(app): Ctx) -> Json<SchemaList> {
    Json(SchemaList {
        schemas: app.schema_sources(),
    })
}

/// `GET /api/schemas/{type}`.
#[utoipa::path(
    get,
    path = "/api/schemas/{type}",
    operation_id = "get_schema",
    tag = "schemas",
    params(("type" = String, Path, example = "typed", description = "the event type")),
    responses(
        (status = 200, description = "the type's JSON Schema", body = Value),
        (status = 404, description = "the type has no schema", body = ErrorBody),
    )
)]
pub async fn get(Ctx(app): Ctx, Path(ty): Path<String>) -> ApiResult<Json<Value>> {
    app.schema_source(&ty)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no schema for event type '{ty}'")))
}

/// `PUT /api/schemas/{type}` with a JSON Schema: events of that type are validated from now on.
#[utoipa::path(
    put,
    path = "/api/schemas/{type}",
    operation_id = "put_schema",
    tag = "schemas",
    params(("type" = String, Path, example = "typed", description = "the event type")),
    request_body(
        content = SchemaBody,
        description = "a JSON Schema for the events' fields",
        example = json!({"type": "object", "required": ["seller"], "properties": {"seller": {"type": "string"}}})
    ),
    responses(
        (status = 200, description = "set", body = SchemaSet, links(
            ("GetSchema" = (operation_id = "get_schema", parameters(("type" = "$response.body#/type")))),
            ("DeleteSchema" = (operation_id = "delete_schema", parameters(("type" = "$response.body#/type")))),
        )),
        (status = 400, description = "invalid JSON or an invalid schema", body = ErrorBody),
        (status = 413, description = "the body is over the size limit", body = ErrorBody),
        (status = 500, description = "storage failed", body = ErrorBody),
    )
)]
pub async fn put(
    Ctx(app): Ctx,
    Path(ty): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<SchemaSet>> {
    let value = json_body(&body?)?;
    let schema = Schema::compile(&value)
        .map_err(|e| ApiError::bad_request(format!("invalid schema: {e}")))?;
    let t = ty.clone();
    app.blocking(move |cx| cx.set_schema(&t, Some(Arc::new(schema))))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(SchemaSet { schema: value, ty }))
}

/// `DELETE /api/schemas/{type}`.
#[utoipa::path(
    delete,
    path = "/api/schemas/{type}",
    operation_id = "delete_schema",
    tag = "schemas",
    params(("type" = String, Path, example = "typed", description = "the event type")),
    responses(
        (status = 200, description = "removed", body = SchemaDeleted),
        (status = 404, description = "the type has no schema", body = ErrorBody),
        (status = 500, description = "storage failed", body = ErrorBody),
    )
)]
pub async fn delete(Ctx(app): Ctx, Path(ty): Path<String>) -> ApiResult<Json<SchemaDeleted>> {
    let t = ty.clone();
    let had = app
        .blocking(move |cx| cx.set_schema(&t, None))
        .await
        .map_err(ApiError::internal)?;
    if !had {
        return Err(ApiError::not_found(format!(
            "no schema for event type '{ty}'"
        )));
    }
    Ok(Json(SchemaDeleted { deleted: true, ty }))
}
