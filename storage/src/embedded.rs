//! The embedded backend: one fjall keyspace (an LSM tree with a shared write-ahead journal)
//! in the data directory.
//!
//! Partitions:
//! - `log`: seq (big-endian) → encoded record (see [`crate::record`]).
//! - `idx_type`: (account, project, type, ts, seq) → empty.
//! - `idx_all`: (account, project, ts, seq) → empty.
//! - `idx_session`: (account, project, session, ts, seq) → type (so a type filter on a
//!   session scan needs no log read).
//! - `catalog`: kind byte, name → DSL text.
//! - `checkpoints`: seq → bytes (the latest two kept).
//! - `decisions`: decision number → seq, JSON.
//! - `meta`: key → value.
//!
//! A fjall write batch spans partitions and is atomic, so a record, its index entries and the
//! input positions of the same [`Storage::append`] appear together or not at all. Reads take a
//! keyspace-wide snapshot instant so a page and its total agree.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};
use serde::Deserialize;
use weir_core::Millis;

use crate::merge::MergeByTsSeq;
use crate::record::{
    decode_record, encode_record, index_key, index_prefix, seq_from_key, seq_key, ts_bytes,
    ts_seq_from_index_key,
};
use crate::{
    CatalogKind, EventIter, EventPage, EventQuery, LogRecord, RangeQuery, RecordIter, Result,
    Storage, StorageError, StoredEvent,
};

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

/// The default backend: a fjall keyspace in a directory.
pub struct EmbeddedStore {
    keyspace: Keyspace,
    log: PartitionHandle,
    idx_type: PartitionHandle,
    idx_all: PartitionHandle,
    idx_session: PartitionHandle,
    catalog: PartitionHandle,
    checkpoints: PartitionHandle,
    decisions: PartitionHandle,
    meta: PartitionHandle,
    next_decision: AtomicU64,
}

fn be<E: std::fmt::Display>(e: E) -> StorageError {
    let message = e.to_string();
    StorageError::Backend {
        backend: "embedded",
        transient: false,
        message,
    }
}

/// Checkpoints kept by [`Storage::put_checkpoint`].
const CHECKPOINTS_KEPT: usize = 2;

impl EmbeddedStore {
    /// Open (or create) the store in `dir`, recovering whatever the journal holds.
    pub fn open(dir: &Path, cfg: &EmbeddedConfig) -> Result<Self> {
        let keyspace = Config::new(dir)
            .cache_size(cfg.cache_mib.saturating_mul(1024 * 1024))
            .open()
            .map_err(be)?;
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
        Ok(Self {
            log: part("log")?,
            idx_type: part("idx_type")?,
            idx_all: part("idx_all")?,
            idx_session: part("idx_session")?,
            catalog: part("catalog")?,
            checkpoints: part("checkpoints")?,
            meta: part("meta")?,
            decisions,
            next_decision: AtomicU64::new(next_decision),
            keyspace,
        })
    }

    /// Index entries matching `q` (one stream per type, or the session or all-types index),
    /// merged in (ts, seq) order, read at snapshot `instant`.
    fn index_stream(
        &self,
        q: &EventQuery,
        instant: fjall::Instant,
    ) -> Box<dyn Iterator<Item = Result<(Millis, u64, ())>>> {
        let (account, project, types) = (q.account.as_str(), q.project.as_str(), &q.types);
        let (from, to) = (q.from_ts, q.to_ts);
        if let (Some(f), Some(t)) = (from, to) {
            if f >= t {
                return Box::new(std::iter::empty());
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
            part.snapshot_at(instant).range(lo..hi)
        };
        if let Some(session) = q.session.as_deref() {
            let wanted: Vec<Vec<u8>> = types.iter().map(|t| t.as_bytes().to_vec()).collect();
            let it = range(
                &self.idx_session,
                index_prefix(&[account, project, session]),
            );
            return Box::new(it.filter_map(move |kv| match kv {
                Err(e) => Some(Err(be(e))),
                Ok((k, v)) => {
                    if !wanted.is_empty() && !wanted.iter().any(|w| w.as_slice() == &*v) {
                        return None;
                    }
                    Some(ts_seq_from_index_key(&k).map(|(t, s)| (t, s, ())))
                }
            }));
        }
        let to_keyed = |kv: std::result::Result<fjall::KvPair, _>| -> Result<(Millis, u64, ())> {
            let (k, _) = kv.map_err(be)?;
            ts_seq_from_index_key(&k).map(|(t, s)| (t, s, ()))
        };
        if types.is_empty() {
            return Box::new(range(&self.idx_all, index_prefix(&[account, project])).map(to_keyed));
        }
        let mut uniq: Vec<&String> = types.iter().collect();
        uniq.sort();
        uniq.dedup();
        let inputs: Vec<_> = uniq
            .into_iter()
            .map(|t| range(&self.idx_type, index_prefix(&[account, project, t])).map(to_keyed))
            .collect();
        Box::new(MergeByTsSeq::new(inputs))
    }

    fn fetch(snapshot: &fjall::Snapshot, seq: u64) -> Result<StoredEvent> {
        let bytes = snapshot.get(seq_key(seq)).map_err(be)?.ok_or_else(|| {
            StorageError::Corrupt(format!("index names missing log record {seq}"))
        })?;
        let rec = decode_record(seq, &bytes)?;
        Ok(StoredEvent {
            seq,
            event: rec.event,
        })
    }
}

impl Storage for EmbeddedStore {
    fn append(&self, records: &[LogRecord], meta: &[(String, Vec<u8>)]) -> Result<()> {
        let mut batch = self.keyspace.batch();
        for rec in records {
            batch.insert(&self.log, seq_key(rec.seq), encode_record(rec)?);
            if rec.denied {
                continue;
            }
            let e = &rec.event;
            let (a, p) = (e.account.as_str(), e.project.as_str());
            batch.insert(
                &self.idx_type,
                index_key(&index_prefix(&[a, p, &e.kind]), e.ts, rec.seq),
                [],
            );
            batch.insert(
                &self.idx_all,
                index_key(&index_prefix(&[a, p]), e.ts, rec.seq),
                [],
            );
            if let Some(s) = &e.session_id {
                batch.insert(
                    &self.idx_session,
                    index_key(&index_prefix(&[a, p, s]), e.ts, rec.seq),
                    e.kind.as_bytes(),
                );
            }
        }
        for (k, v) in meta {
            batch.insert(&self.meta, k.as_bytes(), v.as_slice());
        }
        batch.commit().map_err(be)
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
        let it = self.log.range(seq_key(start)..).map(|kv| {
            let (k, v) = kv.map_err(be)?;
            decode_record(seq_from_key(&k)?, &v)
        });
        Ok(Box::new(it))
    }

    fn scan(&self, q: &EventQuery) -> Result<EventPage> {
        let instant = self.keyspace.instant();
        let keys = self.index_stream(q, instant);
        let end = q.offset.saturating_add(q.limit);
        let mut total = 0u64;
        let mut page = Vec::new();
        for item in keys {
            let (_, seq, ()) = item?;
            if total >= q.offset && total < end {
                page.push(seq);
            }
            total += 1;
        }
        let log = self.log.snapshot_at(instant);
        let events = page
            .into_iter()
            .map(|seq| Self::fetch(&log, seq))
            .collect::<Result<Vec<_>>>()?;
        Ok(EventPage { events, total })
    }

    fn scan_range(&self, q: &RangeQuery) -> Result<EventIter<'_>> {
        let instant = self.keyspace.instant();
        let as_query = EventQuery {
            account: q.account.clone(),
            project: q.project.clone(),
            types: q.types.clone(),
            session: None,
            from_ts: Some(q.from_ts),
            to_ts: Some(q.to_ts),
            offset: 0,
            limit: 0,
        };
        let keys = self.index_stream(&as_query, instant);
        let log = self.log.snapshot_at(instant);
        Ok(Box::new(keys.map(move |item| {
            let (_, seq, ()) = item?;
            Self::fetch(&log, seq)
        })))
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

    fn put_checkpoint(&self, seq: u64, bytes: &[u8]) -> Result<()> {
        self.checkpoints.insert(seq_key(seq), bytes).map_err(be)?;
        let keys: Vec<_> = self
            .checkpoints
            .keys()
            .rev()
            .skip(CHECKPOINTS_KEPT)
            .collect::<std::result::Result<_, _>>()
            .map_err(be)?;
        for k in keys {
            self.checkpoints.remove(k).map_err(be)?;
        }
        Ok(())
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>> {
        match self.checkpoints.last_key_value().map_err(be)? {
            Some((k, v)) => Ok(Some((seq_from_key(&k)?, v.to_vec()))),
            None => Ok(None),
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
