//! What the analytics routes keep about every accepted event (field keys and 48 h stats,
//! seeds 001 and 003), fed from behind the event log, off the event path.
//!
//! The log writer hands every written group's records to [`InsightsFeed`] (a
//! [`weir_storage::group_commit::WrittenHook`]); one thread, the only writer of the
//! [`Insights`], counts them. Records reach it in the order the log wrote them, which is not
//! quite seq order (two requests take ids and queue their batches concurrently), so it
//! counts them in seq order, holding back a record until every lower seq has been seen
//! (denied ones included, which are not counted). Its *watermark* is then exact: the
//! insights include every event up to it and none after, which is what a flush stores and
//! what a restart replays after.
//!
//! **Reads** ([`InsightsFeed::caught_up`]) first wait, at most [`READ_WAIT`], until the
//! watermark reaches the highest seq the log has written so far: an event whose durable add
//! was acknowledged is always in the answer. An asynchronous add (202) is counted once the
//! log writes it, usually within one group commit; until then it is not in the answer.
//!
//! **Snapshots** for a state flush are asked of the thread over its channel: it copies the
//! types that changed since the last one (see [`weir_analytics::insights`]); events never
//! wait for it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{RwLock, RwLockReadGuard};
use weir_analytics::insights::Dirty;
use weir_analytics::{KeyIndex, StatsConfig, StatsSeries};
use weir_storage::group_commit::WrittenHook;
use weir_storage::LogRecord;

pub use weir_analytics::{Insights, Snapshot};

use crate::config::ServeConfig;

/// Longest a read waits for the insights to catch up with the log.
pub const READ_WAIT: Duration = Duration::from_secs(2);

/// Written groups (and other messages) queued for the insights thread before the log writer
/// waits for it: analytics may lag the log, but not without bound.
const QUEUE: usize = 1024;

/// A seq missing this long while later ones wait is given up on (it was never written: the
/// log failed for good, or an id was lost), so the analytics do not stop.
const GAP_TIMEOUT: Duration = Duration::from_secs(30);

/// Replayed records handed over at once.
const REPLAY_CHUNK: usize = 4096;

/// Empty insights with the configured stats granularity.
pub fn empty(cfg: &ServeConfig) -> Insights {
    let stats = StatsSeries::new(StatsConfig {
        granularity_ms: cfg.stats_granularity.as_millis().max(1) as i64,
        ..StatsConfig::default()
    })
    .unwrap_or_default();
    Insights::new(KeyIndex::default(), stats)
}

enum Msg {
    /// A group the log wrote.
    Written(Vec<LogRecord>),
    /// Stored insights, replacing the current ones; a replay follows.
    Load(Box<Insights>),
    /// Records of the log replayed on start, to count as they are (already filtered).
    Replayed(Vec<LogRecord>),
    /// The replay is over: the insights include everything up to the log's end.
    Restored,
    /// Copy what changed since the last snapshot (`None` while a replay is under way).
    Snapshot(mpsc::Sender<Option<Snapshot>>),
    /// A snapshot that could not be written: its changes go into the next.
    Requeue(Dirty),
}

struct Shared {
    insights: RwLock<Insights>,
    /// The watermark: every seq up to it has been seen.
    seen: tokio::sync::watch::Sender<u64>,
    /// The highest seq the log has written (and handed over).
    written: AtomicU64,
}

/// The insights and the channel to the thread that feeds them.
pub struct InsightsFeed {
    tx: mpsc::SyncSender<Msg>,
    shared: Arc<Shared>,
    empty: Insights,
}

impl InsightsFeed {
    /// Start the insights thread; `last_seq` is the highest seq in the log (live records
    /// follow it).
    pub fn start(insights: Insights, last_seq: u64) -> Self {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let empty = insights.clone();
        let shared = Arc::new(Shared {
            insights: RwLock::new(insights),
            seen: tokio::sync::watch::channel(0).0,
            written: AtomicU64::new(last_seq),
        });
        let s = shared.clone();
        std::thread::Builder::new()
            .name("weir-insights".into())
            .spawn(move || Feeder::new(s, last_seq).run(&rx))
            .expect("spawn the insights thread");
        Self { tx, shared, empty }
    }

    /// The hook to give the log writer: it hands each written group to this thread.
    pub fn hook(&self) -> WrittenHook {
        let tx = self.tx.clone();
        let shared = self.shared.clone();
        Box::new(move |records: Vec<LogRecord>| {
            if let Some(max) = records.iter().map(|r| r.seq).max() {
                shared.written.fetch_max(max, Ordering::SeqCst);
            }
            let _ = tx.send(Msg::Written(records));
        })
    }

    /// Empty insights with this server's configuration (to load stored ones into).
    pub fn empty(&self) -> Insights {
        self.empty.clone()
    }

    /// Replace the insights with stored ones (on start, before the replay).
    pub fn load(&self, insights: Insights) {
        let _ = self.tx.send(Msg::Load(Box::new(insights)));
    }

    /// A batcher for the records replayed on start.
    pub fn replay(&self) -> Replay<'_> {
        Replay {
            feed: self,
            chunk: Vec::new(),
        }
    }

    /// Wait (at most [`READ_WAIT`]) until the insights include every record the log has
    /// written so far.
    pub async fn caught_up(&self) {
        let target = self.shared.written.load(Ordering::SeqCst);
        let mut seen = self.shared.seen.subscribe();
        let waited = tokio::time::timeout(READ_WAIT, seen.wait_for(|s| *s >= target)).await;
        if waited.is_err() {
            metrics::counter!("weir_insights_read_timeouts_total").increment(1);
        }
    }

    /// Read the insights (call [`InsightsFeed::caught_up`] first).
    pub fn read(&self) -> RwLockReadGuard<'_, Insights> {
        self.shared.insights.read()
    }

    /// Copy what changed since the last snapshot, taken by the insights thread (blocks the
    /// caller, never an event). `None` while the replay on start is under way.
    pub fn snapshot(&self) -> anyhow::Result<Option<Snapshot>> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(Msg::Snapshot(tx))
            .map_err(|_| anyhow::anyhow!("the insights thread has stopped"))?;
        rx.recv()
            .map_err(|_| anyhow::anyhow!("the insights thread has stopped"))
    }

    /// Hand back a snapshot that could not be written.
    pub fn requeue(&self, snapshot: Snapshot) {
        let _ = self.tx.send(Msg::Requeue(snapshot.into_dirty()));
    }
}

/// Records replayed on start, handed to the insights thread in chunks.
pub struct Replay<'a> {
    feed: &'a InsightsFeed,
    chunk: Vec<LogRecord>,
}

impl Replay<'_> {
    /// Count a replayed record (moved, not copied).
    pub fn push(&mut self, record: LogRecord) {
        self.chunk.push(record);
        if self.chunk.len() >= REPLAY_CHUNK {
            let _ = self
                .feed
                .tx
                .send(Msg::Replayed(std::mem::take(&mut self.chunk)));
        }
    }

    /// The replay is over: the insights include the whole log.
    pub fn finish(mut self) {
        if !self.chunk.is_empty() {
            let _ = self
                .feed
                .tx
                .send(Msg::Replayed(std::mem::take(&mut self.chunk)));
        }
        let _ = self.feed.tx.send(Msg::Restored);
    }
}

/// The insights thread's state.
struct Feeder {
    shared: Arc<Shared>,
    /// The next seq to count.
    next: u64,
    /// Records with a higher seq than `next`, waiting for it.
    held: BTreeMap<u64, LogRecord>,
    /// Since when the lowest held record has waited.
    gap_since: Option<Instant>,
    /// Between a load and the end of its replay: the insights do not yet include the log.
    restoring: bool,
}

impl Feeder {
    fn new(shared: Arc<Shared>, last_seq: u64) -> Self {
        Self {
            shared,
            next: last_seq + 1,
            held: BTreeMap::new(),
            gap_since: None,
            restoring: false,
        }
    }

    fn run(mut self, rx: &mpsc::Receiver<Msg>) {
        loop {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(msg) => self.handle(msg),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            self.skip_stale_gap();
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Written(records) => {
                let shared = self.shared.clone();
                let mut insights = shared.insights.write();
                for r in records {
                    self.take(&mut insights, r);
                }
                drop(insights);
                self.publish();
            }
            Msg::Load(insights) => {
                *self.shared.insights.write() = *insights;
                self.restoring = true;
            }
            Msg::Replayed(records) => {
                let mut insights = self.shared.insights.write();
                for r in records.iter().filter(|r| !r.denied) {
                    insights.observe(&r.event);
                }
            }
            Msg::Restored => {
                self.restoring = false;
                self.publish();
            }
            Msg::Snapshot(reply) => {
                // While restoring the insights are not yet a prefix of the log: nothing is
                // written until the replay ends.
                let snap =
                    (!self.restoring).then(|| self.shared.insights.write().snapshot(self.next - 1));
                let _ = reply.send(snap);
            }
            Msg::Requeue(dirty) => self.shared.insights.write().requeue(dirty),
        }
    }

    /// Count `r` if it is the next seq (and then the held ones that follow), hold it if it
    /// comes early.
    fn take(&mut self, insights: &mut Insights, r: LogRecord) {
        if r.seq < self.next {
            // Late after its gap was given up on: counted, out of order.
            if !r.denied {
                insights.observe(&r.event);
            }
            return;
        }
        if r.seq > self.next {
            if self.held.is_empty() {
                self.gap_since = Some(Instant::now());
            }
            self.held.insert(r.seq, r);
            return;
        }
        if !r.denied {
            insights.observe(&r.event);
        }
        self.next += 1;
        self.drain_held(insights);
    }

    fn drain_held(&mut self, insights: &mut Insights) {
        let before = self.next;
        while let Some(r) = self.held.remove(&self.next) {
            if !r.denied {
                insights.observe(&r.event);
            }
            self.next += 1;
        }
        if self.held.is_empty() {
            self.gap_since = None;
        } else if self.next != before {
            self.gap_since = Some(Instant::now());
        }
    }

    fn skip_stale_gap(&mut self) {
        let Some(since) = self.gap_since else { return };
        if since.elapsed() < GAP_TIMEOUT {
            return;
        }
        let Some(&first) = self.held.keys().next() else {
            self.gap_since = None;
            return;
        };
        tracing::warn!(
            from = self.next,
            to = first - 1,
            "event ids never reached the analytics; counting the later events without them"
        );
        metrics::counter!("weir_insights_gaps_skipped_total").increment(1);
        self.next = first;
        let shared = self.shared.clone();
        let mut insights = shared.insights.write();
        self.drain_held(&mut insights);
        drop(insights);
        self.publish();
    }

    fn publish(&self) {
        if self.restoring {
            return;
        }
        let seen = self.next - 1;
        self.shared.seen.send_replace(seen);
        let written = self.shared.written.load(Ordering::Relaxed);
        metrics::gauge!("weir_insights_lag_events").set(written.saturating_sub(seen) as f64);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Map;
    use weir_core::Event;

    use super::*;

    fn rec(seq: u64, kind: &str, denied: bool) -> LogRecord {
        LogRecord {
            seq,
            event: Event::new(kind, 0, Map::new()),
            denied,
        }
    }

    fn count(feed: &InsightsFeed, kind: &str) -> u64 {
        feed.read().keys.keys(Some(kind))["count"].as_u64().unwrap()
    }

    #[test]
    fn records_count_in_id_order_and_the_watermark_is_a_prefix() {
        let feed = InsightsFeed::start(empty(&ServeConfig::default()), 0);
        let hook = feed.hook();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        // 2 and 4 come before 1 and 3: held, not counted; a snapshot includes nothing.
        hook(vec![rec(2, "a", false), rec(4, "a", false)]);
        let snap = feed.snapshot().unwrap().unwrap();
        assert_eq!((snap.seq, snap.is_empty()), (0, true));
        assert_eq!(count(&feed, "a"), 0);
        let started = Instant::now();
        rt.block_on(feed.caught_up());
        assert!(started.elapsed() >= READ_WAIT, "a read waits for the gap");

        hook(vec![rec(1, "a", false)]);
        let snap = feed.snapshot().unwrap().unwrap();
        assert_eq!((snap.seq, snap.types()), (2, 1));
        assert_eq!(count(&feed, "a"), 2);
        // A denied record closes its gap and counts nowhere.
        hook(vec![rec(3, "b", true)]);
        let snap = feed.snapshot().unwrap().unwrap();
        assert_eq!((snap.seq, snap.types()), (4, 1));
        assert_eq!(count(&feed, "a"), 3);
        assert_eq!(count(&feed, "b"), 0);
        let started = Instant::now();
        rt.block_on(feed.caught_up());
        assert!(started.elapsed() < READ_WAIT, "caught up: no wait");
    }

    #[test]
    fn no_snapshot_while_the_replay_is_under_way() {
        let feed = InsightsFeed::start(empty(&ServeConfig::default()), 10);
        feed.load(feed.empty());
        let mut replay = feed.replay();
        replay.push(rec(9, "a", false));
        assert!(feed.snapshot().unwrap().is_none());
        replay.finish();
        let snap = feed.snapshot().unwrap().unwrap();
        assert_eq!((snap.seq, snap.types()), (10, 1));
        assert_eq!(count(&feed, "a"), 1);
    }
}
