//! Backfill (SPEC section 5): a created or replaced query (or a rule's own query) is built
//! from the stored events while the old version keeps serving, then swapped in atomically.
//!
//! The engine's shadow protocol splits the log at an event id S (the next id when the shadow
//! is registered): events with smaller ids are read from the store here, events from S on
//! reach the shadow live. Before reading, the log is flushed, so every event with an id below
//! S is in the store. Each event is therefore counted exactly once across the swap.

use std::time::Instant;

use weir_engine::Shadow;
use weir_query_lang::ast::Backfill;
use weir_storage::{EventQuery, RangeQuery};

use crate::app::Cx;
use crate::backfills::Progress;

/// Events handed to the engine at once.
const CHUNK: usize = 4096;

/// The first event time to replay for `shadow` under `clause`, or `None` to replay nothing.
/// Spans are measured back from `watermark`, the newest stored event of the shadow's source
/// (SPEC section 3: never from the wall clock); `None` when it has none.
fn replay_from(shadow: &Shadow, clause: Backfill, watermark: Option<i64>) -> Option<i64> {
    let watermark = watermark?;
    match clause {
        Backfill::None => None,
        Backfill::For(d) => Some(watermark.saturating_sub(d)),
        Backfill::Default => Some(match shadow.largest_window_ms() {
            Some(w) => watermark.saturating_sub(w),
            None => i64::MIN,
        }),
    }
}

/// Whether `clause` can replay anything for `shadow` at all.
fn replays(shadow: &Shadow, clause: Backfill) -> bool {
    shadow.needs_backfill() && clause != Backfill::None
}

/// The newest stored event time of the shadow's source types: the watermark its windows
/// and the default backfill span are measured from.
fn source_watermark(app: &Cx<'_>, shadow: &Shadow) -> anyhow::Result<Option<i64>> {
    let types = shadow.source_types().unwrap_or_default();
    Ok(app
        .store()
        .newest_event_ts(&app.tenant().account, &app.tenant().project, &types)?)
}

/// Replay the stored events of `shadow`'s range into it; `shown_as` is the name progress is
/// reported under and `text` the new definition. Returns the shadow, ready to take over, and
/// the events replayed; on an error the shadow is dropped and the old version stays.
pub fn run(
    app: &Cx<'_>,
    shadow: Shadow,
    clause: Backfill,
    shown_as: &str,
    text: &str,
) -> anyhow::Result<(Shadow, u64)> {
    if !replays(&shadow, clause) {
        return Ok((shadow, 0));
    }
    // Every event with an id below the boundary must be in the store before it is read.
    let replayed = app.flush_blocking().and_then(|()| {
        match replay_from(&shadow, clause, source_watermark(app, &shadow)?) {
            Some(from_ts) => replay(app, &shadow, from_ts, shown_as, text),
            None => Ok(0),
        }
    });
    match replayed {
        Ok(n) => Ok((shadow, n)),
        Err(e) => {
            app.engine().abort(shadow);
            Err(e)
        }
    }
}

/// Replay events of `shadow`'s types from `from_ts` with ids below its boundary.
fn replay(
    app: &Cx<'_>,
    shadow: &Shadow,
    from_ts: i64,
    shown_as: &str,
    text: &str,
) -> anyhow::Result<u64> {
    let types = shadow.source_types().unwrap_or_default();
    let total = app
        .store()
        .scan(&EventQuery {
            account: app.tenant().account.clone(),
            project: app.tenant().project.clone(),
            types: types.clone(),
            session: None,
            from_ts: Some(from_ts),
            to_ts: None,
            offset: 0,
            limit: 0,
        })?
        .total;
    app.backfills().lock().insert(
        shown_as.to_string(),
        Progress {
            text: text.to_string(),
            replayed: 0,
            total,
            started: Instant::now(),
        },
    );
    let result = (|| -> anyhow::Result<u64> {
        let range = RangeQuery {
            account: app.tenant().account.clone(),
            project: app.tenant().project.clone(),
            types,
            from_ts,
            to_ts: i64::MAX,
        };
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut replayed = 0;
        for stored in app.store().scan_range(&range)? {
            let stored = stored?;
            if stored.seq >= shadow.boundary() {
                continue;
            }
            chunk.push((stored.seq, stored.event));
            if chunk.len() == CHUNK {
                app.engine().backfill(shadow, &chunk);
                replayed += chunk.len() as u64;
                chunk.clear();
                if let Some(p) = app.backfills().lock().get_mut(shown_as) {
                    p.replayed = replayed;
                }
            }
        }
        app.engine().backfill(shadow, &chunk);
        replayed += chunk.len() as u64;
        Ok(replayed)
    })();
    let progress = app.backfills().lock().remove(shown_as);
    let replayed = result?;
    if let Some(p) = progress {
        tracing::info!(
            query = shown_as,
            replayed,
            elapsed_ms = p.started.elapsed().as_millis() as u64,
            "backfill done"
        );
    }
    Ok(replayed)
}

/// On start: rebuild a query the checkpoint did not hold (changed or created after it) from
/// the events up to the checkpoint, before the log tail is replayed into every query.
pub fn rebuild(app: &Cx<'_>, shadow: &Shadow, clause: Backfill, text: &str) -> anyhow::Result<u64> {
    if !replays(shadow, clause) {
        return Ok(0);
    }
    match replay_from(shadow, clause, source_watermark(app, shadow)?) {
        Some(from_ts) => replay(app, shadow, from_ts, shadow.name(), text),
        None => Ok(0),
    }
}
