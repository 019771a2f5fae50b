//! Alerts (SPEC section 9, seed 000): when a rule's decision for a key turns from allow to
//! deny, an alert is recorded; when it decides allow again, the alert is resolved. One alert
//! per episode, with an id from a per-account counter that starts at 0.
//!
//! # Layout
//! - this file: [`Alerts`], the open episodes and the counters, and [`Alerts::observe`],
//!   which turns a decision into the meta writes of its alert changes.
//! - [`record`]: the alert record and its keys in the store's meta data.
//! - [`config`]: the `[alerts]` section.
//! - [`store`]: listing alerts, and restoring the counters and episodes on start.
//! - [`sinks`]: one task per sink reading the durable outbox from its cursor.
//! - [`resp`]: a small RESP client (SELECT, EVAL, HGETALL) over a TCP stream.
//! - [`redis`], [`webhook`]: the two sinks.
//! - [`decision_log`]: the recent decisions of `GET /api/decisions`, written off the path.
//!
//! # Durability and order
//! `observe` runs under the engine's locks of the deciding event (see
//! [`weir_rules::RuleSet::add_and_check_with`]), so decisions of one (rule, key) reach it in
//! the order they were made. When a decision changes an episode, it takes the commit lock,
//! allocates the id and the outbox number, and returns the meta writes with the lock held
//! ([`Pending`]); the caller submits them to the log in the same group as the event (or alone,
//! for `check`) and only then lets the lock go. So groups reach the log in id order: after a
//! crash the stored ids have no gap, and the counters restart at the stored maximum + 1.
//!
//! The path of a decision that changes nothing is one atomic load when no episode is open
//! anywhere and every rule allows, else one read-locked map lookup per rule.

pub mod config;
pub mod decision_log;
pub mod record;
pub mod redis;
pub mod resp;
pub mod sinks;
pub mod store;
pub mod webhook;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard, RwLock};
use tokio::sync::Notify;
use weir_core::format_duration;
use weir_rules::{Decision, Verdict};

pub use config::AlertsConfig;
pub use record::{Alert, Change, OutboxEntry};

/// The episode of one (account, project, rule, key) while it is open.
type EpisodeKey = String;

fn episode_key(account: &str, project: &str, rule: &str, key: &str) -> EpisodeKey {
    format!("{account}\u{0}{project}\u{0}{rule}\u{0}{key}")
}

/// What the commit lock guards: the counters.
#[derive(Debug, Default)]
pub struct Counters {
    /// The next alert id of each account.
    next_id: HashMap<String, u64>,
    /// The next outbox number.
    next_outbox: u64,
}

/// Alerts of every account: open episodes, id counters, the sinks' wake-ups and the
/// decision log. One per server, shared by the apps of every project.
pub struct Alerts {
    cfg: AlertsConfig,
    /// Open episodes, by (account, project, rule, key).
    open: RwLock<HashMap<EpisodeKey, Alert>>,
    /// How many are open (the fast path's check).
    open_count: AtomicUsize,
    /// Held from allocating an id until its meta is submitted to the log.
    commit: Mutex<Counters>,
    /// A copy of `next_outbox` for the sinks' backlog.
    outbox_next: AtomicU64,
    /// One per running sink.
    wakers: RwLock<Vec<Arc<Notify>>>,
    /// Delivery counters of the sinks.
    pub(crate) sink_stats: sinks::SinkRegistry,
    /// Recent decisions.
    decisions: decision_log::DecisionLog,
}

/// The meta writes of a decision's alert changes, with the commit lock held: submit
/// [`Pending::take_meta`] to the log, then drop this (which wakes the sinks).
pub struct Pending<'a> {
    alerts: &'a Alerts,
    meta: Vec<(String, Vec<u8>)>,
    _commit: MutexGuard<'a, Counters>,
}

impl Pending<'_> {
    /// The meta key/values to write with the deciding event.
    pub fn take_meta(&mut self) -> Vec<(String, Vec<u8>)> {
        std::mem::take(&mut self.meta)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.alerts.wake();
    }
}

/// A transition found under the read lock.
enum Transition {
    Fire(usize, String),
    Resolve(EpisodeKey),
}

impl Alerts {
    /// No episodes yet; call [`store::restore`] before the first decision.
    pub fn new(cfg: AlertsConfig) -> Self {
        let decisions = decision_log::DecisionLog::new(cfg.decision_log, cfg.decision_log_queue);
        Self {
            cfg,
            open: RwLock::new(HashMap::new()),
            open_count: AtomicUsize::new(0),
            commit: Mutex::new(Counters::default()),
            outbox_next: AtomicU64::new(0),
            wakers: RwLock::new(Vec::new()),
            sink_stats: Default::default(),
            decisions,
        }
    }

    /// The `[alerts]` configuration.
    pub fn cfg(&self) -> &AlertsConfig {
        &self.cfg
    }

    /// The decision log.
    pub fn decisions(&self) -> &decision_log::DecisionLog {
        &self.decisions
    }

    /// How many episodes are open.
    pub fn open_count(&self) -> usize {
        self.open_count.load(Ordering::SeqCst)
    }

    /// The outbox number the next change will get.
    pub fn outbox_next(&self) -> u64 {
        self.outbox_next.load(Ordering::SeqCst)
    }

    fn wake(&self) {
        for w in self.wakers.read().iter() {
            w.notify_one();
        }
    }

    fn add_waker(&self) -> Arc<Notify> {
        let n = Arc::new(Notify::new());
        self.wakers.write().push(n.clone());
        n
    }

    /// Turn a decision about an event of `account`/`project` into alert changes. Call it
    /// under the engine's locks of the decision (so decisions of one key come in order),
    /// only once the log takes writes (the returned meta must be written). `event_id` is the
    /// event's id for add_and_check, `None` for check.
    pub fn observe(
        &self,
        account: &str,
        project: &str,
        decision: &Decision,
        event_id: Option<u64>,
        now_ms: i64,
    ) -> Option<Pending<'_>> {
        if self.open_count.load(Ordering::SeqCst) == 0 && decision.allowed {
            return None;
        }
        let mut found = Vec::new();
        {
            let open = self.open.read();
            for (i, rd) in decision.rules.iter().enumerate() {
                let key = record::key_text(&rd.key);
                let ek = episode_key(account, project, &rd.rule, &key);
                match (rd.decision, open.contains_key(&ek)) {
                    (Verdict::Deny, false) => found.push(Transition::Fire(i, key)),
                    (Verdict::Allow, true) => found.push(Transition::Resolve(ek)),
                    _ => {}
                }
            }
        }
        if found.is_empty() {
            return None;
        }
        // Under the engine's locks of these keys nothing else changes their episodes.
        let mut commit = self.commit.lock();
        let mut open = self.open.write();
        let mut meta = Vec::with_capacity(found.len() * 2 + 1);
        for t in found {
            let (change, alert) = match t {
                Transition::Fire(i, key) => {
                    let rd = &decision.rules[i];
                    let next = commit.next_id.entry(account.to_string()).or_insert(0);
                    let alert = Alert {
                        id: *next,
                        event_type: "comparator".into(),
                        account_id: account.into(),
                        project_id: project.into(),
                        dimension: rd.rule.clone(),
                        key: key.clone(),
                        key_fields: rd.key.clone(),
                        calculated_value: rd.value.clone(),
                        threshold: rd.threshold,
                        window: rd.window_ms.map(format_duration),
                        created_at: now_ms,
                        resolved_at: None,
                        event_id,
                    };
                    *next += 1;
                    open.insert(episode_key(account, project, &rd.rule, &key), alert.clone());
                    (Change::Fired, alert)
                }
                Transition::Resolve(ek) => {
                    let Some(mut alert) = open.remove(&ek) else {
                        continue;
                    };
                    alert.resolved_at = Some(now_ms);
                    (Change::Resolved, alert)
                }
            };
            metrics::counter!("weir_alerts_total", "change" => change.as_str()).increment(1);
            let body = serde_json::to_vec(&alert).unwrap_or_default();
            meta.push((record::alert_key(account, alert.id), body));
            let entry = OutboxEntry { change, alert };
            let seq = commit.next_outbox;
            commit.next_outbox += 1;
            meta.push((
                record::outbox_key(seq),
                serde_json::to_vec(&entry).unwrap_or_default(),
            ));
        }
        meta.push((
            record::OUTBOX_NEXT.to_string(),
            commit.next_outbox.to_be_bytes().to_vec(),
        ));
        self.outbox_next.store(commit.next_outbox, Ordering::SeqCst);
        self.open_count.store(open.len(), Ordering::SeqCst);
        metrics::gauge!("weir_alerts_open").set(open.len() as f64);
        drop(open);
        Some(Pending {
            alerts: self,
            meta,
            _commit: commit,
        })
    }

    /// Put back what the store holds (on start): the counters and the open episodes.
    fn restored(&self, next_id: HashMap<String, u64>, open: Vec<Alert>, next_outbox: u64) {
        let mut commit = self.commit.lock();
        commit.next_id = next_id;
        commit.next_outbox = next_outbox;
        self.outbox_next.store(next_outbox, Ordering::SeqCst);
        let mut map = self.open.write();
        map.clear();
        for a in open {
            map.insert(
                episode_key(&a.account_id, &a.project_id, &a.dimension, &a.key),
                a,
            );
        }
        self.open_count.store(map.len(), Ordering::SeqCst);
        metrics::gauge!("weir_alerts_open").set(map.len() as f64);
    }
}

/// On start, once the query state is restored and before any decision: restore the alerts
/// from the store, start the sinks and the decision log's writer.
/// Alerts are the node's (ids are per account, across its projects), so they are read from and
/// written to the node's whole store, not a tenant's view of it.
pub async fn start(
    node: &Arc<crate::app::Node>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let alerts = node.alerts().clone();
    node.store()
        .run(move |s| store::restore(&alerts, s))
        .await?;
    let mut tasks = sinks::start(node.alerts(), node.store());
    tasks.extend(node.alerts().decisions().start(node.store().clone()));
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weir_rules::RuleDecision;

    fn decision(rule: &str, user: &str, deny: bool, value: i64) -> Decision {
        let serde_json::Value::Object(key) = json!({ "user": user }) else {
            unreachable!()
        };
        Decision {
            allowed: !deny,
            rules: vec![RuleDecision {
                rule: rule.into(),
                key,
                value: Some(json!(value)),
                threshold: Some(2.0),
                window_ms: Some(60_000),
                window_start: None,
                window_end: None,
                decision: if deny { Verdict::Deny } else { Verdict::Allow },
            }],
        }
    }

    fn changes(p: Option<Pending<'_>>) -> Vec<(String, OutboxEntry)> {
        let Some(mut p) = p else {
            return Vec::new();
        };
        p.take_meta()
            .into_iter()
            .filter(|(k, _)| k.starts_with(record::OUTBOX))
            .map(|(k, v)| (k, serde_json::from_slice(&v).unwrap()))
            .collect()
    }

    #[test]
    fn one_alert_per_episode_with_ids_per_account() {
        let a = Alerts::new(AlertsConfig::default());
        assert!(a
            .observe("acme", "p", &decision("r", "ann", false, 1), Some(1), 10)
            .is_none());
        let fired = changes(a.observe("acme", "p", &decision("r", "ann", true, 3), Some(2), 11));
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].0, record::outbox_key(0));
        let e = &fired[0].1;
        assert_eq!(
            (e.change, e.alert.id, e.alert.key.as_str()),
            (Change::Fired, 0, "user=ann")
        );
        assert_eq!((e.alert.event_id, e.alert.created_at), (Some(2), 11));
        assert_eq!(e.alert.calculated_value, Some(json!(3)));
        assert_eq!(e.alert.window.as_deref(), Some("1min"));
        // More denies of the open episode change nothing; another account counts from 0.
        assert!(a
            .observe("acme", "p", &decision("r", "ann", true, 4), Some(3), 12)
            .is_none());
        let other = changes(a.observe("zeta", "p", &decision("r", "ann", true, 3), None, 12));
        assert_eq!(
            (other[0].1.alert.id, other[0].0.as_str()),
            (0, record::outbox_key(1).as_str())
        );
        assert_eq!(a.open_count(), 2);
        let resolved =
            changes(a.observe("acme", "p", &decision("r", "ann", false, 1), Some(4), 13));
        assert_eq!(resolved[0].1.change, Change::Resolved);
        assert_eq!(resolved[0].1.alert.resolved_at, Some(13));
        assert_eq!(resolved[0].1.alert.id, 0);
        let again = changes(a.observe("acme", "p", &decision("r", "ann", true, 3), Some(5), 14));
        assert_eq!(again[0].1.alert.id, 1);
        assert_eq!(a.outbox_next(), 4);
    }

    #[test]
    fn the_meta_of_a_change_names_the_alert_and_the_outbox_number() {
        let a = Alerts::new(AlertsConfig::default());
        let mut p = a
            .observe("acme", "p", &decision("r", "ann", true, 3), Some(2), 11)
            .unwrap();
        let keys: Vec<String> = p.take_meta().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                record::alert_key("acme", 0),
                record::outbox_key(0),
                record::OUTBOX_NEXT.to_string()
            ]
        );
    }

    #[test]
    fn restored_counters_and_episodes_continue() {
        let a = Alerts::new(AlertsConfig::default());
        let mut open = changes(a.observe("acme", "p", &decision("r", "ann", true, 3), None, 1))
            .remove(0)
            .1
            .alert;
        open.id = 6;
        let b = Alerts::new(AlertsConfig::default());
        b.restored(HashMap::from([("acme".to_string(), 7)]), vec![open], 9);
        assert!(b
            .observe("acme", "p", &decision("r", "ann", true, 3), None, 2)
            .is_none());
        let next = changes(b.observe("acme", "p", &decision("r", "bob", true, 3), None, 2));
        assert_eq!(
            (next[0].1.alert.id, next[0].0.clone()),
            (7, record::outbox_key(9))
        );
        let res = changes(b.observe("acme", "p", &decision("r", "ann", false, 1), None, 3));
        assert_eq!(res[0].1.alert.id, 6);
    }
}
