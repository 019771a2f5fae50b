//! The embedded backend: one fjall keyspace (an LSM tree with a shared write-ahead journal)
//! in the data directory.
//!
//! Partitions (storage format [`record::VERSION`]):
//! - `log`: the last seq of a chunk (big-endian) → a chunk of up to [`CHUNK_RECORDS`]
//!   consecutive records, denied ones included (see [`record::encode_chunk`]). One entry per
//!   chunk instead of one per event: appends insert far fewer keys and replay reads
//!   sequentially.
//! - `idx_type`: (account, project, type, ts, seq) → the encoded record. The type index holds
//!   a second copy of every accepted event (clustered), so a type/time-range scan is one
//!   sequential pass over one partition with no lookups into the log. This roughly doubles
//!   the disk used per event, for a several-fold faster backfill.
//! - `idx_session`: (account, project, session, ts, seq) → type (so a type filter on a
//!   session scan needs no event read; page events are then fetched from `idx_type`).
//! - `types`: (account, project, type) → empty: every type seen, so an all-types scan merges
//!   the per-type ranges (there is no separate all-types index to write).
//! - `catalog`: kind byte, name → DSL text.
//! - `decisions`: decision number → seq, JSON.
//! - `meta`: key → value.
//! - `weir_format`: `version` → the storage format version; opening a directory of another
//!   format fails with [`StorageError::Config`] instead of misreading it.
//!
//! A fjall write batch spans partitions and is atomic, so a record, its index entries and the
//! input positions of the same [`Storage::append`] appear together or not at all. Reads take a
//! keyspace-wide snapshot instant so a page and its total agree.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode, Slice};
use serde::Deserialize;
use weir_core::Millis;

use crate::merge::MergeByTsSeq;
use crate::paged::PagedRange;
use crate::record::{
    self, decode_record, encode_chunk_each, index_key, index_prefix, record_from_body,
    seq_from_key, seq_key, ts_bytes, ts_seq_from_index_key,
};
use crate::{
    CatalogKind, EventIter, EventPage, EventQuery, LogRecord, MetaPrune, RangeQuery, RecordIter,
    Result, StateIter, StateKeyWrite, Storage, StorageError, StoredEvent,
};

/// Most records in one log chunk.
pub const CHUNK_RECORDS: usize = 1024;

const FORMAT_PARTITION: &str = "weir_format";
const FORMAT_KEY: &str = "version";

/// Settings of the embedded store.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddedConfig {
    /// Block cache size in MiB.
    pub cache_mib: u64,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self { cache_mib: 64 }
    }
}

/// Largest total size of fjall's memtables before writes wait for flushes.
const WRITE_BUFFER_BYTES: u64 = 1024 * 1024 * 1024;

/// The default backend: a fjall keyspace in a directory.
pub struct EmbeddedStore {
    keyspace: Keyspace,
    log: PartitionHandle,
    idx_type: PartitionHandle,
    idx_session: PartitionHandle,
    types: PartitionHandle,
    catalog: PartitionHandle,
    /// Persisted query state: `scope \0 part key_len key bucket` → row (see [`state_key_prefix`]).
    state: PartitionHandle,
    decisions: PartitionHandle,
    meta: PartitionHandle,
    /// Serialises [`Storage::meta_cas`].
    cas: std::sync::Mutex<()>,
    next_decision: AtomicU64,
    /// Keys of `types` known to be written, so an append writes a type's entry only once.
    known_types: RwLock<HashSet<Vec<u8>>>,
}

pub(crate) fn be<E: std::fmt::Display>(e: E) -> StorageError {
    let message = e.to_string();
    StorageError::Backend {
        backend: "embedded",
        transient: false,
        message,
    }
}

/// One merged index stream: (ts, seq, index value).
type IndexStream = Box<dyn Iterator<Item = Result<(Millis, u64, Slice)>>>;

impl EmbeddedStore {
    /// Open (or create) the store in `dir`, recovering whatever the journal holds. A directory
    /// written in another storage format is refused with [`StorageError::Config`].
    pub fn open(dir: &Path, cfg: &EmbeddedConfig) -> Result<Self> {
        let keyspace = Config::new(dir)
            .cache_size(cfg.cache_mib.saturating_mul(1024 * 1024))
            // fjall halts every write while its memtables together exceed this, until the
            // flusher catches up. At the default 64 MiB a million keys of state rows plus the
            // log's own memtables after a restart halted the log writer for good (seen in
            // scripts/bench-restart.sh); memtables still rotate at their own size.
            .max_write_buffer_size(WRITE_BUFFER_BYTES)
            .open()
            .map_err(be)?;
        check_format(&keyspace, dir)?;
        let part = |name: &str| {
            keyspace
                .open_partition(name, PartitionCreateOptions::default())
                .map_err(be)
        };
        let decisions = part("decisions")?;
        let next_decision = match decisions.last_key_value().map_err(be)? {
            Some((k, _)) => seq_from_key(&k)? + 1,
            None => 0,
        };
        let types = part("types")?;
        let known_types = types
            .keys()
            .map(|k| k.map(|k| k.to_vec()).map_err(be))
            .collect::<Result<HashSet<_>>>()?;
        Ok(Self {
            log: part("log")?,
            idx_type: part("idx_type")?,
            idx_session: part("idx_session")?,
            types,
            catalog: part("catalog")?,
            state: part("state")?,
            meta: part("meta")?,
            decisions,
            cas: std::sync::Mutex::new(()),
            next_decision: AtomicU64::new(next_decision),
            known_types: RwLock::new(known_types),
            keyspace,
        })
    }

    /// Index entries matching `q` (one stream per type, or the session index), merged in
    /// (ts, seq) order, read at snapshot `instant`. Values are encoded records (type index)
    /// or type names (session index).
    fn index_stream(&self, q: &EventQuery, instant: fjall::Instant) -> Result<IndexStream> {
        let (account, project) = (q.account.as_str(), q.project.as_str());
        let (from, to) = (q.from_ts, q.to_ts);
        if let (Some(f), Some(t)) = (from, to) {
            if f >= t {
                return Ok(Box::new(std::iter::empty()));
            }
        }
        let range = |part: &PartitionHandle, prefix: Vec<u8>| {
            let lo = match from {
                Some(ts) => [prefix.as_slice(), &ts_bytes(ts)].concat(),
                None => prefix.clone(),
            };
            let hi = match to {
                // keys with ts < to: everything below prefix ++ ts_bytes(to)
                Some(ts) => [prefix.as_slice(), &ts_bytes(ts)].concat(),
                // everything with the prefix: the prefix followed by 16 bytes of 0xff is past it
                None => [prefix.as_slice(), &[0xff; 17]].concat(),
            };
            // A page at a time: no fjall iterator outlives one page (see `paged`).
            PagedRange::new(part.snapshot_at(instant), lo, hi)
        };
        if let Some(session) = q.session.as_deref() {
            let wanted: Vec<Vec<u8>> = q.types.iter().map(|t| t.as_bytes().to_vec()).collect();
            let it = range(
                &self.idx_session,
                index_prefix(&[account, project, session]),
            );
            return Ok(Box::new(it.filter(move |item| match item {
                Ok((_, _, kind)) => {
                    wanted.is_empty() || wanted.iter().any(|w| w.as_slice() == &**kind)
                }
                Err(_) => true,
            })));
        }
        let mut types: Vec<String> = if q.types.is_empty() {
            self.types_of(account, project, instant)?
        } else {
            q.types.clone()
        };
        types.sort();
        types.dedup();
        let mut inputs: Vec<_> = types
            .iter()
            .map(|t| range(&self.idx_type, index_prefix(&[account, project, t])))
            .collect();
        if inputs.len() == 1 {
            return Ok(Box::new(inputs.pop().expect("one input")));
        }
        Ok(Box::new(MergeByTsSeq::new(inputs)))
    }

    /// Every event type stored for (account, project), as of `instant`.
    fn types_of(
        &self,
        account: &str,
        project: &str,
        instant: fjall::Instant,
    ) -> Result<Vec<String>> {
        let prefix = index_prefix(&[account, project]);
        self.types
            .snapshot_at(instant)
            .prefix(&prefix)
            .map(|kv| {
                let (k, _) = kv.map_err(be)?;
                // The rest of the key is the type, length-prefixed (u32 big-endian).
                k.get(prefix.len() + 4..)
                    .and_then(|t| std::str::from_utf8(t).ok())
                    .map(str::to_string)
                    .ok_or_else(|| StorageError::Corrupt("malformed type catalogue key".into()))
            })
            .collect()
    }

    /// Seal the active memtables of the log and the event indexes, as a full memtable does
    /// inside an append (tests use it to show a scan in progress does not block that).
    #[doc(hidden)]
    pub fn rotate_memtables_for_test(&self) {
        for part in [&self.log, &self.idx_type, &self.idx_session] {
            part.rotate_memtable().expect("rotate memtable");
        }
    }

    /// The stored event behind a `idx_type` value.
    fn stored(seq: u64, value: &[u8]) -> Result<StoredEvent> {
        let rec = decode_record(seq, value)?;
        Ok(StoredEvent {
            seq,
            event: rec.event,
        })
    }
}

/// `records` in seq order, cut into log chunks: runs of consecutive seqs, at most
/// [`CHUNK_RECORDS`] long. Because a chunk never skips a seq and seqs are unique, chunks of
/// different appends never overlap, so ordering chunks by their last seq orders every record
/// by seq, even when concurrent submitters' batches reach the log out of seq order.
fn chunks(records: &[LogRecord]) -> Vec<Vec<&LogRecord>> {
    let mut sorted: Vec<&LogRecord> = records.iter().collect();
    if !sorted.is_sorted_by_key(|r| r.seq) {
        sorted.sort_by_key(|r| r.seq);
    }
    let mut out: Vec<Vec<&LogRecord>> = Vec::new();
    for rec in sorted {
        match out.last_mut() {
            Some(c)
                if c.len() < CHUNK_RECORDS
                    && c.last()
                        .is_some_and(|p| p.seq.checked_add(1) == Some(rec.seq)) =>
            {
                c.push(rec)
            }
            _ => out.push(vec![rec]),
        }
    }
    out
}

/// Refuse a directory written in another storage format; stamp a new one with ours.
fn check_format(keyspace: &Keyspace, dir: &Path) -> Result<()> {
    let fresh = keyspace.partition_count() == 0;
    let refuse = |found: String| {
        Err(StorageError::Config(format!(
            "the data directory {} holds storage format {found}, but this build of Weir reads \
             only format {}; move it aside (or export and re-ingest its events) and start \
             with an empty directory",
            dir.display(),
            record::VERSION
        )))
    };
    if !fresh && !keyspace.partition_exists(FORMAT_PARTITION) {
        return refuse("1".into());
    }
    let fmt = keyspace
        .open_partition(FORMAT_PARTITION, PartitionCreateOptions::default())
        .map_err(be)?;
    match fmt.get(FORMAT_KEY).map_err(be)? {
        Some(v) if *v == [record::VERSION] => Ok(()),
        Some(v) => refuse(format!("{v:?}")),
        None if fresh => {
            fmt.insert(FORMAT_KEY, [record::VERSION]).map_err(be)?;
            keyspace.persist(PersistMode::SyncAll).map_err(be)
        }
        None => refuse("unknown".into()),
    }
}

impl Storage for EmbeddedStore {
    fn append(&self, records: &[LogRecord], meta: &[(String, Vec<u8>)]) -> Result<()> {
        let mut batch = self.keyspace.batch();
        let mut new_types: Vec<Vec<u8>> = Vec::new();
        {
            let known = self.known_types.read().unwrap_or_else(|e| e.into_inner());
            let mut key = Vec::with_capacity(64);
            for chunk in chunks(records) {
                let last = chunk.last().expect("chunks are not empty").seq;
                let value = encode_chunk_each(&chunk, |rec, body| {
                    if rec.denied {
                        return;
                    }
                    let e = &rec.event;
                    let (a, p) = (e.account.as_str(), e.project.as_str());
                    let type_key = index_prefix(&[a, p, &e.kind]);
                    key.clear();
                    key.extend_from_slice(&type_key);
                    key.extend_from_slice(&ts_bytes(e.ts));
                    key.extend_from_slice(&rec.seq.to_be_bytes());
                    batch.insert(&self.idx_type, key.as_slice(), record_from_body(body));
                    if let Some(s) = &e.session_id {
                        batch.insert(
                            &self.idx_session,
                            index_key(&index_prefix(&[a, p, s]), e.ts, rec.seq),
                            e.kind.as_bytes(),
                        );
                    }
                    if !known.contains(&type_key) && !new_types.contains(&type_key) {
                        new_types.push(type_key);
                    }
                })?;
                batch.insert(&self.log, seq_key(last), value);
            }
        }
        for t in &new_types {
            batch.insert(&self.types, t.as_slice(), []);
        }
        for (k, v) in meta {
            batch.insert(&self.meta, k.as_bytes(), v.as_slice());
        }
        batch.commit().map_err(be)?;
        if !new_types.is_empty() {
            let mut known = self.known_types.write().unwrap_or_else(|e| e.into_inner());
            known.extend(new_types);
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        self.keyspace.persist(PersistMode::SyncAll).map_err(be)
    }

    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.meta.get(key).map_err(be)?.map(|v| v.to_vec()))
    }

    fn meta_put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.meta.insert(key, value).map_err(be)
    }

    fn meta_cas(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool> {
        // One process holds the embedded store: a lock makes compare-and-set atomic.
        let _one = self
            .cas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = self.meta.get(key).map_err(be)?;
        if now.as_deref() != expected {
            return Ok(false);
        }
        self.meta.insert(key, value).map_err(be)?;
        Ok(true)
    }

    fn meta_scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        // Keys are ordered bytes: the page is the range (after, end of prefix).
        let from = match after {
            Some(a) if a >= prefix => std::ops::Bound::Excluded(a.as_bytes().to_vec()),
            _ => std::ops::Bound::Included(prefix.as_bytes().to_vec()),
        };
        let mut out = Vec::new();
        for kv in self.meta.range((from, std::ops::Bound::Unbounded)) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = kv.map_err(be)?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            let key =
                String::from_utf8(k.to_vec()).map_err(|e| StorageError::Corrupt(e.to_string()))?;
            out.push((key, v.to_vec()));
        }
        Ok(out)
    }

    fn meta_prune(&self, prefix: &str, remove: &dyn Fn(&[u8]) -> bool) -> Result<MetaPrune> {
        // Deleted in batches, so a large backlog never sits in memory at once.
        const CHUNK: usize = 4096;
        let mut done = MetaPrune::default();
        let mut doomed: Vec<Slice> = Vec::new();
        let flush = |doomed: &mut Vec<Slice>| -> Result<()> {
            let mut batch = self.keyspace.batch();
            for k in doomed.drain(..) {
                batch.remove(&self.meta, k);
            }
            batch.commit().map_err(be)
        };
        for kv in self.meta.prefix(prefix) {
            let (k, v) = kv.map_err(be)?;
            if remove(&v) {
                doomed.push(k);
                done.removed += 1;
                if doomed.len() >= CHUNK {
                    flush(&mut doomed)?;
                }
            } else {
                done.kept += 1;
            }
        }
        if !doomed.is_empty() {
            flush(&mut doomed)?;
        }
        Ok(done)
    }

    fn last_seq(&self) -> Result<u64> {
        match self.log.last_key_value().map_err(be)? {
            Some((k, _)) => seq_from_key(&k),
            None => Ok(0),
        }
    }

    fn scan_seq(&self, after_seq: u64) -> Result<RecordIter<'_>> {
        let Some(start) = after_seq.checked_add(1) else {
            return Ok(Box::new(std::iter::empty()));
        };
        // Chunks are keyed by their last seq: the first chunk at or past `start` holds it.
        let it = self.log.range(seq_key(start)..).flat_map(move |kv| {
            let chunk = kv
                .map_err(be)
                .and_then(|(k, v)| record::read_chunk(seq_from_key(&k)?, v));
            let (records, error) = match chunk {
                Ok(records) => (Some(records), None),
                Err(e) => (None, Some(Err(e))),
            };
            records
                .into_iter()
                .flatten()
                .filter(move |r| r.as_ref().map_or(true, |r| r.seq >= start))
                .chain(error)
        });
        Ok(Box::new(it))
    }

    fn scan(&self, q: &EventQuery) -> Result<EventPage> {
        let instant = self.keyspace.instant();
        let keys = self.index_stream(q, instant)?;
        let end = q.offset.saturating_add(q.limit);
        let mut total = 0u64;
        let mut page = Vec::new();
        for item in keys {
            let (ts, seq, value) = item?;
            if total >= q.offset && total < end {
                page.push((ts, seq, value));
            }
            total += 1;
        }
        let events = if q.session.is_some() {
            // Session index values are types: fetch each event from the type index.
            let idx = self.idx_type.snapshot_at(instant);
            page.into_iter()
                .map(|(ts, seq, kind)| {
                    let kind = std::str::from_utf8(&kind).map_err(|_| {
                        StorageError::Corrupt("session index type is not UTF-8".into())
                    })?;
                    let key = index_key(&index_prefix(&[&q.account, &q.project, kind]), ts, seq);
                    let value = idx.get(key).map_err(be)?.ok_or_else(|| {
                        StorageError::Corrupt(format!("session index names missing event {seq}"))
                    })?;
                    Self::stored(seq, &value)
                })
                .collect::<Result<Vec<_>>>()?
        } else {
            page.into_iter()
                .map(|(_, seq, value)| Self::stored(seq, &value))
                .collect::<Result<Vec<_>>>()?
        };
        Ok(EventPage { events, total })
    }

    fn scan_range(&self, q: &RangeQuery) -> Result<EventIter<'_>> {
        let instant = self.keyspace.instant();
        let as_query = EventQuery::from(q);
        let entries = self.index_stream(&as_query, instant)?;
        Ok(Box::new(entries.map(|item| {
            let (_, seq, value) = item?;
            Self::stored(seq, &value)
        })))
    }

    fn newest_event_ts(
        &self,
        account: &str,
        project: &str,
        types: &[String],
    ) -> Result<Option<Millis>> {
        let instant = self.keyspace.instant();
        let types = if types.is_empty() {
            self.types_of(account, project, instant)?
        } else {
            types.to_vec()
        };
        let idx = self.idx_type.snapshot_at(instant);
        let mut newest = None;
        for t in &types {
            // The last key of a type's prefix holds its largest (ts, seq).
            if let Some(kv) = idx.prefix(index_prefix(&[account, project, t])).next_back() {
                let (k, _) = kv.map_err(be)?;
                newest = newest.max(Some(ts_seq_from_index_key(&k)?.0));
            }
        }
        Ok(newest)
    }

    fn catalog_put(&self, kind: CatalogKind, name: &str, text: &str) -> Result<()> {
        self.catalog
            .insert(catalog_key(kind, name), text)
            .map_err(be)
    }

    fn catalog_delete(&self, kind: CatalogKind, name: &str) -> Result<bool> {
        let key = catalog_key(kind, name);
        let existed = self.catalog.contains_key(&key).map_err(be)?;
        if existed {
            self.catalog.remove(key).map_err(be)?;
        }
        Ok(existed)
    }

    fn catalog_list(&self, kind: CatalogKind) -> Result<Vec<(String, String)>> {
        let prefix = catalog_key(kind, "");
        self.catalog
            .prefix(&prefix)
            .map(|kv| {
                let (k, v) = kv.map_err(be)?;
                let name = std::str::from_utf8(&k[prefix.len()..])
                    .map_err(|_| StorageError::Corrupt("catalogue name is not UTF-8".into()))?;
                let text = std::str::from_utf8(&v)
                    .map_err(|_| StorageError::Corrupt("catalogue text is not UTF-8".into()))?;
                Ok((name.to_string(), text.to_string()))
            })
            .collect()
    }

    fn state_write(&self, scope: &str, part: u32, keys: &[StateKeyWrite]) -> Result<()> {
        let mut batch = self.keyspace.batch();
        for k in keys {
            let prefix = state_key_prefix(scope, part, &k.key);
            if k.delete_all || k.delete_through.is_some() {
                let through = if k.delete_all {
                    i64::MAX
                } else {
                    k.delete_through.unwrap_or(i64::MIN)
                };
                for kv in self.state.prefix(&prefix) {
                    let (key, _) = kv.map_err(be)?;
                    let bucket = bucket_from(&key[prefix.len()..])?;
                    if !k.delete_all && bucket > through {
                        break;
                    }
                    let doomed = k.delete_all || bucket != i64::MIN;
                    if doomed && !k.rows.iter().any(|(b, _)| *b == bucket) {
                        batch.remove(&self.state, key);
                    }
                }
            }
            for (bucket, value) in &k.rows {
                let mut key = prefix.clone();
                key.extend_from_slice(&bucket_bytes(*bucket));
                batch.insert(&self.state, key, value.as_slice());
            }
        }
        batch.commit().map_err(be)
    }

    fn state_read(&self, scope: &str, part: u32) -> Result<StateIter<'_>> {
        let mut prefix = scope.as_bytes().to_vec();
        prefix.push(0);
        prefix.extend_from_slice(&part.to_be_bytes());
        let skip = prefix.len();
        Ok(Box::new(self.state.prefix(prefix).map(move |kv| {
            let (key, value) = kv.map_err(be)?;
            let rest = &key[skip..];
            let corrupt = || StorageError::Corrupt("bad state row key".into());
            let len = u32::from_be_bytes(rest.get(..4).ok_or_else(corrupt)?.try_into().expect("4"))
                as usize;
            let k = rest.get(4..4 + len).ok_or_else(corrupt)?.to_vec();
            let bucket = bucket_from(rest.get(4 + len..).ok_or_else(corrupt)?)?;
            Ok((k, bucket, value.to_vec()))
        })))
    }

    fn state_drop(&self, scope: &str, _parts: u32) -> Result<()> {
        let mut prefix = scope.as_bytes().to_vec();
        prefix.push(0);
        // Deleted in batches, so a large scope never sits in memory at once.
        loop {
            let doomed: Vec<Slice> = self
                .state
                .prefix(&prefix)
                .take(10_000)
                .map(|kv| kv.map(|(k, _)| k).map_err(be))
                .collect::<Result<_>>()?;
            if doomed.is_empty() {
                return Ok(());
            }
            let mut batch = self.keyspace.batch();
            for k in doomed {
                batch.remove(&self.state, k);
            }
            batch.commit().map_err(be)?;
        }
    }

    fn record_decision(&self, seq: u64, json: &[u8]) -> Result<()> {
        let n = self.next_decision.fetch_add(1, Ordering::Relaxed);
        let mut v = Vec::with_capacity(8 + json.len());
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(json);
        self.decisions.insert(seq_key(n), v).map_err(be)
    }

    fn recent_decisions(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        self.decisions
            .values()
            .rev()
            .take(limit)
            .map(|v| {
                let v = v.map_err(be)?;
                Ok((seq_from_key(&v)?, v[8..].to_vec()))
            })
            .collect()
    }
}

/// `scope \0 part key_len key`: every row of one key of a state scope's part, in bucket
/// order (the bucket follows, see [`bucket_bytes`]).
fn state_key_prefix(scope: &str, part: u32, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(scope.len() + 9 + key.len() + 8);
    k.extend_from_slice(scope.as_bytes());
    k.push(0);
    k.extend_from_slice(&part.to_be_bytes());
    k.extend_from_slice(&(key.len() as u32).to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// A bucket start as 8 bytes that sort like the signed number.
fn bucket_bytes(bucket: i64) -> [u8; 8] {
    ((bucket as u64) ^ (1 << 63)).to_be_bytes()
}

fn bucket_from(bytes: &[u8]) -> Result<i64> {
    let b: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StorageError::Corrupt("bad state row bucket".into()))?;
    Ok((u64::from_be_bytes(b) ^ (1 << 63)) as i64)
}

fn catalog_key(kind: CatalogKind, name: &str) -> Vec<u8> {
    let tag = match kind {
        CatalogKind::Query => b'q',
        CatalogKind::Rule => b'r',
    };
    let mut k = Vec::with_capacity(2 + name.len());
    k.push(tag);
    k.push(b'/');
    k.extend_from_slice(name.as_bytes());
    k
}
