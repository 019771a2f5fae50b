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

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::{LogRecord, Result, Storage, StorageError};

/// Most records written as one group; bigger queues are split across groups.
const MAX_GROUP_RECORDS: usize = 64 * 1024;

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

/// The log writer: a thread that appends queued batches in groups, one fsync per group.
pub struct GroupCommit {
    tx: Option<mpsc::Sender<Pending>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl GroupCommit {
    /// Start the writer thread over `storage`. With `durable == false` it never calls
    /// [`Storage::sync`] (receipts then mean "written", not "durable"; for benchmarks and the
    /// asynchronous mode).
    pub fn start(storage: Arc<dyn Storage>, durable: bool) -> Self {
        let (tx, rx) = mpsc::channel::<Pending>();
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let thread = std::thread::Builder::new()
            .name("weir-log-writer".into())
            .spawn(move || writer_loop(&*storage, durable, &rx, &c))
            .expect("spawn the log writer thread");
        Self {
            tx: Some(tx),
            thread: Some(thread),
            counters,
        }
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

fn writer_loop(storage: &dyn Storage, durable: bool, rx: &mpsc::Receiver<Pending>, c: &Counters) {
    // Blocks for the first batch of each group; ends when every sender is gone and the
    // queue is empty.
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        let mut n = group[0].records.len();
        while n < MAX_GROUP_RECORDS {
            match rx.try_recv() {
                Ok(p) => {
                    n += p.records.len();
                    group.push(p);
                }
                Err(_) => break,
            }
        }
        let failed = c.failure.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let result = match failed {
            Some(why) => Health::Failed(why).check(),
            None => write_group(storage, durable, &mut group, c),
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, batches = group.len(), "writing a log group failed");
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
    group: &mut [Pending],
    c: &Counters,
) -> Result<()> {
    let merged;
    let (records, meta): (&[LogRecord], &[(String, Vec<u8>)]) = if let [one] = group {
        (&one.records, &one.meta)
    } else {
        merged = merge(group);
        (&merged.0, &merged.1)
    };
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
