//! The client's error.

use serde_json::Value;

/// What went wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status.
    #[error("{status}: {message}{}", position(.line, .column))]
    Api {
        /// The HTTP status.
        status: u16,
        /// Weir's `error` message.
        message: String,
        /// The 1-based line of a query-language error.
        line: Option<u64>,
        /// The 1-based column of a query-language error.
        column: Option<u64>,
        /// The whole answer (e.g. `errors` of a refused batch, `detail` with a caret).
        body: Value,
    },
    /// The server could not be reached (after the retries), or the connection broke.
    #[error("cannot reach {url}: {message}")]
    Transport {
        /// The server's base URL.
        url: String,
        /// What failed.
        message: String,
    },
    /// The answer was not what the route returns.
    #[error("unexpected answer from {path}: {message}")]
    Decode {
        /// The route.
        path: String,
        /// What did not match.
        message: String,
    },
}

fn position(line: &Option<u64>, column: &Option<u64>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        _ => String::new(),
    }
}

/// The client's result.
pub type Result<T> = std::result::Result<T, ClientError>;

impl ClientError {
    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub(crate) async fn from_answer(resp: reqwest::Response) -> Self {
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        let message = match &body["error"] {
            Value::String(s) => s.clone(),
            Value::Null => text,
            other => other.to_string(),
        };
        ClientError::Api {
            status,
            message,
            line: body["line"].as_u64(),
            column: body["column"].as_u64(),
            body,
        }
    }
}
