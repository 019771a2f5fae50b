//! # weir-analytics
//!
//! The pure, synchronous logic behind Weir's event-store analytics routes (SPEC section 8,
//! seeds 001, 003 and 004). The server streams stored events in; these types answer in JSON.
//! No I/O, no async, no locks: the server owns storage, threads and checkpoints.
//!
//! # Layout
//! - [`query`]: the seed 001 JSON query (`POST /api/query`): data sets, filters, unique
//!   counts and the `exact_order` funnel ([`JsonQuery`]), and its JSON Schema
//!   ([`query_schema`]).
//! - [`keys`]: field names and their most frequent values per event type, for autocomplete
//!   (`GET /api/keys`) ([`KeyIndex`]).
//! - [`topk`]: the bounded Space-Saving top-k counter [`keys`] keeps per field.
//! - [`stats`]: event counts per type in time buckets over the last 48 h
//!   (`GET /api/stats`) ([`StatsSeries`]).
//! - [`insights`]: keys and stats together ([`Insights`]), with which types changed, and
//!   their rows of persisted state (one key per type, written when the type changed).
//! - [`events`]: the events API's JSON form of an event and grouping by session
//!   (`GET /api/events?groupBy=session`).
//! - [`value`]: how field values compare and print as text (shared by the above).
//! - [`error`]: [`AnalyticsError`] and the [`Result`] alias.

pub mod error;
pub mod events;
pub mod insights;
pub mod keys;
pub mod query;
pub mod scope;
pub mod stats;
pub mod topk;
pub mod value;

pub use error::{AnalyticsError, Result};
pub use events::{event_json, group_by_session, StoredEvent};
pub use insights::{Insights, Loaded, Snapshot};
pub use keys::{KeyIndex, KeyIndexConfig};
pub use query::{query_schema, JsonQuery};
pub use scope::{type_key, Scope};
pub use stats::{StatsConfig, StatsSeries};
pub use topk::TopK;
