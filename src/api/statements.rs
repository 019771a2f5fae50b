//! `POST /api/statements`: apply DSL text (one or more statements).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use crate::app::App;

/// Parse, check and apply every statement of the body; on any error nothing is applied and
/// the answer is 400 with `line` and `column`.
pub async fn apply(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let body = body?;
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::bad_request(format!("body is not UTF-8: {e}")))?;
    let results = crate::catalog::apply(&app, text.to_string()).await?;
    Ok(Json(json!({ "results": results })))
}
