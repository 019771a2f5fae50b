//! The Cassandra/Scylla backend (feature `cassandra`, on by default; `scylla` is an alias).
//!
//! # Calls
//! The [`Storage`] trait is synchronous and the driver async: a [`CassandraStore`] owns a
//! small tokio runtime, and each call spawns its work there as a task that owns what it
//! needs, then waits for the answer on a channel. The calling thread only blocks on that
//! channel, so a call is safe from any thread, including one inside another tokio runtime
//! (no nested `block_on`); from an async task it still blocks that task's worker for the
//! length of the call, so async callers should use `spawn_blocking`. Every request runs at
//! the configured [`Consistency`] with the configured request timeout: a node that stops
//! answering makes a call fail after about `request_timeout_ms` with a transient
//! [`StorageError`], and the driver reconnects by itself once the node is back.
//!
//! # Tables
//! Created and migrated on connect (see `cassandra/schema.rs`); partition key in double
//! parentheses.
//! - `log ((bucket), seq) → rec`: the event log, `bucket = seq >> 16`, so replay reads one
//!   partition of 65 536 records at a time; `log_buckets ((k), bucket)` lists the buckets.
//! - `events_by_type ((account, project, type, day), ts, seq) → rec`: one partition per type
//!   and UTC day, ordered by time.
//! - `events_by_day ((account, project, day), ts, seq) → rec`: every type, for type-less
//!   queries.
//! - `events_by_session ((account, project, session), ts, seq) → type, rec`: a session's
//!   events.
//! - `event_days ((account, project), type, day)`: which days have events (the type `"\0"`
//!   stands for "any type"), so a scan visits only existing partitions.
//! - `meta ((k), key) → value`, one partition, with the static columns `committed` (the
//!   commit marker: the highest committed seq) and `intent_lo`/`intent_hi` (the seq range of
//!   the append in progress). `gc_grace_seconds` is 3 h, since pruned dedupe markers leave a
//!   tombstone each.
//! - `catalog ((kind), name) → text`; `decisions ((k), at DESC) → seq, json` (30-day TTL);
//!   `state ((scope, part, sub), key, bucket) → value` (see `cassandra/state.rs`);
//!   `schema_version ((k)) → version`.
//!
//! Event rows are denormalised (each index table holds the encoded record), so a page is read
//! from one table.
//!
//! # Appends and repair
//! [`Storage::append`] keeps the input positions it is given and the events they cover
//! consistent whatever point a crash hits (see `cassandra/log.rs`):
//! 1. the *intent* (`intent_lo`, `intent_hi`: the seqs being appended) is written;
//! 2. every log row (and its bucket row), all awaited;
//! 3. every index row;
//! 4. one batch of the meta positions plus the new commit marker, clearing the intent. It
//!    touches only the `meta` partition, so it is a single mutation: atomic, isolated, and
//!    not limited by Cassandra's multi-partition batch size threshold.
//!
//! Readers never see past the commit marker: [`Storage::last_seq`] is the marker,
//! [`Storage::scan_seq`] stops at it and scans skip index rows above it. On connect, and
//! before the next append after one that failed, a *repair* reads the log rows the intent
//! names above the marker, deletes their index rows and then the log rows, and clears the
//! intent, so a seq used again never shows a phantom event. `event_days` and `log_buckets`
//! rows are left (an empty day or bucket reads as nothing). Appends are serialised by the
//! caller (one writer thread), so one intent suffices.
//!
//! # Timestamps
//! Every write carries a client-side timestamp from one monotonic clock per store, so the
//! intent, the rows, their deletes in a repair and the commit are ordered even when
//! different coordinators handle them. State writes take explicit timestamps from the same
//! clock (see `cassandra/state.rs`).
//!
//! # Limits
//! - One append's meta positions go in one batch with the commit marker, and a CQL batch
//!   holds at most 65 535 statements: an append with more meta entries fails (not
//!   transiently). The group-commit writer merges at most 16 384 meta values into one group,
//!   so only a single batch of more than 65 534 positions could reach this.
//! - Every pruned meta key leaves a tombstone in the one `meta` partition until
//!   `gc_grace_seconds` (3 h) pass; a prune scans those of its prefix, so pruning far
//!   more than Cassandra's `tombstone_failure_threshold` (100 000) keys within 3 h makes the
//!   prune fail until they are purged.
//! - A scan counts every matching event to give the page's total, reading their rows.
//!
//! # Durability
//! Every write is acknowledged at the configured consistency by the replicas' commit logs,
//! so [`Storage::sync`] has nothing left to do. Cassandra's default `commitlog_sync:
//! periodic` acknowledges a write before it is fsynced (up to `commitlog_sync_period` of
//! acknowledged writes can be lost if every replica loses power at once); a deployment that
//! wants fsynced acknowledgements configures `commitlog_sync: batch` or `group`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::policies::timestamp_generator::{MonotonicTimestampGenerator, TimestampGenerator};
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;
use tracing::info;

mod config;
mod events;
mod log;
mod schema;
mod state;
mod tls;

pub use config::{CassandraConfig, CassandraTls, Consistency, Replication};

use schema::Prepared;

use crate::{
    CatalogKind, EventIter, EventPage, EventQuery, LogRecord, MetaPrune, RangeQuery, RecordIter,
    Result, StateIter, StateKeyWrite, Storage, StorageError,
};

/// The backend's name in errors.
const BACKEND: &str = "cassandra";

/// A driver error as a [`StorageError`], transient unless retrying cannot help (a bad
/// statement, a refused login, a type mismatch).
fn backend_err<E: std::error::Error + 'static>(e: E) -> StorageError {
    StorageError::Backend {
        backend: BACKEND,
        transient: transience::of(&e),
        message: e.to_string(),
    }
}

mod transience {
    //! Which driver errors a retry may fix.
    use scylla::errors::{
        DbError, ExecutionError, NewSessionError, NextPageError, NextRowError, PagerExecutionError,
        PrepareError, RequestAttemptError, RequestError,
    };

    fn attempt(e: &RequestAttemptError) -> bool {
        match e {
            RequestAttemptError::DbError(db, _) => !matches!(
                db,
                DbError::SyntaxError
                    | DbError::Invalid
                    | DbError::AlreadyExists { .. }
                    | DbError::FunctionFailure { .. }
                    | DbError::AuthenticationError
                    | DbError::Unauthorized
                    | DbError::ConfigError
                    | DbError::ProtocolError
            ),
            RequestAttemptError::SerializationError(_)
            | RequestAttemptError::CqlRequestSerialization(_) => false,
            _ => true,
        }
    }

    fn prepare(e: &PrepareError) -> bool {
        match e {
            PrepareError::AllAttemptsFailed { first_attempt } => attempt(first_attempt),
            _ => true,
        }
    }

    fn request(e: &RequestError) -> bool {
        match e {
            RequestError::LastAttemptError(a) => attempt(a),
            _ => true,
        }
    }

    fn execution(e: &ExecutionError) -> bool {
        match e {
            ExecutionError::BadQuery(_) => false,
            ExecutionError::LastAttemptError(a) => attempt(a),
            ExecutionError::PrepareError(p) => prepare(p),
            _ => true,
        }
    }

    fn next_page(e: &NextPageError) -> bool {
        match e {
            NextPageError::RequestFailure(r) => request(r),
            NextPageError::PartitionKeyError(_) | NextPageError::TypeCheckError(_) => false,
            _ => true,
        }
    }

    /// Whether retrying after `e` may succeed. Errors of decoding rows are not transient.
    pub(super) fn of(e: &(dyn std::error::Error + 'static)) -> bool {
        if let Some(e) = e.downcast_ref::<ExecutionError>() {
            execution(e)
        } else if let Some(e) = e.downcast_ref::<PagerExecutionError>() {
            match e {
                PagerExecutionError::PrepareError(p) => prepare(p),
                PagerExecutionError::SerializationError(_) => false,
                PagerExecutionError::NextPageError(n) => next_page(n),
                _ => true,
            }
        } else if let Some(e) = e.downcast_ref::<NextRowError>() {
            match e {
                NextRowError::NextPageError(n) => next_page(n),
                _ => false,
            }
        } else if let Some(e) = e.downcast_ref::<PrepareError>() {
            prepare(e)
        } else if let Some(e) = e.downcast_ref::<NewSessionError>() {
            !matches!(
                e,
                NewSessionError::EmptyKnownNodesList | NewSessionError::IllegalConfig(_)
            )
        } else {
            e.downcast_ref::<scylla::errors::SchemaAgreementError>()
                .is_some()
        }
    }
}

/// What the runtime's tasks share: the session, its statements and the append state.
struct Inner {
    session: Session,
    ps: Prepared,
    /// Requests in flight at once within one call.
    concurrency: usize,
    /// The session's write timestamps; state writes take explicit ones from it too.
    clock: Arc<MonotonicTimestampGenerator>,
    /// An append failed after writing its intent: repair before the next one.
    dirty: AtomicBool,
    /// Microseconds of the last decision recorded, so `at` keeps increasing.
    decision_tick: AtomicU64,
}

impl Inner {
    async fn exec(&self, ps: &PreparedStatement, values: impl SerializeRow) -> Result<()> {
        self.session
            .execute_unpaged(ps, values)
            .await
            .map(|_| ())
            .map_err(backend_err)
    }

    /// Run a batch, discarding any rows.
    async fn run_batch(
        &self,
        batch: &scylla::statement::batch::Batch,
        values: impl scylla::serialize::batch::BatchValues,
    ) -> Result<()> {
        self.session
            .batch(batch, values)
            .await
            .map(|_| ())
            .map_err(backend_err)
    }

    /// Every row of a paged read, deserialised as `R`.
    async fn rows<R>(&self, ps: &PreparedStatement, values: impl SerializeRow) -> Result<Vec<R>>
    where
        R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm> + Send + 'static,
    {
        let pager = self
            .session
            .execute_iter(ps.clone(), values)
            .await
            .map_err(backend_err)?;
        pager
            .rows_stream::<R>()
            .map_err(backend_err)?
            .try_collect()
            .await
            .map_err(backend_err)
    }

    /// The first row of a paged read that `keep` accepts; later pages are not fetched.
    async fn find<R>(
        &self,
        ps: &PreparedStatement,
        values: impl SerializeRow,
        keep: impl Fn(&R) -> bool,
    ) -> Result<Option<R>>
    where
        R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm> + Send + 'static,
    {
        let pager = self
            .session
            .execute_iter(ps.clone(), values)
            .await
            .map_err(backend_err)?;
        let mut rows = pager.rows_stream::<R>().map_err(backend_err)?;
        while let Some(row) = rows.try_next().await.map_err(backend_err)? {
            if keep(&row) {
                return Ok(Some(row));
            }
        }
        Ok(None)
    }

    /// Run `writes` with at most `concurrency` in flight; the first error wins. (A `Vec`,
    /// not an iterator: a closure held across the awaits would make the task's future
    /// fail the `Send` check for any lifetime.)
    async fn all<F>(&self, writes: Vec<F>) -> Result<()>
    where
        F: Future<Output = Result<()>>,
    {
        futures_util::stream::iter(writes)
            .buffer_unordered(self.concurrency)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }
}

/// The Cassandra/Scylla backend: a driver session on a runtime of its own (see the module
/// docs for the tables and the append protocol).
pub struct CassandraStore {
    inner: Arc<Inner>,
    /// `None` only while dropping.
    rt: Option<tokio::runtime::Runtime>,
    keyspace: String,
}

/// Run `fut` on `rt` and wait for its answer on a channel (never `block_on`, so this works
/// on a thread that is itself inside a runtime).
fn spawn_wait<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    fut: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().unwrap_or_else(|_| {
        Err(StorageError::Backend {
            backend: BACKEND,
            message: "the driver task ended without an answer".into(),
            transient: false,
        })
    })
}

fn config_err(msg: impl Into<String>) -> StorageError {
    StorageError::Config(msg.into())
}

fn check(cfg: &CassandraConfig) -> Result<()> {
    let ks = &cfg.keyspace;
    if ks.is_empty()
        || ks.len() > 48
        || !ks.starts_with(|c: char| c.is_ascii_alphabetic())
        || !ks.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(config_err(format!(
            "cassandra keyspace {ks:?} must be a letter then letters, digits and _ (at most 48)"
        )));
    }
    if cfg.nodes.is_empty() {
        return Err(config_err("cassandra nodes: name at least one host:port"));
    }
    cfg.replication
        .check()
        .map_err(|e| config_err(format!("cassandra replication: {e}")))?;
    if cfg.username.is_some() != cfg.password.is_some() {
        return Err(config_err("cassandra username and password go together"));
    }
    if cfg.request_timeout_ms == 0 || cfg.connect_timeout_ms == 0 {
        return Err(config_err("cassandra timeouts must be more than 0 ms"));
    }
    Ok(())
}

impl CassandraStore {
    /// Connect, create the keyspace and tables if missing, migrate them to this build's
    /// schema version, prepare the statements, and repair an append a crash cut short.
    pub fn connect(cfg: &CassandraConfig) -> Result<Self> {
        check(cfg)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("weir-cassandra")
            .enable_all()
            .build()
            .map_err(|e| config_err(format!("cassandra runtime: {e}")))?;
        let clock = Arc::new(MonotonicTimestampGenerator::new());
        let mut policy = DefaultPolicy::builder().token_aware(true);
        if let Some(dc) = &cfg.local_dc {
            policy = policy
                .prefer_datacenter(dc.clone())
                .permit_dc_failover(false);
        }
        let profile = ExecutionProfile::builder()
            .consistency(cfg.consistency.driver())
            .request_timeout(Some(Duration::from_millis(cfg.request_timeout_ms)))
            .load_balancing_policy(policy.build())
            .build();
        let mut builder = SessionBuilder::new()
            .known_nodes(&cfg.nodes)
            .connection_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .default_execution_profile_handle(profile.into_handle())
            .timestamp_generator(clock.clone())
            .keyspaces_to_fetch([cfg.keyspace.clone()]);
        if let (Some(user), Some(password)) = (&cfg.username, &cfg.password) {
            builder = builder.user(user, password);
        }
        if let Some(t) = &cfg.tls {
            let tls = tls::client_config(t)?;
            builder =
                builder.tls_context(Some(scylla::client::session::TlsContext::Rustls023(tls)));
        }
        let ks = cfg.keyspace.clone();
        let replication = cfg.replication.clone();
        let concurrency = cfg.concurrency.max(1);
        let inner = spawn_wait(&rt, async move {
            let session = builder.build().await.map_err(backend_err)?;
            schema::migrate(&session, &ks, &replication).await?;
            let ps = schema::prepare(&session, &ks).await?;
            let inner = Inner {
                session,
                ps,
                concurrency,
                clock,
                dirty: AtomicBool::new(false),
                decision_tick: AtomicU64::new(0),
            };
            log::repair(&inner).await?;
            Ok(Arc::new(inner))
        })?;
        info!(
            keyspace = %cfg.keyspace,
            nodes = ?cfg.nodes,
            consistency = %cfg.consistency,
            "Connected to Cassandra."
        );
        Ok(Self {
            inner,
            rt: Some(rt),
            keyspace: cfg.keyspace.clone(),
        })
    }

    /// The keyspace this store uses.
    pub fn keyspace(&self) -> &str {
        &self.keyspace
    }

    /// Run `f`'s future on the store's runtime and wait for it.
    fn run<T, Fut>(&self, f: impl FnOnce(Arc<Inner>) -> Fut) -> Result<T>
    where
        T: Send + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let rt = self.rt.as_ref().expect("the runtime lives until drop");
        spawn_wait(rt, f(self.inner.clone()))
    }

    /// Test hook: write the intent, log and index rows of an append but not its commit,
    /// as a crash right before the commit would leave them.
    #[doc(hidden)]
    pub fn append_without_commit(
        &self,
        records: &[LogRecord],
        meta: &[(String, Vec<u8>)],
    ) -> Result<()> {
        let (records, meta) = (records.to_vec(), meta.to_vec());
        self.run(move |inner| async move { log::append(&inner, &records, &meta, false).await })
    }

    /// Test hook: drop this store's keyspace and everything in it.
    #[doc(hidden)]
    pub fn drop_keyspace(&self) -> Result<()> {
        let stmt = format!("DROP KEYSPACE IF EXISTS {}", self.keyspace);
        self.run(move |inner| async move {
            inner
                .session
                .query_unpaged(stmt, ())
                .await
                .map(|_| ())
                .map_err(backend_err)
        })
    }

    /// Test hook: store `version` as the keyspace's schema version.
    #[doc(hidden)]
    pub fn set_schema_version(&self, version: i32) -> Result<()> {
        let ks = self.keyspace.clone();
        self.run(
            move |inner| async move { schema::set_version(&inner.session, &ks, version).await },
        )
    }
}

impl Drop for CassandraStore {
    fn drop(&mut self) {
        // Dropping a runtime inside another one's context panics; this does not wait.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Storage for CassandraStore {
    fn append(&self, records: &[LogRecord], meta: &[(String, Vec<u8>)]) -> Result<()> {
        let (records, meta) = (records.to_vec(), meta.to_vec());
        self.run(move |inner| async move { log::append(&inner, &records, &meta, true).await })
    }

    fn sync(&self) -> Result<()> {
        // Every append was acknowledged by the replicas' commit logs (see the module docs).
        Ok(())
    }

    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let key = key.to_string();
        self.run(move |inner| async move {
            let rows: Vec<(Option<Vec<u8>>,)> = inner.rows(&inner.ps.meta_get, (key,)).await?;
            Ok(rows.into_iter().next().map(|(v,)| v.unwrap_or_default()))
        })
    }

    fn meta_put(&self, key: &str, value: &[u8]) -> Result<()> {
        let (key, value) = (key.to_string(), value.to_vec());
        self.run(move |inner| async move { inner.exec(&inner.ps.meta_put, (key, value)).await })
    }

    fn meta_cas(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool> {
        let (key, expected, value) = (
            key.to_string(),
            expected.map(<[u8]>::to_vec),
            value.to_vec(),
        );
        self.run(move |inner| async move {
            // A lightweight transaction (Paxos, serial consistency): its first column says
            // whether it applied.
            let res = match expected {
                None => {
                    inner
                        .session
                        .execute_unpaged(&inner.ps.meta_cas_insert, (key, value))
                        .await
                }
                Some(old) => {
                    inner
                        .session
                        .execute_unpaged(&inner.ps.meta_cas_update, (value, key, old))
                        .await
                }
            }
            .map_err(backend_err)?;
            let rows = res.into_rows_result().map_err(backend_err)?;
            let row = rows
                .maybe_first_row::<scylla::value::Row>()
                .map_err(backend_err)?;
            Ok(matches!(
                row.and_then(|r| r.columns.into_iter().next().flatten()),
                Some(scylla::value::CqlValue::Boolean(true))
            ))
        })
    }

    fn meta_scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        // The keys under `prefix` are one clustering range of the meta partition; the page
        // starts at `after` (skipped itself) or at the prefix.
        let prefix = prefix.to_string();
        let after = after.filter(|a| *a >= prefix.as_str()).map(str::to_string);
        let from = after.clone().unwrap_or_else(|| prefix.clone());
        self.run(move |inner| async move {
            let pager = inner
                .session
                .execute_iter(inner.ps.meta_from.clone(), (from.as_str(),))
                .await
                .map_err(backend_err)?;
            pager
                .rows_stream::<(String, Option<Vec<u8>>)>()
                .map_err(backend_err)?
                .map_err(backend_err)
                .try_filter(|(k, _)| std::future::ready(Some(k) != after.as_ref()))
                .try_take_while(|(k, _)| std::future::ready(Ok(k.starts_with(prefix.as_str()))))
                .take(limit)
                .map_ok(|(k, v)| (k, v.unwrap_or_default()))
                .try_collect()
                .await
        })
    }

    fn meta_prune(&self, prefix: &str, remove: &dyn Fn(&[u8]) -> bool) -> Result<MetaPrune> {
        let rows = self.meta_scan(prefix, None, usize::MAX)?;
        let mut done = MetaPrune::default();
        let mut doomed = Vec::new();
        for (key, value) in rows {
            if remove(&value) {
                doomed.push(key);
            } else {
                done.kept += 1;
            }
        }
        done.removed = doomed.len() as u64;
        self.run(move |inner| async move {
            let inner = &inner;
            inner
                .all(
                    doomed
                        .iter()
                        .map(|k| inner.exec(&inner.ps.meta_delete, (k.as_str(),)))
                        .collect(),
                )
                .await
        })?;
        Ok(done)
    }

    fn last_seq(&self) -> Result<u64> {
        self.run(|inner| async move { Ok(log::head(&inner).await?.committed) })
    }

    fn scan_seq(&self, after_seq: u64) -> Result<RecordIter<'_>> {
        log::scan_seq(self, after_seq)
    }

    fn scan(&self, q: &EventQuery) -> Result<EventPage> {
        // Rows are denormalised, so counting reads the events too; only the page is kept.
        let end = q.offset.saturating_add(q.limit);
        let mut total = 0u64;
        let mut events = Vec::new();
        for e in events::merged(self, q)? {
            let e = e?;
            if total >= q.offset && total < end {
                events.push(e);
            }
            total += 1;
        }
        Ok(EventPage { events, total })
    }

    fn scan_range(&self, q: &RangeQuery) -> Result<EventIter<'_>> {
        events::merged(self, &EventQuery::from(q))
    }

    fn newest_event_ts(
        &self,
        account: &str,
        project: &str,
        types: &[String],
    ) -> Result<Option<weir_core::Millis>> {
        events::newest_ts(self, account, project, types)
    }

    fn catalog_put(&self, kind: CatalogKind, name: &str, text: &str) -> Result<()> {
        let (name, text) = (name.to_string(), text.to_string());
        self.run(move |inner| async move {
            inner
                .exec(&inner.ps.catalog_put, (kind.as_str(), name, text))
                .await
        })
    }

    fn catalog_delete(&self, kind: CatalogKind, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.run(move |inner| async move {
            let existing: Vec<(String,)> = inner
                .rows(&inner.ps.catalog_get, (kind.as_str(), name.as_str()))
                .await?;
            inner
                .exec(&inner.ps.catalog_delete, (kind.as_str(), name.as_str()))
                .await?;
            Ok(!existing.is_empty())
        })
    }

    fn catalog_list(&self, kind: CatalogKind) -> Result<Vec<(String, String)>> {
        self.run(
            move |inner| async move { inner.rows(&inner.ps.catalog_list, (kind.as_str(),)).await },
        )
    }

    fn state_write(&self, scope: &str, part: u32, keys: &[StateKeyWrite]) -> Result<()> {
        let (scope, keys) = (scope.to_string(), keys.to_vec());
        self.run(move |inner| async move { state::write(&inner, &scope, part, &keys).await })
    }

    fn state_read(&self, scope: &str, part: u32) -> Result<StateIter<'_>> {
        state::read(self, scope, part)
    }

    fn state_drop(&self, scope: &str, parts: u32) -> Result<()> {
        let scope = scope.to_string();
        self.run(move |inner| async move { state::drop_scope(&inner, &scope, parts).await })
    }

    fn record_decision(&self, seq: u64, json: &[u8]) -> Result<()> {
        let json = json.to_vec();
        self.run(move |inner| async move {
            // Microseconds since the epoch, strictly increasing within this process.
            let now = inner.clock.next_timestamp().max(0) as u64;
            let prev = inner
                .decision_tick
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
                    Some(now.max(p + 1))
                })
                .unwrap_or(0);
            let at = now.max(prev + 1);
            inner
                .exec(&inner.ps.decision_put, (at as i64, seq as i64, json))
                .await
        })
    }

    fn recent_decisions(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.run(move |inner| async move {
            let rows: Vec<(i64, Vec<u8>)> =
                inner.rows(&inner.ps.decisions_recent, (limit,)).await?;
            Ok(rows.into_iter().map(|(s, j)| (s as u64, j)).collect())
        })
    }
}
