//! Reading alerts back from the store's meta data: the listings of `GET /api/alerts`, and
//! the counters and open episodes on start.

use std::collections::HashMap;

use serde::Deserialize;
use weir_storage::{Result, Storage};

use super::record::{self, Alert};
use super::Alerts;

/// Keys read per meta page.
const PAGE: usize = 1000;

/// Every alert of one account, in id order.
pub fn account_alerts(store: &dyn Storage, account: &str) -> Result<Vec<Alert>> {
    scan(store, &record::account_prefix(account))
}

/// Every alert under `prefix`, in key order (values that do not parse are skipped, logged).
fn scan(store: &dyn Storage, prefix: &str) -> Result<Vec<Alert>> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.meta_scan(prefix, after.as_deref(), PAGE)?;
        let Some((last, _)) = page.last() else {
            return Ok(out);
        };
        after = Some(last.clone());
        for (k, v) in page {
            match serde_json::from_slice::<Alert>(&v) {
                Ok(a) => out.push(a),
                Err(e) => tracing::warn!(key = %k, error = %e, "skipping an unreadable alert"),
            }
        }
    }
}

/// Restore the per-account counters (highest stored id + 1), the open episodes and the
/// outbox number from the store (on start, before the first decision).
pub fn restore(alerts: &Alerts, store: &dyn Storage) -> Result<usize> {
    let all = scan(store, record::ALERTS)?;
    let mut next_id: HashMap<String, u64> = HashMap::new();
    let mut open = Vec::new();
    for a in &all {
        let n = next_id.entry(a.account_id.clone()).or_insert(0);
        *n = (*n).max(a.id + 1);
        if a.resolved_at.is_none() {
            open.push(a.clone());
        }
    }
    let next_outbox = match store.meta_get(record::OUTBOX_NEXT)? {
        Some(b) => b.try_into().map(u64::from_be_bytes).unwrap_or(0),
        None => 0,
    };
    let n = all.len();
    tracing::info!(
        alerts = n,
        open = open.len(),
        next_outbox,
        "alerts restored"
    );
    alerts.restored(next_id, open, next_outbox);
    Ok(n)
}

/// Which alerts a listing wants.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertFilter {
    /// Only this rule's (`dimension` is the same).
    pub rule: Option<String>,
    /// The same as `rule` (seed 000's word).
    pub dimension: Option<String>,
    /// Only this key, as text (`seller=usedcardealer`).
    pub key: Option<String>,
    /// `open` or `resolved`.
    pub state: Option<String>,
    /// Created at or after (unix ms).
    pub from: Option<i64>,
    /// Created before (unix ms).
    pub to: Option<i64>,
    /// The page (1-based; default 1).
    #[param(maximum = 4294967295_u64)]
    pub page: Option<u32>,
    /// The page size (1..1000; default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

impl AlertFilter {
    /// Whether `a` passes every filter (not the paging).
    pub fn matches(&self, a: &Alert) -> bool {
        let rule = self.rule.as_ref().or(self.dimension.as_ref());
        rule.is_none_or(|r| *r == a.dimension)
            && self.key.as_ref().is_none_or(|k| *k == a.key)
            && match self.state.as_deref() {
                Some("open") => a.resolved_at.is_none(),
                Some("resolved") => a.resolved_at.is_some(),
                _ => true,
            }
            && self.from.is_none_or(|f| a.created_at >= f)
            && self.to.is_none_or(|t| a.created_at < t)
    }
}
