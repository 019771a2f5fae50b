//! # weir-query-lang
//!
//! Weir's SQL-like continuous-query language: text → typed AST → analyzed statement.
//! Pure code: no I/O, no async.
//!
//! # Layout
//! - [`ast`]: the syntax tree.

pub mod ast;
