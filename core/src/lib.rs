//! # weir-core
//!
//! Plain types that every Weir crate shares, so no crate reaches into another's internals.
//!
//! # Layout
//! - [`event`]: the normalised [`Event`] every input produces.
//! - [`time`]: unix-millisecond timestamps, the accepted time formats, and durations.
//! - [`shape`]: turning the JSON and query-string event shapes of SPEC section 1 into events.
//! - [`schema`]: per-type JSON Schema validation of event fields.
//! - [`clock`]: the [`Clock`] trait, so tests can drive time.

pub mod clock;
pub mod event;
pub mod schema;
pub mod shape;
pub mod tenant;
pub mod time;

pub use clock::{Clock, ManualClock, SystemClock};
pub use event::{Event, EventId};
pub use schema::Schema;
pub use shape::{
    gives_time, parse_body, parse_query_string, query_gives_time, ShapeError, ShapeOptions,
};
pub use tenant::Tenant;
pub use time::{format_duration, format_time, parse_duration, parse_time, Millis, TimeError};
