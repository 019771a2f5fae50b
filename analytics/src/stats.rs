//! Event counts per type in time buckets over the last 48 h (`GET /api/stats[/:type]`,
//! seed 003).
//!
//! Each type has a ring of `retention / granularity` buckets (rounded up), so an event costs
//! O(1): one hash lookup and one slot update. Time is event time (SPEC section 3): the
//! window ends with the bucket holding the latest event time seen (the watermark) and
//! reaches back `retention`; events older than the window are not counted (see
//! [`StatsSeries::dropped`]). Counts are numbers of events (samplerate is not applied: these
//! are ingestion statistics).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use weir_core::{Event, Millis};

use crate::error::{AnalyticsError, Result};

/// Bucket width and window length of a [`StatsSeries`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatsConfig {
    /// Bucket width in ms (default 60 000, one minute).
    pub granularity_ms: Millis,
    /// How far back from the latest event the window reaches, in ms (default 48 h).
    pub retention_ms: Millis,
    /// Types kept; events of further types count only in [`StatsSeries::dropped`]
    /// (default 1000).
    pub max_types: usize,
}

impl Default for StatsConfig {
    fn default() -> Self {
        Self {
            granularity_ms: 60_000,
            retention_ms: 48 * 3_600_000,
            max_types: 1000,
        }
    }
}

/// Most buckets a ring may have, so a tiny granularity cannot exhaust memory.
const MAX_BUCKETS: i64 = 1 << 20;

/// One type's ring: slot `i` holds (bucket index, count) for a bucket index ≡ i (mod len).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Ring {
    slots: Vec<(i64, u64)>,
}

/// Per-type bucketed counts over a sliding 48 h. Serializable for checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsSeries {
    config: StatsConfig,
    buckets: i64,
    watermark: Option<Millis>,
    types: HashMap<String, Ring>,
    dropped: u64,
}

impl Default for StatsSeries {
    fn default() -> Self {
        Self::new(StatsConfig::default()).expect("the default configuration is valid")
    }
}

impl StatsSeries {
    /// An empty series. Refuses a granularity ≤ 0, a retention shorter than one bucket, or
    /// more than 2^20 buckets.
    pub fn new(config: StatsConfig) -> Result<Self> {
        let g = config.granularity_ms;
        if g <= 0 {
            return Err(AnalyticsError::InvalidConfig(format!(
                "stats granularity must be positive, got {g} ms"
            )));
        }
        if config.retention_ms < g {
            return Err(AnalyticsError::InvalidConfig(format!(
                "stats retention ({} ms) must be at least the granularity ({g} ms)",
                config.retention_ms
            )));
        }
        let buckets = (config.retention_ms + g - 1) / g;
        if buckets > MAX_BUCKETS {
            return Err(AnalyticsError::InvalidConfig(format!(
                "stats retention / granularity gives {buckets} buckets; at most {MAX_BUCKETS}"
            )));
        }
        Ok(Self {
            config,
            buckets,
            watermark: None,
            types: HashMap::new(),
            dropped: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &StatsConfig {
        &self.config
    }

    /// The latest event time seen.
    pub fn watermark(&self) -> Option<Millis> {
        self.watermark
    }

    /// Events not counted: older than the window when they came, or of a type over the limit.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Count one event.
    pub fn observe(&mut self, ev: &Event) {
        self.observe_at(&ev.kind, ev.ts);
    }

    /// Count one event of type `kind` at `ts`. Returns the index (`ts / granularity`) of the
    /// bucket it was counted in, or `None` when it was dropped.
    pub fn observe_at(&mut self, kind: &str, ts: Millis) -> Option<i64> {
        let g = self.config.granularity_ms;
        let wm = self.watermark.map_or(ts, |w| w.max(ts));
        self.watermark = Some(wm);
        let idx = ts.div_euclid(g);
        if idx <= wm.div_euclid(g) - self.buckets {
            self.dropped += 1;
            return None;
        }
        if !self.types.contains_key(kind) {
            if self.types.len() >= self.config.max_types {
                self.dropped += 1;
                return None;
            }
            self.insert_ring(kind);
        }
        let ring = self.types.get_mut(kind)?;
        let slot = &mut ring.slots[idx.rem_euclid(self.buckets) as usize];
        if slot.0 != idx {
            *slot = (idx, 0);
        }
        slot.1 += 1;
        Some(idx)
    }

    fn insert_ring(&mut self, kind: &str) {
        let slots = vec![(i64::MIN, 0); self.buckets as usize];
        self.types.insert(kind.to_string(), Ring { slots });
    }

    /// The types with a ring, in no particular order.
    pub fn type_names(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    /// Whether `kind` has a ring (it had an event counted, or was restored).
    pub fn has_type(&self, kind: &str) -> bool {
        self.types.contains_key(kind)
    }

    /// The count of bucket `idx` of `kind`, if its slot still holds that bucket.
    pub fn bucket(&self, kind: &str, idx: i64) -> Option<u64> {
        let ring = self.types.get(kind)?;
        let slot = ring.slots[idx.rem_euclid(self.buckets) as usize];
        (slot.0 == idx && slot.1 > 0).then_some(slot.1)
    }

    /// The non-empty buckets of `kind` as (bucket index, count), in slot order.
    pub fn buckets_of(&self, kind: &str) -> Vec<(i64, u64)> {
        self.types.get(kind).map_or_else(Vec::new, |r| {
            r.slots.iter().filter(|(_, c)| *c > 0).copied().collect()
        })
    }

    /// The highest bucket index that is out of the window (`None` before any event): rows of
    /// buckets up to it can be forgotten.
    pub fn expired_through(&self) -> Option<i64> {
        let g = self.config.granularity_ms;
        self.watermark.map(|w| w.div_euclid(g) - self.buckets)
    }

    /// Put back one type's ring, empty (restoring persisted state); refused (`false`) when
    /// `max_types` other types are kept.
    pub fn restore_type(&mut self, kind: &str) -> bool {
        if self.types.contains_key(kind) {
            return true;
        }
        if self.types.len() >= self.config.max_types {
            return false;
        }
        self.insert_ring(kind);
        true
    }

    /// Put back one bucket of a restored type. When two restored buckets share a slot the
    /// newer one is kept (the older one had left the window).
    pub fn restore_bucket(&mut self, kind: &str, idx: i64, count: u64) {
        let buckets = self.buckets;
        if let Some(ring) = self.types.get_mut(kind) {
            let slot = &mut ring.slots[idx.rem_euclid(buckets) as usize];
            if slot.1 == 0 || slot.0 < idx {
                *slot = (idx, count);
            }
        }
    }

    /// Put back the latest event time seen (the larger of it and the current one) and the
    /// count of dropped events.
    pub fn restore_totals(&mut self, watermark: Option<Millis>, dropped: u64) {
        self.watermark = self.watermark.max(watermark);
        self.dropped = dropped;
    }

    /// The answer of `GET /api/stats[/:type]`:
    /// `{"granularity_ms","from","to","total","types":{T:{"total","buckets":[{"start","count"}]}}}`.
    ///
    /// The window is `[from, to)`: `to` is the end of the bucket holding the latest event
    /// time (or `now_ms` before any event), `from` is `retention` earlier (rounded to whole
    /// buckets). Only non-empty buckets are listed, oldest first. With a type, only that
    /// type is listed (even when it has no events); without, every type with events in the
    /// window.
    pub fn stats(&self, ty: Option<&str>, now_ms: Millis) -> Value {
        self.stats_in(&crate::scope::Scope::default(), ty, now_ms)
    }

    /// [`StatsSeries::stats`] over the types of one tenant's `scope`.
    pub fn stats_in(&self, scope: &crate::scope::Scope, ty: Option<&str>, now_ms: Millis) -> Value {
        let g = self.config.granularity_ms;
        let cur = self.watermark.unwrap_or(now_ms).div_euclid(g);
        let first = cur - self.buckets + 1;
        let stored_ty = ty.map(|t| scope.stored(t));
        let mut names: Vec<(&str, &str)> = match (ty, &stored_ty) {
            (Some(t), Some(s)) => vec![(t, s.as_str())],
            _ => self
                .types
                .keys()
                .filter_map(|s| scope.own(s).map(|t| (t, s.as_str())))
                .collect(),
        };
        names.sort_unstable();
        let mut total = 0u64;
        let mut types = Map::new();
        for (name, stored) in names {
            let mut buckets: Vec<(i64, u64)> = self
                .types
                .get(stored)
                .map(|r| {
                    r.slots
                        .iter()
                        .filter(|(i, c)| *c > 0 && *i >= first && *i <= cur)
                        .copied()
                        .collect()
                })
                .unwrap_or_default();
            if buckets.is_empty() && ty.is_none() {
                continue;
            }
            buckets.sort_unstable();
            let t: u64 = buckets.iter().map(|(_, c)| c).sum();
            total += t;
            let buckets: Vec<Value> = buckets
                .into_iter()
                .map(|(i, c)| json!({"start": i * g, "count": c}))
                .collect();
            types.insert(name.to_string(), json!({"total": t, "buckets": buckets}));
        }
        json!({
            "granularity_ms": g,
            "from": first * g,
            "to": (cur + 1) * g,
            "total": total,
            "types": types,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_configs_are_refused() {
        let bad = |g, r| {
            StatsSeries::new(StatsConfig {
                granularity_ms: g,
                retention_ms: r,
                max_types: 10,
            })
            .is_err()
        };
        assert!(bad(0, 1000));
        assert!(bad(1000, 999));
        assert!(bad(1, 48 * 3_600_000));
        assert!(!bad(1000, 1000));
    }

    #[test]
    fn empty_series_reads_around_now() {
        let s = StatsSeries::default();
        let ans = s.stats(Some("click"), 120_500);
        assert_eq!(ans["to"], 180_000);
        assert_eq!(ans["from"], 180_000 - 48 * 3_600_000);
        assert_eq!(ans["types"]["click"], json!({"total": 0, "buckets": []}));
    }
}
