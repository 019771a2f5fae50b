//! The engine's error type.

use thiserror::Error;

/// Errors from creating, reading, checkpointing and restoring queries.
#[derive(Debug, Error)]
pub enum EngineError {
    /// No query of that name.
    #[error("no query named {0:?}")]
    UnknownQuery(String),
    /// The query exists already (use replace).
    #[error("a query named {0:?} exists already")]
    QueryExists(String),
    /// A construct the engine does not run.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// A definition that cannot be right (bad regex, window not a multiple of g, ...).
    #[error("invalid query: {0}")]
    Invalid(String),
    /// A query-language error found while compiling a definition, with its line and column.
    #[error("{0}")]
    Query(weir_query_lang::QueryError),
    /// A checkpoint that does not fit the engine or its queries.
    #[error("checkpoint does not match: {0}")]
    Checkpoint(String),
}

/// Result alias for the engine.
pub type Result<T> = std::result::Result<T, EngineError>;
