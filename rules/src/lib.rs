//! # weir-rules
//!
//! Allow/deny rules on top of the engine's state (SPEC section 4). A rule is a query plus a
//! DENY WHEN condition on its columns; while the condition holds for a group key, events of
//! that key are denied.
//!
//! # Layout
//! - this file: [`RuleSet`] (create, drop, list, [`RuleSet::check`],
//!   [`RuleSet::add_and_check`]) and the [`Decision`] it returns.
//!
//! # Replacing a rule with backfill
//! An `AS select` rule owns a query. To create or replace it without losing or
//! double-counting events: [`RuleSet::prepare_owned`] creates the new owned query as an
//! engine shadow (it receives live events from the boundary id on, while the old rule keeps
//! deciding), the server backfills the shadow with the logged events before the boundary,
//! and [`RuleSet::commit_rule`] then promotes the shadow and installs the rule in one step
//! under the rule catalogue's write lock (so no decision sees one without the other).
//!
//! # Atomicity
//! `add_and_check` runs inside [`weir_engine::Engine::locked`]: the shard of every query the
//! event matches (rule-owned or not) is locked in the engine's global order, each matching
//! rule is evaluated on the window holding the event **including** the event (computed
//! without mutating), and then the event is applied to every matching query or to none.
//! The `seq` closure (which logs the event or the denial) runs under the same locks. So N
//! concurrent calls against a limit L admit exactly min(N, L), and when several rules
//! match, the event is counted in all of them or in none. Shards of different keys are
//! different mutexes: calls on different keys do not wait for each other.

use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;
use weir_core::Event;
use weir_engine::{Check, Condition, Engine, EngineError, Locked, Shadow};
use weir_query_lang::ast::{CreateRule, Expr, RuleSource};

/// Errors from defining rules.
#[derive(Debug, Error)]
pub enum RulesError {
    /// The rule exists already.
    #[error("a rule named {0:?} exists already")]
    RuleExists(String),
    /// No rule of that name.
    #[error("no rule named {0:?}")]
    UnknownRule(String),
    /// `prepare_owned`/`commit_rule` were given a rule that does not own a query, or a
    /// shadow of another query.
    #[error("rule {0:?}: {1}")]
    Mismatch(String, String),
    /// From the engine (unknown query, unsupported condition, ...).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Result alias for rules.
pub type Result<T> = std::result::Result<T, RulesError>;

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Let the event through.
    Allow,
    /// Refuse it.
    Deny,
}

/// One rule's part of a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleDecision {
    /// Rule name.
    pub rule: String,
    /// Group key.
    pub key: Map<String, Value>,
    /// The compared value (e.g. `orders`).
    pub value: Option<Value>,
    /// The threshold (e.g. 100).
    pub threshold: Option<f64>,
    /// Window width in ms (sliding: w; tumbling: g; none when unbounded).
    pub window_ms: Option<i64>,
    /// Window start (inclusive).
    pub window_start: Option<i64>,
    /// Window end (exclusive).
    pub window_end: Option<i64>,
    /// This rule's verdict.
    pub decision: Verdict,
}

/// The answer of check / add_and_check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Whether every matching rule allows.
    pub allowed: bool,
    /// Every matching rule.
    pub rules: Vec<RuleDecision>,
}

/// A rule as defined.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleInfo {
    /// Rule name.
    pub name: String,
    /// The query it reads (for `AS select` rules, the owned `rule:<name>` query).
    pub query: String,
    /// Whether the rule owns its query.
    pub owns_query: bool,
    /// The definition.
    pub def: CreateRule,
}

#[derive(Debug)]
struct RuleRt {
    info: RuleInfo,
    /// The compiled condition. Decisions share it (a read lock, never exclusive on the
    /// event path); it is swapped for a recompiled one only after the query it reads was
    /// replaced.
    cond: RwLock<Arc<Condition>>,
}

/// The rules, over one engine.
#[derive(Debug)]
pub struct RuleSet {
    engine: Arc<Engine>,
    rules: RwLock<Vec<Arc<RuleRt>>>,
}

/// Name of the query an `AS select` rule owns.
pub fn owned_query_name(rule: &str) -> String {
    format!("rule:{rule}")
}

impl RuleSet {
    /// No rules yet.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self {
            engine,
            rules: RwLock::new(Vec::new()),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Create (or with `OR REPLACE`, replace) a rule.
    pub fn create_rule(&self, name: &str, def: &CreateRule) -> Result<()> {
        let mut rules = self.rules.write();
        if !def.or_replace && rules.iter().any(|r| r.info.name == name) {
            return Err(RulesError::RuleExists(name.to_string()));
        }
        let (query, owns_query) = match &def.source {
            RuleSource::On(q) => (q.name.clone(), false),
            RuleSource::As(select) => {
                let qn = owned_query_name(name);
                self.engine
                    .create_query_ext(&qn, select, &[&def.deny_when], true)?;
                (qn, true)
            }
        };
        let cond = match self.engine.condition(&query, &def.deny_when) {
            Ok(c) => c,
            Err(e) => {
                if owns_query {
                    let _ = self.engine.drop_query(&query);
                }
                return Err(e.into());
            }
        };
        let old = rules.iter().position(|r| r.info.name == name);
        if let Some(i) = old {
            let prev = rules.remove(i);
            if prev.info.owns_query && prev.info.query != query {
                let _ = self.engine.drop_query(&prev.info.query);
            }
        }
        rules.push(Arc::new(RuleRt {
            info: RuleInfo {
                name: name.to_string(),
                query,
                owns_query,
                def: def.clone(),
            },
            cond: RwLock::new(Arc::new(cond)),
        }));
        Ok(())
    }

    /// Start creating or replacing an `AS select` rule through a backfilled shadow: the new
    /// owned query `rule:<name>` is created invisible and fed live from the event id
    /// `boundary` returns (see [`Engine::create_shadow`]). Backfill it with
    /// [`Engine::backfill`], then [`RuleSet::commit_rule`] (or [`Engine::abort`] it).
    pub fn prepare_owned(
        &self,
        name: &str,
        def: &CreateRule,
        boundary: impl FnOnce() -> u64,
    ) -> Result<Shadow> {
        let RuleSource::As(select) = &def.source else {
            return Err(RulesError::Mismatch(
                name.to_string(),
                "only an AS select rule owns a query".into(),
            ));
        };
        if !def.or_replace && self.rules.read().iter().any(|r| r.info.name == name) {
            return Err(RulesError::RuleExists(name.to_string()));
        }
        let qn = owned_query_name(name);
        let shadow = self
            .engine
            .create_shadow(&qn, select, &[&def.deny_when], true, boundary)?;
        if let Err(e) = Condition::compile(shadow.query(), &def.deny_when) {
            self.engine.abort(shadow);
            return Err(e.into());
        }
        Ok(shadow)
    }

    /// Finish [`RuleSet::prepare_owned`]: promote the shadow to be the rule's query and
    /// install (or replace) the rule, atomically with respect to every decision.
    pub fn commit_rule(&self, name: &str, def: &CreateRule, shadow: Shadow) -> Result<()> {
        let qn = owned_query_name(name);
        if shadow.name() != qn || !matches!(def.source, RuleSource::As(_)) {
            let msg = format!("the shadow is of {:?}, not {qn:?}", shadow.name());
            self.engine.abort(shadow);
            return Err(RulesError::Mismatch(name.to_string(), msg));
        }
        let cond = match Condition::compile(shadow.query(), &def.deny_when) {
            Ok(c) => c,
            Err(e) => {
                self.engine.abort(shadow);
                return Err(e.into());
            }
        };
        let mut rules = self.rules.write();
        if !def.or_replace && rules.iter().any(|r| r.info.name == name) {
            self.engine.abort(shadow);
            return Err(RulesError::RuleExists(name.to_string()));
        }
        self.engine.promote(shadow)?;
        if let Some(i) = rules.iter().position(|r| r.info.name == name) {
            rules.remove(i);
        }
        rules.push(Arc::new(RuleRt {
            info: RuleInfo {
                name: name.to_string(),
                query: qn,
                owns_query: true,
                def: def.clone(),
            },
            cond: RwLock::new(Arc::new(cond)),
        }));
        Ok(())
    }

    /// Names of the rules, in creation order.
    pub fn rule_names(&self) -> Vec<String> {
        self.rules
            .read()
            .iter()
            .map(|r| r.info.name.clone())
            .collect()
    }

    /// Drop a rule (and the query it owns).
    pub fn drop_rule(&self, name: &str) -> Result<()> {
        let mut rules = self.rules.write();
        let i = rules
            .iter()
            .position(|r| r.info.name == name)
            .ok_or_else(|| RulesError::UnknownRule(name.to_string()))?;
        let r = rules.remove(i);
        if r.info.owns_query {
            let _ = self.engine.drop_query(&r.info.query);
        }
        Ok(())
    }

    /// The rules, in creation order.
    pub fn rules(&self) -> Vec<RuleInfo> {
        self.rules.read().iter().map(|r| r.info.clone()).collect()
    }

    /// Decide from the current state, without the event, and add nothing.
    pub fn check(&self, event: &Event) -> Decision {
        self.check_with(event, |_| ()).1
    }

    /// [`RuleSet::check`], calling `then(&decision)` once under the same locks: decisions
    /// of one (rule, key) reach `then` in the order they were made.
    pub fn check_with<R>(&self, event: &Event, then: impl FnOnce(&Decision) -> R) -> (R, Decision) {
        let rules = self.rules.read();
        self.engine.locked(event, |lk| {
            let d = decide(&rules, lk, false);
            (then(&d), d)
        })
    }

    /// Decide on the state including the event; add it to every matching query only if
    /// allowed. `seq(denied)` runs once under the locks and returns the event id.
    pub fn add_and_check(&self, event: &Event, seq: impl FnOnce(bool) -> u64) -> (u64, Decision) {
        self.add_and_check_with(event, |d| seq(!d.allowed))
    }

    /// [`RuleSet::add_and_check`], with `then(&decision)` in place of `seq`: it runs once
    /// under the locks, after the event was applied (if allowed), so decisions of one
    /// (rule, key) reach it in the order they were made (alerts rely on that).
    pub fn add_and_check_with<R>(
        &self,
        event: &Event,
        then: impl FnOnce(&Decision) -> R,
    ) -> (R, Decision) {
        let rules = self.rules.read();
        self.engine.locked(event, |lk| {
            let d = decide(&rules, lk, true);
            if d.allowed {
                lk.apply();
            }
            (then(&d), d)
        })
    }
}

fn evaluate(r: &RuleRt, lk: &Locked<'_>, include: bool) -> Option<Check> {
    let cond = r.cond.read().clone();
    match lk.check(&r.info.query, &cond, include) {
        Ok(e) => e,
        Err(_) => {
            // The query was replaced since the condition was compiled: recompile it once
            // and swap it in for every later decision.
            let fresh = Arc::new(lk.condition(&r.info.query, &r.info.def.deny_when).ok()?);
            *r.cond.write() = fresh.clone();
            lk.check(&r.info.query, &fresh, include).ok().flatten()
        }
    }
}

fn decide(rules: &[Arc<RuleRt>], lk: &mut Locked<'_>, include: bool) -> Decision {
    let mut out = Decision {
        allowed: true,
        rules: Vec::new(),
    };
    for r in rules {
        if !lk.matches(&r.info.query) {
            continue;
        }
        let Some(ev) = evaluate(r, lk, include) else {
            continue;
        };
        let decision = if ev.holds {
            out.allowed = false;
            Verdict::Deny
        } else {
            Verdict::Allow
        };
        out.rules.push(RuleDecision {
            rule: r.info.name.clone(),
            key: lk.key(&r.info.query).unwrap_or_default(),
            value: ev.value,
            threshold: ev.threshold,
            window_ms: ev.window_ms,
            window_start: ev.window_start,
            window_end: ev.window_end,
            decision,
        });
    }
    out
}

/// The threshold-free parts of a condition, for listings.
pub fn condition_text(e: &Expr) -> String {
    e.to_string()
}
