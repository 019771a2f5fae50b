//! What the analytics routes keep about every accepted event (field keys and 48 h stats,
//! seeds 001 and 003); flushed with the query state.

use serde::{Deserialize, Serialize};
use weir_analytics::{KeyIndex, StatsConfig, StatsSeries};
use weir_core::Event;

use crate::config::ServeConfig;

/// What the analytics routes keep about every accepted event; flushed with the query state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Insights {
    /// Field names and their most frequent values, per type.
    pub keys: KeyIndex,
    /// Counts per type in time buckets over the last 48 h.
    pub stats: StatsSeries,
}

impl Insights {
    /// Empty insights with the configured stats granularity.
    pub fn new(cfg: &ServeConfig) -> Self {
        let stats = StatsSeries::new(StatsConfig {
            granularity_ms: cfg.stats_granularity.as_millis().max(1) as i64,
            ..StatsConfig::default()
        })
        .unwrap_or_default();
        Self {
            keys: KeyIndex::default(),
            stats,
        }
    }

    /// Count one accepted event.
    pub fn observe(&mut self, event: &Event) {
        self.keys.observe(event);
        self.stats.observe(event);
    }
}
