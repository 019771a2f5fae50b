//! The `exact_order` funnel, one pass over events in (ts, id) order.
//!
//! Step 1 events all count as converted. An event of step k (k ≥ 2) converts when an earlier
//! converted event of step k−1 had the same match-key values. The state is one hash set of
//! match-key values per step, holding the keys of that step's converted events, so each
//! event costs O(steps) hash operations.

use std::collections::HashSet;

use serde_json::{json, Value};
use weir_core::Event;

use crate::value::text_form;

/// Running funnel state.
#[derive(Debug, Clone)]
pub(crate) struct Funnel {
    /// Data-set index of each step.
    steps: Vec<usize>,
    match_keys: Vec<String>,
    /// Match values of the converted events of each step (the last step's are not needed).
    reached: Vec<HashSet<String>>,
    counts: Vec<u64>,
    conversions: Vec<u64>,
}

impl Funnel {
    /// A funnel over these data-set indexes, matching on these keys.
    pub(crate) fn new(steps: Vec<usize>, match_keys: Vec<String>) -> Self {
        let n = steps.len();
        Self {
            steps,
            match_keys,
            reached: vec![HashSet::new(); n],
            counts: vec![0; n],
            conversions: vec![0; n],
        }
    }

    /// The event's match values as one string (each part length-prefixed, so no two
    /// different tuples collide); `None` if any match key is missing or null.
    fn key(&self, ev: &Event) -> Option<String> {
        let mut out = String::new();
        for k in &self.match_keys {
            let t = text_form(ev.field(k)?)?;
            out.push_str(&t.len().to_string());
            out.push(':');
            out.push_str(&t);
        }
        Some(out)
    }

    /// Feed one event; `in_set[i]` says whether it belongs to data set `i`.
    pub(crate) fn push(&mut self, ev: &Event, in_set: &[bool]) {
        let mut key: Option<Option<String>> = None;
        // Last step first, so an event in two consecutive steps cannot convert itself.
        for k in (0..self.steps.len()).rev() {
            if !in_set[self.steps[k]] {
                continue;
            }
            self.counts[k] += 1;
            let key = key.get_or_insert_with(|| self.key(ev));
            let converted = k == 0
                || key
                    .as_ref()
                    .is_some_and(|key| self.reached[k - 1].contains(key));
            if converted {
                self.conversions[k] += 1;
                if k + 1 < self.steps.len() {
                    if let Some(key) = key {
                        if !self.reached[k].contains(key.as_str()) {
                            self.reached[k].insert(key.clone());
                        }
                    }
                }
            }
        }
    }

    /// `{"steps":[{"name","count"},{"name","count","conversions"},…]}`.
    pub(crate) fn answer(&self, names: &[String]) -> Value {
        let steps: Vec<Value> = self
            .steps
            .iter()
            .enumerate()
            .map(|(k, &set)| {
                if k == 0 {
                    json!({"name": names[set], "count": self.counts[k]})
                } else {
                    json!({
                        "name": names[set],
                        "count": self.counts[k],
                        "conversions": self.conversions[k],
                    })
                }
            })
            .collect();
        json!({ "steps": steps })
    }
}
