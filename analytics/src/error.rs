//! The crate's one error type.

use thiserror::Error;

/// Why an analytics request or configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AnalyticsError {
    /// A JSON query does not follow the schema. `path` names the offending place
    /// (`data[1].filters[0].type`, or `query` for the whole body).
    #[error("{path}: {problem}")]
    InvalidQuery {
        /// Where in the query, e.g. `funnel.match[0]`.
        path: String,
        /// What is wrong, e.g. `expected one of eq, regex, all`.
        problem: String,
    },
    /// A configuration value is out of range.
    #[error("invalid analytics configuration: {0}")]
    InvalidConfig(String),
}

impl AnalyticsError {
    /// An [`AnalyticsError::InvalidQuery`] at `path`.
    pub fn invalid(path: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::InvalidQuery {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, AnalyticsError>;
