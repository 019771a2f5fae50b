//! The normalised event.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::time::Millis;

/// The id Weir gives an accepted event: its position in the event log, unique and increasing.
pub type EventId = u64;

/// One event, as every input shape normalises it (SPEC section 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Event type (`evtname`, `event_type`, `data.event_tag`, `category`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Event time, unix milliseconds.
    pub ts: Millis,
    /// The event's fields, flat or nested, with their JSON types kept.
    pub fields: Map<String, Value>,
    /// Session the event belongs to (seed 004), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Weight of the event: count and sum scale by it (seed 001). 1 unless given.
    #[serde(default = "one")]
    pub samplerate: f64,
    /// Owning account.
    #[serde(default = "default_tenant")]
    pub account: String,
    /// Owning project.
    #[serde(default = "default_tenant")]
    pub project: String,
}

fn one() -> f64 {
    1.0
}

fn default_tenant() -> String {
    "default".to_string()
}

impl Event {
    /// A new event of `kind` at `ts` with `fields`, in the default account and project.
    pub fn new(kind: impl Into<String>, ts: Millis, fields: Map<String, Value>) -> Self {
        Self {
            kind: kind.into(),
            ts,
            fields,
            session_id: None,
            samplerate: 1.0,
            account: default_tenant(),
            project: default_tenant(),
        }
    }

    /// Look a field up by a dotted path (`user.id`), descending into nested objects.
    /// A literal key containing a dot is found first.
    pub fn field(&self, path: &str) -> Option<&Value> {
        if let Some(v) = self.fields.get(path) {
            return Some(v);
        }
        let mut parts = path.split('.');
        let mut cur = self.fields.get(parts.next()?)?;
        for p in parts {
            cur = cur.as_object()?.get(p)?;
        }
        Some(cur)
    }
}
