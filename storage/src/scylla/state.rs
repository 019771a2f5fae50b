//! Persisted query state on Cassandra/Scylla: the `state` table.
//!
//! `state ((scope, part, sub), key, bucket) → value`: a scope is one query version, a part
//! one of its shards, and `sub` a hash of the group key over [`SUBS`] values, so a part's
//! keys spread over several partitions and no partition holds more than a slice of one
//! shard's keys (each with at most its retained buckets). The rows of one key share a
//! partition, so one key's write is a single-partition batch: atomic and isolated. Deletes in
//! that batch carry a timestamp one below its inserts, so a key removed and written again in
//! one write keeps the new rows.

use futures_util::{stream, StreamExt, TryStreamExt};
use scylla::statement::batch::{Batch, BatchType};

use super::{sc, ScyllaStore};
use crate::{Result, StateIter, StateKeyWrite, StateRow};

/// Partitions per (scope, part).
pub(super) const SUBS: i32 = 16;

/// The table, created with the rest of the schema.
pub(super) fn create_table(ks: &str) -> String {
    format!("CREATE TABLE IF NOT EXISTS {ks}.state (scope text, part int, sub int, key blob, bucket bigint, value blob, PRIMARY KEY ((scope, part, sub), key, bucket))")
}

/// An empty clustering value is refused by CQL; the mark row's empty key is stored as this.
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

fn micros_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl ScyllaStore {
    pub(super) fn state_write_impl(
        &self,
        scope: &str,
        part: u32,
        keys: &[StateKeyWrite],
    ) -> Result<()> {
        let ks = &self.ks;
        let del_all = format!(
            "DELETE FROM {ks}.state USING TIMESTAMP ? WHERE scope = ? AND part = ? AND sub = ? AND key = ?"
        );
        let del_range = format!(
            "DELETE FROM {ks}.state USING TIMESTAMP ? WHERE scope = ? AND part = ? AND sub = ? AND key = ? AND bucket > ? AND bucket <= ?"
        );
        let insert = format!(
            "INSERT INTO {ks}.state (scope, part, sub, key, bucket, value) VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
        );
        let session = &self.session;
        self.rt.block_on(async {
            let (del_all, del_range, insert) = (
                session.prepare(del_all).await.map_err(sc)?,
                session.prepare(del_range).await.map_err(sc)?,
                session.prepare(insert).await.map_err(sc)?,
            );
            let part = part as i32;
            stream::iter(keys)
                .map(|k| {
                    let (del_all, del_range, insert) = (&del_all, &del_range, &insert);
                    async move {
                        let key = stored_key(&k.key);
                        let sub = sub_of(key);
                        let ts = micros_now();
                        let mut batch = Batch::new(BatchType::Unlogged);
                        let mut values: Vec<
                            Box<dyn scylla::serialize::row::SerializeRow + Send + Sync + '_>,
                        > = Vec::new();
                        if k.delete_all {
                            batch.append_statement(del_all.clone());
                            values.push(Box::new((ts, scope, part, sub, key)));
                        } else if let Some(through) = k.delete_through {
                            batch.append_statement(del_range.clone());
                            values.push(Box::new((ts, scope, part, sub, key, i64::MIN, through)));
                        }
                        for (bucket, value) in &k.rows {
                            batch.append_statement(insert.clone());
                            values.push(Box::new((
                                scope,
                                part,
                                sub,
                                key,
                                *bucket,
                                value.as_slice(),
                                ts + 1,
                            )));
                        }
                        if values.is_empty() {
                            return Ok(());
                        }
                        session.batch(&batch, values).await.map(|_| ()).map_err(sc)
                    }
                })
                .buffer_unordered(self.concurrency)
                .try_collect::<Vec<()>>()
                .await
                .map(|_| ())
        })
    }

    pub(super) fn state_read_impl(&self, scope: &str, part: u32) -> Result<StateIter<'_>> {
        let stmt = self.q(
            "SELECT key, bucket, value FROM {ks}.state WHERE scope = ? AND part = ? AND sub = ?",
        );
        let mut rows: Vec<StateRow> = Vec::new();
        for sub in 0..SUBS {
            let got: Vec<(Vec<u8>, i64, Option<Vec<u8>>)> =
                self.rows_unprepared(&stmt, (scope, part as i32, sub))?;
            rows.extend(got.into_iter().map(|(k, b, v)| {
                let k = if k == MARK_STORED { Vec::new() } else { k };
                (k, b, v.unwrap_or_default())
            }));
        }
        Ok(Box::new(rows.into_iter().map(Ok)))
    }

    pub(super) fn state_drop_impl(&self, scope: &str, parts: u32) -> Result<()> {
        let stmt = self.q("DELETE FROM {ks}.state WHERE scope = ? AND part = ? AND sub = ?");
        let session = &self.session;
        self.rt.block_on(async {
            let ps = session.prepare(stmt).await.map_err(sc)?;
            let all: Vec<(i32, i32)> = (0..parts as i32)
                .flat_map(|p| (0..SUBS).map(move |s| (p, s)))
                .collect();
            stream::iter(all)
                .map(|(p, s)| {
                    let ps = &ps;
                    async move {
                        session
                            .execute_unpaged(ps, (scope, p, s))
                            .await
                            .map(|_| ())
                            .map_err(sc)
                    }
                })
                .buffer_unordered(self.concurrency)
                .try_collect::<Vec<()>>()
                .await
                .map(|_| ())
        })
    }
}
