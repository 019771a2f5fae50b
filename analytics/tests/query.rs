//! The JSON query on generated data, with answers worked out independently in the test.

use std::collections::HashSet;

use serde_json::{json, Map, Value};
use weir_analytics::JsonQuery;
use weir_core::Event;

fn ev(kind: &str, ts: i64, fields: Value) -> Event {
    let Value::Object(m) = fields else {
        panic!("fields must be an object")
    };
    Event::new(kind, ts, m)
}

fn run(query: &Value, events: &[Event]) -> Value {
    let mut q = JsonQuery::compile(query).expect("query compiles");
    for (i, e) in events.iter().enumerate() {
        q.push(i as u64 + 1, e);
    }
    q.finish()
}

fn seed_query() -> Value {
    json!({
        "start": 1_000,
        "end": 100_000,
        "data": [
            {"name": "product_view", "filters": [
                {"type": "eq", "key": "event_tag", "value": "product_view"},
                {"type": "all", "key": "user_id"},
                {"type": "all", "key": "item_colour_id"}
            ], "unique": ["user_id"]},
            {"name": "add_to_cart", "filters": [
                {"type": "eq", "key": "event_tag", "value": "add_to_cart"},
                {"type": "all", "key": "user_id"},
                {"type": "all", "key": "item_colour_id"}
            ], "unique": ["user_id"]}
        ],
        "funnel": {"type": "exact_order", "order": ["product_view", "add_to_cart"],
                   "match": ["user_id", "item_colour_id"]}
    })
}

/// A deterministic pseudo-random stream (xorshift), so the data is varied but repeatable.
fn generated(n: usize) -> Vec<Event> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let mut out = Vec::new();
    let mut ts = 0;
    for _ in 0..n {
        ts += next(300) as i64;
        let kind = if next(3) == 0 {
            "add_to_cart"
        } else {
            "product_view"
        };
        let mut f = Map::new();
        f.insert("event_tag".into(), json!(kind));
        if next(10) != 0 {
            f.insert("user_id".into(), json!(format!("u{}", next(20))));
        }
        f.insert("item_colour_id".into(), json!(next(4)));
        out.push(Event::new(kind, ts, f));
    }
    out
}

#[test]
fn seed_funnel_on_generated_data() {
    let events = generated(2000);
    let got = run(&seed_query(), &events);
    // Independently: walk the events once, remembering every (user, item) seen in a view.
    let in_range = |e: &&Event| e.ts >= 1_000 && e.ts < 100_000;
    let full = |e: &&Event| e.fields.contains_key("user_id");
    let key = |e: &Event| format!("{}|{}", e.fields["user_id"], e.fields["item_colour_id"]);
    let (mut views, mut carts, mut conv) = (0, 0, 0);
    let (mut view_users, mut cart_users) = (HashSet::new(), HashSet::new());
    let mut viewed = HashSet::new();
    for e in events.iter().filter(in_range).filter(full) {
        if e.kind == "product_view" {
            views += 1;
            view_users.insert(e.fields["user_id"].clone());
            viewed.insert(key(e));
        } else {
            carts += 1;
            cart_users.insert(e.fields["user_id"].clone());
            if viewed.contains(&key(e)) {
                conv += 1;
            }
        }
    }
    assert!(
        views > 100 && carts > 50 && conv > 10 && conv < carts,
        "data is varied"
    );
    assert_eq!(
        got,
        json!({
            "data": {
                "product_view": {"count": views, "unique": {"user_id": view_users.len()}},
                "add_to_cart": {"count": carts, "unique": {"user_id": cart_users.len()}}
            },
            "funnel": {"steps": [
                {"name": "product_view", "count": views},
                {"name": "add_to_cart", "count": carts, "conversions": conv}
            ]}
        })
    );
}

#[test]
fn repeated_and_out_of_order_events() {
    let pv = |ts, u: &str, i: i64| {
        ev(
            "product_view",
            ts,
            json!({"event_tag": "product_view", "user_id": u, "item_colour_id": i}),
        )
    };
    let ac = |ts, u: &str, i: i64| {
        ev(
            "add_to_cart",
            ts,
            json!({"event_tag": "add_to_cart", "user_id": u, "item_colour_id": i}),
        )
    };
    let events = vec![
        ac(1_000, "u1", 1), // cart before any view: no conversion
        pv(2_000, "u1", 1),
        pv(2_500, "u1", 1), // repeated view
        ac(3_000, "u1", 1), // converts
        ac(3_500, "u1", 1), // converts again: conversions count events
        ac(4_000, "u1", 2), // other item: no
        ac(4_500, "u2", 1), // other user: no
        pv(5_000, "u2", 1),
        ac(5_000, "u2", 1), // same ts, later id: converts
    ];
    let got = run(&seed_query(), &events);
    assert_eq!(
        got["funnel"],
        json!({"steps": [
            {"name": "product_view", "count": 3},
            {"name": "add_to_cart", "count": 6, "conversions": 3}
        ]})
    );
    assert_eq!(
        got["data"]["product_view"],
        json!({"count": 3, "unique": {"user_id": 2}})
    );
    assert_eq!(
        got["data"]["add_to_cart"],
        json!({"count": 6, "unique": {"user_id": 2}})
    );
}

#[test]
fn three_steps_need_a_converted_middle_step() {
    let q = json!({
        "data": [
            {"name": "v", "filters": [{"type": "eq", "key": "type", "value": "view"}]},
            {"name": "c", "filters": [{"type": "eq", "key": "type", "value": "cart"}]},
            {"name": "b", "filters": [{"type": "eq", "key": "event_type", "value": "buy"}]}
        ],
        "funnel": {"type": "exact_order", "data": ["v", "c", "b"], "match": ["u"]}
    });
    let e = |k: &str, ts, u: &str| ev(k, ts, json!({"u": u}));
    let events = vec![
        e("cart", 1, "x"), // unconverted cart
        e("buy", 2, "x"),  // its cart did not convert: no
        e("view", 3, "x"),
        e("buy", 4, "x"), // no converted cart yet: no
        e("cart", 5, "x"),
        e("buy", 6, "x"), // yes
        e("buy", 7, "y"), // no
    ];
    let got = run(&q, &events);
    assert_eq!(
        got["funnel"]["steps"],
        json!([
            {"name": "v", "count": 1},
            {"name": "c", "count": 2, "conversions": 1},
            {"name": "b", "count": 4, "conversions": 1}
        ])
    );
}

#[test]
fn filters_eq_regex_all_and_unique() {
    let q = json!({
        "data": [
            {"name": "errors", "filters": [
                {"type": "eq", "key": "path", "value": "/foo"},
                {"type": "regex", "key": "status_code", "value": "5.."}
            ], "unique": ["user", "path"]},
            {"name": "numeric_eq", "filters": [{"type": "eq", "key": "status_code", "value": "503"}]},
            {"name": "has_user", "keys": ["user"], "filters": [{"type": "all", "key": "user"}],
             "operations": [{"type": "unique", "key": "user"}]},
            {"name": "nested", "filters": [{"type": "eq", "key": "geo.country", "value": "NZ"}]}
        ]
    });
    let mut events = Vec::new();
    let mut want = [0u64; 4];
    let mut err_users = HashSet::new();
    let mut with_user = HashSet::new();
    for i in 0..500i64 {
        let status = [200, 404, 500, 503, 1503][(i % 5) as usize];
        let path = if i % 3 == 0 { "/foo" } else { "/bar" };
        let user = if i % 7 == 0 {
            Value::Null
        } else {
            json!(format!("u{}", i % 11))
        };
        let country = if i % 4 == 0 { "NZ" } else { "AU" };
        events.push(ev(
            "req",
            i,
            json!({"status_code": status, "path": path, "user": user, "geo": {"country": country}}),
        ));
        if path == "/foo" && (500..600).contains(&status) {
            want[0] += 1;
            if !user.is_null() {
                err_users.insert(user.clone());
            }
        }
        want[1] += u64::from(status == 503);
        if !user.is_null() {
            want[2] += 1;
            with_user.insert(user.clone());
        }
        want[3] += u64::from(country == "NZ");
    }
    let got = run(&q, &events);
    assert_eq!(
        got,
        json!({"data": {
            "errors": {"count": want[0], "unique": {"user": err_users.len(), "path": 1}},
            "numeric_eq": {"count": want[1], "unique": {}},
            "has_user": {"count": want[2], "unique": {"user": with_user.len()}},
            "nested": {"count": want[3], "unique": {}}
        }})
    );
}

#[test]
fn time_range_samplerate_and_event_types() {
    let q = json!({"start": 10, "end": 20, "data": [
        {"name": "a", "filters": [{"type": "eq", "key": "event_tag", "value": "a"}]},
        {"name": "b", "filters": [{"type": "eq", "key": "type", "value": "b"}, {"type": "all", "key": "x"}]}
    ]});
    let compiled = JsonQuery::compile(&q).unwrap();
    assert_eq!(compiled.time_range(), (Some(10), Some(20)));
    assert_eq!(
        compiled.event_types(),
        Some(vec!["a".to_string(), "b".to_string()])
    );
    let mut events: Vec<Event> = (0..30).map(|ts| ev("a", ts, json!({}))).collect();
    events[15].samplerate = 4.0;
    events[16].samplerate = 0.5;
    let got = run(&q, &events);
    // ts 10..20: ten events, one weighing 4 and one 0.5.
    assert_eq!(got["data"]["a"]["count"], json!(12.5));
    assert_eq!(got["data"]["b"]["count"], json!(0));

    let open = json!({"data": [
        {"name": "a", "filters": [{"type": "eq", "key": "type", "value": "a"}]},
        {"name": "any", "filters": [{"type": "all", "key": "x"}]}
    ]});
    let open = JsonQuery::compile(&open).unwrap();
    assert_eq!(open.event_types(), None);
    assert_eq!(open.time_range(), (None, None));

    let contradictory = json!({"data": [{"name": "none", "filters": [
        {"type": "eq", "key": "type", "value": "a"}, {"type": "eq", "key": "event_tag", "value": "b"}
    ]}]});
    assert_eq!(
        JsonQuery::compile(&contradictory).unwrap().event_types(),
        Some(vec![])
    );

    let strings = json!({"start": "1970-01-01T00:00:01Z", "end": "1970-01-01 00:00:02", "data": [{"name": "x"}]});
    assert_eq!(
        JsonQuery::compile(&strings).unwrap().time_range(),
        (Some(1000), Some(2000))
    );
}
