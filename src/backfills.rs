//! Backfills in progress, by query name: what `GET /api/queries/{name}` shows while a
//! created or replaced query is built from stored events (see `backfill`).

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{json, Value};

/// A backfill in progress, shown by `GET /api/queries/{name}`.
#[derive(Debug, Clone)]
pub struct Progress {
    /// The new definition.
    pub text: String,
    /// Events replayed so far.
    pub replayed: u64,
    /// Events to replay (an upper bound: it counts the whole range).
    pub total: u64,
    /// When it started.
    pub started: Instant,
}

impl Progress {
    /// `status`, `progress` (0..1), events replayed, ETA in seconds.
    pub fn json(&self) -> Value {
        let progress = if self.total == 0 {
            1.0
        } else {
            (self.replayed as f64 / self.total as f64).min(1.0)
        };
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta = (progress > 0.0).then(|| elapsed * (1.0 - progress) / progress);
        json!({
            "status": "backfilling",
            "progress": progress,
            "replayed": self.replayed,
            "total": self.total,
            "eta_seconds": eta,
        })
    }
}

/// Backfills in progress by query name.
pub type Backfills = parking_lot::Mutex<HashMap<String, Progress>>;
