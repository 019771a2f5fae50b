//! A rules decision as the API answers it (SPEC section 13).

use serde_json::{json, Value};
use weir_core::{format_duration, EventId};
use weir_rules::{Decision, Verdict};

/// `{"decision":"allow"|"deny","event_id":…,"rules":[{"rule","key","value","threshold","window","decision"}]}`.
pub fn decision_json(d: &Decision, event_id: Option<EventId>) -> Value {
    let rules: Vec<Value> = d
        .rules
        .iter()
        .map(|r| {
            json!({
                "rule": r.rule,
                "key": r.key,
                "value": r.value,
                "threshold": r.threshold,
                "window": r.window_ms.map(format_duration),
                "window_start": r.window_start,
                "window_end": r.window_end,
                "decision": match r.decision { Verdict::Allow => "allow", Verdict::Deny => "deny" },
            })
        })
        .collect();
    json!({
        "decision": if d.allowed { "allow" } else { "deny" },
        "event_id": event_id,
        "rules": rules,
    })
}
