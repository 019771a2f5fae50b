//! The alert record (seed 000's fields) and where alerts live in the store's meta data:
//! - `alerts/{account}/{id:020}` → the alert as JSON, overwritten once on resolution;
//! - `alert-outbox/{seq:020}` → one [`OutboxEntry`] per change (fired, resolved), in order;
//! - `alert-outbox-next` → the next outbox number (big-endian u64);
//! - `alert-sink/{name}` → the last outbox key sink `name` delivered.
//!
//! All but the last are written in the same atomic group as the deciding event.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Prefix of every alert key.
pub const ALERTS: &str = "alerts/";
/// Prefix of the outbox.
pub const OUTBOX: &str = "alert-outbox/";
/// The next outbox number.
pub const OUTBOX_NEXT: &str = "alert-outbox-next";

/// The key of one alert.
pub fn alert_key(account: &str, id: u64) -> String {
    format!("{ALERTS}{account}/{id:020}")
}

/// The prefix of one account's alerts.
pub fn account_prefix(account: &str) -> String {
    format!("{ALERTS}{account}/")
}

/// The key of one outbox entry.
pub fn outbox_key(seq: u64) -> String {
    format!("{OUTBOX}{seq:020}")
}

/// The outbox number in an outbox key.
pub fn outbox_seq(key: &str) -> Option<u64> {
    key.strip_prefix(OUTBOX)?.parse().ok()
}

/// The key of a sink's cursor.
pub fn cursor_key(sink: &str) -> String {
    format!("alert-sink/{sink}")
}

/// One alert: a rule's decision for a key turned from allow to deny (an episode, until it
/// decides allow again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Alert {
    /// From the account's counter, which starts at 0 (the Redis sink's primary key).
    pub id: u64,
    /// Always `comparator` (a value compared against a threshold).
    pub event_type: String,
    /// The deciding event's account.
    pub account_id: String,
    /// The deciding event's project.
    pub project_id: String,
    /// The rule's name.
    pub dimension: String,
    /// The rule's group key as text: `field=value` pairs joined by `,` (`seller=usedcardealer`).
    pub key: String,
    /// The rule's group key as an object.
    #[schema(value_type = Object)]
    pub key_fields: Map<String, Value>,
    /// The compared value of the first denying decision (a number, or any JSON value).
    pub calculated_value: Option<Value>,
    /// The threshold it was compared against.
    pub threshold: Option<f64>,
    /// The rule's window width (e.g. `1min`); null when unbounded.
    pub window: Option<String>,
    /// When the episode began (unix ms).
    pub created_at: i64,
    /// When the rule decided allow again for the key (unix ms); null while open.
    pub resolved_at: Option<i64>,
    /// The event whose add_and_check began the episode; null when a check began it.
    pub event_id: Option<u64>,
}

impl Alert {
    /// The Redis hash key of seed 000: `project:dimension:key:primarykey`.
    pub fn redis_key(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.project_id, self.dimension, self.key, self.id
        )
    }

    /// The hash's fields: the record with every value as text (nulls left out).
    pub fn hash_fields(&self) -> Vec<(String, String)> {
        let Ok(Value::Object(o)) = serde_json::to_value(self) else {
            return Vec::new();
        };
        o.into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, text)
            })
            .collect()
    }
}

/// A change of an alert, as the outbox keeps it and the sinks deliver it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// `fired` or `resolved`.
    pub change: Change,
    /// The alert after the change.
    pub alert: Alert,
}

impl OutboxEntry {
    /// Stable per alert change: `{account}-{id}-{change}` (the webhook's `Idempotency-Key`).
    pub fn idempotency_key(&self) -> String {
        format!(
            "{}-{}-{}",
            self.alert.account_id,
            self.alert.id,
            self.change.as_str()
        )
    }
}

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// The episode began.
    Fired,
    /// It ended.
    Resolved,
}

impl Change {
    /// `fired` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Fired => "fired",
            Change::Resolved => "resolved",
        }
    }
}

/// A group key as text: `field=value` pairs sorted by field, joined by `,`; string values
/// bare, others as JSON.
pub fn key_text(key: &Map<String, Value>) -> String {
    let mut fields: Vec<(&String, &Value)> = key.iter().collect();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = String::new();
    for (i, (k, v)) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push('=');
        match v {
            Value::String(s) => out.push_str(s),
            other => out.push_str(&other.to_string()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_sort_by_number_and_render_like_the_seed() {
        assert!(alert_key("a", 9) < alert_key("a", 10));
        assert_eq!(outbox_seq(&outbox_key(42)), Some(42));
        let Value::Object(k) = json!({"seller": "usedcardealer", "n": 3}) else {
            unreachable!()
        };
        assert_eq!(key_text(&k), "n=3,seller=usedcardealer");
    }
}
