//! # weir-query-lang
//!
//! Weir's SQL-like continuous-query language: text → typed AST → analyzed statement.
//! Pure code: no I/O, no async.
//!
//! # Layout
//! - [`ast`]: the syntax tree.
//! - [`display`]: printing the tree back as canonical text (also the default column names).

pub mod ast;
pub mod display;
