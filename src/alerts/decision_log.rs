//! The decision log behind `GET /api/decisions`: recent decisions with their rules' values,
//! kept by the store (`Storage::record_decision`). The decision path only puts a copy of
//! the decision on a bounded queue (never waiting); a writer task stores them in batches
//! off the async workers. Decisions that find the queue full are dropped and counted in
//! `weir_decision_log_dropped_total`.
//!
//! Each record is `{"account","project","at","call","event_id","decision","rules"}`;
//! listings keep the caller's account and project only.

use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use weir_rules::Decision;

use crate::store::Store;

/// Records written per store call, at most.
const BATCH: usize = 512;
/// Most records one listing reads before filtering.
pub const SCAN_MAX: usize = 10_000;

/// One queued decision.
struct Queued {
    seq: u64,
    at: i64,
    call: &'static str,
    account: String,
    project: String,
    event_id: Option<u64>,
    decision: Decision,
}

/// The queue to the writer.
pub struct DecisionLog {
    enabled: bool,
    tx: mpsc::Sender<Queued>,
    rx: Mutex<Option<mpsc::Receiver<Queued>>>,
}

impl DecisionLog {
    /// A queue of `capacity`; nothing is written before [`DecisionLog::start`].
    pub fn new(enabled: bool, capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Self {
            enabled,
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }

    /// Queue one decision about an event of `account`/`project` (never waits).
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        call: &'static str,
        account: &str,
        project: &str,
        seq: u64,
        event_id: Option<u64>,
        decision: &Decision,
        at: i64,
    ) {
        if !self.enabled || decision.rules.is_empty() {
            return;
        }
        let q = Queued {
            seq,
            at,
            call,
            account: account.to_string(),
            project: project.to_string(),
            event_id,
            decision: decision.clone(),
        };
        if self.tx.try_send(q).is_err() {
            metrics::counter!("weir_decision_log_dropped_total").increment(1);
        }
    }

    /// Start the writer task (once).
    pub fn start(&self, store: Store) -> Option<tokio::task::JoinHandle<()>> {
        let mut rx = self.rx.lock().take()?;
        Some(tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                let rows: Vec<(u64, Vec<u8>)> =
                    batch.drain(..).map(|q| (q.seq, render(&q))).collect();
                let n = rows.len() as u64;
                let r = store
                    .run(move |s| {
                        rows.iter()
                            .try_for_each(|(seq, json)| s.record_decision(*seq, json))
                    })
                    .await;
                match r {
                    Ok(()) => metrics::counter!("weir_decision_log_written_total").increment(n),
                    Err(e) => {
                        metrics::counter!("weir_decision_log_dropped_total").increment(n);
                        tracing::warn!(error = %e, "decisions could not be logged");
                    }
                }
            }
        }))
    }
}

fn render(q: &Queued) -> Vec<u8> {
    let answer = crate::api::decision::decision_answer(&q.decision, q.event_id);
    let v = json!({
        "account": q.account,
        "project": q.project,
        "at": q.at,
        "call": q.call,
        "event_id": q.event_id,
        "decision": answer.decision,
        "rules": answer.rules,
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Which decisions a listing wants.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DecisionFilter {
    /// Only decisions in which this rule took part (and only its part).
    pub rule: Option<String>,
    /// Only this rule key, as text (`seller=usedcardealer`).
    pub key: Option<String>,
    /// `allow` or `deny`: of the whole decision, or of `rule`'s part when given.
    pub decision: Option<String>,
    /// How many (1..1000; default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

impl DecisionFilter {
    /// The record, narrowed to the wanted rules, if it passes.
    pub fn apply(&self, account: &str, project: &str, mut v: Value) -> Option<Value> {
        if v["account"] != account || v["project"] != project {
            return None;
        }
        let wanted = |r: &Value| {
            self.rule.as_ref().is_none_or(|n| r["rule"] == n.as_str())
                && self.key.as_ref().is_none_or(|k| {
                    r["key"]
                        .as_object()
                        .is_some_and(|o| super::record::key_text(o) == *k)
                })
        };
        let narrowing = self.rule.is_some() || self.key.is_some();
        if narrowing {
            let rules: Vec<Value> = v["rules"]
                .as_array()
                .map(|a| a.iter().filter(|r| wanted(r)).cloned().collect())
                .unwrap_or_default();
            if rules.is_empty() {
                return None;
            }
            v["rules"] = Value::Array(rules);
        }
        if let Some(d) = &self.decision {
            let outcome = if narrowing {
                let any_deny = v["rules"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|r| r["decision"] == "deny"));
                if any_deny {
                    "deny"
                } else {
                    "allow"
                }
            } else {
                v["decision"].as_str().unwrap_or_default()
            };
            if outcome != d {
                return None;
            }
        }
        Some(v)
    }
}
