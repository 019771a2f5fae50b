//! The events API's JSON form of an event, and grouping by session
//! (`GET /api/events?groupBy=session`, seed 004).
//!
//! An event reads `{"event_id":7,"type":"click","ts":1456606932000,"session_id":"s1",
//! "fields":{…}}`: the fields stay nested under `fields`, so a field named `type`, `ts` or
//! `event_id` can never hide the event's own. `session_id` is present only when the event has
//! one, `samplerate` only when it is not 1.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use weir_core::{Event, EventId};

/// An event with the id storage gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// The event's id (its place in the event log).
    pub id: EventId,
    /// The event.
    pub event: Event,
}

impl From<(EventId, Event)> for StoredEvent {
    fn from((id, event): (EventId, Event)) -> Self {
        Self { id, event }
    }
}

impl StoredEvent {
    /// The events API's JSON form ([`event_json`]).
    pub fn to_json(&self) -> Value {
        event_json(self.id, &self.event)
    }
}

/// `{"event_id","type","ts","session_id"?,"samplerate"?,"fields":{…}}`.
pub fn event_json(id: EventId, ev: &Event) -> Value {
    let mut m = Map::new();
    m.insert("event_id".into(), json!(id));
    m.insert("type".into(), json!(ev.kind));
    m.insert("ts".into(), json!(ev.ts));
    if let Some(s) = &ev.session_id {
        m.insert("session_id".into(), json!(s));
    }
    if ev.samplerate != 1.0 {
        m.insert("samplerate".into(), json!(ev.samplerate));
    }
    m.insert("fields".into(), Value::Object(ev.fields.clone()));
    Value::Object(m)
}

/// Group events (in any order) by session:
/// `{"sessions":[{"session_id":"s1","events":[…]},…]}`.
///
/// Each session's events are ordered by (ts, event_id); sessions are ordered by their first
/// event (ts, event_id). Events without a session come last, in one group with
/// `"session_id": null`. O(n log n).
pub fn group_by_session<I>(events: I) -> Value
where
    I: IntoIterator,
    I::Item: Into<StoredEvent>,
{
    let mut groups: HashMap<Option<String>, Vec<StoredEvent>> = HashMap::new();
    for e in events {
        let e: StoredEvent = e.into();
        groups
            .entry(e.event.session_id.clone())
            .or_default()
            .push(e);
    }
    let mut groups: Vec<(Option<String>, Vec<StoredEvent>)> = groups.into_iter().collect();
    for (_, evs) in &mut groups {
        evs.sort_by_key(|e| (e.event.ts, e.id));
    }
    groups.sort_by_key(|(sid, evs)| (sid.is_none(), evs[0].event.ts, evs[0].id));
    let sessions: Vec<Value> = groups
        .into_iter()
        .map(|(sid, evs)| {
            let events: Vec<Value> = evs.iter().map(StoredEvent::to_json).collect();
            json!({"session_id": sid, "events": events})
        })
        .collect();
    json!({ "sessions": sessions })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_named_type_stays_under_fields() {
        let mut f = Map::new();
        f.insert("type".into(), json!("shadow"));
        let mut ev = Event::new("click", 5, f);
        ev.samplerate = 2.0;
        assert_eq!(
            event_json(9, &ev),
            json!({"event_id": 9, "type": "click", "ts": 5, "samplerate": 2.0, "fields": {"type": "shadow"}})
        );
    }
}
