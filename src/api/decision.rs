//! A rules decision as the API answers it (SPEC section 13).
//!
//! The answer types serialize their fields in alphabetical order, as the JSON maps these
//! answers were first built with did (SPEC section 13 keeps the bytes).

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use weir_core::{format_duration, EventId};
use weir_rules::{Decision, Verdict};

/// `allow` or `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Allowed.
    Allow,
    /// Denied.
    Deny,
}

impl From<bool> for Outcome {
    fn from(allowed: bool) -> Self {
        if allowed {
            Outcome::Allow
        } else {
            Outcome::Deny
        }
    }
}

/// `{"decision":"allow"|"deny","event_id":…,"rules":[{"rule","key","value","threshold","window","decision"}]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionAnswer {
    /// `allow` when every matching rule allows.
    pub decision: Outcome,
    /// The event's id once added (add_and_check, `GET /event?id=N`); null for a check.
    #[schema(value_type = Option<u64>)]
    pub event_id: Option<EventId>,
    /// Every matching rule.
    pub rules: Vec<RuleOutcome>,
}

/// One rule's part of a decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleOutcome {
    /// This rule's verdict.
    pub decision: Outcome,
    /// The group key the rule compared.
    #[schema(value_type = Object)]
    pub key: Map<String, Value>,
    /// The rule's name.
    pub rule: String,
    /// The threshold compared against.
    pub threshold: Option<f64>,
    /// The compared value (e.g. a count).
    pub value: Option<Value>,
    /// The window's width (e.g. `5min`); null when unbounded.
    pub window: Option<String>,
    /// The window's end (exclusive, unix ms).
    pub window_end: Option<i64>,
    /// The window's start (inclusive, unix ms).
    pub window_start: Option<i64>,
}

/// A decision as the API answers it.
pub fn decision_answer(d: &Decision, event_id: Option<EventId>) -> DecisionAnswer {
    let rules = d
        .rules
        .iter()
        .map(|r| RuleOutcome {
            decision: match r.decision {
                Verdict::Allow => Outcome::Allow,
                Verdict::Deny => Outcome::Deny,
            },
            key: r.key.clone(),
            rule: r.rule.clone(),
            threshold: r.threshold,
            value: r.value.clone(),
            window: r.window_ms.map(format_duration),
            window_end: r.window_end,
            window_start: r.window_start,
        })
        .collect();
    DecisionAnswer {
        decision: Outcome::from(d.allowed),
        event_id,
        rules,
    }
}
