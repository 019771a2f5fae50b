//! The catalogue against the real binary: drops of what others read (409 / CASCADE), a data
//! dir whose stored definitions cannot all be restored still starts, and a randomized run
//! of create / replace / drop / drop cascade / kill -9 + restart in which every start
//! succeeds and serves exactly the definitions acknowledged.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{now_ms, Server};
use serde_json::{json, Value};
use weir_storage::CatalogKind;

fn names(list: &Value, field: &str) -> BTreeMap<String, Value> {
    list[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["name"].as_str().unwrap().to_string(), d.clone()))
        .collect()
}

fn dependents(body: &Value, field: &str) -> BTreeSet<(String, String)> {
    body[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} in {body}"))
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(k, n)| (k.to_string(), n.to_string()))
        .collect()
}

async fn metric(s: &Server, name: &str) -> Option<f64> {
    let text = s.metrics_text().await;
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

#[tokio::test]
async fn a_drop_of_what_others_read_is_refused_unless_cascade() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path()).await;
    let (st, body) = s
        .statements(
            "CREATE QUERY dq AS SELECT count(*) AS n FROM orders GROUP BY seller, timeseries(time, 1s);
             CREATE RULE dr ON dq DENY WHEN n > 1;
             CREATE QUERY v AS SELECT * FROM dq(30s);
             CREATE QUERY v2 AS SELECT count(*) AS keys FROM v;
             CREATE RULE own AS SELECT count(*) AS c FROM orders GROUP BY seller, timeseries(time, 1s, 10s) DENY WHEN c > 1000;",
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let every = set(&[("rule", "dr"), ("query", "v"), ("query", "v2")]);

    let r = s
        .client()
        .delete(format!("{}/api/queries/dq", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let body: Value = r.json().await.unwrap();
    assert_eq!(dependents(&body, "dependents"), every, "{body}");
    let msg = body["error"].as_str().unwrap();
    assert!(
        msg.contains("rule 'dr'") && msg.contains("query 'v2'") && msg.contains("CASCADE"),
        "{msg}"
    );

    let (st, body) = s.statements("DROP QUERY dq").await;
    assert_eq!(st, 409, "{body}");
    // A view in the middle is refused too; a rule has no dependents.
    let (st, body) = s.statements("DROP QUERY v").await;
    assert_eq!(st, 409, "{body}");
    assert_eq!(dependents(&body, "dependents"), set(&[("query", "v2")]));
    // All or nothing: the first statement is not applied when the second is refused.
    let (st, _) = s.statements("DROP RULE own; DROP QUERY dq").await;
    assert_eq!(st, 409);
    assert!(names(&s.get("/api/rules").await.1, "rules").contains_key("own"));

    // The rule still decides.
    let t = now_ms() - 60_000;
    let ev = json!({"type": "orders", "seller": "x", "ts": t});
    assert_eq!(
        s.post("/api/add_and_check", &ev).await.1["decision"],
        "allow"
    );
    assert_eq!(
        s.post("/api/add_and_check", &ev).await.1["decision"],
        "deny"
    );

    // Dropping the rule first, then the views, is fine; so is CASCADE.
    let (st, body) = s.statements("DROP QUERY dq CASCADE").await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(dependents(&body["results"][0], "dropped"), every, "{body}");
    let queries = names(&s.get("/api/queries").await.1, "queries");
    assert!(queries.is_empty(), "{queries:?}");
    let rules = names(&s.get("/api/rules").await.1, "rules");
    assert_eq!(rules.keys().collect::<Vec<_>>(), ["own"]);

    // The DELETE route with ?cascade=true, and a restart that finds a consistent catalogue.
    let (st, body) = s
        .statements(
            "CREATE QUERY dq AS SELECT count(*) AS n FROM orders GROUP BY seller, timeseries(time, 1s);
             CREATE RULE dr ON dq DENY WHEN n > 1;",
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let r = s
        .client()
        .delete(format!("{}/api/queries/dq?cascade=true", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(dependents(&body, "dropped"), set(&[("rule", "dr")]));
    s.kill9();
    s.restart().await;
    assert!(names(&s.get("/api/queries").await.1, "queries").is_empty());
    assert_eq!(
        names(&s.get("/api/rules").await.1, "rules")
            .keys()
            .collect::<Vec<_>>(),
        ["own"]
    );
}

#[tokio::test]
async fn a_replacement_that_breaks_a_reader_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (st, body) = s
        .statements(
            "CREATE QUERY q AS SELECT count(*) AS n FROM orders GROUP BY seller, timeseries(time, 1s);
             CREATE QUERY v AS SELECT * FROM q(10s);
             CREATE RULE r ON v DENY WHEN n > 1;",
        )
        .await;
    assert_eq!(st, 200, "{body}");
    // `n` disappears from q, so from v, which rule r reads.
    let (st, body) = s
        .statements("CREATE OR REPLACE QUERY q AS SELECT count(*) AS m FROM orders GROUP BY seller, timeseries(time, 1s)")
        .await;
    assert_eq!(st, 409, "{body}");
    assert_eq!(dependents(&body, "dependents"), set(&[("rule", "r")]));
    // A query that would read itself through another is refused with its position.
    let (st, body) = s
        .statements("CREATE OR REPLACE QUERY q AS SELECT count(*) AS n FROM v GROUP BY seller")
        .await;
    assert_eq!(st, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("would read itself"),
        "{body}"
    );
    assert_eq!(
        (body["line"].as_u64(), body["column"].as_u64()),
        (Some(1), Some(56))
    );
}

#[tokio::test]
async fn a_catalogue_that_cannot_be_restored_never_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        // An old data dir: a rule on a dropped query, a view over a missing one, a cycle,
        // a text that no longer parses, and one good query.
        let store = common::open_store(dir.path());
        for (kind, name, text) in [
            (CatalogKind::Query, "good", "CREATE QUERY good AS SELECT count(*) AS n FROM orders GROUP BY seller, timeseries(time, 1s)"),
            (CatalogKind::Rule, "dr", "CREATE RULE dr ON dq DENY WHEN n > 1"),
            (CatalogKind::Query, "v", "CREATE QUERY v AS SELECT * FROM gone(30min)"),
            (CatalogKind::Query, "c1", "CREATE QUERY c1 AS SELECT count(*) AS n FROM c2 GROUP BY seller"),
            (CatalogKind::Query, "c2", "CREATE QUERY c2 AS SELECT count(*) AS n FROM c1 GROUP BY seller"),
            (CatalogKind::Query, "over_c1", "CREATE QUERY over_c1 AS SELECT count(*) AS n FROM c1 GROUP BY seller"),
            (CatalogKind::Query, "broken", "CREATE QUERY broken AS SELEC"),
        ] {
            store.catalog_put(kind, name, text).unwrap();
        }
    }
    let mut s = Server::start(dir.path()).await;
    let queries = names(&s.get("/api/queries").await.1, "queries");
    let rules = names(&s.get("/api/rules").await.1, "rules");
    assert_eq!(queries["good"]["status"], "running");
    let reason = |d: &Value| d["error"].as_str().unwrap_or_default().to_string();
    assert_eq!(rules["dr"]["status"], "error");
    assert!(reason(&rules["dr"]).contains("dq"), "{}", rules["dr"]);
    assert!(reason(&queries["v"]).contains("gone"), "{}", queries["v"]);
    assert!(
        reason(&queries["c1"]).contains("cycle"),
        "{}",
        queries["c1"]
    );
    assert!(
        reason(&queries["c2"]).contains("c1 → c2") || reason(&queries["c2"]).contains("c2 → c1"),
        "{}",
        queries["c2"]
    );
    assert!(
        reason(&queries["over_c1"]).contains("could not be restored"),
        "{}",
        queries["over_c1"]
    );
    assert!(
        reason(&queries["broken"]).contains("parse"),
        "{}",
        queries["broken"]
    );
    let (st, one) = s.get("/api/queries/v").await;
    assert_eq!((st, one["status"].as_str()), (200, Some("error")));
    assert_eq!(metric(&s, "weir_catalog_errors").await, Some(6.0));

    // Everything else serves.
    let t = now_ms() - 60_000;
    let (st, _) = s
        .post(
            "/api/events?wait=durable",
            &json!({"type": "orders", "seller": "x", "ts": t}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, res) = s.get(&format!("/api/queries/good/result?at={t}")).await;
    assert_eq!(st, 200, "{res}");
    assert_eq!(res["rows"][0]["values"]["n"], 1, "{res}");

    // Fixed by replacing or dropping.
    let (st, body) = s
        .statements(
            "CREATE RULE dr ON good DENY WHEN n > 5;
             CREATE OR REPLACE RULE dr ON good DENY WHEN n > 5;",
        )
        .await;
    assert_eq!(
        st, 400,
        "a plain CREATE of a name in error says it exists: {body}"
    );
    let (st, body) = s
        .statements(
            "CREATE OR REPLACE RULE dr ON good DENY WHEN n > 5;
             DROP QUERY v; DROP QUERY over_c1; DROP QUERY c1;
             CREATE OR REPLACE QUERY c2 AS SELECT count(*) AS n FROM orders GROUP BY seller;",
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let r = s
        .client()
        .delete(format!("{}/api/queries/broken", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(metric(&s, "weir_catalog_errors").await, Some(0.0));
    s.kill9();
    s.restart().await;
    let queries = names(&s.get("/api/queries").await.1, "queries");
    let rules = names(&s.get("/api/rules").await.1, "rules");
    assert_eq!(queries.keys().collect::<Vec<_>>(), ["c2", "good"]);
    assert!(
        queries.values().all(|q| q["status"] == "running"),
        "{queries:?}"
    );
    assert_eq!(rules["dr"]["status"], "running");
    assert_eq!(metric(&s, "weir_catalog_errors").await, Some(0.0));
}

// ---------------------------------------------------------------------------------------
// The randomized catalogue test.

/// A small deterministic generator (xorshift64*), so a failing seed can be rerun.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Base queries over events: their select, and the columns it gives.
const BASES: [(&str, &[&str]); 3] = [
    (
        "SELECT count(*) AS n, sum(amount) AS s FROM orders GROUP BY seller, timeseries(time, 1s)",
        &["n", "s"],
    ),
    (
        "SELECT count(*) AS n, max(amount) AS s FROM orders WHERE amount > 1 GROUP BY seller, timeseries(time, 1s)",
        &["n", "s"],
    ),
    (
        "SELECT count(*) AS m FROM orders GROUP BY seller, timeseries(time, 2s)",
        &["m"],
    ),
];

#[derive(Debug, Clone, PartialEq)]
enum Def {
    /// A query over events, BASES[i].
    Base(usize),
    /// `SELECT * FROM up(10s)` (star) or `SELECT seller, n FROM up(10s) WHERE n > 1`.
    View { up: String, star: bool },
    /// `RULE … ON q DENY WHEN n > 3`.
    RuleOn(String),
    /// `RULE … AS SELECT … FROM orders …` (reads no query).
    RuleOwn,
}

impl Def {
    fn text(&self, name: &str) -> String {
        match self {
            Def::Base(i) => format!("CREATE OR REPLACE QUERY {name} AS {}", BASES[*i].0),
            Def::View { up, star: true } => {
                format!("CREATE OR REPLACE QUERY {name} AS SELECT * FROM {up}(10s)")
            }
            Def::View { up, star: false } => format!(
                "CREATE OR REPLACE QUERY {name} AS SELECT seller, n FROM {up}(10s) WHERE n > 1"
            ),
            Def::RuleOn(q) => format!("CREATE OR REPLACE RULE {name} ON {q} DENY WHEN n > 3"),
            Def::RuleOwn => format!(
                "CREATE OR REPLACE RULE {name} AS SELECT count(*) AS c FROM orders \
                 GROUP BY seller, timeseries(time, 1s, 10s) DENY WHEN c > 1000"
            ),
        }
    }

    fn is_rule(&self) -> bool {
        matches!(self, Def::RuleOn(_) | Def::RuleOwn)
    }

    fn reads(&self) -> Option<&str> {
        match self {
            Def::View { up, .. } => Some(up),
            Def::RuleOn(q) => Some(q),
            _ => None,
        }
    }
}

/// What the server has acknowledged.
#[derive(Debug, Clone, Default)]
struct Model {
    defs: BTreeMap<String, Def>,
}

impl Model {
    fn columns(&self, q: &str) -> Option<Vec<&'static str>> {
        match self.defs.get(q)? {
            Def::Base(i) => Some(BASES[*i].1.to_vec()),
            Def::View { up, star: true } => self.columns(up),
            Def::View { star: false, .. } => Some(vec!["seller", "n"]),
            _ => None,
        }
    }

    /// Whether every definition can be analysed against the others.
    fn valid(&self) -> bool {
        self.defs.iter().all(|(_, d)| match d {
            Def::Base(_) | Def::RuleOwn => true,
            Def::View { up, star } => {
                matches!(self.defs.get(up), Some(Def::Base(_)))
                    && (*star || self.columns(up).is_some_and(|c| c.contains(&"n")))
            }
            Def::RuleOn(q) => self.columns(q).is_some_and(|c| c.contains(&"n")),
        })
    }

    fn closure(&self, q: &str) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        let mut todo = vec![q.to_string()];
        while let Some(x) = todo.pop() {
            for (n, d) in &self.defs {
                if d.reads() == Some(x.as_str()) {
                    let kind = if d.is_rule() { "rule" } else { "query" };
                    if out.insert((kind.to_string(), n.clone())) && !d.is_rule() {
                        todo.push(n.clone());
                    }
                }
            }
        }
        out
    }
}

/// What the server lists, checked against the model: same names, every one running, and
/// each text meaning the definition acknowledged.
async fn check_served(s: &Server, model: &Model, ctx: &str) {
    let queries = names(&s.get("/api/queries").await.1, "queries");
    let rules = names(&s.get("/api/rules").await.1, "rules");
    let mut served: BTreeMap<String, &Value> = BTreeMap::new();
    served.extend(queries.iter().map(|(k, v)| (k.clone(), v)));
    served.extend(rules.iter().map(|(k, v)| (k.clone(), v)));
    assert_eq!(
        served.keys().collect::<Vec<_>>(),
        model.defs.keys().collect::<Vec<_>>(),
        "{ctx}: served names"
    );
    for (name, def) in &model.defs {
        let got = served[name];
        assert_eq!(got["status"], "running", "{ctx}: {got}");
        let text = got["text"].as_str().unwrap();
        assert_eq!(
            weir_query_lang::parse(text).unwrap(),
            weir_query_lang::parse(&def.text(name)).unwrap(),
            "{ctx}: {name} is served as {text}"
        );
        if !def.is_rule() {
            let (st, body) = s.get(&format!("/api/queries/{name}/result")).await;
            assert_eq!(st, 200, "{ctx}: reading {name}: {body}");
        }
    }
}

async fn random_run(seed: u64, steps: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path()).await;
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut model = Model::default();
    let bases = ["b0", "b1", "b2"];
    let views = ["v0", "v1", "v2"];
    let rules = ["r0", "r1", "r2"];
    let t0 = now_ms() - 120_000;
    for step in 0..steps {
        let ctx = format!("seed {seed}, step {step}");
        // A few events now and then, so backfills and replays have something to do.
        if rng.below(4) == 0 {
            let ev = json!({"type": "orders", "seller": format!("s{}", rng.below(3)), "amount": rng.below(5), "ts": t0 + step as i64 * 100});
            let (st, _) = s.post("/api/events?wait=durable", &ev).await;
            assert_eq!(st, 200, "{ctx}");
        }
        match rng.below(10) {
            0..=1 => {
                let name = *rng.pick(&bases);
                let def = Def::Base(rng.below(BASES.len()));
                let mut next = model.clone();
                next.defs.insert(name.to_string(), def.clone());
                let want = if next.valid() { 200 } else { 409 };
                let (st, body) = s.statements(&def.text(name)).await;
                assert_eq!(st, want, "{ctx}: {} -> {body}", def.text(name));
                if st == 200 {
                    model = next;
                }
            }
            2..=3 => {
                let name = *rng.pick(&views);
                let def = Def::View {
                    up: rng.pick(&bases).to_string(),
                    star: rng.below(2) == 0,
                };
                let mut next = model.clone();
                next.defs.insert(name.to_string(), def.clone());
                let want = if !matches!(model.defs.get(def.reads().unwrap()), Some(Def::Base(_))) {
                    400
                } else if !next.valid() {
                    // The view itself is wrong (400), or replacing it breaks a rule (409).
                    let mut alone = model.clone();
                    alone
                        .defs
                        .retain(|n, d| n != name && d.reads() != Some(name));
                    alone.defs.insert(name.to_string(), def.clone());
                    if alone.valid() {
                        409
                    } else {
                        400
                    }
                } else {
                    200
                };
                let (st, body) = s.statements(&def.text(name)).await;
                assert_eq!(st, want, "{ctx}: {} -> {body}", def.text(name));
                if st == 200 {
                    model = next;
                }
            }
            4..=5 => {
                let name = *rng.pick(&rules);
                let def = if rng.below(3) == 0 {
                    Def::RuleOwn
                } else {
                    let all: Vec<&str> = bases.iter().chain(&views).copied().collect();
                    Def::RuleOn(rng.pick(&all).to_string())
                };
                let mut next = model.clone();
                next.defs.insert(name.to_string(), def.clone());
                let want = if next.valid() { 200 } else { 400 };
                let (st, body) = s.statements(&def.text(name)).await;
                assert_eq!(st, want, "{ctx}: {} -> {body}", def.text(name));
                if st == 200 {
                    model = next;
                }
            }
            6..=7 => {
                let all: Vec<&str> = bases.iter().chain(&views).copied().collect();
                let name = *rng.pick(&all);
                let cascade = rng.below(2) == 0;
                let text = format!("DROP QUERY {name}{}", if cascade { " CASCADE" } else { "" });
                let (st, body) = s.statements(&text).await;
                let deps = model.closure(name);
                if !model.defs.contains_key(name) {
                    assert_eq!(st, 400, "{ctx}: {text} -> {body}");
                } else if !deps.is_empty() && !cascade {
                    assert_eq!(st, 409, "{ctx}: {text} -> {body}");
                    assert_eq!(dependents(&body, "dependents"), deps, "{ctx}");
                } else {
                    assert_eq!(st, 200, "{ctx}: {text} -> {body}");
                    assert_eq!(dependents(&body["results"][0], "dropped"), deps, "{ctx}");
                    for (_, n) in &deps {
                        model.defs.remove(n);
                    }
                    model.defs.remove(name);
                }
            }
            8 => {
                let name = *rng.pick(&rules);
                let (st, body) = s.statements(&format!("DROP RULE {name}")).await;
                let want = if model.defs.contains_key(name) {
                    200
                } else {
                    400
                };
                assert_eq!(st, want, "{ctx}: DROP RULE {name} -> {body}");
                model.defs.remove(name);
            }
            _ => {
                // kill -9 (or now and then a clean stop) and start again: it must start,
                // and serve exactly what was acknowledged.
                if rng.below(4) == 0 {
                    s.terminate();
                } else {
                    s.kill9();
                }
                s.restart().await;
                check_served(&s, &model, &ctx).await;
            }
        }
    }
    s.kill9();
    s.restart().await;
    check_served(&s, &model, &format!("seed {seed}, end")).await;
}

#[tokio::test]
async fn random_catalogue_changes_and_kills_always_restart_to_what_was_acknowledged() {
    let seeds: Vec<u64> = match std::env::var("WEIR_CATALOG_SEED") {
        Ok(s) => vec![s.parse().expect("WEIR_CATALOG_SEED is a number")],
        Err(_) => vec![1, 2, 3],
    };
    for seed in seeds {
        random_run(seed, 70).await;
    }
}
