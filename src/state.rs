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
//! The analytics keys and stats are small and bounded (per type and field, 48 h of buckets):
//! they are flushed as one document with the event id they include.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use weir_engine::persist::MARK_KEY;
use weir_engine::QueryRt;
use weir_storage::{StateKeyWrite, Storage};

use parking_lot::Mutex as PlMutex;
use weir_engine::Engine;

use crate::insights::Insights;

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
    /// A copy of the insights and the highest event id they include.
    fn insights_snapshot(&self) -> (u64, Insights);
    /// The live insights.
    fn insights(&self) -> &PlMutex<Insights>;
}

const META_QUERY: &str = "state/q/";
const META_GEN: &str = "state/generation";
const META_INSIGHTS: &str = "state/insights";

/// Which stored scope holds a query's complete state, and what it was built for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct QueryState {
    scope: String,
    shape: String,
    shards: usize,
}

#[derive(Serialize)]
struct InsightsRef<'a> {
    seq: u64,
    insights: &'a Insights,
}

#[derive(Deserialize)]
struct InsightsDoc {
    seq: u64,
    insights: Insights,
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
}

/// What a restore found.
#[derive(Debug, Default)]
pub struct Restored {
    /// Replay the log after this event id.
    pub from: u64,
    /// Events up to this id are in the restored analytics already.
    pub insights_seq: u64,
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
            tracing::debug!(keys = f.keys, rows = f.rows, "state flushed");
        }
        result
    }

    fn flush_inner(&self, app: &dyn StateHost) -> anyhow::Result<Flushed> {
        let mut versions = self.versions.lock();
        let store = app.store();
        let (insights_seq, insights) = app.insights_snapshot();
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
        let doc = InsightsRef {
            seq: insights_seq,
            insights: &insights,
        };
        store.meta_put(META_INSIGHTS, &serde_json::to_vec(&doc)?)?;
        store.sync()?;
        Ok(flushed)
    }

    /// Load every query's persisted state (shards in parallel) and the analytics; say where
    /// the replay of the log starts and which queries must be rebuilt.
    pub fn restore(&self, app: &dyn StateHost) -> anyhow::Result<Restored> {
        let store = app.store();
        let mut out = Restored::default();
        let mut from = 0;
        if let Some(bytes) = store.meta_get(META_INSIGHTS)? {
            let doc: InsightsDoc =
                serde_json::from_slice(&bytes).context("reading the stored analytics")?;
            let mut insights = app.insights().lock();
            if doc.insights.stats.config().granularity_ms == insights.stats.config().granularity_ms
            {
                *insights = doc.insights;
            } else {
                tracing::warn!(
                    "stats_granularity changed since the last flush: stats restart from the log tail"
                );
                insights.keys = doc.insights.keys;
            }
            out.insights_seq = doc.seq;
            from = doc.seq;
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
