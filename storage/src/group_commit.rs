//! Group commit: many concurrent writers share one fsync.
//!
//! [`GroupCommit::submit`] queues a batch and returns a [`Receipt`] at once. One writer thread
//! takes everything queued, writes it as a single [`Storage::append`], calls
//! [`Storage::sync`] once, and then completes every receipt of the group. While one fsync
//! runs, new batches queue up and form the next group, so the number of fsyncs adapts to the
//! load with no timer: one submitter gets one fsync per batch, a thousand concurrent ones
//! share a handful.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;

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
}

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
        }
    }

    /// Stop accepting batches, write everything already queued, and wait for the writer.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
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
        let result = write_group(storage, durable, &mut group, c);
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

fn write_group(
    storage: &dyn Storage,
    durable: bool,
    group: &mut [Pending],
    c: &Counters,
) -> Result<()> {
    let started = std::time::Instant::now();
    if let [one] = group {
        storage.append(&one.records, &one.meta)?;
    } else {
        // The group owns its batches: move their records into one list rather than cloning.
        let n = group.iter().map(|p| p.records.len()).sum();
        let mut records: Vec<LogRecord> = Vec::with_capacity(n);
        for p in group.iter_mut() {
            records.append(&mut p.records);
        }
        // One value per meta key, the last submitted winning (a batch must not hold a key twice).
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
        storage.append(&records, &meta)?;
    }
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
