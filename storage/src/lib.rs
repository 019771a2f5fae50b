//! # weir-storage
//!
//! Everything Weir keeps on disk, behind one small synchronous trait, [`Storage`]: the event
//! log (with input positions written atomically beside the events they cover), secondary
//! indexes for the event-store API, the query/rule catalogue, persisted query state, input
//! positions and decision records. No backend type appears in the trait, so the server picks a backend from config.
//!
//! # Layout
//! - [`record`]: [`LogRecord`] and the compact binary encoding of events, plus the
//!   order-preserving key encoding the embedded backend uses.
//! - [`codec`]: the compact binary encoding of JSON values used for event fields.
//! - [`embedded`]: [`EmbeddedStore`], the default backend on the fjall LSM tree.
//! - [`cassandra`] (feature `cassandra`): [`CassandraStore`], the Cassandra/Scylla backend.
//! - [`group_commit`]: [`GroupCommit`], the writer thread that shares one fsync between many
//!   concurrent batches and hands each submitter a [`Receipt`].
//! - [`merge`]: merging several (ts, seq)-ordered streams into one (used by both backends).
//! - [`paged`]: reading a long range of the embedded store a page at a time, so a long scan
//!   never holds the locks an append needs.
//!
//! The trait, query types and the error enum live here.

#[cfg(feature = "cassandra")]
pub mod cassandra;
pub mod codec;
pub mod embedded;
pub mod group_commit;
pub mod merge;
pub mod paged;
pub mod record;

#[cfg(feature = "cassandra")]
pub use cassandra::{CassandraConfig, CassandraStore, CassandraTls, Consistency, Replication};
pub use embedded::{EmbeddedConfig, EmbeddedStore};
pub use group_commit::{GroupCommit, GroupCommitStats, Health, Receipt};
pub use record::LogRecord;

use weir_core::{Event, Millis};

/// Errors from any storage backend.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// The backend (fjall, Cassandra/Scylla) failed. `transient` says whether retrying may help
    /// (a timeout or an unreachable node) or not (a poisoned journal, a bad schema).
    #[error("{backend} backend error: {message}")]
    Backend {
        /// Which backend failed: `"embedded"` or `"cassandra"`.
        backend: &'static str,
        /// The backend's own message.
        message: String,
        /// Whether retrying the same call may succeed.
        transient: bool,
    },
    /// Stored bytes could not be decoded (a bug or on-disk corruption).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A value could not be encoded for storage.
    #[error("cannot encode for storage: {0}")]
    Encode(String),
    /// The group-commit writer has stopped, so the batch was not written.
    #[error("the storage writer has stopped")]
    Closed,
    /// Bad backend configuration (an unparsable node address, an invalid keyspace name).
    #[error("storage configuration: {0}")]
    Config(String),
}

impl StorageError {
    /// Whether retrying the failed call may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StorageError::Backend {
                transient: true,
                ..
            }
        )
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, StorageError>;

/// Which catalogue a definition belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CatalogKind {
    /// A continuous query (`CREATE QUERY`).
    Query,
    /// A threshold rule (`CREATE RULE`).
    Rule,
}

impl CatalogKind {
    /// A stable one-word name, used in storage keys.
    pub fn as_str(self) -> &'static str {
        match self {
            CatalogKind::Query => "query",
            CatalogKind::Rule => "rule",
        }
    }
}

/// An event as stored: its log sequence number (the event id) and the event.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The event id: its position in the log.
    pub seq: u64,
    /// The event.
    pub event: Event,
}

/// A page request against the event store (SPEC section 8). Denied events never match.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventQuery {
    /// Owning account.
    pub account: String,
    /// Owning project.
    pub project: String,
    /// Event types to return; empty means every type.
    pub types: Vec<String>,
    /// Only events of this session.
    pub session: Option<String>,
    /// Earliest event time, unix ms, inclusive. `None`: no lower bound.
    pub from_ts: Option<Millis>,
    /// Latest event time, unix ms, exclusive. `None`: no upper bound.
    pub to_ts: Option<Millis>,
    /// Matching events to skip before the page (`(page - 1) * limit`).
    pub offset: u64,
    /// Largest number of events to return.
    pub limit: u64,
}

/// One page of events, ordered by (ts, seq), and how many matched in all.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventPage {
    /// The events of the page, ordered by (ts, seq).
    pub events: Vec<StoredEvent>,
    /// Every matching event, not only those of this page.
    pub total: u64,
}

/// A streaming read of every accepted event of some types in a time range, in (ts, seq) order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RangeQuery {
    /// Owning account.
    pub account: String,
    /// Owning project.
    pub project: String,
    /// Event types to return; empty means every type.
    pub types: Vec<String>,
    /// Earliest event time, unix ms, inclusive.
    pub from_ts: Millis,
    /// Latest event time, unix ms, exclusive.
    pub to_ts: Millis,
}

impl From<&RangeQuery> for EventQuery {
    /// The same events as a query without paging.
    fn from(q: &RangeQuery) -> Self {
        EventQuery {
            account: q.account.clone(),
            project: q.project.clone(),
            types: q.types.clone(),
            session: None,
            from_ts: Some(q.from_ts),
            to_ts: Some(q.to_ts),
            offset: 0,
            limit: 0,
        }
    }
}

/// What one [`Storage::meta_prune`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetaPrune {
    /// Values deleted.
    pub removed: u64,
    /// Values left under the prefix.
    pub kept: u64,
}

/// What to write for one group key of a query's persisted state (see `weir_engine::persist`):
/// applied atomically, on its own, by every backend.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StateKeyWrite {
    /// The encoded group key (empty for a shard's mark row).
    pub key: Vec<u8>,
    /// Remove every row of the key first, except the ones in `rows`.
    pub delete_all: bool,
    /// Remove the key's rows with `i64::MIN < bucket <= this`.
    pub delete_through: Option<i64>,
    /// Rows to upsert, as (bucket, value).
    pub rows: Vec<(i64, Vec<u8>)>,
}

/// A row of persisted state read back: (key, bucket, value).
pub type StateRow = (Vec<u8>, i64, Vec<u8>);
/// An iterator over the state rows of one part: the rows of one key together, in bucket
/// order.
pub type StateIter<'a> = Box<dyn Iterator<Item = Result<StateRow>> + 'a>;

/// An iterator over log records in seq order.
pub type RecordIter<'a> = Box<dyn Iterator<Item = Result<LogRecord>> + 'a>;
/// An iterator over stored events in (ts, seq) order.
pub type EventIter<'a> = Box<dyn Iterator<Item = Result<StoredEvent>> + 'a>;

/// Everything Weir persists. Methods are synchronous: the server calls them from blocking
/// threads (or through [`GroupCommit`]). Implementations are shared across threads.
pub trait Storage: Send + Sync + 'static {
    /// Append `records` (seq-keyed, seqs assigned by the caller and increasing) and write the
    /// `meta` key/values (input positions such as `kafka/topic/3` → offset) in the same atomic
    /// batch, together with the secondary indexes of every non-denied record. Does not fsync:
    /// call [`Storage::sync`] (or use [`GroupCommit`]) for durability.
    fn append(&self, records: &[LogRecord], meta: &[(String, Vec<u8>)]) -> Result<()>;

    /// Make everything appended so far durable (fsync).
    fn sync(&self) -> Result<()>;

    /// Read one meta value.
    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Write one meta value on its own.
    fn meta_put(&self, key: &str, value: &[u8]) -> Result<()>;

    /// Write one meta value only if it still holds `expected` (`None`: no value), atomically
    /// against every other writer of the store — other processes and machines included on a
    /// shared backend (a lightweight transaction on Cassandra). Returns whether it was
    /// written. Cluster leases are taken and renewed with it; keys written this way are
    /// never written with [`Storage::meta_put`].
    fn meta_cas(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool>;

    /// Delete the meta values under `prefix` for which `remove(value)` says so (used to
    /// forget AMQP dedupe markers older than the redelivery horizon). Returns how many were
    /// removed and how many remain under `prefix`.
    fn meta_prune(&self, prefix: &str, remove: &dyn Fn(&[u8]) -> bool) -> Result<MetaPrune>;

    /// Up to `limit` meta key/values whose key starts with `prefix`, in key order, starting
    /// after the key `after` when given (the last key of the previous page).
    fn meta_scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>>;

    /// The highest seq in the log; 0 when the log is empty.
    fn last_seq(&self) -> Result<u64>;

    /// Every log record with `seq > after_seq`, in seq order, denied ones included (with
    /// `denied` set, so replay can skip them).
    fn scan_seq(&self, after_seq: u64) -> Result<RecordIter<'_>>;

    /// One page of matching events, ordered by (ts, seq), with the total number matching.
    /// Reads only the index entries of matching events and the events of the page.
    fn scan(&self, q: &EventQuery) -> Result<EventPage>;

    /// Stream every matching event in (ts, seq) order (backfill, analytics). A long scan
    /// must not keep appends waiting (the embedded store reads it a page at a time).
    fn scan_range(&self, q: &RangeQuery) -> Result<EventIter<'_>>;

    /// The largest event time stored for (account, project) among `types` (every type when
    /// empty), or None when there is no such event: the watermark a new query over those
    /// types would have, which its default backfill span is measured back from. This
    /// default scans every matching event; backends override it with an index lookup.
    fn newest_event_ts(
        &self,
        account: &str,
        project: &str,
        types: &[String],
    ) -> Result<Option<Millis>> {
        let range = RangeQuery {
            account: account.to_string(),
            project: project.to_string(),
            types: types.to_vec(),
            from_ts: Millis::MIN,
            to_ts: Millis::MAX,
        };
        let mut newest = None;
        for stored in self.scan_range(&range)? {
            newest = newest.max(Some(stored?.event.ts));
        }
        Ok(newest)
    }

    /// Create or replace a catalogue entry (its DSL text).
    fn catalog_put(&self, kind: CatalogKind, name: &str, text: &str) -> Result<()>;

    /// Delete a catalogue entry; `true` if it existed.
    fn catalog_delete(&self, kind: CatalogKind, name: &str) -> Result<bool>;

    /// Every entry of a catalogue as (name, DSL text), ordered by name.
    fn catalog_list(&self, kind: CatalogKind) -> Result<Vec<(String, String)>>;

    /// Write rows of persisted state in `scope` (one query version), part `part` (a shard).
    /// Each key's write is atomic on its own (the embedded store makes the whole call one
    /// atomic batch). Like [`Storage::append`], durable after [`Storage::sync`].
    fn state_write(&self, scope: &str, part: u32, keys: &[StateKeyWrite]) -> Result<()>;

    /// Every row of `scope`'s part `part`: the rows of one key together, in bucket order.
    fn state_read(&self, scope: &str, part: u32) -> Result<StateIter<'_>>;

    /// Remove every row of `scope` (parts `0..parts`).
    fn state_drop(&self, scope: &str, parts: u32) -> Result<()>;

    /// Record one decision (a JSON document) about the event `seq`. Several decisions may
    /// name the same seq (a read-only check names the last seq it saw).
    fn record_decision(&self, seq: u64, json: &[u8]) -> Result<()>;

    /// The `limit` most recently recorded decisions, newest first, as (seq, JSON).
    fn recent_decisions(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>>;
}
