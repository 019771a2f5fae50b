//! Persisted query state on Cassandra/Scylla: the `state` table.
//!
//! `state ((scope, part, sub), key, bucket) → value`: a scope is one query version, a part
//! one of its shards, and `sub` a hash of the group key over [`SUBS`] values, so a part's
//! keys spread over several partitions and no partition holds more than a slice of one
//! shard's keys (each with at most its retained buckets). The rows of one key share a
//! partition, so one key's write is a single-partition batch: atomic and isolated. Its
//! deletes carry a timestamp below its inserts (both from the session's monotonic clock),
//! so a key removed and written again in one write keeps the new rows.
//!
//! A part reads back one sub-partition at a time: the rows of one key together, in bucket
//! order, as [`crate::Storage::state_read`] promises (keys are not globally sorted across
//! sub-partitions).

use scylla::policies::timestamp_generator::TimestampGenerator;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};

use super::{CassandraStore, Inner};
use crate::{Result, StateIter, StateKeyWrite, StateRow};

/// Partitions per (scope, part).
pub(super) const SUBS: i32 = 16;

/// The table, created by the first schema migration.
pub(super) const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS {ks}.state (scope text, part int, sub int, key blob, bucket bigint, value blob, PRIMARY KEY ((scope, part, sub), key, bucket))";

/// An empty clustering value is refused by CQL; the mark row's empty key is stored as this
/// (group keys are encoded JSON arrays, never this byte).
const MARK_STORED: &[u8] = &[0];

fn stored_key(key: &[u8]) -> &[u8] {
    if key.is_empty() {
        MARK_STORED
    } else {
        key
    }
}

fn sub_of(key: &[u8]) -> i32 {
    // FNV-1a: stable across runs and builds.
    let mut h: u32 = 0x811c_9dc5;
    for &b in key {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (h % SUBS as u32) as i32
}

type Values<'a> = Vec<Box<dyn SerializeRow + Send + Sync + 'a>>;

/// A `state` row as read: (stored key, bucket, value).
type Stored = (Vec<u8>, i64, Option<Vec<u8>>);

/// One key's write as one single-partition batch.
async fn write_key(inner: &Inner, scope: &str, part: i32, k: &StateKeyWrite) -> Result<()> {
    let ps = &inner.ps;
    let key = stored_key(&k.key);
    let sub = sub_of(key);
    let mut batch = Batch::new(BatchType::Unlogged);
    let mut values: Values = Vec::new();
    if k.delete_all {
        let ts = inner.clock.next_timestamp();
        batch.append_statement(ps.state_delete_key.clone());
        values.push(Box::new((ts, scope, part, sub, key)));
    } else if let Some(through) = k.delete_through.filter(|t| *t > i64::MIN) {
        let ts = inner.clock.next_timestamp();
        batch.append_statement(ps.state_delete_through.clone());
        values.push(Box::new((ts, scope, part, sub, key, i64::MIN, through)));
    }
    if !k.rows.is_empty() {
        // Later than the delete above, so the rows written survive it.
        let ts = inner.clock.next_timestamp();
        for (bucket, value) in &k.rows {
            batch.append_statement(ps.state_put.clone());
            values.push(Box::new((
                scope,
                part,
                sub,
                key,
                *bucket,
                value.as_slice(),
                ts,
            )));
        }
    }
    if values.is_empty() {
        return Ok(());
    }
    inner.run_batch(&batch, values).await
}

/// Write `keys` of `scope`'s part `part`, each key atomically on its own.
pub(super) async fn write(
    inner: &Inner,
    scope: &str,
    part: u32,
    keys: &[StateKeyWrite],
) -> Result<()> {
    let part = part as i32;
    inner
        .all(
            keys.iter()
                .map(|k| write_key(inner, scope, part, k))
                .collect(),
        )
        .await
}

/// Every row of `scope`'s part `part`, one sub-partition read at a time.
pub(super) fn read<'a>(store: &'a CassandraStore, scope: &str, part: u32) -> Result<StateIter<'a>> {
    let scope = scope.to_string();
    let part = part as i32;
    Ok(Box::new((0..SUBS).flat_map(move |sub| {
        let scope = scope.clone();
        let got: Result<Vec<Stored>> = store.run(move |inner| async move {
            inner.rows(&inner.ps.state_read, (scope, part, sub)).await
        });
        let out: Vec<Result<StateRow>> = match got {
            Ok(rows) => rows
                .into_iter()
                .map(|(k, b, v)| {
                    let k = if k == MARK_STORED { Vec::new() } else { k };
                    Ok((k, b, v.unwrap_or_default()))
                })
                .collect(),
            Err(e) => vec![Err(e)],
        };
        out
    })))
}

/// Remove every row of `scope` (parts `0..parts`): one partition delete per sub-partition.
pub(super) async fn drop_scope(inner: &Inner, scope: &str, parts: u32) -> Result<()> {
    let all: Vec<(i32, i32)> = (0..parts as i32)
        .flat_map(|p| (0..SUBS).map(move |s| (p, s)))
        .collect();
    inner
        .all(
            all.into_iter()
                .map(|(p, s)| {
                    let ts = inner.clock.next_timestamp();
                    inner.exec(&inner.ps.state_drop, (ts, scope, p, s))
                })
                .collect(),
        )
        .await
}
