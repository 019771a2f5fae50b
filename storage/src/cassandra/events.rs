//! Reading events back through the index tables: pages, ranges and the newest event time.
//!
//! A read takes the commit marker once at its start and skips index rows above it, so an
//! append in progress (or one a crash cut short, before its repair) is never seen.

use weir_core::Millis;

use super::log::{day, head, ANY_TYPE};
use super::CassandraStore;
use crate::merge::MergeByTsSeq;
use crate::record::decode_record;
use crate::{EventIter, EventQuery, Result, StoredEvent};

/// Events with their (ts, seq) sort key.
type KeyedIter<'a> = Box<dyn Iterator<Item = Result<(Millis, u64, StoredEvent)>> + 'a>;

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

fn committed(store: &CassandraStore) -> Result<u64> {
    store.run(|inner| async move { Ok(head(&inner).await?.committed) })
}

/// Days with events of `kind` (or of any type) in `[from, to)`.
fn days(
    store: &CassandraStore,
    account: &str,
    project: &str,
    kind: &str,
    from: Millis,
    to: Millis,
) -> Result<Vec<i64>> {
    let v = (
        account.to_string(),
        project.to_string(),
        kind.to_string(),
        day(from),
        day(to.saturating_sub(1)),
    );
    let rows: Vec<(i64,)> =
        store.run(move |inner| async move { inner.rows(&inner.ps.days_read, v).await })?;
    Ok(rows.into_iter().map(|(d,)| d).collect())
}

/// Events of one stream (a type, all types, or a session) in the query's time range, one
/// partition read at a time, in (ts, seq) order, none above `upto`.
fn stream<'a>(
    store: &'a CassandraStore,
    q: &EventQuery,
    kind: Option<&str>,
    upto: u64,
) -> Result<KeyedIter<'a>> {
    let from = q.from_ts.unwrap_or(Millis::MIN);
    let to = q.to_ts.unwrap_or(Millis::MAX);
    let upto = i64::try_from(upto).unwrap_or(i64::MAX);
    let (a, p) = (q.account.clone(), q.project.clone());
    if let Some(s) = &q.session {
        let v = (a, p, s.clone(), from, to);
        let rows: Vec<(i64, i64, String, Vec<u8>)> = store
            .run(move |inner| async move { inner.rows(&inner.ps.by_session_read, v).await })?;
        let types = q.types.clone();
        return Ok(Box::new(
            rows.into_iter()
                .filter(move |r| r.1 <= upto && (types.is_empty() || types.contains(&r.2)))
                .map(|(ts, seq, _, rec)| decode(ts, seq, &rec)),
        ));
    }
    let days = days(store, &a, &p, kind.unwrap_or(ANY_TYPE), from, to)?;
    let kind = kind.map(str::to_string);
    let it = days.into_iter().flat_map(move |d| {
        let (a, p, kind) = (a.clone(), p.clone(), kind.clone());
        let rows: Result<Vec<(i64, i64, Vec<u8>)>> = store.run(move |inner| async move {
            match kind {
                Some(k) => {
                    inner
                        .rows(&inner.ps.by_type_read, (a, p, k, d, from, to))
                        .await
                }
                None => inner.rows(&inner.ps.by_day_read, (a, p, d, from, to)).await,
            }
        });
        let out: Vec<Result<(Millis, u64, StoredEvent)>> = match rows {
            Ok(rows) => rows
                .into_iter()
                .filter(|r| r.1 <= upto)
                .map(|(ts, seq, rec)| decode(ts, seq, &rec))
                .collect(),
            Err(e) => vec![Err(e)],
        };
        out
    });
    Ok(Box::new(it))
}

/// Every committed event matching `q` (offset and limit aside), in (ts, seq) order.
pub(super) fn merged<'a>(store: &'a CassandraStore, q: &EventQuery) -> Result<EventIter<'a>> {
    if matches!((q.from_ts, q.to_ts), (Some(f), Some(t)) if f >= t) {
        return Ok(Box::new(std::iter::empty()));
    }
    let upto = committed(store)?;
    let keyed: KeyedIter<'a> = if q.session.is_some() || q.types.is_empty() {
        stream(store, q, None, upto)?
    } else {
        let mut types = q.types.clone();
        types.sort();
        types.dedup();
        let inputs = types
            .iter()
            .map(|t| stream(store, q, Some(t), upto))
            .collect::<Result<Vec<_>>>()?;
        Box::new(MergeByTsSeq::new(inputs))
    };
    Ok(Box::new(keyed.map(|r| r.map(|(_, _, e)| e))))
}

/// The newest committed event time of `account`/`project` among `types` (every type when
/// empty): the newest day partition of each type, read newest first.
pub(super) fn newest_ts(
    store: &CassandraStore,
    account: &str,
    project: &str,
    types: &[String],
) -> Result<Option<Millis>> {
    let upto = i64::try_from(committed(store)?).unwrap_or(i64::MAX);
    let kinds: Vec<Option<String>> = if types.is_empty() {
        vec![None]
    } else {
        types.iter().cloned().map(Some).collect()
    };
    let (account, project) = (account.to_string(), project.to_string());
    store.run(move |inner| async move {
        let mut newest: Option<Millis> = None;
        for kind in kinds {
            let days: Vec<(i64,)> = inner
                .rows(
                    &inner.ps.days_newest,
                    (&account, &project, kind.as_deref().unwrap_or(ANY_TYPE)),
                )
                .await?;
            for (d,) in days {
                let keep = |r: &(i64, i64)| r.1 <= upto;
                let hit: Option<(i64, i64)> = match &kind {
                    Some(k) => {
                        let v = (&account, &project, k, d);
                        inner.find(&inner.ps.by_type_newest, v, keep).await?
                    }
                    None => {
                        let v = (&account, &project, d);
                        inner.find(&inner.ps.by_day_newest, v, keep).await?
                    }
                };
                if let Some((ts, _)) = hit {
                    newest = newest.max(Some(ts));
                    break;
                }
            }
        }
        Ok(newest)
    })
}
