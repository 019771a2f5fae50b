//! The running server's shared state, and the one path every event takes:
//! engine (under its shard locks) → event log (group commit) → answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use weir_core::{Clock, Event, EventId, ShapeOptions};
use weir_engine::Engine;
use weir_rules::{Decision, RuleSet};
use weir_storage::{GroupCommit, LogRecord, Receipt, Storage};

use crate::config::ServeConfig;

/// Everything a request handler needs.
pub struct App {
    /// The configuration the server runs with.
    pub cfg: ServeConfig,
    /// Queries and their incremental state.
    pub engine: Arc<Engine>,
    /// Rules on top of the engine.
    pub rules: RuleSet,
    /// The store (event log, catalogue, checkpoints).
    pub store: Arc<dyn Storage>,
    /// The group-commit writer in front of the store's event log.
    pub log: GroupCommit,
    /// The next event id to hand out.
    next_seq: AtomicU64,
    /// Wall clock.
    pub clock: Arc<dyn Clock>,
    /// Serialises DSL statements so catalogue and engine change together.
    pub statements: tokio::sync::Mutex<()>,
}

/// What happened to one event sent through [`App::add_and_check`].
pub struct Checked {
    /// The decision, listing every matching rule.
    pub decision: Decision,
    /// The id the event got (denied events are logged too, flagged).
    pub event_id: EventId,
    /// Resolves once the event is durable.
    pub receipt: Receipt,
}

impl App {
    /// Assemble the state; `last_seq` is the highest event id already in the log.
    pub fn new(
        cfg: ServeConfig,
        engine: Arc<Engine>,
        rules: RuleSet,
        store: Arc<dyn Storage>,
        log: GroupCommit,
        last_seq: u64,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            cfg,
            engine,
            rules,
            store,
            log,
            next_seq: AtomicU64::new(last_seq + 1),
            clock,
            statements: tokio::sync::Mutex::new(()),
        }
    }

    /// How events are read right now (time of arrival, future-skew limit).
    pub fn shape_opts(&self) -> ShapeOptions {
        ShapeOptions {
            now_ms: self.clock.now_ms(),
            max_future_skew_ms: self.cfg.max_future_skew.as_millis() as i64,
        }
    }

    /// The highest event id handed out so far.
    pub fn last_seq(&self) -> u64 {
        self.next_seq.load(Ordering::SeqCst) - 1
    }

    /// Hand out an event id and queue the event for the log. Called by the engine while it
    /// holds the locks of every shard the event touches, so the log order of events that share
    /// a shard is the order in which they changed it: replaying the log rebuilds the same state.
    fn sequence(&self, event: &Event, denied: bool, receipt: &mut Option<Receipt>) -> u64 {
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        let record = LogRecord { seq, event: event.clone(), denied };
        *receipt = Some(self.log.submit(vec![record], Vec::new()));
        seq
    }

    /// Add events unconditionally (the asynchronous add of SPEC section 4). Returns their ids
    /// and one receipt per event that resolves when it is durable.
    pub fn add(&self, events: &[Event]) -> (Vec<EventId>, Vec<Receipt>) {
        let mut ids = Vec::with_capacity(events.len());
        let mut receipts = Vec::with_capacity(events.len());
        for event in events {
            let mut receipt = None;
            let id = self.engine.apply(event, || self.sequence(event, false, &mut receipt));
            ids.push(id);
            receipts.extend(receipt);
        }
        (ids, receipts)
    }

    /// Decide on the state including `event`; add it only if every matching rule allows it.
    pub fn add_and_check(&self, event: &Event) -> Checked {
        let mut receipt = None;
        let mut event_id = 0;
        let decision = self.rules.add_and_check(event, |denied| {
            event_id = self.sequence(event, denied, &mut receipt);
            event_id
        });
        Checked { decision, event_id, receipt: receipt.expect("the engine sequences every event") }
    }

    /// Decide from the current state without adding the event.
    pub fn check(&self, event: &Event) -> Decision {
        self.rules.check(event)
    }
}
