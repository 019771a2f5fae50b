//! Group commit: many concurrent writers share one fsync.
//!
//! [`GroupCommit::submit`] queues a batch and returns a [`Receipt`] at once. One writer thread
//! takes everything queued, writes it as a single [`Storage::append`], calls
//! [`Storage::sync`] once, and then completes every receipt of the group. While one fsync
//! runs, new batches queue up and form the next group, so the number of fsyncs adapts to the
//! load with no timer: one submitter gets one fsync per batch, a thousand concurrent ones
//! share a handful.
//!
//! **Failures.** Every record handed to [`GroupCommit::submit`] has already been applied to
//! the engine under its id, so a failed write must not be forgotten: a later retry of the
//! same events would count them twice. A *transient* failure (a timeout, an unreachable
//! node) is therefore retried by the writer itself, with the same records and ids, with
//! backoff, until it succeeds (or the writer is shut down); while it retries
//! [`GroupCommit::health`] says so, and callers refuse new work *before* applying it. A
//! failure that retrying cannot fix fails its group and stops the writer for good: every
//! later group fails too, so nothing more is acknowledged (and no checkpoint is written)
//! over an engine state the log does not hold. A restart rebuilds the state from the log.
//!
//! **After the write.** A hook set with [`GroupCommit::on_written`] is handed each written
//! group's records (moved: the log no longer needs them) on the writer thread, after the
//! write succeeded and before the group's receipts complete, so whatever it feeds has seen
//! every acknowledged record. The server feeds its analytics from it, off the event path.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::{LogRecord, Result, Storage, StorageError};

/// Most records written as one group; bigger queues are split across groups.
const MAX_GROUP_RECORDS: usize = 64 * 1024;

/// Most meta values (input positions, dedupe markers) merged into one group: the Cassandra
/// backend writes them in one batch with its commit marker, and a CQL batch holds at most
/// 65 535 statements.
const MAX_GROUP_META: usize = 16 * 1024;

struct Pending {
    records: Vec<LogRecord>,
    meta: Vec<(String, Vec<u8>)>,
    done: oneshot::Sender<Result<()>>,
}

#[derive(Default)]
struct Counters {
    submissions: AtomicU64,
    groups: AtomicU64,
    syncs: AtomicU64,
    records: AtomicU64,
    retries: AtomicU64,
    /// [`Health`] as a number (0 ok, 1 retrying, 2 failed).
    health: AtomicU8,
    /// Set when the writer is asked to stop: a retrying group then gives up.
    closing: AtomicBool,
    /// Why the writer failed for good.
    failure: std::sync::Mutex<Option<String>>,
}

/// Whether the log writer is taking new batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Writing normally.
    Ok,
    /// A write failed transiently and is being retried; batches queue behind it.
    Retrying,
    /// A write failed for good (the reason): nothing more will be written until restart.
    Failed(String),
}

impl Health {
    /// `Ok(())` when new work may be applied and queued; otherwise the error to answer with
    /// (transient while retrying).
    pub fn check(&self) -> Result<()> {
        match self {
            Health::Ok => Ok(()),
            Health::Retrying => Err(StorageError::Backend {
                backend: "log",
                message: "the event log is retrying a failed write; try again shortly".into(),
                transient: true,
            }),
            Health::Failed(why) => Err(StorageError::Backend {
                backend: "log",
                message: format!(
                    "the event log stopped after a failed write ({why}); restart the server"
                ),
                transient: false,
            }),
        }
    }
}

/// Longest wait between two attempts at a transiently failing write.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(1);

/// Counters of a [`GroupCommit`] since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupCommitStats {
    /// Batches submitted and written.
    pub submissions: u64,
    /// Groups written (each one `append` call).
    pub groups: u64,
    /// `sync` calls made (0 in non-durable mode).
    pub syncs: u64,
    /// Records written.
    pub records: u64,
    /// Write attempts repeated after a transient failure.
    pub retries: u64,
}

/// Called on the writer thread with each group's records (in seq order within each batch,
/// batches in submission order), after the group was written and before its receipts
/// complete. It should be quick (hand the records over a channel): the next group waits.
pub type WrittenHook = Box<dyn Fn(Vec<LogRecord>) + Send + Sync>;

/// The log writer: a thread that appends queued batches in groups, one fsync per group.
pub struct GroupCommit {
    tx: Option<mpsc::Sender<Pending>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    hook: Arc<OnceLock<WrittenHook>>,
}

impl GroupCommit {
    /// Start the writer thread over `storage`. With `durable == false` it never calls
    /// [`Storage::sync`] (receipts then mean "written", not "durable"; for benchmarks and the
    /// asynchronous mode).
    pub fn start(storage: Arc<dyn Storage>, durable: bool) -> Self {
        let (tx, rx) = mpsc::channel::<Pending>();
        let counters = Arc::new(Counters::default());
        let hook: Arc<OnceLock<WrittenHook>> = Arc::default();
        let (c, h) = (counters.clone(), hook.clone());
        let thread = std::thread::Builder::new()
            .name("weir-log-writer".into())
            .spawn(move || writer_loop(&*storage, durable, &rx, &c, &h))
            .expect("spawn the log writer thread");
        Self {
            tx: Some(tx),
            thread: Some(thread),
            counters,
            hook,
        }
    }

    /// Hand every group written from now on to `hook` (see [`WrittenHook`]). One hook per
    /// writer: `false` (and `hook` dropped) when one is set already.
    pub fn on_written(&self, hook: WrittenHook) -> bool {
        self.hook.set(hook).is_ok()
    }

    /// Queue `records` and the `meta` positions they cover; they are written in one atomic
    /// group. The receipt completes once the group is durable (or has failed).
    pub fn submit(&self, records: Vec<LogRecord>, meta: Vec<(String, Vec<u8>)>) -> Receipt {
        let (done, rx) = oneshot::channel();
        let pending = Pending {
            records,
            meta,
            done,
        };
        if let Some(tx) = &self.tx {
            // If the writer is gone the sender is dropped with the message and the receipt
            // reports `Closed`.
            let _ = tx.send(pending);
        }
        Receipt { rx }
    }

    /// Counters since start.
    pub fn stats(&self) -> GroupCommitStats {
        let c = &self.counters;
        GroupCommitStats {
            submissions: c.submissions.load(Ordering::Relaxed),
            groups: c.groups.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            records: c.records.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
        }
    }

    /// Whether the writer is taking new batches (see the module notes on failures).
    pub fn health(&self) -> Health {
        let c = &self.counters;
        match c.health.load(Ordering::SeqCst) {
            0 => Health::Ok,
            1 => Health::Retrying,
            _ => Health::Failed(
                c.failure
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
                    .unwrap_or_default(),
            ),
        }
    }

    /// Stop accepting batches, write everything already queued, and wait for the writer.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.counters.closing.store(true, Ordering::SeqCst);
        self.tx.take();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the log writer thread panicked");
            }
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.stop();
    }
}

fn writer_loop(
    storage: &dyn Storage,
    durable: bool,
    rx: &mpsc::Receiver<Pending>,
    c: &Counters,
    hook: &OnceLock<WrittenHook>,
) {
    // Blocks for the first batch of each group; ends when every sender is gone and the
    // queue is empty.
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        let mut n = group[0].records.len();
        let mut m = group[0].meta.len();
        while n < MAX_GROUP_RECORDS && m < MAX_GROUP_META {
            match rx.try_recv() {
                Ok(p) => {
                    n += p.records.len();
                    m += p.meta.len();
                    group.push(p);
                }
                Err(_) => break,
            }
        }
        let (records, meta) = take_records(&mut group);
        let failed = c.failure.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let result = match failed {
            Some(why) => Health::Failed(why).check(),
            None => write_group(storage, durable, &records, &meta, c),
        };
        match &result {
            Err(e) => {
                tracing::error!(error = %e, batches = group.len(), "writing a log group failed")
            }
            Ok(()) => {
                if let Some(hook) = hook.get().filter(|_| !records.is_empty()) {
                    hook(records);
                }
            }
        }
        c.submissions
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        c.records.fetch_add(n as u64, Ordering::Relaxed);
        for p in group {
            let _ = p.done.send(result.clone());
        }
    }
}

/// Write one group, retrying transient failures with the same records until they succeed
/// or the writer is stopped; any other failure stops the writer for good.
fn write_group(
    storage: &dyn Storage,
    durable: bool,
    records: &[LogRecord],
    meta: &[(String, Vec<u8>)],
    c: &Counters,
) -> Result<()> {
    let mut wait = Duration::from_millis(10);
    loop {
        match write_once(storage, durable, records, meta, c) {
            Ok(()) => {
                c.health.store(0, Ordering::SeqCst);
                return Ok(());
            }
            Err(e) if e.is_transient() && !c.closing.load(Ordering::SeqCst) => {
                c.health.store(1, Ordering::SeqCst);
                c.retries.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("weir_log_write_retries_total").increment(1);
                tracing::warn!(error = %e, records = records.len(), retry_in_ms = wait.as_millis() as u64,
                    "writing a log group failed transiently; retrying the same records");
                std::thread::sleep(wait);
                wait = (wait * 2).min(MAX_RETRY_WAIT);
            }
            Err(e) => {
                // Given up (for good, or at shutdown): no later group may be written, or
                // the log would hold a later batch (and its input positions) without this one.
                *c.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                c.health.store(2, Ordering::SeqCst);
                metrics::gauge!("weir_log_failed").set(1.0);
                return Err(e);
            }
        }
    }
}

/// The records and meta of a group's batches, moved out of them.
fn take_records(group: &mut [Pending]) -> (Vec<LogRecord>, Vec<(String, Vec<u8>)>) {
    if let [one] = group {
        (
            std::mem::take(&mut one.records),
            std::mem::take(&mut one.meta),
        )
    } else {
        merge(group)
    }
}

/// The records and meta of several batches as one: the group owns its batches, so their
/// records are moved rather than cloned. One value per meta key, the last submitted winning
/// (a batch must not hold a key twice).
fn merge(group: &mut [Pending]) -> (Vec<LogRecord>, Vec<(String, Vec<u8>)>) {
    let n = group.iter().map(|p| p.records.len()).sum();
    let mut records: Vec<LogRecord> = Vec::with_capacity(n);
    for p in group.iter_mut() {
        records.append(&mut p.records);
    }
    let mut meta: Vec<(String, Vec<u8>)> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for (k, v) in group.iter_mut().flat_map(|p| p.meta.drain(..)) {
        match at.get(&k) {
            Some(&i) => meta[i].1 = v,
            None => {
                at.insert(k.clone(), meta.len());
                meta.push((k, v));
            }
        }
    }
    (records, meta)
}

/// One attempt: append (idempotent: the same seqs give the same keys) and fsync.
fn write_once(
    storage: &dyn Storage,
    durable: bool,
    records: &[LogRecord],
    meta: &[(String, Vec<u8>)],
    c: &Counters,
) -> Result<()> {
    let started = std::time::Instant::now();
    storage.append(records, meta)?;
    c.groups.fetch_add(1, Ordering::Relaxed);
    if durable {
        let syncing = std::time::Instant::now();
        storage.sync()?;
        c.syncs.fetch_add(1, Ordering::Relaxed);
        metrics::histogram!("weir_log_fsync_duration_seconds")
            .record(syncing.elapsed().as_secs_f64());
    }
    // One group's append (and fsync): how long a flush of the event log takes.
    metrics::histogram!("weir_log_flush_duration_seconds").record(started.elapsed().as_secs_f64());
    Ok(())
}

/// The answer to one [`GroupCommit::submit`]: `Ok(())` once its batch is durable. Await it in
/// async code, or call [`Receipt::wait_blocking`] from a blocking thread.
#[must_use = "a receipt says whether the batch was written"]
pub struct Receipt {
    rx: oneshot::Receiver<Result<()>>,
}

impl Receipt {
    /// Block the current thread until the batch is durable. Must not be called from inside an
    /// async runtime's worker thread (it would block it; tokio panics there).
    pub fn wait_blocking(self) -> Result<()> {
        self.rx.blocking_recv().unwrap_or(Err(StorageError::Closed))
    }
}

impl Future for Receipt {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(StorageError::Closed)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::EmbeddedStore;

    fn record(seq: u64) -> LogRecord {
        LogRecord {
            seq,
            event: weir_core::Event::new("t", 0, serde_json::Map::new()),
            denied: false,
        }
    }

    #[test]
    fn the_hook_has_each_group_before_its_receipt_completes() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Storage> =
            Arc::new(EmbeddedStore::open(dir.path(), &Default::default()).unwrap());
        let gc = GroupCommit::start(store, true);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        assert!(gc.on_written(Box::new(move |records: Vec<LogRecord>| {
            s.lock().unwrap().extend(records.iter().map(|r| r.seq));
        })));
        assert!(!gc.on_written(Box::new(|_| {})), "one hook per writer");
        let receipts: Vec<(u64, Receipt)> = (1..=200)
            .map(|seq| (seq, gc.submit(vec![record(seq)], Vec::new())))
            .collect();
        for (seq, r) in receipts {
            r.wait_blocking().unwrap();
            assert!(
                seen.lock().unwrap().contains(&seq),
                "{seq} acknowledged unseen"
            );
        }
        gc.submit(Vec::new(), Vec::new()).wait_blocking().unwrap();
        assert_eq!(*seen.lock().unwrap(), (1..=200).collect::<Vec<u64>>());
    }
}
