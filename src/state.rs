//! Query state on disk: flushed incrementally as key-bucket rows (see
//! `weir_engine::persist`), in the background and after every statement that changes
//! state, and read back on start.
//!
//! Each query version's rows live in their own *scope* (`q/<name>/<generation>`); the meta
//! key `state/q/<name>` names the scope that holds the query's complete state, with the
//! shape it was built for. A new version (created, replaced, rebuilt) is written whole on its
//! first flush and becomes the named scope only once that flush has written every shard's
//! mark; the old scope is dropped then. Until then a restart restores the previous version
//! or, if the shape changed, rebuilds the query from the log.
//!
//! The analytics keys and stats are persisted the same way, one key per event type in the
//! scope `insights` (see [`weir_analytics::insights`]): a flush asks the insights thread for
//! the types that changed since the last one and writes only theirs, each with the event id
//! it includes, then the header. A restore loads the rows and says, per type, which events
//! of the log they include already. The one JSON document older versions wrote
//! (`state/insights`) is read once, written as rows, and deleted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use weir_engine::persist::MARK_KEY;
use weir_engine::QueryRt;
use weir_storage::{StateKeyWrite, Storage};

use weir_analytics::insights::{KeyWrite, Loaded, PARTS};
use weir_analytics::{KeyIndex, StatsSeries};
use weir_engine::Engine;

use crate::insights::{Insights, InsightsFeed};

/// What persisting the query state needs from the server.
pub trait StateHost {
    /// The store.
    fn store(&self) -> &dyn Storage;
    /// The engine.
    fn engine(&self) -> &Engine;
    /// The highest event id handed out so far.
    fn last_seq(&self) -> u64;
    /// Wait until every event that has an id is durable in the log (state written after
    /// this never includes an event the log could lose).
    fn wait_durable(&self) -> anyhow::Result<()>;
    /// The insights and the thread that feeds them, if this host flushes and restores them
    /// (they are the node's: one tenant does it for all).
    fn insights(&self) -> Option<&InsightsFeed>;
}

const META_QUERY: &str = "state/q/";
const META_GEN: &str = "state/generation";
/// Where older versions kept the analytics, as one document (read once, then deleted).
const META_INSIGHTS: &str = "state/insights";
/// The scope of the analytics rows.
const INSIGHTS_SCOPE: &str = "insights";

/// Which stored scope holds a query's complete state, and what it was built for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct QueryState {
    scope: String,
    shape: String,
    shards: usize,
}

/// The document older versions wrote.
#[derive(Deserialize)]
struct InsightsDoc {
    seq: u64,
    insights: LegacyInsights,
}

#[derive(Deserialize)]
struct LegacyInsights {
    keys: KeyIndex,
    stats: StatsSeries,
}

/// A query version being persisted.
#[derive(Debug, Clone)]
struct Version {
    name: String,
    scope: String,
    /// Its scope is the one `state/q/<name>` names (every shard's mark written).
    committed: bool,
}

/// What one flush wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    /// Keys written (rows of changed keys, and removals).
    pub keys: u64,
    /// Rows written.
    pub rows: u64,
    /// Analytics types written.
    pub insights_types: u64,
    /// Analytics rows written.
    pub insights_rows: u64,
}

/// What a restore found.
#[derive(Debug, Default)]
pub struct Restored {
    /// Replay the log after this event id.
    pub from: u64,
    /// Which events of the log the restored analytics include already.
    pub insights: Loaded,
    /// Queries whose state was not restored (new, changed, or incomplete), to rebuild.
    pub missing: Vec<String>,
    /// Keys loaded.
    pub keys: u64,
}

/// The persisted query versions; one flush at a time.
#[derive(Default)]
pub struct StatePersist {
    versions: Mutex<HashMap<u64, Version>>,
}

fn meta_key(name: &str) -> String {
    format!("{META_QUERY}{name}")
}

fn read_state(store: &dyn Storage, name: &str) -> anyhow::Result<Option<QueryState>> {
    match store.meta_get(&meta_key(name))? {
        Some(bytes) if !bytes.is_empty() => Ok(serde_json::from_slice(&bytes).ok()),
        _ => Ok(None),
    }
}

fn forget_state(store: &dyn Storage, name: &str, scope: &str) -> anyhow::Result<()> {
    let key = meta_key(name);
    store.meta_prune(&key, &|v| {
        serde_json::from_slice::<QueryState>(v).is_ok_and(|s| s.scope == scope)
    })?;
    Ok(())
}

impl StatePersist {
    /// Write what changed since the last flush: the rows of changed keys of every query, then
    /// each shard's mark, then the analytics. Events are not held while it runs (each shard is
    /// locked only to copy a chunk of keys).
    pub fn flush(&self, app: &dyn StateHost) -> anyhow::Result<Flushed> {
        let started = Instant::now();
        let result = self.flush_inner(app);
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("weir_checkpoints_total", "outcome" => outcome).increment(1);
        metrics::histogram!("weir_checkpoint_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        if let Ok(f) = &result {
            metrics::counter!("weir_state_rows_written_total").increment(f.rows);
            metrics::counter!("weir_insights_types_written_total").increment(f.insights_types);
            metrics::counter!("weir_insights_rows_written_total").increment(f.insights_rows);
            tracing::debug!(
                keys = f.keys,
                rows = f.rows,
                insights_types = f.insights_types,
                "state flushed"
            );
        }
        result
    }

    fn flush_inner(&self, app: &dyn StateHost) -> anyhow::Result<Flushed> {
        let mut versions = self.versions.lock();
        let store = app.store();
        let queries = app.engine().persisted_queries();
        let mut flushed = Flushed::default();
        for q in &queries {
            if let std::collections::hash_map::Entry::Vacant(e) = versions.entry(q.id) {
                // Every key of a new version was ingested since it was created, so its
                // first capture writes all of them.
                let scope = format!("q/{}/{}", q.name, next_generation(store)?);
                e.insert(Version {
                    name: q.name.clone(),
                    scope,
                    committed: false,
                });
            }
            let v = versions[&q.id].clone();
            let f = flush_query(app, q, &v.scope)?;
            flushed.keys += f.keys;
            flushed.rows += f.rows;
            if !v.committed {
                let old = read_state(store, &q.name)?;
                let state = QueryState {
                    scope: v.scope.clone(),
                    shape: q.plan.shape.clone(),
                    shards: q.shards.len(),
                };
                store.meta_put(&meta_key(&q.name), &serde_json::to_vec(&state)?)?;
                if let Some(old) = old.filter(|o| o.scope != v.scope) {
                    store.state_drop(&old.scope, old.shards as u32)?;
                }
                if let Some(v) = versions.get_mut(&q.id) {
                    v.committed = true;
                }
            }
        }
        // Versions gone (dropped, or replaced by a newer one): their rows go.
        let live: Vec<u64> = queries.iter().map(|q| q.id).collect();
        let gone: Vec<(u64, Version)> = versions
            .iter()
            .filter(|(id, _)| !live.contains(id))
            .map(|(id, v)| (*id, v.clone()))
            .collect();
        for (id, v) in gone {
            if !queries.iter().any(|q| q.name == v.name) {
                forget_state(store, &v.name, &v.scope)?;
            }
            if read_state(store, &v.name)?.is_none_or(|s| s.scope != v.scope) {
                store.state_drop(&v.scope, app.engine().config().shards as u32)?;
            }
            versions.remove(&id);
        }
        app.wait_durable()?;
        // The insights hold only events the log has written (they are fed by the log
        // writer), so they need no wait of their own.
        if let Some(feed) = app.insights() {
            if let Some(snap) = feed.snapshot()? {
                match write_insights(store, &snap) {
                    Ok((types, rows)) => {
                        flushed.insights_types = types;
                        flushed.insights_rows = rows;
                    }
                    Err(e) => {
                        feed.requeue(snap);
                        return Err(e);
                    }
                }
            }
        }
        store.sync()?;
        Ok(flushed)
    }

    /// Load every query's persisted state (shards in parallel) and the analytics; say where
    /// the replay of the log starts and which queries must be rebuilt.
    pub fn restore(&self, app: &dyn StateHost) -> anyhow::Result<Restored> {
        let store = app.store();
        let mut out = Restored::default();
        // Without analytics to restore, the state is complete through the log's end until a
        // query says otherwise.
        let mut from = app.last_seq();
        if let Some(feed) = app.insights() {
            let mut insights = feed.empty();
            out.insights = match store.meta_get(META_INSIGHTS)? {
                Some(bytes) => migrate_insights(store, &bytes, &mut insights)?,
                None => load_insights(store, &mut insights)?,
            };
            if out.insights.stats_reset {
                tracing::warn!(
                    "stats_granularity changed since the last flush: stats restart from the log tail"
                );
            }
            feed.load(insights);
            from = out.insights.seq;
        }
        let mut versions = self.versions.lock();
        for q in app.engine().persisted_queries() {
            let state = read_state(store, &q.name)?
                .filter(|s| s.shape == q.plan.shape && s.shards == q.shards.len());
            let Some(state) = state else {
                out.missing.push(q.name.clone());
                continue;
            };
            match restore_query(store, &q, &state.scope) {
                Ok((keys, pos)) => {
                    out.keys += keys;
                    from = from.min(pos);
                    versions.insert(
                        q.id,
                        Version {
                            name: q.name.clone(),
                            scope: state.scope,
                            committed: true,
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(query = %q.name, error = %e, "stored state not usable: rebuilding the query from the log");
                    q.reset();
                    out.missing.push(q.name.clone());
                }
            }
        }
        out.from = from;
        out.missing.sort();
        metrics::gauge!("weir_state_keys_restored").set(out.keys as f64);
        Ok(out)
    }
}

/// Write a snapshot of the insights: each changed type's key in its part, then the header.
/// Returns the types and rows written.
fn write_insights(
    store: &dyn Storage,
    snap: &crate::insights::Snapshot,
) -> anyhow::Result<(u64, u64)> {
    if snap.is_empty() {
        return Ok((0, 0));
    }
    let (types, header) = snap.writes();
    let rows = types.iter().map(|k| k.rows.len() as u64).sum::<u64>() + 1;
    let mut by_part: HashMap<u32, Vec<StateKeyWrite>> = HashMap::new();
    for k in types {
        by_part.entry(k.part).or_default().push(state_write(k));
    }
    for (part, keys) in by_part {
        store.state_write(INSIGHTS_SCOPE, part, &keys)?;
    }
    store.sync()?;
    store.state_write(INSIGHTS_SCOPE, header.part, &[state_write(header)])?;
    Ok((snap.types() as u64, rows))
}

fn state_write(k: KeyWrite) -> StateKeyWrite {
    StateKeyWrite {
        key: k.key,
        delete_all: k.delete_all,
        delete_through: k.delete_through,
        rows: k.rows,
    }
}

/// Load the analytics rows of every part into `insights`.
fn load_insights(store: &dyn Storage, insights: &mut Insights) -> anyhow::Result<Loaded> {
    let mut rows = Vec::new();
    for part in 0..PARTS {
        for row in store.state_read(INSIGHTS_SCOPE, part)? {
            rows.push(row?);
        }
    }
    let loaded = insights
        .load(rows)
        .context("reading the stored analytics")?;
    tracing::debug!(
        types = loaded.types,
        rows = loaded.rows,
        seq = loaded.seq,
        "analytics loaded"
    );
    Ok(loaded)
}

/// Read the document older versions wrote into `insights` (as they did: stats written with
/// another granularity are not kept), write it as rows, and delete it.
fn migrate_insights(
    store: &dyn Storage,
    bytes: &[u8],
    insights: &mut Insights,
) -> anyhow::Result<Loaded> {
    let doc: InsightsDoc = serde_json::from_slice(bytes).context("reading the stored analytics")?;
    let mut loaded = Loaded {
        seq: doc.seq,
        ..Loaded::default()
    };
    let granularity = insights.stats.config().granularity_ms;
    let stats = if doc.insights.stats.config().granularity_ms == granularity {
        doc.insights.stats
    } else {
        loaded.stats_reset = true;
        insights.stats.clone()
    };
    *insights = Insights::new(doc.insights.keys, stats);
    insights.mark_all();
    let snap = insights.snapshot(doc.seq);
    // Rows written by a later version before this document was: the document is newer.
    store.state_drop(INSIGHTS_SCOPE, PARTS)?;
    let (types, rows) = write_insights(store, &snap)?;
    store.sync()?;
    store.meta_prune(META_INSIGHTS, &|_| true)?;
    loaded.types = types;
    tracing::info!(
        types,
        rows,
        "analytics moved from one document to rows per type"
    );
    Ok(loaded)
}

/// The next scope generation (stored, so scopes are never reused).
fn next_generation(store: &dyn Storage) -> anyhow::Result<u64> {
    let n = match store.meta_get(META_GEN)? {
        Some(b) if b.len() == 8 => u64::from_be_bytes(b.try_into().expect("8 bytes")),
        _ => 0,
    } + 1;
    store.meta_put(META_GEN, &n.to_be_bytes())?;
    Ok(n)
}

/// Capture every shard of `q`, wait until the log holds every event the capture includes,
/// write the keys, then the marks.
fn flush_query(app: &dyn StateHost, q: &Arc<QueryRt>, scope: &str) -> anyhow::Result<Flushed> {
    let store = app.store();
    let captures: Vec<_> = (0..q.shards.len())
        .map(|s| q.capture_shard(s, &|| app.last_seq()))
        .collect();
    let mut flushed = Flushed::default();
    let written = (|| -> anyhow::Result<()> {
        app.wait_durable()?;
        for c in &captures {
            let keys: Vec<StateKeyWrite> = c
                .keys
                .iter()
                .map(|k| StateKeyWrite {
                    key: k.key.clone(),
                    delete_all: k.delete_all,
                    delete_through: k.delete_through,
                    rows: k.rows.clone(),
                })
                .collect();
            flushed.keys += keys.len() as u64;
            flushed.rows += keys.iter().map(|k| k.rows.len() as u64).sum::<u64>();
            if !keys.is_empty() {
                store.state_write(scope, c.shard as u32, &keys)?;
            }
        }
        store.sync()?;
        for c in &captures {
            let mark = StateKeyWrite {
                key: MARK_KEY.to_vec(),
                rows: vec![(0, c.mark.clone())],
                ..Default::default()
            };
            store.state_write(scope, c.shard as u32, &[mark])?;
        }
        store.sync()?;
        Ok(())
    })();
    if let Err(e) = written {
        for c in captures {
            q.requeue(c);
        }
        return Err(e);
    }
    Ok(flushed)
}

/// Load every shard of `q` from `scope`, several shards at once. Returns the keys loaded and
/// the lowest mark (the replay must start there).
fn restore_query(store: &dyn Storage, q: &QueryRt, scope: &str) -> anyhow::Result<(u64, u64)> {
    let n = q.shards.len();
    let threads = std::thread::available_parallelism()
        .map(|p| p.get())
        .unwrap_or(1)
        .min(n)
        .max(1);
    let results: Vec<anyhow::Result<(u64, u64)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || -> anyhow::Result<(u64, u64)> {
                    let (mut keys, mut pos) = (0, u64::MAX);
                    for shard in (t..n).step_by(threads) {
                        let rows = store.state_read(scope, shard as u32)?;
                        let (k, p) = q
                            .restore_shard(shard, rows.map(|r| r.map_err(|e| e.to_string())))
                            .map_err(|e| anyhow::anyhow!("shard {shard}: {e}"))?;
                        keys += k as u64;
                        pos = pos.min(p);
                    }
                    Ok((keys, pos))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("restore thread panicked")))
            })
            .collect()
    });
    let (mut keys, mut pos) = (0, u64::MAX);
    for r in results {
        let (k, p) = r?;
        keys += k;
        pos = pos.min(p);
    }
    Ok((keys, pos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weir_core::Event;
    use weir_storage::EmbeddedStore;

    fn fresh() -> Insights {
        crate::insights::empty(&crate::config::ServeConfig::default())
    }

    #[test]
    fn the_old_document_is_read_once_as_rows_then_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), &Default::default()).unwrap();
        let mut old = fresh();
        for i in 0..200i64 {
            let fields = json!({"user": format!("u{}", i % 9), "n": i % 4});
            let serde_json::Value::Object(m) = fields else {
                unreachable!()
            };
            old.observe(&Event::new(["a", "b", "c"][i as usize % 3], i * 30_000, m));
        }
        let doc = json!({"seq": 200, "insights": {"keys": &old.keys, "stats": &old.stats}});
        store
            .meta_put(META_INSIGHTS, &serde_json::to_vec(&doc).unwrap())
            .unwrap();

        let mut migrated = fresh();
        let bytes = store.meta_get(META_INSIGHTS).unwrap().unwrap();
        let loaded = migrate_insights(&store, &bytes, &mut migrated).unwrap();
        assert_eq!((loaded.seq, loaded.types), (200, 3));
        assert!(store.meta_get(META_INSIGHTS).unwrap().is_none(), "deleted");

        let mut back = fresh();
        let loaded = load_insights(&store, &mut back).unwrap();
        assert_eq!((loaded.seq, loaded.types), (200, 3));
        assert!(loaded.includes("a", 200) && !loaded.includes("a", 201));
        assert_eq!(back.keys.keys(None), old.keys.keys(None));
        assert_eq!(back.stats.stats(None, 0), old.stats.stats(None, 0));
    }
}
