//! API keys and tenant isolation (SPEC section 10), against a real `weir serve`: every route
//! of `GET /help` called with one tenant's key asking for another's data never shows it, and
//! without a key gets 401; keys rotate without downtime and survive a restart; an input's
//! events belong to its configured tenant; an event's body cannot say whose it is.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{now_ms, Server};
use serde_json::{json, Value};

const KEY_A: &str = "acme-key-0123456789";
const KEY_B: &str = "beta-key-0123456789";
const KEY_OPS: &str = "ops-key-0123456789ab";

fn keys_env() -> String {
    format!("acme:web:{KEY_A},beta:web:{KEY_B},ops:all:{KEY_OPS}:admin")
}

/// A call with an optional key; (status, body text, WWW-Authenticate).
async fn call(
    s: &Server,
    method: &str,
    path_and_query: &str,
    key: Option<&str>,
    body: Option<(&str, String)>,
) -> (u16, String, Option<String>) {
    let url = format!("{}{path_and_query}", s.url);
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb = s.client().request(m, url);
    if let Some(k) = key {
        rb = rb.bearer_auth(k);
    }
    if let Some((ct, b)) = body {
        rb = rb.header("content-type", ct).body(b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (status, r.text().await.unwrap(), challenge)
}

async fn json_call(
    s: &Server,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body.map(|b| ("application/json", b.to_string()));
    let (st, text, _) = call(s, method, path, Some(key), body).await;
    (st, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn statements(s: &Server, key: &str, text: &str) -> Value {
    let (st, body, _) = call(
        s,
        "POST",
        "/api/statements",
        Some(key),
        Some(("text/plain", text.into())),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` (seed 004's timestamps) for unix ms `ms`.
fn seed4_time(ms: i64) -> String {
    let [y, m, d, h, mi, sec, milli] = common::civil(ms);
    format!(
        "{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{sec:02}.{:06}",
        milli * 1000
    )
}

/// A seed 004 event of `category` in `session` with a marker in its data.
fn seed4(session: &str, category: &str, marker: &str, ms: i64) -> Value {
    json!({
        "session_id": session,
        "category": category,
        "name": "AppName",
        "data": {"host": "h", "path": "/", "note": marker, "account": "beta"},
        "timestamp": seed4_time(ms),
        "account": "beta",
        "project": "web",
    })
}

/// What tenant B has, which A must never see.
struct BData {
    event_id: u64,
}

/// B's names, then B's data (with a '-': never echoed by a request).
const B_MARKERS: [&str; 5] = ["b_only", "b_rule", "b_type", "beta-secret", "sess-beta"];

/// Give each tenant the same names and its own: a query `shared` and a rule `cap` in both,
/// `b_only`/`b_rule`/`b_type` only in B; events of seed 004's shape from both clients.
async fn populate(s: &Server) -> BData {
    let now = now_ms();
    for key in [KEY_A, KEY_B] {
        statements(
            s,
            key,
            "CREATE QUERY shared AS SELECT count(*) AS n FROM party GROUP BY session_id, timeseries(timestamp, 1s, 1h);
             CREATE RULE cap ON shared DENY WHEN n > 1000",
        )
        .await;
    }
    statements(
        s,
        KEY_B,
        "CREATE QUERY b_only AS SELECT count(*) AS n FROM b_type GROUP BY note, timeseries(timestamp, 1s, 1h);
         CREATE RULE b_rule ON b_only DENY WHEN n > 5",
    )
    .await;
    let schema = json!({"type": "object", "required": ["note"]});
    let (st, body) = json_call(s, "PUT", "/api/schemas/b_type", KEY_B, Some(schema)).await;
    assert!(st < 300, "{st} {body}");
    // A's client says its events are B's, in the body: they are A's all the same.
    let a_events: Vec<Value> = (0..3)
        .map(|i| seed4("sess-acme", "party", "acme-secret", now - 1000 + i))
        .collect();
    let (st, body) = json_call(
        s,
        "POST",
        "/api/events?wait=durable",
        KEY_A,
        Some(json!({"events": a_events})),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let b_events: Vec<Value> = (0..2)
        .map(|i| seed4("sess-beta", "party", "beta-secret", now - 900 + i))
        .chain((0..2).map(|i| seed4("sess-beta", "b_type", "beta-secret", now - 800 + i)))
        .collect();
    let (st, body) = json_call(
        s,
        "POST",
        "/api/events?wait=durable",
        KEY_B,
        Some(json!({"events": b_events})),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let event_id = body["ids"][3].as_u64().unwrap();
    // B's rule turns to deny: an alert and decisions of B's.
    for _ in 0..5 {
        let e = json!({"category": "b_type", "note": "beta-secret", "timestamp": seed4_time(now)});
        let (st, d) = json_call(s, "POST", "/api/add_and_check", KEY_B, Some(e)).await;
        assert_eq!(st, 200, "{d}");
    }
    BData { event_id }
}

/// The path of a `/help` route with its parameters naming B's things.
fn concrete(method: &str, path: &str, b: &BData) -> String {
    let p = path
        .replace("/label/{name}/values", "/label/__name__/values")
        .replace("/api/rules/{name}", "/api/rules/b_rule")
        .replace("{name}", "b_only")
        .replace("{type}", "b_type")
        .replace("{file}", "app.js")
        .replace("{project}", "web")
        .replace("{dimension}", "b_rule")
        .replace("{key}", "note=beta-secret")
        .replace("{id}", "000000000000");
    let q = match (method, p.as_str()) {
        ("GET", "/api/events") => "?eventType=b_type&session=sess-beta".to_string(),
        ("GET", "/api/keys") => "?type=b_type".to_string(),
        ("GET", "/event") => format!("?id={}", b.event_id),
        ("POST", "/event") => "?evtname=a_probe&note=x&result=true".to_string(),
        ("GET", "/api/queries/b_only/result") => "?key.note=beta-secret".to_string(),
        (_, p) if p.starts_with("/prometheus/api/v1/query_range") => {
            let t = now_ms() / 1000;
            format!("?query=b_only&start={}&end={t}&step=60", t - 3600)
        }
        (_, p) if p.starts_with("/prometheus/api/v1/query") => "?query=b_only".to_string(),
        (_, p) if p.starts_with("/prometheus/api/v1/series") => "?match[]=b_only".to_string(),
        _ => String::new(),
    };
    format!("{p}{q}")
}

/// A body for a route that takes one, asking for B's things.
fn body_for(method: &str, path: &str) -> Option<(&'static str, String)> {
    let p = path.split('?').next().unwrap();
    match (method, p) {
        ("POST", "/api/statements") => Some(("text/plain", "SHOW QUERIES; SHOW RULES".into())),
        // A's writes are of A's own type, so A's later reads of B's names find nothing of A's.
        ("POST", "/api/events") => Some((
            "application/json",
            json!({"type": "a_probe", "note": "x"}).to_string(),
        )),
        ("POST", "/api/events/query") => Some((
            "application/json",
            json!({"eventType": ["b_type"], "session": "sess-beta"}).to_string(),
        )),
        ("POST", "/api/query") => {
            let now = now_ms();
            Some((
                "application/json",
                json!({
                    "start": now - 3_600_000, "end": now + 60_000,
                    "data": {"b": {"filters": [{"eq": {"category": "b_type"}}], "unique": ["note"]}}
                })
                .to_string(),
            ))
        }
        ("POST", "/api/check") | ("POST", "/api/add_and_check") => Some((
            "application/json",
            json!({"type": "a_probe", "note": "probe"}).to_string(),
        )),
        ("PUT", "/api/schemas/b_type") => {
            Some(("application/json", json!({"type": "object"}).to_string()))
        }
        ("POST", "/api/admin/keys") => Some((
            "application/json",
            json!({"account": "beta", "project": "web", "admin": true}).to_string(),
        )),
        ("POST", p) if p.starts_with("/prometheus/") => Some((
            "application/x-www-form-urlencoded",
            "query=b_only&match[]=b_only".into(),
        )),
        _ => None,
    }
}

/// Everything B can read of its own, to compare before and after A's calls.
async fn b_view(s: &Server) -> BTreeMap<&'static str, Value> {
    let mut v = BTreeMap::new();
    for (name, path) in [
        ("queries", "/api/queries"),
        ("rules", "/api/rules"),
        ("schema", "/api/schemas/b_type"),
        ("events", "/api/events?limit=1000"),
        ("shared", "/api/queries/shared/result"),
        ("b_only", "/api/queries/b_only/result"),
    ] {
        let (st, mut body) = json_call(s, "GET", path, KEY_B, None).await;
        assert_eq!(st, 200, "B's own {path}: {body}");
        // Window bounds move with the clock; the rows' keys and values must not.
        strip_times(&mut body);
        v.insert(name, body);
    }
    v
}

fn strip_times(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for k in ["window_start", "window_end", "complete_from", "progress"] {
                o.remove(k);
            }
            o.values_mut().for_each(strip_times);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_times),
        _ => {}
    }
}

#[tokio::test]
async fn no_route_shows_or_changes_another_tenants_data_and_none_answers_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let env = keys_env();
    let s = Server::start_with(dir.path(), &[("WEIR_API_KEYS", env.as_str())]).await;
    let b = populate(&s).await;

    // Controls: each tenant sees its own data (so "not shown" below can fail).
    let (_, a_events) = json_call(&s, "GET", "/api/events?limit=100", KEY_A, None).await;
    assert_eq!(a_events["total"], 3, "{a_events}");
    let a_text = a_events.to_string();
    assert!(
        a_text.contains("acme-secret") && !a_text.contains("beta-secret"),
        "{a_text}"
    );
    let (_, b_events) = json_call(&s, "GET", "/api/events?limit=100", KEY_B, None).await;
    assert_eq!(b_events["total"], 7, "{b_events}"); // 4 added, 3 of 5 add_and_check allowed
    let (_, sessions) = json_call(&s, "GET", "/api/events?groupBy=session", KEY_A, None).await;
    assert_eq!(
        sessions["sessions"].as_array().unwrap().len(),
        1,
        "{sessions}"
    );
    assert_eq!(
        sessions["sessions"][0]["session_id"], "sess-acme",
        "{sessions}"
    );
    // Same names, separate results: A's `shared` counted A's 3 events only.
    let (_, a_shared) = json_call(&s, "GET", "/api/queries/shared/result", KEY_A, None).await;
    assert_eq!(a_shared["rows"].as_array().unwrap().len(), 1, "{a_shared}");
    assert_eq!(a_shared["rows"][0]["values"]["n"], 3, "{a_shared}");
    let (_, b_shared) = json_call(&s, "GET", "/api/queries/shared/result", KEY_B, None).await;
    assert_eq!(b_shared["rows"][0]["values"]["n"], 2, "{b_shared}");
    let (_, b_prom) = json_call(
        &s,
        "GET",
        "/prometheus/api/v1/label/__name__/values",
        KEY_B,
        None,
    )
    .await;
    assert!(b_prom.to_string().contains("b_only"), "{b_prom}");
    let (_, b_keys) = json_call(&s, "GET", "/api/keys?type=b_type", KEY_B, None).await;
    assert!(b_keys.to_string().contains("beta-secret"), "{b_keys}");
    let (_, b_alerts) = json_call(&s, "GET", "/api/alerts", KEY_B, None).await;
    assert_eq!(b_alerts["total"], 1, "{b_alerts}");
    assert_eq!(b_alerts["alerts"][0]["dimension"], "b_rule", "{b_alerts}");
    let (_, b_by_key) = json_call(
        &s,
        "GET",
        "/api/alerts/web/b_rule/note=beta-secret",
        KEY_B,
        None,
    )
    .await;
    assert_eq!(b_by_key["total"], 1, "{b_by_key}");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, d) = json_call(&s, "GET", "/api/decisions?rule=b_rule", KEY_B, None).await;
        if d["decisions"].as_array().is_some_and(|v| v.len() == 5) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "B's decision log: {d}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // /metrics: a tenant's key gets its own series; an admin key every tenant's.
    let (st, own, _) = call(&s, "GET", "/metrics", Some(KEY_A), None).await;
    assert_eq!(st, 200);
    assert!(
        own.contains(r#"weir_events_accepted_total{account="acme",project="web"} 3"#),
        "{own}"
    );
    assert!(!own.contains(r#"account="beta""#), "{own}");
    let (_, all, _) = call(&s, "GET", "/metrics", Some(KEY_OPS), None).await;
    assert!(
        all.contains(r#"account="beta""#) && all.contains("weir_log_records"),
        "{all}"
    );

    let before = b_view(&s).await;
    let (st, help, _) = call(&s, "GET", "/help", Some(KEY_A), None).await;
    assert_eq!(st, 200, "{help}");
    let help: Value = serde_json::from_str(&help).unwrap();
    let routes = common::help_routes(&help);
    assert!(routes.len() >= 40, "{help}");
    let open = ["/healthz", "/console/{file}"];
    for (method, path) in &routes {
        let target = concrete(method, path, &b);
        // Without a key: 401 with a challenge, except the open routes.
        let (st, text, challenge) =
            call(&s, method, &target, None, body_for(method, &target)).await;
        if open.contains(&path.as_str()) {
            assert!(st < 400, "{method} {target} is open, got {st}: {text}");
        } else {
            assert_eq!(st, 401, "{method} {target} without a key: {st} {text}");
            assert_eq!(
                challenge.as_deref(),
                Some("Bearer realm=\"weir\""),
                "{method} {target}"
            );
        }
        // With a wrong key: 401 as well.
        if !open.contains(&path.as_str()) {
            let (st, _, _) = call(
                &s,
                method,
                &target,
                Some("not-a-key-0123456789"),
                body_for(method, &target),
            )
            .await;
            assert_eq!(st, 401, "{method} {target} with a bad key");
        }
        // With A's key, asking for B's things: never B's data.
        let (st, text, _) = call(&s, method, &target, Some(KEY_A), body_for(method, &target)).await;
        assert!(st < 500, "{method} {target} with A's key: {st} {text}");
        // B's data (its field values, its session) never appears. B's *names* may appear only
        // where A's call named them (an echo: "no query named b_only", a type with count 0),
        // and the checks below say those answers hold nothing of B's.
        let asked = format!("{target} {:?}", body_for(method, &target));
        for marker in B_MARKERS {
            let echo = asked.contains(marker) && !marker.contains('-');
            assert!(
                echo || !text.contains(marker),
                "{method} {target} showed B's {marker}: {st} {text}"
            );
        }
        if method == "GET"
            && (path == "/api/queries/{name}"
                || path == "/api/rules/{name}"
                || path == "/api/schemas/{type}")
        {
            assert_eq!(st, 404, "{method} {target}: {text}");
        }
        if method == "GET" && path == "/event" {
            assert_eq!(st, 404, "B's event by id, with A's key: {text}");
        }
        if method == "DELETE" && path.starts_with("/api/queries/") {
            assert_eq!(st, 404, "{method} {target}: {text}");
        }
    }
    // Nothing of B's changed (A's PUT of a schema for b_type made A's own).
    let after = b_view(&s).await;
    assert_eq!(before, after, "B's data changed under A's calls");
    let (st, a_schema) = json_call(&s, "GET", "/api/schemas/b_type", KEY_A, None).await;
    assert_eq!(
        (st, a_schema.clone()),
        (200, json!({"type": "object"})),
        "{a_schema}"
    );
    let (st, body) = json_call(&s, "GET", "/api/queries/b_only/result", KEY_A, None).await;
    assert_eq!(st, 404, "{body}");
    // A backfill reads only its own tenant's stored events: A's 3 of type `party`, not B's 2.
    statements(
        &s,
        KEY_A,
        "CREATE QUERY late AS SELECT count(*) AS n FROM party GROUP BY timeseries(timestamp, 1s, 1h) BACKFILL 1h",
    )
    .await;
    let (_, late) = json_call(&s, "GET", "/api/queries/late/result", KEY_A, None).await;
    assert_eq!(late["rows"][0]["values"]["n"], 3, "{late}");
}

#[tokio::test]
async fn keys_rotate_without_downtime_survive_a_restart_and_only_admins_manage_them() {
    let dir = tempfile::tempdir().unwrap();
    let env = keys_env();
    let mut s = Server::start_with(dir.path(), &[("WEIR_API_KEYS", env.as_str())]).await;
    statements(
        &s,
        KEY_A,
        "CREATE QUERY n AS SELECT count(*) AS n FROM hit GROUP BY page",
    )
    .await;
    let (st, _) = json_call(
        &s,
        "POST",
        "/api/events?wait=durable",
        KEY_A,
        Some(json!({"type": "hit", "page": "p"})),
    )
    .await;
    assert_eq!(st, 200);

    // A non-admin key cannot manage keys.
    let new_a = json!({"account": "acme", "project": "web", "name": "rotated"});
    let (st, _) = json_call(&s, "POST", "/api/admin/keys", KEY_A, Some(new_a.clone())).await;
    assert_eq!(st, 403);
    let (st, _) = json_call(&s, "GET", "/api/admin/keys", KEY_B, None).await;
    assert_eq!(st, 403);

    // Rotation: a second key for acme/web works at once, beside the first.
    let (st, k2) = json_call(&s, "POST", "/api/admin/keys", KEY_OPS, Some(new_a.clone())).await;
    assert_eq!(st, 201, "{k2}");
    let key2 = k2["key"].as_str().unwrap().to_string();
    for key in [KEY_A, key2.as_str()] {
        let (st, r) = json_call(&s, "GET", "/api/queries/n/result", key, None).await;
        assert_eq!(st, 200, "{r}");
        assert_eq!(r["rows"][0]["values"]["n"], 1, "{r}");
        let (_, who) = json_call(&s, "GET", "/api/whoami", key, None).await;
        assert_eq!(
            (who["account"].as_str(), who["project"].as_str()),
            (Some("acme"), Some("web"))
        );
    }
    // The listing never shows a key or its hash.
    let (st, listed) = json_call(&s, "GET", "/api/admin/keys", KEY_OPS, None).await;
    assert_eq!(st, 200);
    let text = listed.to_string();
    assert!(!text.contains(&key2) && !text.contains(KEY_A), "{text}");
    assert_eq!(listed["keys"].as_array().unwrap().len(), 4, "{listed}");
    // A configured key is removed in the configuration, not over the API.
    let config_id = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["source"] == "config" && k["account"] == "acme")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, _) = json_call(
        &s,
        "DELETE",
        &format!("/api/admin/keys/{config_id}"),
        KEY_OPS,
        None,
    )
    .await;
    assert_eq!(st, 409);
    // A third key, then the second is retired: 401 from then on, also after a kill -9.
    let (st, k3) = json_call(&s, "POST", "/api/admin/keys", KEY_OPS, Some(new_a)).await;
    assert_eq!(st, 201, "{k3}");
    let key3 = k3["key"].as_str().unwrap().to_string();
    let id2 = k2["id"].as_str().unwrap();
    let (st, _) = json_call(
        &s,
        "DELETE",
        &format!("/api/admin/keys/{id2}"),
        KEY_OPS,
        None,
    )
    .await;
    assert_eq!(st, 200);
    let (st, _, _) = call(&s, "GET", "/api/queries", Some(&key2), None).await;
    assert_eq!(st, 401);
    // A key for a tenant the node has not served yet brings that tenant up, empty.
    let (st, kg) = json_call(
        &s,
        "POST",
        "/api/admin/keys",
        KEY_OPS,
        Some(json!({"account": "gamma", "project": "p1"})),
    )
    .await;
    assert_eq!(st, 201, "{kg}");
    let key_g = kg["key"].as_str().unwrap().to_string();
    let (st, q) = json_call(&s, "GET", "/api/queries", &key_g, None).await;
    assert_eq!((st, q["queries"].clone()), (200, json!([])), "{q}");
    let (st, bad) = json_call(
        &s,
        "POST",
        "/api/admin/keys",
        KEY_OPS,
        Some(json!({"account": "no/slash", "project": "p"})),
    )
    .await;
    assert_eq!(st, 400, "{bad}");
    assert!(
        bad["error"].as_str().unwrap().contains("not a valid name"),
        "{bad}"
    );

    // After a kill -9 (the log replayed into each tenant) and after a clean stop (the state
    // flushed under the tenant's prefix and restored from it) the tenant's answers are the same.
    s.kill9();
    s.restart().await;
    let (st, r) = json_call(&s, "GET", "/api/queries/n/result", &key3, None).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["rows"][0]["values"]["n"], 1, "{r}");
    s.terminate();
    s.restart().await;
    let (st, r) = json_call(&s, "GET", "/api/queries/n/result", &key3, None).await;
    assert_eq!(
        (st, r["rows"][0]["values"]["n"].clone()),
        (200, json!(1)),
        "{r}"
    );
    let (st, _, _) = call(&s, "GET", "/api/queries", Some(&key2), None).await;
    assert_eq!(st, 401, "a retired key works again after a restart");
    let (st, _) = json_call(&s, "GET", "/api/whoami", &key_g, None).await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn a_server_without_keys_turns_them_on_with_its_first_admin_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (st, _) = s.get("/api/queries").await;
    assert_eq!(st, 200, "no keys: open");
    let (st, body) = s
        .post(
            "/api/admin/keys",
            &json!({"account": "acme", "project": "web"}),
        )
        .await;
    assert_eq!(st, 400, "{body}");
    let (st, k) = s
        .post(
            "/api/admin/keys",
            &json!({"account": "ops", "project": "all", "admin": true}),
        )
        .await;
    assert_eq!(st, 201, "{k}");
    let (st, _) = s.get("/api/queries").await;
    assert_eq!(st, 401, "the first key turns keys on");
    let key = k["key"].as_str().unwrap();
    let (st, _, _) = call(&s, "GET", "/api/admin/keys", Some(key), None).await;
    assert_eq!(st, 200);
    let (st, _, _) = call(&s, "GET", "/healthz", None, None).await;
    assert_eq!(st, 200);
    // The key may also come as X-Api-Key or ?api_key= (seed 002's GET form).
    let r = s
        .client()
        .get(format!("{}/api/whoami", s.url))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (st, _, _) = call(
        &s,
        "GET",
        &format!("/event?evtname=x&api_key={key}"),
        None,
        None,
    )
    .await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn an_inputs_events_belong_to_its_configured_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let udp = format!("127.0.0.1:{port}");
    let env = keys_env();
    let s = Server::start_on_with(
        dir.path(),
        &["--udp", &udp],
        &[
            ("WEIR_API_KEYS", env.as_str()),
            ("WEIR_AUTH__INPUTS__UDP", "beta/web"),
        ],
    )
    .await;
    statements(
        &s,
        KEY_B,
        "CREATE QUERY n AS SELECT count(*) AS n FROM metric GROUP BY host",
    )
    .await;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..5 {
        let d = json!({"type": "metric", "host": format!("h{}", i % 2), "account": "acme"});
        sock.send_to(d.to_string().as_bytes(), &udp).unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, e) = json_call(&s, "GET", "/api/events?eventType=metric", KEY_B, None).await;
        if e["total"] == 5 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "B has {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, r) = json_call(&s, "GET", "/api/queries/n/result", KEY_B, None).await;
    let total: i64 = r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["values"]["n"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 5, "{r}");
    let (_, a) = json_call(&s, "GET", "/api/events?eventType=metric", KEY_A, None).await;
    assert_eq!(a["total"], 0, "{a}");
}
