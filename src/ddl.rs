//! What a statement (DDL, a one-shot select, a drop) can fail with, independent of HTTP:
//! the API maps each kind to its status (see `api::error`).

use serde_json::Value;

/// A statement's error.
#[derive(Debug, thiserror::Error)]
pub enum DdlError {
    /// A query-language error (parse, analysis, compilation), with its position.
    #[error("{}", .0.message)]
    Language(weir_query_lang::QueryError),
    /// A semantic error at a position in the statement text (a name that exists or not).
    #[error("{message}")]
    At {
        /// What is wrong.
        message: String,
        /// Line of the offending name, from 1.
        line: u32,
        /// Column of the offending name, from 1.
        column: u32,
    },
    /// A statement that cannot be applied as written.
    #[error("{0}")]
    Invalid(String),
    /// Refused because others depend on what it changes: the dependents, as JSON.
    #[error("{message}")]
    Conflict {
        /// What is in the way and how to proceed.
        message: String,
        /// `[{"kind": "query"|"rule", "name": …}]`.
        dependents: Value,
    },
    /// No such query or rule.
    #[error("{0}")]
    NotFound(String),
    /// The store is unavailable for now (a node down, a write being retried); nothing of
    /// the statement was applied to the catalogue, and retrying later may succeed.
    #[error("{0}")]
    Unavailable(String),
    /// The store or another part of the server failed.
    #[error("{0}")]
    Internal(String),
}

/// Result of a statement.
pub type DdlResult<T> = Result<T, DdlError>;

impl DdlError {
    /// A server-side failure (logged), or [`DdlError::Unavailable`] when it is a storage
    /// error that retrying may cure (also inside an `anyhow::Error`).
    pub fn internal(e: impl std::fmt::Display + 'static) -> Self {
        if storage_unavailable(&e) {
            tracing::warn!(error = %e, "statement refused: storage unavailable");
            return DdlError::Unavailable(e.to_string());
        }
        tracing::error!(error = %e, "statement failed");
        DdlError::Internal(e.to_string())
    }

    /// An error at the position of `span`.
    pub fn at(message: impl Into<String>, span: weir_query_lang::ast::Span) -> Self {
        DdlError::At {
            message: message.into(),
            line: span.line,
            column: span.column,
        }
    }
}

impl From<weir_query_lang::QueryError> for DdlError {
    fn from(e: weir_query_lang::QueryError) -> Self {
        DdlError::Language(e)
    }
}

impl From<weir_engine::EngineError> for DdlError {
    fn from(e: weir_engine::EngineError) -> Self {
        match e {
            weir_engine::EngineError::Query(q) => DdlError::Language(q),
            other => DdlError::Invalid(other.to_string()),
        }
    }
}

impl From<weir_rules::RulesError> for DdlError {
    fn from(e: weir_rules::RulesError) -> Self {
        match e {
            weir_rules::RulesError::Engine(e) => e.into(),
            other => DdlError::Invalid(other.to_string()),
        }
    }
}

/// Whether `e` is (or wraps, in an `anyhow::Error`) a storage error that retrying may cure.
pub fn storage_unavailable(e: &dyn std::any::Any) -> bool {
    let storage = e.downcast_ref::<weir_storage::StorageError>().or_else(|| {
        e.downcast_ref::<anyhow::Error>()
            .and_then(|a| a.downcast_ref::<weir_storage::StorageError>())
    });
    storage.is_some_and(|s| s.is_transient())
}

#[cfg(test)]
mod tests {
    use weir_storage::StorageError;

    use super::*;

    fn down() -> StorageError {
        StorageError::Backend {
            backend: "cassandra",
            message: "timed out".into(),
            transient: true,
        }
    }

    #[test]
    fn transient_storage_errors_are_unavailable_and_others_internal() {
        assert!(matches!(
            DdlError::internal(down()),
            DdlError::Unavailable(_)
        ));
        let wrapped = anyhow::Error::from(down()).context("listing the catalogue");
        assert!(matches!(
            DdlError::internal(wrapped),
            DdlError::Unavailable(_)
        ));
        let corrupt = StorageError::Corrupt("bad bytes".into());
        assert!(matches!(DdlError::internal(corrupt), DdlError::Internal(_)));
        assert!(matches!(DdlError::internal("a bug"), DdlError::Internal(_)));
    }
}
