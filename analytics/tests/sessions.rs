//! Grouping by session and the events API's event form.

use serde_json::{json, Map};
use weir_analytics::{event_json, group_by_session, StoredEvent};
use weir_core::Event;

fn ev(id: u64, ts: i64, session: Option<&str>) -> (u64, Event) {
    let mut f = Map::new();
    f.insert("n".into(), json!(id));
    let mut e = Event::new("party", ts, f);
    e.session_id = session.map(str::to_string);
    (id, e)
}

#[test]
fn sessions_are_grouped_and_ordered_by_time_then_id() {
    // Deliberately shuffled, with ties on ts.
    let events = vec![
        ev(5, 300, Some("s2")),
        ev(1, 200, Some("s1")),
        ev(7, 100, None),
        ev(3, 200, Some("s1")),
        ev(2, 100, Some("s1")),
        ev(4, 50, Some("s2")),
        ev(6, 300, Some("s2")),
        ev(8, 10, None),
    ];
    let got = group_by_session(events.clone());
    let ids: Vec<(Option<String>, Vec<u64>)> = got["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let ids = s["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["event_id"].as_u64().unwrap())
                .collect();
            (s["session_id"].as_str().map(str::to_string), ids)
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            (Some("s2".into()), vec![4, 5, 6]),
            (Some("s1".into()), vec![2, 1, 3]),
            (None, vec![8, 7]),
        ]
    );
    // Every event appears once, in its event form.
    let (id, e) = &events[0];
    assert_eq!(got["sessions"][0]["events"][1], event_json(*id, e));
    let stored: Vec<StoredEvent> = events.into_iter().map(StoredEvent::from).collect();
    assert_eq!(group_by_session(stored), got);
    assert_eq!(
        group_by_session(Vec::<StoredEvent>::new()),
        json!({"sessions": []})
    );
}

#[test]
fn event_form() {
    let (_, mut e) = ev(9, 1000, Some("s1"));
    e.fields.insert("ts".into(), json!("field"));
    assert_eq!(
        event_json(9, &e),
        json!({"event_id": 9, "type": "party", "ts": 1000, "session_id": "s1", "fields": {"n": 9, "ts": "field"}})
    );
}
