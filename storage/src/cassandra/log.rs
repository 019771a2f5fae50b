//! The event log on Cassandra/Scylla: the append protocol (intent, log rows, index rows,
//! commit), the repair of an append that was cut short, and reading the log back.
//!
//! The commit marker and the intent are static columns of the one `meta` partition, so the
//! final batch (the input positions, the new marker, the cleared intent) is one mutation.

use std::sync::atomic::Ordering;

use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use tracing::warn;
use weir_core::Millis;

use super::{CassandraStore, Inner};
use crate::record::{decode_record, encode_record};
use crate::{LogRecord, RecordIter, Result};

/// `log` partitions hold `1 << BUCKET_SHIFT` consecutive seqs.
pub(super) const BUCKET_SHIFT: u32 = 16;
/// The `event_days` type that stands for "any type".
pub(super) const ANY_TYPE: &str = "\0";
const DAY_MS: Millis = 86_400_000;

/// The UTC day of an event time, as the index tables key it.
pub(super) fn day(ts: Millis) -> i64 {
    ts.div_euclid(DAY_MS)
}

fn bucket(seq: u64) -> i64 {
    (seq >> BUCKET_SHIFT) as i64
}

/// The static columns of the `meta` partition.
pub(super) struct Head {
    /// The commit marker: the highest committed seq (0 for an empty log).
    pub(super) committed: u64,
    /// The seq range of an append that wrote its intent but has not committed.
    pub(super) intent: Option<(u64, u64)>,
}

/// Read the commit marker and the intent.
pub(super) async fn head(inner: &Inner) -> Result<Head> {
    let rows: Vec<(Option<i64>, Option<i64>, Option<i64>)> =
        inner.rows(&inner.ps.head_read, ()).await?;
    let (committed, lo, hi) = rows.into_iter().next().unwrap_or((None, None, None));
    Ok(Head {
        committed: committed.unwrap_or(0) as u64,
        intent: lo.zip(hi).map(|(l, h)| (l as u64, h as u64)),
    })
}

/// One row an append writes (or a repair deletes).
enum Row<'a> {
    Log(&'a LogRecord, &'a [u8]),
    Bucket(i64),
    ByType(&'a LogRecord, &'a [u8]),
    ByDay(&'a LogRecord, &'a [u8]),
    BySession(&'a LogRecord, &'a str, &'a [u8]),
    Day(&'a LogRecord, &'a str),
}

async fn put(inner: &Inner, row: Row<'_>) -> Result<()> {
    let ps = &inner.ps;
    match row {
        Row::Log(r, rec) => {
            inner
                .exec(&ps.log_put, (bucket(r.seq), r.seq as i64, rec))
                .await
        }
        Row::Bucket(b) => inner.exec(&ps.bucket_put, (b,)).await,
        Row::ByType(r, rec) => {
            let e = &r.event;
            let v = (
                &e.account,
                &e.project,
                &e.kind,
                day(e.ts),
                e.ts,
                r.seq as i64,
                rec,
            );
            inner.exec(&ps.by_type_put, v).await
        }
        Row::ByDay(r, rec) => {
            let e = &r.event;
            let v = (&e.account, &e.project, day(e.ts), e.ts, r.seq as i64, rec);
            inner.exec(&ps.by_day_put, v).await
        }
        Row::BySession(r, s, rec) => {
            let e = &r.event;
            let v = (&e.account, &e.project, s, e.ts, r.seq as i64, &e.kind, rec);
            inner.exec(&ps.by_session_put, v).await
        }
        Row::Day(r, kind) => {
            let e = &r.event;
            inner
                .exec(&ps.day_put, (&e.account, &e.project, kind, day(e.ts)))
                .await
        }
    }
}

async fn delete(inner: &Inner, row: Row<'_>) -> Result<()> {
    let ps = &inner.ps;
    match row {
        Row::Log(r, _) => {
            inner
                .exec(&ps.log_delete, (bucket(r.seq), r.seq as i64))
                .await
        }
        Row::ByType(r, _) => {
            let e = &r.event;
            let v = (
                &e.account,
                &e.project,
                &e.kind,
                day(e.ts),
                e.ts,
                r.seq as i64,
            );
            inner.exec(&ps.by_type_delete, v).await
        }
        Row::ByDay(r, _) => {
            let e = &r.event;
            let v = (&e.account, &e.project, day(e.ts), e.ts, r.seq as i64);
            inner.exec(&ps.by_day_delete, v).await
        }
        Row::BySession(r, s, _) => {
            let e = &r.event;
            let v = (&e.account, &e.project, s, e.ts, r.seq as i64);
            inner.exec(&ps.by_session_delete, v).await
        }
        // Left in place: an empty bucket or day reads as nothing.
        Row::Bucket(_) | Row::Day(..) => Ok(()),
    }
}

/// The index rows of one record (none for a denied one).
fn index_rows<'a>(r: &'a LogRecord, rec: &'a [u8], out: &mut Vec<Row<'a>>) {
    if r.denied {
        return;
    }
    out.push(Row::ByType(r, rec));
    out.push(Row::ByDay(r, rec));
    if let Some(s) = &r.event.session_id {
        out.push(Row::BySession(r, s, rec));
    }
}

/// Append `records` and `meta` by the protocol of the module docs. With `commit` false the
/// final batch is skipped (the test hook for a crash before it).
pub(super) async fn append(
    inner: &Inner,
    records: &[LogRecord],
    meta: &[(String, Vec<u8>)],
    commit: bool,
) -> Result<()> {
    if inner.dirty.load(Ordering::Acquire) {
        repair(inner).await?;
    }
    let Some(hi) = records.iter().map(|r| r.seq).max() else {
        return if commit {
            commit_batch(inner, None, meta).await
        } else {
            Ok(())
        };
    };
    let lo = records.iter().map(|r| r.seq).min().unwrap_or(hi);
    let encoded = records
        .iter()
        .map(encode_record)
        .collect::<Result<Vec<_>>>()?;
    // From here on a failure leaves rows to remove before the next append.
    inner.dirty.store(true, Ordering::Release);
    inner
        .exec(&inner.ps.intent_put, (lo as i64, hi as i64))
        .await?;

    let mut log: Vec<Row> = Vec::with_capacity(records.len() + 1);
    let mut buckets: Vec<i64> = Vec::new();
    for (r, rec) in records.iter().zip(&encoded) {
        log.push(Row::Log(r, rec));
        if !buckets.contains(&bucket(r.seq)) {
            buckets.push(bucket(r.seq));
        }
    }
    log.extend(buckets.into_iter().map(Row::Bucket));
    inner
        .all(log.into_iter().map(|row| put(inner, row)).collect())
        .await?;

    let mut index: Vec<Row> = Vec::with_capacity(records.len() * 3);
    let mut days: Vec<(&str, &str, &str, i64)> = Vec::new();
    for (r, rec) in records.iter().zip(&encoded) {
        index_rows(r, rec, &mut index);
        if r.denied {
            continue;
        }
        let e = &r.event;
        for kind in [e.kind.as_str(), ANY_TYPE] {
            let d = (e.account.as_str(), e.project.as_str(), kind, day(e.ts));
            if !days.contains(&d) {
                days.push(d);
                index.push(Row::Day(r, kind));
            }
        }
    }
    inner
        .all(index.into_iter().map(|row| put(inner, row)).collect())
        .await?;

    if commit {
        commit_batch(inner, Some(hi), meta).await?;
        inner.dirty.store(false, Ordering::Release);
    }
    Ok(())
}

/// The positions and the commit marker (clearing the intent), in one single-partition batch.
async fn commit_batch(inner: &Inner, hi: Option<u64>, meta: &[(String, Vec<u8>)]) -> Result<()> {
    if hi.is_none() && meta.is_empty() {
        return Ok(());
    }
    let mut batch = Batch::new(BatchType::Logged);
    let mut values: Vec<Box<dyn SerializeRow + Send + Sync + '_>> =
        Vec::with_capacity(meta.len() + 1);
    if let Some(hi) = hi {
        batch.append_statement(inner.ps.commit.clone());
        values.push(Box::new((hi as i64,)));
    }
    for (k, v) in meta {
        batch.append_statement(inner.ps.meta_put.clone());
        values.push(Box::new((k.as_str(), v.as_slice())));
    }
    inner.run_batch(&batch, values).await
}

/// Remove what an append left above the commit marker, then clear its intent.
pub(super) async fn repair(inner: &Inner) -> Result<()> {
    let head = head(inner).await?;
    let Some((lo, hi)) = head.intent else {
        inner.dirty.store(false, Ordering::Release);
        return Ok(());
    };
    let from = lo.max(head.committed + 1);
    if from <= hi {
        let mut found: Vec<(LogRecord, Vec<u8>)> = Vec::new();
        for b in bucket(from)..=bucket(hi) {
            let rows: Vec<(i64, Vec<u8>)> = inner
                .rows(&inner.ps.log_read, (b, from as i64 - 1, hi as i64))
                .await?;
            for (seq, rec) in rows {
                found.push((decode_record(seq as u64, &rec)?, rec));
            }
        }
        // Index rows first: a repair cut short finds them again from the log rows.
        let mut index = Vec::new();
        for (r, rec) in &found {
            index_rows(r, rec, &mut index);
        }
        inner
            .all(index.into_iter().map(|row| delete(inner, row)).collect())
            .await?;
        inner
            .all(
                found
                    .iter()
                    .map(|(r, rec)| delete(inner, Row::Log(r, rec)))
                    .collect(),
            )
            .await?;
        warn!(
            from,
            to = hi,
            removed = found.len(),
            "Removed the rows of an append that was never committed."
        );
    }
    inner.exec(&inner.ps.intent_clear, ()).await?;
    inner.dirty.store(false, Ordering::Release);
    Ok(())
}

/// Every committed log record with `seq > after`, a bucket partition at a time.
pub(super) fn scan_seq(store: &CassandraStore, after: u64) -> Result<RecordIter<'_>> {
    let committed = store.run(|inner| async move { Ok(head(&inner).await?.committed) })?;
    if after >= committed {
        return Ok(Box::new(std::iter::empty()));
    }
    let buckets: Vec<(i64,)> = store.run(move |inner| async move {
        inner
            .rows(&inner.ps.buckets_read, (bucket(after), bucket(committed)))
            .await
    })?;
    Ok(Box::new(buckets.into_iter().flat_map(move |(b,)| {
        let rows = store.run(move |inner| async move {
            inner
                .rows::<(i64, Vec<u8>)>(&inner.ps.log_read, (b, after as i64, committed as i64))
                .await
        });
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
