//! The ScyllaDB/Cassandra backend (feature `scylla`).
//!
//! The [`Storage`] trait is synchronous, the driver is async: a [`ScyllaStore`] owns a small
//! tokio runtime and runs each call with `block_on`. Call it from plain threads or from
//! `spawn_blocking` threads, never from an async task (block_on would panic there).
//!
//! Tables (created on connect; partition key in double parentheses):
//! - `log ((bucket), seq)`: the event log, `bucket = seq >> 16`, so replay reads one
//!   partition of 65 536 records at a time; `log_buckets ((k), bucket)` lists the buckets.
//! - `events_by_type ((account, project, type, day), ts, seq)`: one partition per type and UTC
//!   day, ordered by time.
//! - `events_by_day ((account, project, day), ts, seq)`: every type, for type-less queries.
//! - `events_by_session ((account, project, session), ts, seq)`: a session's events.
//! - `event_days ((account, project), type, day)`: which days have events (the type
//!   `"\0"` stands for "any type"), so a scan visits only existing partitions.
//! - `meta ((key))`, `catalog ((kind), name)`, `checkpoints ((k), seq DESC)`,
//!   `decisions ((k), at DESC)` (with a 30-day TTL).
//!
//! Event rows are denormalised (each table holds the encoded record), so a page is read from
//! one table. An append writes every event row first (concurrently, idempotent by seq) and
//! the meta positions last, in a logged batch: a position is never ahead of the events it
//! covers, but a crash between the two can replay some input (at-least-once), unlike the
//! embedded store's single atomic batch. Writes are acknowledged by the replicas' commit logs,
//! so [`Storage::sync`] has nothing left to do.

use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{stream, StreamExt, TryStreamExt};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use serde::Deserialize;
use weir_core::Millis;

mod schema;
mod state;

use schema::{create_schema, prepare, Prepared};

use crate::merge::MergeByTsSeq;
use crate::record::{decode_record, encode_record};
use crate::{
    CatalogKind, EventIter, EventPage, EventQuery, LogRecord, MetaPrune, RangeQuery, RecordIter,
    Result, StateIter, StateKeyWrite, Storage, StorageError, StoredEvent,
};

/// Settings of the ScyllaDB backend.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScyllaConfig {
    /// Contact points, `host:port`.
    pub nodes: Vec<String>,
    /// Keyspace (created if missing).
    pub keyspace: String,
    /// Replication factor used when creating the keyspace.
    pub replication_factor: u32,
    /// Writes in flight at once during an append.
    pub concurrency: usize,
}

impl Default for ScyllaConfig {
    fn default() -> Self {
        Self {
            nodes: vec!["127.0.0.1:9042".into()],
            keyspace: "weir".into(),
            replication_factor: 1,
            concurrency: 256,
        }
    }
}

/// Events with their (ts, seq) sort key.
type KeyedIter<'a> = Box<dyn Iterator<Item = Result<(Millis, u64, StoredEvent)>> + 'a>;

const DAY_MS: Millis = 86_400_000;
const BUCKET_SHIFT: u32 = 16;
const ANY_TYPE: &str = "\0";

fn sc<E: std::fmt::Display>(e: E) -> StorageError {
    StorageError::Backend {
        backend: "scylla",
        message: e.to_string(),
        // Timeouts, unavailable replicas and lost connections dominate in practice.
        transient: true,
    }
}

fn day(ts: Millis) -> i64 {
    ts.div_euclid(DAY_MS)
}

/// The ScyllaDB/Cassandra backend.
pub struct ScyllaStore {
    rt: tokio::runtime::Runtime,
    session: Session,
    ks: String,
    ps: Prepared,
    concurrency: usize,
    decision_tick: AtomicU64,
}

impl ScyllaStore {
    /// Connect, create the keyspace and tables if missing, and prepare the statements.
    pub fn connect(cfg: &ScyllaConfig) -> Result<Self> {
        if cfg.keyspace.is_empty()
            || !cfg
                .keyspace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(StorageError::Config(format!(
                "keyspace {:?} must be letters, digits and _",
                cfg.keyspace
            )));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("weir-scylla")
            .enable_all()
            .build()
            .map_err(|e| StorageError::Config(e.to_string()))?;
        let ks = cfg.keyspace.clone();
        let (session, ps) = rt.block_on(async {
            let session = SessionBuilder::new()
                .known_nodes(&cfg.nodes)
                .build()
                .await
                .map_err(sc)?;
            create_schema(&session, &ks, cfg.replication_factor).await?;
            let ps = prepare(&session, &ks).await?;
            Ok::<_, StorageError>((session, ps))
        })?;
        Ok(Self {
            rt,
            session,
            ks,
            ps,
            concurrency: cfg.concurrency.max(1),
            decision_tick: AtomicU64::new(0),
        })
    }

    fn q(&self, stmt: &str) -> String {
        stmt.replace("{ks}", &self.ks)
    }

    /// Run a statement with values, discarding any rows.
    fn exec(&self, stmt: &str, values: impl scylla::serialize::row::SerializeRow) -> Result<()> {
        let stmt = self.q(stmt);
        self.rt.block_on(async {
            self.session
                .query_unpaged(stmt, values)
                .await
                .map_err(sc)
                .map(|_| ())
        })
    }

    /// Every row of a paged read, deserialised as `R`.
    fn rows<R>(
        &self,
        ps: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> Result<Vec<R>>
    where
        R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
    {
        self.rt.block_on(async {
            let pager = self
                .session
                .execute_iter(ps.clone(), values)
                .await
                .map_err(sc)?;
            pager
                .rows_stream::<R>()
                .map_err(sc)?
                .try_collect()
                .await
                .map_err(sc)
        })
    }

    /// Days with events of `kind` (or of any type) in `[from, to)`.
    fn days(
        &self,
        account: &str,
        project: &str,
        kind: &str,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = self.rows(
            &self.ps.read_days,
            (account, project, kind, day(from), day(to.saturating_sub(1))),
        )?;
        Ok(rows.into_iter().map(|(d,)| d).collect())
    }

    /// Events of one stream (a type, all types, or a session) in `[from, to)`, one
    /// partition read at a time, in (ts, seq) order.
    fn stream<'a>(&'a self, q: &EventQuery, kind: Option<&str>) -> Result<KeyedIter<'a>> {
        let from = q.from_ts.unwrap_or(Millis::MIN);
        let to = q.to_ts.unwrap_or(Millis::MAX);
        let (a, p) = (q.account.clone(), q.project.clone());
        if let Some(s) = &q.session {
            let rows: Vec<(i64, i64, String, Vec<u8>)> = self.rows(
                &self.ps.read_session,
                (a.as_str(), p.as_str(), s.as_str(), from, to),
            )?;
            let types = q.types.clone();
            return Ok(Box::new(
                rows.into_iter()
                    .filter(move |r| types.is_empty() || types.contains(&r.2))
                    .map(|(ts, seq, _, rec)| decode(ts, seq, &rec)),
            ));
        }
        let days = self.days(&a, &p, kind.unwrap_or(ANY_TYPE), from, to)?;
        let kind = kind.map(str::to_string);
        let it = days.into_iter().flat_map(move |d| {
            let rows: Result<Vec<(i64, i64, Vec<u8>)>> = match &kind {
                Some(k) => self.rows(
                    &self.ps.read_type,
                    (a.as_str(), p.as_str(), k.as_str(), d, from, to),
                ),
                None => self.rows(&self.ps.read_day, (a.as_str(), p.as_str(), d, from, to)),
            };
            let out: Vec<Result<(Millis, u64, StoredEvent)>> = match rows {
                Ok(rows) => rows
                    .into_iter()
                    .map(|(ts, seq, rec)| decode(ts, seq, &rec))
                    .collect(),
                Err(e) => vec![Err(e)],
            };
            out
        });
        Ok(Box::new(it))
    }

    fn merged<'a>(&'a self, q: &EventQuery) -> Result<EventIter<'a>> {
        if matches!((q.from_ts, q.to_ts), (Some(f), Some(t)) if f >= t) {
            return Ok(Box::new(std::iter::empty()));
        }
        let keyed: KeyedIter<'a> = if q.session.is_some() || q.types.is_empty() {
            self.stream(q, None)?
        } else {
            let mut types = q.types.clone();
            types.sort();
            types.dedup();
            let inputs = types
                .iter()
                .map(|t| self.stream(q, Some(t)))
                .collect::<Result<Vec<_>>>()?;
            Box::new(MergeByTsSeq::new(inputs))
        };
        Ok(Box::new(keyed.map(|r| r.map(|(_, _, e)| e))))
    }
}

fn decode(ts: i64, seq: i64, rec: &[u8]) -> Result<(Millis, u64, StoredEvent)> {
    let rec = decode_record(seq as u64, rec)?;
    Ok((
        ts,
        seq as u64,
        StoredEvent {
            seq: rec.seq,
            event: rec.event,
        },
    ))
}

/// One write of an append.
enum Write<'a> {
    Log(i64, i64, &'a [u8]),
    Bucket(i64),
    ByType(&'a LogRecord, i64, &'a [u8]),
    ByDay(&'a LogRecord, i64, &'a [u8]),
    BySession(&'a LogRecord, &'a str, &'a [u8]),
    Day(&'a LogRecord, &'a str, i64),
}

impl Storage for ScyllaStore {
    fn append(&self, records: &[LogRecord], meta: &[(String, Vec<u8>)]) -> Result<()> {
        let encoded = records
            .iter()
            .map(encode_record)
            .collect::<Result<Vec<_>>>()?;
        let mut writes = Vec::with_capacity(records.len() * 5);
        let mut buckets: Vec<i64> = Vec::new();
        let mut days: Vec<(&LogRecord, &str, i64)> = Vec::new();
        for (r, bytes) in records.iter().zip(&encoded) {
            let bucket = (r.seq >> BUCKET_SHIFT) as i64;
            if !buckets.contains(&bucket) {
                buckets.push(bucket);
            }
            writes.push(Write::Log(bucket, r.seq as i64, bytes));
            if r.denied {
                continue;
            }
            let e = &r.event;
            let d = day(e.ts);
            writes.push(Write::ByType(r, d, bytes));
            writes.push(Write::ByDay(r, d, bytes));
            if let Some(s) = &e.session_id {
                writes.push(Write::BySession(r, s, bytes));
            }
            for kind in [e.kind.as_str(), ANY_TYPE] {
                let same = |x: &&(&LogRecord, &str, i64)| {
                    x.0.event.account == e.account
                        && x.0.event.project == e.project
                        && x.1 == kind
                        && x.2 == d
                };
                if !days.iter().any(|x| same(&x)) {
                    days.push((r, kind, d));
                }
            }
        }
        writes.extend(buckets.into_iter().map(Write::Bucket));
        writes.extend(days.into_iter().map(|(r, k, d)| Write::Day(r, k, d)));
        let ps = &self.ps;
        let session = &self.session;
        self.rt.block_on(async {
            stream::iter(writes)
                .map(|w| async move {
                    let res = match w {
                        Write::Log(b, s, rec) => {
                            session.execute_unpaged(&ps.log, (b, s, rec)).await
                        }
                        Write::Bucket(b) => session.execute_unpaged(&ps.log_bucket, (b,)).await,
                        Write::ByType(r, d, rec) => {
                            let e = &r.event;
                            session
                                .execute_unpaged(
                                    &ps.by_type,
                                    (&e.account, &e.project, &e.kind, d, e.ts, r.seq as i64, rec),
                                )
                                .await
                        }
                        Write::ByDay(r, d, rec) => {
                            let e = &r.event;
                            session
                                .execute_unpaged(
                                    &ps.by_day,
                                    (&e.account, &e.project, d, e.ts, r.seq as i64, rec),
                                )
                                .await
                        }
                        Write::BySession(r, s, rec) => {
                            let e = &r.event;
                            session
                                .execute_unpaged(
                                    &ps.by_session,
                                    (&e.account, &e.project, s, e.ts, r.seq as i64, &e.kind, rec),
                                )
                                .await
                        }
                        Write::Day(r, k, d) => {
                            let e = &r.event;
                            session
                                .execute_unpaged(&ps.days, (&e.account, &e.project, k, d))
                                .await
                        }
                    };
                    res.map(|_| ()).map_err(sc)
                })
                .buffer_unordered(self.concurrency)
                .try_collect::<Vec<()>>()
                .await?;
            if !meta.is_empty() {
                let mut batch = Batch::new(BatchType::Logged);
                for _ in meta {
                    batch.append_statement(ps.meta_put.clone());
                }
                let values: Vec<(&str, &[u8])> = meta
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_slice()))
                    .collect();
                session.batch(&batch, values).await.map_err(sc)?;
            }
            Ok(())
        })
    }

    fn sync(&self) -> Result<()> {
        // Every append has been acknowledged by the replicas' commit logs already.
        Ok(())
    }

    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let rows: Vec<(Option<Vec<u8>>,)> = self.rows(&self.ps.meta_get, (key,))?;
        Ok(rows.into_iter().next().map(|(v,)| v.unwrap_or_default()))
    }

    fn meta_put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.rt.block_on(async {
            self.session
                .execute_unpaged(&self.ps.meta_put, (key, value))
                .await
                .map(|_| ())
                .map_err(sc)
        })
    }

    fn meta_prune(&self, prefix: &str, remove: &dyn Fn(&[u8]) -> bool) -> Result<MetaPrune> {
        // `meta` is keyed by the whole key, so a prefix is a scan of the table (it holds input
        // positions and dedupe markers only, bounded by the redelivery horizon).
        let rows: Vec<(String, Option<Vec<u8>>)> =
            self.rows_unprepared("SELECT key, value FROM {ks}.meta", ())?;
        let mut done = MetaPrune::default();
        for (key, value) in rows.into_iter().filter(|(k, _)| k.starts_with(prefix)) {
            if remove(value.as_deref().unwrap_or_default()) {
                self.exec("DELETE FROM {ks}.meta WHERE key = ?", (key.as_str(),))?;
                done.removed += 1;
            } else {
                done.kept += 1;
            }
        }
        Ok(done)
    }

    fn last_seq(&self) -> Result<u64> {
        let buckets: Vec<(i64,)> = self.rows_unprepared(
            "SELECT bucket FROM {ks}.log_buckets WHERE k = 0 ORDER BY bucket DESC LIMIT 1",
            (),
        )?;
        let Some((bucket,)) = buckets.into_iter().next() else {
            return Ok(0);
        };
        let seqs: Vec<(i64,)> = self.rows_unprepared(
            "SELECT seq FROM {ks}.log WHERE bucket = ? ORDER BY seq DESC LIMIT 1",
            (bucket,),
        )?;
        Ok(seqs.into_iter().next().map_or(0, |(s,)| s as u64))
    }

    fn scan_seq(&self, after_seq: u64) -> Result<RecordIter<'_>> {
        let first = (after_seq >> BUCKET_SHIFT) as i64;
        let buckets: Vec<(i64,)> = self.rows_unprepared(
            "SELECT bucket FROM {ks}.log_buckets WHERE k = 0 AND bucket >= ?",
            (first,),
        )?;
        let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        Ok(Box::new(buckets.into_iter().flat_map(move |(b,)| {
            let rows: Result<Vec<(i64, Vec<u8>)>> = self.rows(&self.ps.read_log, (b, after));
            let out: Vec<Result<LogRecord>> = match rows {
                Ok(rows) => rows
                    .into_iter()
                    .map(|(s, rec)| decode_record(s as u64, &rec))
                    .collect(),
                Err(e) => vec![Err(e)],
            };
            out
        })))
    }

    fn scan(&self, q: &EventQuery) -> Result<EventPage> {
        // Rows are denormalised, so counting reads the events too; only the page is kept.
        let end = q.offset.saturating_add(q.limit);
        let mut total = 0u64;
        let mut events = Vec::new();
        for e in self.merged(q)? {
            let e = e?;
            if total >= q.offset && total < end {
                events.push(e);
            }
            total += 1;
        }
        Ok(EventPage { events, total })
    }

    fn scan_range(&self, q: &RangeQuery) -> Result<EventIter<'_>> {
        self.merged(&EventQuery {
            account: q.account.clone(),
            project: q.project.clone(),
            types: q.types.clone(),
            session: None,
            from_ts: Some(q.from_ts),
            to_ts: Some(q.to_ts),
            offset: 0,
            limit: 0,
        })
    }

    fn catalog_put(&self, kind: CatalogKind, name: &str, text: &str) -> Result<()> {
        self.exec(
            "INSERT INTO {ks}.catalog (kind, name, text) VALUES (?, ?, ?)",
            (kind.as_str(), name, text),
        )
    }

    fn catalog_delete(&self, kind: CatalogKind, name: &str) -> Result<bool> {
        let existing: Vec<(String,)> = self.rows_unprepared(
            "SELECT name FROM {ks}.catalog WHERE kind = ? AND name = ?",
            (kind.as_str(), name),
        )?;
        self.exec(
            "DELETE FROM {ks}.catalog WHERE kind = ? AND name = ?",
            (kind.as_str(), name),
        )?;
        Ok(!existing.is_empty())
    }

    fn catalog_list(&self, kind: CatalogKind) -> Result<Vec<(String, String)>> {
        self.rows_unprepared(
            "SELECT name, text FROM {ks}.catalog WHERE kind = ?",
            (kind.as_str(),),
        )
    }

    fn put_checkpoint(&self, seq: u64, bytes: &[u8]) -> Result<()> {
        self.exec(
            "INSERT INTO {ks}.checkpoints (k, seq, data) VALUES (0, ?, ?)",
            (seq as i64, bytes),
        )?;
        let seqs: Vec<(i64,)> =
            self.rows_unprepared("SELECT seq FROM {ks}.checkpoints WHERE k = 0", ())?;
        for (old,) in seqs.into_iter().skip(2) {
            self.exec(
                "DELETE FROM {ks}.checkpoints WHERE k = 0 AND seq = ?",
                (old,),
            )?;
        }
        Ok(())
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>> {
        let rows: Vec<(i64, Vec<u8>)> = self.rows_unprepared(
            "SELECT seq, data FROM {ks}.checkpoints WHERE k = 0 LIMIT 1",
            (),
        )?;
        Ok(rows.into_iter().next().map(|(s, d)| (s as u64, d)))
    }

    fn state_write(&self, scope: &str, part: u32, keys: &[StateKeyWrite]) -> Result<()> {
        self.state_write_impl(scope, part, keys)
    }

    fn state_read(&self, scope: &str, part: u32) -> Result<StateIter<'_>> {
        self.state_read_impl(scope, part)
    }

    fn state_drop(&self, scope: &str, parts: u32) -> Result<()> {
        self.state_drop_impl(scope, parts)
    }

    fn record_decision(&self, seq: u64, json: &[u8]) -> Result<()> {
        // Microseconds since the epoch, made strictly increasing within this process.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let prev = self
            .decision_tick
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
                Some(now.max(p + 1))
            })
            .unwrap_or(0);
        let at = now.max(prev + 1);
        self.exec(
            "INSERT INTO {ks}.decisions (k, at, seq, json) VALUES (0, ?, ?, ?)",
            (at as i64, seq as i64, json),
        )
    }

    fn recent_decisions(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let rows: Vec<(i64, Vec<u8>)> = self.rows_unprepared(
            "SELECT seq, json FROM {ks}.decisions WHERE k = 0 LIMIT ?",
            (i32::try_from(limit).unwrap_or(i32::MAX),),
        )?;
        Ok(rows.into_iter().map(|(s, j)| (s as u64, j)).collect())
    }
}

impl ScyllaStore {
    /// Every row of an unprepared, paged read (for rare calls: catalogue, checkpoints).
    fn rows_unprepared<R>(
        &self,
        stmt: &str,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> Result<Vec<R>>
    where
        R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
    {
        let stmt = self.q(stmt);
        self.rt.block_on(async {
            let pager = self.session.query_iter(stmt, values).await.map_err(sc)?;
            pager
                .rows_stream::<R>()
                .map_err(sc)?
                .try_collect()
                .await
                .map_err(sc)
        })
    }
}
