//! Per-input counters: atomics readable through [`InputStats`] (for tests and the API), each
//! change mirrored to the `metrics` facade for the Prometheus endpoint:
//! `weir_input_received_total`, `weir_input_accepted_total`, `weir_input_invalid_total`,
//! `weir_input_duplicate_total` (counters) and `weir_input_lag`, `weir_input_dedupe_markers`
//! (gauges), all labelled `input=<name>`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Counters of one input.
///
/// - `received`: payloads read (datagrams, AMQP deliveries, Kafka records);
/// - `accepted`: events made durable by the sink;
/// - `invalid`: malformed payloads or items, dropped/rejected/skipped;
/// - `duplicates`: payloads skipped because they were already applied (AMQP redelivery,
///   Kafka records below the stored position);
/// - `lag`: how far behind the input is, where that is known (Kafka: high watermark minus
///   position, summed over assigned partitions; AMQP: ready messages when last connected);
/// - `markers`: AMQP dedupe markers kept after the last prune (`-1` before the first one).
#[derive(Debug)]
pub struct InputStats {
    name: String,
    received: AtomicU64,
    accepted: AtomicU64,
    invalid: AtomicU64,
    duplicates: AtomicU64,
    lag: AtomicI64,
    markers: AtomicI64,
}

impl InputStats {
    /// Counters for the input called `name` (the `input` label: `udp`, `amqp`, `kafka`).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            received: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            lag: AtomicI64::new(0),
            markers: AtomicI64::new(-1),
        }
    }

    /// The input's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Payloads read so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Events made durable so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Malformed payloads or items so far.
    pub fn invalid(&self) -> u64 {
        self.invalid.load(Ordering::Relaxed)
    }

    /// Payloads skipped as already applied.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    /// Last known lag.
    pub fn lag(&self) -> i64 {
        self.lag.load(Ordering::Relaxed)
    }

    /// Dedupe markers kept after the last prune; `None` before the first prune.
    pub fn markers(&self) -> Option<u64> {
        u64::try_from(self.markers.load(Ordering::SeqCst)).ok()
    }

    /// Prunes done so far are reflected here: set the markers kept.
    pub fn set_markers(&self, kept: u64) {
        self.markers.store(kept as i64, Ordering::SeqCst);
        metrics::gauge!("weir_input_dedupe_markers", "input" => self.name.clone()).set(kept as f64);
    }

    /// Count `n` payloads read.
    pub fn add_received(&self, n: u64) {
        self.received.fetch_add(n, Ordering::Relaxed);
        metrics::counter!("weir_input_received_total", "input" => self.name.clone()).increment(n);
    }

    /// Count `n` events made durable.
    pub fn add_accepted(&self, n: u64) {
        self.accepted.fetch_add(n, Ordering::Relaxed);
        metrics::counter!("weir_input_accepted_total", "input" => self.name.clone()).increment(n);
    }

    /// Count `n` malformed payloads or items.
    pub fn add_invalid(&self, n: u64) {
        self.invalid.fetch_add(n, Ordering::Relaxed);
        metrics::counter!("weir_input_invalid_total", "input" => self.name.clone()).increment(n);
    }

    /// Count `n` payloads skipped as already applied.
    pub fn add_duplicates(&self, n: u64) {
        self.duplicates.fetch_add(n, Ordering::Relaxed);
        metrics::counter!("weir_input_duplicate_total", "input" => self.name.clone()).increment(n);
    }

    /// Set the lag.
    pub fn set_lag(&self, lag: i64) {
        self.lag.store(lag, Ordering::Relaxed);
        metrics::gauge!("weir_input_lag", "input" => self.name.clone()).set(lag as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up() {
        let s = InputStats::new("udp");
        s.add_received(3);
        s.add_received(2);
        s.add_accepted(4);
        s.add_invalid(1);
        s.add_duplicates(2);
        s.set_lag(7);
        assert_eq!(
            (
                s.received(),
                s.accepted(),
                s.invalid(),
                s.duplicates(),
                s.lag()
            ),
            (5, 4, 1, 2, 7)
        );
        assert_eq!(s.name(), "udp");
    }
}
