//! # weir-query-lang
//!
//! Weir's SQL-like continuous-query language: text → typed AST → analyzed statement.
//! Pure code: no I/O, no async.
//!
//! # Layout
//! - [`ast`]: the syntax tree.
//! - [`parser`]: the nom parser, one module per clause ([`parse`] is the entry point).
//! - [`analyze`]: checks a statement against the catalogue of queries ([`analyze()`]).
//! - [`display`]: printing the tree back as canonical text (also the default column names).
//! - [`error`]: [`QueryError`], positioned at a line and column.

pub mod analyze;
pub mod ast;
pub mod display;
pub mod error;
pub mod parser;

pub use analyze::{
    analyze, parse_and_analyze, Analysis, AnalyzerConfig, Catalog, Column, ColumnKind,
    EmptyCatalog, QueryShape, ResolvedSource, RuleAnalysis, RuleQuery, TimeseriesSpec,
};

pub use error::{ErrorKind, QueryError, Result};
pub use parser::parse;
