//! Errors as the API answers them: `{"error": "…"}` with a 4xx/5xx status, plus `line` and
//! `column` for query-language errors (SPEC section 13).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use utoipa::ToSchema;

/// The body of every error answer of the API (built by [`ApiError`]): `error` always, the
/// other fields where they apply.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // describes the JSON that `ApiError` builds, for the OpenAPI document
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
    /// Query-language and JSON errors: the line (1-based).
    pub line: Option<u64>,
    /// Query-language and JSON errors: the column (1-based).
    pub column: Option<u64>,
    /// Query-language errors: the message with its position.
    pub detail: Option<String>,
    /// A refused batch: each bad event's index and why.
    pub errors: Option<Vec<InvalidEvent>>,
    /// `POST /api/query`: where its JSON Schema is.
    pub schema: Option<String>,
    /// 409 on a drop: what reads the query.
    pub dependents: Option<Vec<super::queries::Dependent>>,
}

/// One refused event of a batch.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct InvalidEvent {
    /// Its index in the batch (null for a single event).
    pub index: Option<u64>,
    /// Why it was refused.
    pub error: String,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The JSON body; always has `error`.
    pub body: Value,
}

impl ApiError {
    /// 400 with a message.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, msg)
    }
    /// 404 with a message.
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, msg)
    }
    /// 500 with a message (logged); 503 when it is a storage error that retrying may cure
    /// (a node down), also inside an `anyhow::Error`.
    pub fn internal(msg: impl std::fmt::Display + 'static) -> Self {
        if crate::ddl::storage_unavailable(&msg) {
            tracing::debug!(error = %msg, "request refused: storage unavailable");
            metrics::counter!("weir_requests_unavailable_total").increment(1);
            return Self::new(StatusCode::SERVICE_UNAVAILABLE, msg.to_string());
        }
        tracing::error!(error = %msg, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, msg.to_string())
    }
    /// A storage failure: 503 when retrying may help (a node down, a write being retried),
    /// 500 otherwise.
    pub fn storage(e: weir_storage::StorageError) -> Self {
        if e.is_transient() {
            // One line per refused call would flood the log during an outage; the log
            // writer warns about the failing writes themselves.
            tracing::debug!(error = %e, "request refused: storage unavailable");
            metrics::counter!("weir_requests_unavailable_total").increment(1);
            Self::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        } else {
            Self::internal(e)
        }
    }
    /// 503: try again later (nothing was applied).
    pub fn unavailable(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, msg)
    }

    /// 504: a node called on our behalf did not answer.
    pub fn gateway_timeout(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, msg)
    }

    /// 409: refused as it stands.
    pub fn conflict(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, msg)
    }

    /// A status a peer answered with, passed on.
    pub fn from_status(status: u16, msg: impl Into<String>) -> Self {
        Self::new(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            msg,
        )
    }

    /// Whether this is a 503 (nothing applied; asking again is safe).
    pub fn is_unavailable(&self) -> bool {
        self.status == StatusCode::SERVICE_UNAVAILABLE
    }

    /// Any status with a message.
    pub fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "error": msg.into() }),
        }
    }
    /// Add a field to the body.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.body[key] = value;
        self
    }
}

impl From<weir_query_lang::QueryError> for ApiError {
    fn from(e: weir_query_lang::QueryError) -> Self {
        ApiError::bad_request(e.message.clone())
            .with("line", json!(e.line))
            .with("column", json!(e.column))
            .with("detail", json!(e.to_string()))
    }
}

impl From<crate::ddl::DdlError> for ApiError {
    fn from(e: crate::ddl::DdlError) -> Self {
        use crate::ddl::DdlError as D;
        match e {
            D::Language(q) => q.into(),
            D::At {
                message,
                line,
                column,
            } => ApiError::bad_request(message)
                .with("line", json!(line))
                .with("column", json!(column)),
            D::Invalid(m) => ApiError::bad_request(m),
            D::Conflict {
                message,
                dependents,
            } => ApiError::new(StatusCode::CONFLICT, message).with("dependents", dependents),
            D::NotFound(m) => ApiError::not_found(m),
            D::Unavailable(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, m),
            D::Internal(m) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, m),
        }
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        let status = r.status();
        let msg = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "request body is larger than the limit".to_string()
        } else {
            r.body_text()
        };
        ApiError::new(status, msg)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// Handler result.
pub type ApiResult<T> = Result<T, ApiError>;

/// Parse a JSON body, saying where it went wrong.
pub fn json_body(bytes: &[u8]) -> ApiResult<Value> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request("empty body: expected JSON"));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(format!("invalid JSON: {e}"))
            .with("line", json!(e.line()))
            .with("column", json!(e.column()))
    })
}
