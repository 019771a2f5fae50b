//! The Prometheus-compatible API and /metrics, checked with real Prometheus tools that no one
//! here wrote: Debian's `promtool` queries a running Weir (instant, range, series, labels),
//! every value compared with `/api/queries/{name}/result` and with a recount of the random
//! events sent; a real `prometheus` server scrapes Weir's /metrics and answers with Weir's
//! metrics; `promtool check metrics` lints the exposition.
//!
//! The tools come from `scripts/prometheus.sh` (`WEIR_TEST_PROMTOOL`,
//! `WEIR_TEST_PROMETHEUS`); without them these tests fail saying so.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, now_ms, Server};
use serde_json::{json, Value};

/// A Prometheus tool: `$var`, else on the PATH or in /usr/bin; fails the test otherwise.
fn tool(var: &str, name: &str) -> PathBuf {
    if let Ok(p) = std::env::var(var) {
        if !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/bin"])
    {
        let p = PathBuf::from(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{name} not found: set {var} or run `source scripts/prometheus.sh` (installs the Debian \
         package 'prometheus'); these tests need the real Prometheus tools"
    )
}

/// Run `promtool query …` with JSON output; the parsed answer, or the error text.
fn promtool(args: &[&str]) -> Result<Value, String> {
    let out = Command::new(tool("WEIR_TEST_PROMTOOL", "promtool"))
        .arg("query")
        .args(args)
        .output()
        .expect("run promtool");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if !out.status.success() {
        return Err(format!("{stdout}{stderr}"));
    }
    serde_json::from_str(&stdout).map_err(|e| format!("promtool printed non-JSON ({e}): {stdout}"))
}

fn num(v: &Value) -> f64 {
    v.as_str()
        .expect("sample value as a string")
        .parse()
        .expect("a number")
}

/// Every panel expression of a provisioned dashboard, variables substituted.
fn dashboard_exprs(file: &str, vars: &[(&str, &str)]) -> Vec<String> {
    let path = format!(
        "{}/docker/grafana/dashboards/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let d: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let mut e = t["expr"].as_str().unwrap().to_string();
            for (k, v) in vars {
                e = e.replace(k, v);
            }
            assert!(!e.contains('$'), "unsubstituted variable in {file}: {e}");
            out.push(e);
        }
    }
    assert!(!out.is_empty());
    out
}

/// A small deterministic generator (no dependency): xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

const SELLERS: [&str; 4] = ["a", "b", "c", "d-1"];
const MIN: i64 = 60_000;

/// Random orders over 20 minutes from `b`: (ts, seller, amount).
fn orders(b: i64, seed: u64) -> Vec<(i64, &'static str, i64)> {
    let mut rng = Rng(seed);
    (0..400)
        .map(|_| {
            let ts = b + rng.next(20 * MIN as u64) as i64;
            let seller = SELLERS[rng.next(SELLERS.len() as u64) as usize];
            (ts, seller, 1 + rng.next(100) as i64)
        })
        .collect()
}

/// The oracle: per (seller, minute index) the events' (count, sum, max).
fn recount(evs: &[(i64, &str, i64)], b: i64) -> BTreeMap<(String, i64), (f64, f64, f64)> {
    let mut m: BTreeMap<(String, i64), (f64, f64, f64)> = BTreeMap::new();
    for &(ts, s, a) in evs {
        let e = m
            .entry((s.to_string(), (ts - b) / MIN))
            .or_insert((0.0, 0.0, 0.0));
        e.0 += 1.0;
        e.1 += a as f64;
        e.2 = e.2.max(a as f64);
    }
    m
}

/// The oracle of the sliding query: count and max over minutes `m-4..=m`.
fn window(
    o: &BTreeMap<(String, i64), (f64, f64, f64)>,
    seller: &str,
    m: i64,
) -> Option<(f64, f64)> {
    let cells: Vec<_> = (m - 4..=m)
        .filter_map(|i| o.get(&(seller.to_string(), i)))
        .collect();
    (!cells.is_empty()).then(|| {
        (
            cells.iter().map(|c| c.0).sum(),
            cells.iter().map(|c| c.2).fold(f64::MIN, f64::max),
        )
    })
}

/// A server whose sliding windows keep 2 h of grace, so every window over the test's
/// 20 minutes of events stays complete (and readable) while the test runs.
async fn server(dir: &tempfile::TempDir) -> Server {
    let cfg = dir.path().join("weir.toml");
    std::fs::write(&cfg, "grace = \"2h\"\n").unwrap();
    Server::start_args(
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    )
    .await
}

async fn setup(s: &Server, b: i64) -> Vec<(i64, &'static str, i64)> {
    let (st, body) = s
        .statements(
            "CREATE QUERY per_min AS SELECT count(*) AS n, sum(amount) AS total FROM order GROUP BY seller, timeseries(time, 1min);
             CREATE QUERY last5 AS SELECT count(*) AS n, max(amount) AS top FROM order GROUP BY seller, timeseries(time, 1min, 5min);",
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let evs = orders(b, 0x5eed_1234);
    let batch: Vec<Value> = evs
        .iter()
        .map(|(ts, seller, amount)| json!({"type":"order","ts": ts, "seller": seller, "amount": amount}))
        .collect();
    let (st, body) = s
        .post("/api/events?wait=durable", &json!({ "events": batch }))
        .await;
    assert_eq!(st, 200, "{body}");
    evs
}

/// The API's row of `query` for `seller` at bucket `bucket` (series: bucket_start; sliding:
/// the window ending with it), read with `from`/`to`.
async fn api_row(s: &Server, query: &str, seller: &str, bucket: i64) -> Option<Value> {
    let (st, res) = s
        .get(&format!(
            "/api/queries/{query}/result?from={bucket}&to={}&key.seller={seller}",
            bucket + MIN
        ))
        .await;
    assert_eq!(st, 200, "{res}");
    let rows = res["rows"].as_array().unwrap();
    assert!(rows.len() <= 1, "{res}");
    rows.first().map(|r| r["values"].clone())
}

#[tokio::test]
async fn promtool_queries_match_results_and_a_recount() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir).await;
    let b = (now_ms() - 40 * MIN) / MIN * MIN;
    let evs = setup(&s, b).await;
    let oracle = recount(&evs, b);
    let url = format!("{}/prometheus", s.url);

    // Instant queries mid-bucket: the series query's bucket, the sliding window ending there.
    for m in [0i64, 3, 7, 12, 19] {
        let t = b + m * MIN + 30_000;
        let ts = format!("{}", t / 1000);
        let v = promtool(&["instant", "-o", "json", "--time", &ts, &url, "per_min_n"]).unwrap();
        let got: BTreeMap<String, f64> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert_eq!(r["metric"]["__name__"], "per_min_n");
                assert_eq!(r["metric"]["query"], "per_min");
                assert_eq!(r["metric"]["column"], "n");
                (
                    r["metric"]["seller"].as_str().unwrap().to_string(),
                    num(&r["value"][1]),
                )
            })
            .collect();
        for seller in SELLERS {
            let want = oracle.get(&(seller.to_string(), m)).map(|c| c.0);
            assert_eq!(
                got.get(seller).copied(),
                want,
                "per_min_n seller {seller} minute {m}"
            );
            let api = api_row(&s, "per_min", seller, b + m * MIN).await;
            assert_eq!(
                api.map(|r| r["n"].as_f64().unwrap()),
                want,
                "API per_min {seller} {m}"
            );
        }
        let v = promtool(&[
            "instant",
            "-o",
            "json",
            "--time",
            &ts,
            &url,
            r#"last5_top{seller="d-1"}"#,
        ])
        .unwrap();
        let want = window(&oracle, "d-1", m).map(|w| w.1);
        let got = v.as_array().unwrap().first().map(|r| num(&r["value"][1]));
        assert_eq!(got, want, "last5_top d-1 at minute {m}");
        let api = api_row(&s, "last5", "d-1", b + m * MIN).await;
        assert_eq!(api.map(|r| r["top"].as_f64().unwrap()), want);
    }

    // Range queries: every step, compared with the recount and the API's series read.
    let (start, end) = (
        format!("{}", b / 1000),
        format!("{}", (b + 19 * MIN) / 1000),
    );
    let v = promtool(&[
        "range",
        "-o",
        "json",
        "--start",
        &start,
        "--end",
        &end,
        "--step",
        "1m",
        &url,
        r#"per_min_total{seller=~"a|d-1"}"#,
    ])
    .unwrap();
    let series = v.as_array().unwrap();
    assert_eq!(series.len(), 2, "{v}");
    for sr in series {
        let seller = sr["metric"]["seller"].as_str().unwrap();
        let points: BTreeMap<i64, f64> = sr["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| ((p[0].as_f64().unwrap() * 1000.0) as i64, num(&p[1])))
            .collect();
        for m in 0..20 {
            let want = oracle.get(&(seller.to_string(), m)).map(|c| c.1);
            assert_eq!(
                points.get(&(b + m * MIN)).copied(),
                want,
                "{seller} minute {m}"
            );
            let api = api_row(&s, "per_min", seller, b + m * MIN).await;
            assert_eq!(api.map(|r| r["total"].as_f64().unwrap()), want);
        }
    }
    // The sliding query every 2 minutes, summed over sellers.
    let v = promtool(&[
        "range",
        "-o",
        "json",
        "--start",
        &start,
        "--end",
        &end,
        "--step",
        "2m",
        &url,
        "sum by (column) (last5_n)",
    ])
    .unwrap();
    let sr = &v.as_array().unwrap()[0];
    assert_eq!(sr["metric"], json!({"column": "n"}));
    let points = sr["values"].as_array().unwrap();
    assert_eq!(points.len(), 10);
    for (i, p) in points.iter().enumerate() {
        let m = 2 * i as i64;
        let want: f64 = SELLERS
            .iter()
            .filter_map(|s| window(&oracle, s, m))
            .map(|w| w.0)
            .sum();
        assert_eq!(num(&p[1]), want, "sum of last5_n at minute {m}");
        assert_eq!((p[0].as_f64().unwrap() * 1000.0) as i64, b + m * MIN);
    }
    // topk and arithmetic with offset, at one time.
    let t = format!("{}", (b + 10 * MIN + 1000) / 1000);
    let v = promtool(&[
        "instant",
        "-o",
        "json",
        "--time",
        &t,
        &url,
        "topk(1, last5_n)",
    ])
    .unwrap();
    let best = SELLERS
        .iter()
        .map(|s| window(&oracle, s, 10).map(|w| w.0).unwrap_or(0.0))
        .fold(0.0, f64::max);
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(num(&v[0]["value"][1]), best);
    let v = promtool(&[
        "instant",
        "-o",
        "json",
        "--time",
        &t,
        &url,
        r#"per_min_n{seller="a"} - per_min_n{seller="a"} offset 1m"#,
    ]);
    let cur = oracle.get(&("a".into(), 10)).map(|c| c.0);
    let prev = oracle.get(&("a".into(), 9)).map(|c| c.0);
    match (cur, prev) {
        (Some(c), Some(p)) => assert_eq!(num(&v.unwrap()[0]["value"][1]), c - p),
        _ => assert_eq!(v.unwrap(), json!([])),
    }

    // Series and label values.
    let v = promtool(&[
        "series",
        "-o",
        "json",
        "--match",
        r#"{query="per_min"}"#,
        &url,
    ])
    .unwrap();
    let got: BTreeSet<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["__name__"].as_str().unwrap().into(),
                l["seller"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String)> = oracle
        .keys()
        .flat_map(|(s, _)| ["per_min_n", "per_min_total"].map(|n| (n.to_string(), s.clone())))
        .collect();
    assert_eq!(got, want);
    let v = promtool(&["labels", "-o", "json", &url, "seller"]).unwrap();
    let sellers: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(sellers, vec!["a", "b", "c", "d-1"]);
    let v = promtool(&["labels", "-o", "json", &url, "__name__"]).unwrap();
    for n in ["last5_n", "last5_top", "per_min_n", "per_min_total"] {
        assert!(v.as_array().unwrap().contains(&json!(n)), "{v}");
    }

    // Unsupported PromQL: promtool shows Prometheus's error; the envelope is Prometheus's.
    let e = promtool(&["instant", &url, "rate(per_min_n[5m])"]).unwrap_err();
    assert!(e.contains("unsupported: function rate()"), "{e}");
    let r = s
        .client()
        .get(format!("{url}/api/v1/query"))
        .query(&[("query", "per_min_n[5m]")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "error");
    assert_eq!(body["errorType"], "bad_data");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .starts_with("unsupported: the range vector selector"));
    // Form-encoded POST, as Grafana sends it.
    let t2 = (b + 3 * MIN) / 1000;
    let r = s
        .client()
        .post(format!("{url}/api/v1/query"))
        .form(&[
            ("query", r#"per_min_n{seller="a"}"#.to_string()),
            ("time", t2.to_string()),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "success", "{body}");
    let want = oracle.get(&("a".into(), 3)).map(|c| c.0);
    let got = body["data"]["result"]
        .as_array()
        .unwrap()
        .first()
        .map(|r| num(&r["value"][1]));
    assert_eq!(got, want);
    // Every panel of the "Query results" dashboard runs on Weir and has data.
    for expr in dashboard_exprs(
        "query-results.json",
        &[("$query", "per_min"), ("$column", "n")],
    ) {
        let r = s
            .client()
            .get(format!("{url}/api/v1/query_range"))
            .query(&[
                ("query", expr.as_str()),
                ("start", start.as_str()),
                ("end", end.as_str()),
                ("step", "60"),
            ])
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], "success", "{expr}: {body}");
        if !expr.contains("weir_rule") {
            assert!(
                !body["data"]["result"].as_array().unwrap().is_empty(),
                "{expr}: {body}"
            );
        }
    }
    let (st, info) = s.get("/prometheus/api/v1/status/buildinfo").await;
    assert_eq!(st, 200);
    assert!(info["data"]["version"].as_str().unwrap().starts_with('2'));
}

#[tokio::test]
async fn rule_decisions_as_series_through_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let (st, body) = s
        .statements("CREATE RULE two AS SELECT count(*) AS orders FROM neworder GROUP BY seller, timeseries(time, 1s, 1min) DENY WHEN orders > 2")
        .await;
    assert_eq!(st, 200, "{body}");
    let mut last = Value::Null;
    let mut counts = BTreeMap::new();
    for _ in 0..5 {
        let (st, d) = s
            .post(
                "/api/add_and_check",
                &json!({"type":"neworder","seller":"x"}),
            )
            .await;
        assert_eq!(st, 200, "{d}");
        *counts
            .entry(d["decision"].as_str().unwrap().to_string())
            .or_insert(0.0) += 1.0;
        last = d;
    }
    assert_eq!(counts.get("deny"), Some(&3.0), "{counts:?}");
    let url = format!("{}/prometheus", s.url);
    // Decisions count from the next whole second on.
    let t = format!("{}", now_ms() / 1000 + 2);
    let v = promtool(&[
        "instant",
        "-o",
        "json",
        "--time",
        &t,
        &url,
        r#"weir_rule_decisions{rule="two"}"#,
    ])
    .unwrap();
    let got: BTreeMap<String, f64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["metric"]["seller"], "x");
            (
                r["metric"]["decision"].as_str().unwrap().to_string(),
                num(&r["value"][1]),
            )
        })
        .collect();
    assert_eq!(got, counts);
    let v = promtool(&[
        "instant",
        "-o",
        "json",
        "--time",
        &t,
        &url,
        r#"weir_rule_value{rule="two"}"#,
    ])
    .unwrap();
    assert_eq!(
        num(&v[0]["value"][1]),
        last["rules"][0]["value"].as_f64().unwrap()
    );
    let v = promtool(&[
        "instant",
        "-o",
        "json",
        "--time",
        &t,
        &url,
        "weir_rule_threshold",
    ])
    .unwrap();
    assert_eq!(num(&v[0]["value"][1]), 2.0);
    let v = promtool(&["series", "-o", "json", "--match", r#"{rule="two"}"#, &url]).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 4, "{v}");
}

/// A `prometheus` server scraping `target` every second, on a free port.
struct PromServer {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl PromServer {
    fn start(target: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: weir\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(tool("WEIR_TEST_PROMETHEUS", "prometheus"))
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        PromServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }
}

impl Drop for PromServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Ask Prometheus `q` until `ok` accepts the result (bounded: 120 s); the last result.
async fn poll(p: &PromServer, q: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Ok(r) = client
            .get(format!("{}/api/v1/query", p.url))
            .query(&[("query", q)])
            .send()
            .await
        {
            if let Ok(v) = r.json::<Value>().await {
                if ok(&v["data"]["result"]) {
                    return v["data"]["result"].clone();
                }
                last = v;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("Prometheus never answered {q} as expected; last answer: {last}");
}

#[tokio::test]
async fn prometheus_scrapes_weir_metrics_and_promtool_lints_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir).await;
    let b = (now_ms() - 40 * MIN) / MIN * MIN;
    let evs = setup(&s, b).await;
    // Two invalid events over HTTP, and a read of a result (a templated route).
    let (st, _) = s
        .post(
            "/api/events",
            &json!({"events": [{"type": 5}, {"ts": "never"}]}),
        )
        .await;
    assert_eq!(st, 400);
    let (st, _) = s
        .get(&format!(
            "/api/queries/per_min/result?from={b}&to={}",
            b + MIN
        ))
        .await;
    assert_eq!(st, 200);

    let text = s.metrics_text().await;
    let mut lint = Command::new(tool("WEIR_TEST_PROMTOOL", "promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    lint.stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = lint.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics: {report}\n{text}"
    );
    for name in [
        "weir_http_request_duration_seconds_bucket",
        "weir_log_flush_duration_seconds_bucket",
        "weir_events_invalid_total{reason=\"shape\"} 2",
        "weir_input_invalid_total{input=\"http\"} 2",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }

    let target = s.url.trim_start_matches("http://").to_string();
    let p = PromServer::start(&target);
    let n = evs.len() as f64;
    let r = poll(&p, r#"weir_input_accepted_total{input="http"}"#, |r| {
        r.as_array()
            .is_some_and(|a| a.len() == 1 && num(&a[0]["value"][1]) == n)
    })
    .await;
    assert_eq!(r[0]["metric"]["job"], "weir");
    let r = poll(&p, "weir_http_request_duration_seconds_count", |r| {
        r.as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let routes: BTreeSet<&str> = r
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["metric"]["route"].as_str())
        .collect();
    assert!(routes.contains("/api/events"), "{routes:?}");
    assert!(
        routes.contains("/api/queries/{name}/result"),
        "route templates, not paths: {routes:?}"
    );
    let r = poll(&p, r#"weir_query_events{query="per_min"}"#, |r| {
        r.as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    assert_eq!(num(&r[0]["value"][1]), n);
    // Every panel of the "Weir overview" dashboard is valid PromQL over these metrics.
    let client = reqwest::Client::new();
    for expr in dashboard_exprs("weir-overview.json", &[("$__rate_interval", "1m")]) {
        let body: Value = client
            .get(format!("{}/api/v1/query", p.url))
            .query(&[("query", expr.as_str())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["status"], "success", "{expr}: {body}");
    }
    let r = poll(&p, "sum(rate(weir_input_accepted_total[1m])) >= 0", |r| {
        r.as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    assert!(num(&r[0]["value"][1]) >= 0.0);
}
