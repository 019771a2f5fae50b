//! `[alerts]`: the alert sinks and their delivery (environment: `WEIR_ALERTS__…`, e.g.
//! `WEIR_ALERTS__REDIS__URL=redis://127.0.0.1:6379`, `WEIR_ALERTS__REDIS__DBS__ACME=3`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::humantime_ms;

/// The `[alerts]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Longest wait between two delivery attempts of one alert change (default 30 s); the
    /// wait starts at 100 ms and doubles.
    #[serde(with = "humantime_ms")]
    pub max_backoff: Duration,
    /// How often an idle sink looks at the outbox without being woken (default 1 s).
    #[serde(with = "humantime_ms")]
    pub poll_interval: Duration,
    /// Capacity of the queue to the decision log's writer (default 65 536); decisions that
    /// find it full are dropped and counted.
    pub decision_log_queue: usize,
    /// Whether decisions are recorded for `GET /api/decisions` (default true).
    pub decision_log: bool,
    /// The Redis sink (`[alerts.redis]`), off unless given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisSinkConfig>,
    /// The webhook sink (`[alerts.webhook]`), off unless given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSinkConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            max_backoff: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            decision_log_queue: 65_536,
            decision_log: true,
            redis: None,
            webhook: None,
        }
    }
}

/// `[alerts.redis]`: one hash per alert at `project:dimension:key:id` in the account's DB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSinkConfig {
    /// `redis://[:password@]host:port`.
    pub url: String,
    /// The DB of accounts not named in `dbs` (default 0).
    pub default_db: u32,
    /// Account → DB number (seed 000: each account's data in its own DB).
    pub dbs: BTreeMap<String, u32>,
    /// Longest wait for one connect or command (default 5 s).
    #[serde(with = "humantime_ms")]
    pub timeout: Duration,
}

impl Default for RedisSinkConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            default_db: 0,
            dbs: BTreeMap::new(),
            timeout: Duration::from_secs(5),
        }
    }
}

impl RedisSinkConfig {
    /// The DB that holds `account`'s alerts.
    pub fn db_of(&self, account: &str) -> u32 {
        self.dbs.get(account).copied().unwrap_or(self.default_db)
    }
}

/// `[alerts.webhook]`: a POST of each alert change to `url`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSinkConfig {
    /// Where alert changes are POSTed (JSON).
    pub url: String,
    /// Longest wait for one POST (default 10 s).
    #[serde(with = "humantime_ms")]
    pub timeout: Duration,
}

impl Default for WebhookSinkConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            timeout: Duration::from_secs(10),
        }
    }
}
