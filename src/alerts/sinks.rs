//! The sinks' delivery: one task per sink reads the outbox (`alert-outbox/…`) from its
//! durable cursor (`alert-sink/{name}`), delivers each change in order, retrying with
//! exponential backoff (100 ms doubling, capped at `max_backoff`), and advances the cursor
//! only after a delivery succeeded. A receiver that was down gets every change afterwards,
//! in order; a crash between a delivery and its cursor write delivers that one change again
//! (the sinks make that harmless: Redis writes are idempotent, webhooks carry an
//! `Idempotency-Key`).
//!
//! The tasks are woken by the decision path (a `Notify`, never awaited there) and also look
//! every `poll_interval`. Outcomes are counted in `weir_alert_sink_deliveries_total{sink,
//! outcome}`, the backlog in `weir_alert_sink_backlog{sink}`, and shown by
//! `GET /api/alerts/sinks`.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use utoipa::ToSchema;

use super::record::{self, OutboxEntry};
use super::redis::RedisSink;
use super::webhook::WebhookSink;
use super::Alerts;
use crate::store::Store;

/// Outbox entries read at a time.
const PAGE: usize = 256;
/// The first retry's wait.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// One sink's counters, as `GET /api/alerts/sinks` shows them.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct SinkStatus {
    /// `redis` or `webhook`.
    pub name: String,
    /// Where it delivers (passwords hidden).
    pub target: String,
    /// Changes delivered since start.
    pub delivered: u64,
    /// Failed attempts since start.
    pub failures: u64,
    /// The outbox number of the next change to deliver.
    pub cursor: u64,
    /// Changes in the outbox not yet delivered.
    pub backlog: u64,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// When it happened (unix ms).
    pub last_error_at: Option<i64>,
}

/// The counters of every running sink.
#[derive(Debug, Default)]
pub struct SinkRegistry(Mutex<Vec<Arc<Mutex<SinkStatus>>>>);

impl SinkRegistry {
    fn add(&self, name: &str, target: String) -> Arc<Mutex<SinkStatus>> {
        let s = Arc::new(Mutex::new(SinkStatus {
            name: name.into(),
            target,
            ..Default::default()
        }));
        self.0.lock().push(s.clone());
        s
    }

    /// A copy of every sink's counters, backlog computed now.
    pub fn statuses(&self, outbox_next: u64) -> Vec<SinkStatus> {
        self.0
            .lock()
            .iter()
            .map(|s| {
                let mut s = s.lock().clone();
                s.backlog = outbox_next.saturating_sub(s.cursor);
                s
            })
            .collect()
    }
}

/// A configured sink.
pub enum Sink {
    /// Hashes in Redis.
    Redis(RedisSink),
    /// POSTs.
    Webhook(WebhookSink),
}

impl Sink {
    async fn deliver(&mut self, entry: &OutboxEntry) -> Result<(), String> {
        match self {
            Sink::Redis(s) => s.deliver(entry).await,
            Sink::Webhook(s) => s.deliver(entry).await,
        }
    }
}

/// Start a task for each configured sink.
pub fn start(alerts: &Arc<Alerts>, store: &Store) -> Vec<tokio::task::JoinHandle<()>> {
    let cfg = alerts.cfg().clone();
    let mut sinks: Vec<(&str, String, Sink)> = Vec::new();
    if let Some(r) = cfg.redis {
        let target = super::resp::redact(&r.url);
        sinks.push(("redis", target, Sink::Redis(RedisSink::new(r))));
    }
    if let Some(w) = cfg.webhook {
        let target = super::resp::redact(&w.url);
        sinks.push(("webhook", target, Sink::Webhook(WebhookSink::new(w))));
    }
    sinks
        .into_iter()
        .map(|(name, target, sink)| {
            tracing::info!(sink = name, %target, "alert sink started");
            let stats = alerts.sink_stats.add(name, target);
            let wake = alerts.add_waker();
            let run = Runner {
                name: name.to_string(),
                alerts: alerts.clone(),
                store: store.clone(),
                stats,
                wake,
                max_backoff: cfg.max_backoff.max(FIRST_BACKOFF),
                poll: cfg.poll_interval,
            };
            tokio::spawn(run.run(sink))
        })
        .collect()
}

struct Runner {
    name: String,
    alerts: Arc<Alerts>,
    store: Store,
    stats: Arc<Mutex<SinkStatus>>,
    wake: Arc<tokio::sync::Notify>,
    max_backoff: Duration,
    poll: Duration,
}

impl Runner {
    async fn run(self, mut sink: Sink) {
        let cursor_key = record::cursor_key(&self.name);
        let mut after: Option<String> = self
            .retry_store("reading its cursor", {
                let k = cursor_key.clone();
                move |s| s.meta_get(&k)
            })
            .await
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        self.set_cursor(after.as_deref());
        loop {
            let page = self
                .retry_store("reading the outbox", {
                    let after = after.clone();
                    move |s| s.meta_scan(record::OUTBOX, after.as_deref(), PAGE)
                })
                .await;
            if page.is_empty() {
                tokio::select! {
                    _ = self.wake.notified() => {
                        // The change is submitted; give the log a moment to make it durable.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    _ = tokio::time::sleep(self.poll) => {}
                }
                continue;
            }
            for (key, value) in page {
                match serde_json::from_slice::<OutboxEntry>(&value) {
                    Ok(entry) => self.deliver(&mut sink, &entry).await,
                    Err(e) => {
                        tracing::error!(sink = %self.name, key, error = %e, "skipping an unreadable outbox entry")
                    }
                }
                let (k, v) = (cursor_key.clone(), key.clone());
                self.retry_store("writing its cursor", move |s| s.meta_put(&k, v.as_bytes()))
                    .await;
                self.set_cursor(Some(&key));
                after = Some(key);
            }
        }
    }

    /// Deliver one change, retrying until it is delivered.
    async fn deliver(&self, sink: &mut Sink, entry: &OutboxEntry) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match sink.deliver(entry).await {
                Ok(()) => {
                    metrics::counter!("weir_alert_sink_deliveries_total", "sink" => self.name.clone(), "outcome" => "ok").increment(1);
                    self.stats.lock().delivered += 1;
                    return;
                }
                Err(e) => {
                    metrics::counter!("weir_alert_sink_deliveries_total", "sink" => self.name.clone(), "outcome" => "error").increment(1);
                    tracing::warn!(sink = %self.name, alert = entry.alert.id,
                        account = %entry.alert.account_id, error = %e, retry_in_ms = backoff.as_millis() as u64,
                        "an alert could not be delivered; retrying");
                    {
                        let mut s = self.stats.lock();
                        s.failures += 1;
                        s.last_error = Some(e);
                        s.last_error_at = Some(weir_core::Clock::now_ms(&weir_core::SystemClock));
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.max_backoff);
                }
            }
        }
    }

    fn set_cursor(&self, last: Option<&str>) {
        let cursor = last.and_then(record::outbox_seq).map_or(0, |s| s + 1);
        self.stats.lock().cursor = cursor;
        let backlog = self.alerts.outbox_next().saturating_sub(cursor);
        metrics::gauge!("weir_alert_sink_backlog", "sink" => self.name.clone()).set(backlog as f64);
    }

    /// Run a storage call, retrying (every second) until it succeeds.
    async fn retry_store<R, F>(&self, what: &str, f: F) -> R
    where
        F: Fn(&dyn weir_storage::Storage) -> weir_storage::Result<R>
            + Send
            + Sync
            + Clone
            + 'static,
        R: Send + 'static,
    {
        loop {
            let f = f.clone();
            match self.store.run(move |s| f(s)).await {
                Ok(r) => return r,
                Err(e) => {
                    tracing::warn!(sink = %self.name, error = %e, "alert sink: {what} failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}
