//! `weir replay` against the real binary, on generated files: every window it emits and
//! every final row equals a brute-force recount; NDJSON (in every event shape) and CSV give
//! the same answer; a bad line is named by its number; decisions equal a sequential oracle.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

const G: i64 = 10_000;
const W: i64 = 60_000;
const BASE: i64 = 1_700_000_000_000;

/// A small deterministic generator (xorshift64*), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One generated event.
#[derive(Debug, Clone)]
struct Ev {
    ts: i64,
    key: String,
    amount: i64,
    kind: &'static str,
}

/// `n` events over `keys` keys, mostly in time order with up to `jitter` ms of disorder,
/// about one in ten of another type (which the queries do not read).
fn events(seed: u64, n: usize, keys: u64, jitter: i64) -> Vec<Ev> {
    let mut r = Rng(seed);
    (0..n)
        .map(|i| {
            let back = if jitter > 0 {
                r.below(jitter as u64) as i64
            } else {
                0
            };
            Ev {
                ts: BASE + i as i64 * 700 - back,
                key: format!("k{}", r.below(keys)),
                amount: r.below(100) as i64 - 20,
                kind: if r.below(10) == 0 { "view" } else { "order" },
            }
        })
        .collect()
}

fn flat(e: &Ev) -> Value {
    json!({"type": e.kind, "ts": e.ts, "seller": e.key, "amount": e.amount})
}

fn write_ndjson(path: &Path, evs: &[Ev]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for e in evs {
        writeln!(f, "{}", flat(e)).unwrap();
    }
}

fn replay(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.arg("replay")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("run weir replay");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "weir replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

const QUERIES: &str = "CREATE QUERY hop AS SELECT count(*) AS n, sum(amount) AS total FROM order \
                       GROUP BY seller, timeseries(time, 10s, 60s);\n\
                       tum = SELECT count(*) AS n, sum(amount) AS total FROM order GROUP BY seller, timeseries(time, 10s);\n\
                       CREATE QUERY all_time AS SELECT count(*) AS n FROM order GROUP BY seller;";

/// (query, key, window start, window end or bucket start) → (count, sum).
type Table = BTreeMap<(String, String, i64, i64), (i64, i64)>;

fn table(rows: &[Value], kind: &str) -> Table {
    let mut t = Table::new();
    for r in rows.iter().filter(|r| r["kind"] == kind) {
        let (a, b) = match r.get("bucket_start") {
            Some(b) => (b.as_i64().unwrap(), b.as_i64().unwrap() + G),
            None => (
                r["window_start"].as_i64().unwrap_or(i64::MIN),
                r["window_end"].as_i64().unwrap_or(i64::MAX),
            ),
        };
        let k = (
            r["query"].as_str().unwrap().to_string(),
            r["key"]["seller"].as_str().unwrap().to_string(),
            a,
            b,
        );
        let v = (
            r["values"]["n"].as_i64().unwrap(),
            r["values"]["total"].as_i64().unwrap_or(0),
        );
        assert!(t.insert(k.clone(), v).is_none(), "{kind} row twice: {k:?}");
    }
    t
}

/// Every window Flink's HOP (and TUMBLE) would emit with the watermark at the largest time
/// read: a window holds the events read before the first event at or after its end.
fn oracle_windows(evs: &[Ev]) -> Table {
    oracle_windows_of(evs, &vec![true; evs.len()])
}

/// [`oracle_windows`] counting only the events marked `counted` (every event read moves the
/// watermark).
fn oracle_windows_of(evs: &[Ev], counted: &[bool]) -> Table {
    let mut t = Table::new();
    let mut wm = i64::MIN;
    for (e, counted) in evs.iter().zip(counted) {
        if e.kind == "order" && *counted {
            let b = e.ts.div_euclid(G) * G;
            // Sliding windows [b + g - w + i*g, …) holding the event, still open.
            let mut end = b + G;
            while end - W <= e.ts {
                if end > wm {
                    let c = t
                        .entry(("hop".into(), e.key.clone(), end - W, end))
                        .or_default();
                    c.0 += 1;
                    c.1 += e.amount;
                }
                end += G;
            }
            if b + G > wm {
                let c = t
                    .entry(("tum".into(), e.key.clone(), b, b + G))
                    .or_default();
                c.0 += 1;
                c.1 += e.amount;
            }
        }
        wm = wm.max(e.ts);
    }
    t
}

/// The rows read at the end: the window ending with the last event's bucket, every bucket,
/// and the all-time count, recounted from every event.
fn oracle_results(evs: &[Ev]) -> Table {
    let orders: Vec<&Ev> = evs.iter().filter(|e| e.kind == "order").collect();
    let wm = orders.iter().map(|e| e.ts).max().unwrap();
    let end = wm.div_euclid(G) * G + G;
    let mut t = Table::new();
    for e in orders {
        let mut add = |q: &str, a: i64, b: i64, amount: i64| {
            let c = t.entry((q.into(), e.key.clone(), a, b)).or_default();
            c.0 += 1;
            c.1 += amount;
        };
        if e.ts >= end - W && e.ts < end {
            add("hop", end - W, end, e.amount);
        }
        let b = e.ts.div_euclid(G) * G;
        add("tum", b, b + G, e.amount);
        add("all_time", i64::MIN, i64::MAX, 0);
    }
    t
}

/// Two tables are equal; else the first few differences (not the whole tables).
fn same(got: &Table, want: &Table, what: &str) {
    let diff: Vec<String> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k:?}: want {v:?}, got {:?}", got.get(k)))
        .chain(
            got.iter()
                .filter(|(k, _)| !want.contains_key(*k))
                .map(|(k, v)| format!("{k:?}: got {v:?}, want none")),
        )
        .take(5)
        .collect();
    assert!(
        diff.is_empty(),
        "{what}: {} rows, {} wanted; first differences:\n{}",
        got.len(),
        want.len(),
        diff.join("\n")
    );
}

#[test]
fn windows_and_results_equal_a_recount() {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("q.wql");
    std::fs::write(&q, QUERIES).unwrap();
    for (seed, keys, jitter) in [(1, 7, 0), (2, 50, 25_000), (3, 3, 9_000)] {
        let evs = events(seed, 3000, keys, jitter);
        let f = dir.path().join(format!("ev{seed}.ndjson"));
        write_ndjson(&f, &evs);
        let rows = ok(&replay(
            &[
                "-s",
                q.to_str().unwrap(),
                f.to_str().unwrap(),
                "--emit",
                "windows",
            ],
            None,
        ));
        let windows = table(&rows, "window");
        let want = oracle_windows(&evs);
        same(&windows, &want, &format!("seed {seed}: windows"));
        same(
            &table(&rows, "result"),
            &oracle_results(&evs),
            &format!("seed {seed}: results"),
        );
        // Windows come out in the order they close: window ends never go back per query.
        let mut last: BTreeMap<&str, i64> = BTreeMap::new();
        for r in rows.iter().filter(|r| r["kind"] == "window") {
            let end = r["window_end"]
                .as_i64()
                .or(r["bucket_start"].as_i64().map(|b| b + G))
                .unwrap();
            let prev = last.entry(r["query"].as_str().unwrap()).or_insert(end);
            assert!(end >= *prev, "{r}");
            *prev = end;
        }
        // One thread (parsing between batches) gives the same rows.
        let one = ok(&replay(
            &[
                "-s",
                q.to_str().unwrap(),
                f.to_str().unwrap(),
                "--emit",
                "windows",
                "--threads",
                "1",
            ],
            None,
        ));
        assert_eq!(one, rows, "seed {seed}: --threads 1");
        // Without --emit windows: the results only.
        let plain = ok(&replay(
            &["-s", q.to_str().unwrap(), f.to_str().unwrap()],
            None,
        ));
        assert!(plain.iter().all(|r| r["kind"] == "result"));
        same(
            &table(&plain, "result"),
            &oracle_results(&evs),
            "results alone",
        );
    }
}

/// The same events in other SPEC section 1 shapes, line by line.
fn shaped(e: &Ev, i: usize) -> String {
    let iso = time_iso(e.ts);
    match i % 4 {
        0 => flat(e).to_string(),
        1 => json!({"event_type": e.kind, "ts": e.ts, "params": {"seller": e.key, "amount": e.amount}})
            .to_string(),
        2 => json!({"type": e.kind, "timestamp": iso, "seller": e.key, "amount": e.amount})
            .to_string(),
        _ => json!({"events": [{"ts": e.ts, "data": {"event_tag": e.kind, "seller": e.key, "amount": e.amount}}]})
            .to_string(),
    }
}

/// RFC 3339 in UTC with milliseconds.
fn time_iso(ms: i64) -> String {
    let [y, m, d, h, mi, sec, milli] = common::civil(ms);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{sec:02}.{milli:03}Z")
}

#[test]
fn ndjson_in_every_shape_and_csv_give_the_same_answer() {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("q.wql");
    std::fs::write(&q, QUERIES).unwrap();
    let evs = events(4, 2000, 20, 5_000);
    let nd = dir.path().join("ev.ndjson");
    let text: String = evs
        .iter()
        .enumerate()
        .map(|(i, e)| shaped(e, i) + "\n")
        .collect();
    std::fs::write(&nd, &text).unwrap();
    let mut csv = String::from("when,kind,seller,amount\n");
    for e in &evs {
        csv.push_str(&format!("{},{},\"{}\",{}\n", e.ts, e.kind, e.key, e.amount));
    }
    let cf = dir.path().join("ev.csv");
    std::fs::write(&cf, &csv).unwrap();
    let qs = q.to_str().unwrap();
    let a = replay(&["-s", qs, nd.to_str().unwrap(), "--emit", "windows"], None);
    let cols = ["--type-column", "kind", "--time-column", "when"];
    let mut args = vec!["-s", qs, cf.to_str().unwrap(), "--emit", "windows"];
    args.extend(cols);
    let b = replay(&args, None);
    let mut args = vec!["-s", qs, "-", "--format", "csv", "--emit", "windows"];
    args.extend(cols);
    let c = replay(&args, Some(csv.as_bytes()));
    let (a, b, c) = (ok(&a), ok(&b), ok(&c));
    assert!(!a.is_empty());
    assert_eq!(a, b, "NDJSON and CSV");
    assert_eq!(b, c, "CSV from a file and from stdin");
    same(
        &table(&a, "window"),
        &oracle_windows(&evs),
        "windows of every shape",
    );

    // CSV out: one header, then the same rows.
    let out = replay(
        &[
            "-s",
            qs,
            nd.to_str().unwrap(),
            "--emit",
            "windows",
            "--output-format",
            "csv",
        ],
        None,
    );
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "kind,name,line,window_start,window_end,bucket_start,key.seller,n,total"
    );
    let csv_rows: Vec<&str> = lines.collect();
    assert_eq!(csv_rows.len(), a.len());
    let first = a.iter().find(|r| r["query"] == "hop").unwrap();
    let want = format!(
        "{},hop,,{},{},,{},{},{}",
        first["kind"].as_str().unwrap(),
        first["window_start"],
        first["window_end"],
        first["key"]["seller"].as_str().unwrap(),
        first["values"]["n"],
        first["values"]["total"]
    );
    assert!(csv_rows.contains(&want.as_str()), "{want} not in CSV");
}

#[test]
fn a_bad_line_is_named_by_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("q.wql");
    std::fs::write(&q, QUERIES).unwrap();
    let qs = q.to_str().unwrap();
    let good =
        |i: i64| json!({"type":"order","ts": BASE + i * 1000,"seller":"a","amount":1}).to_string();
    let cases = [
        ("{\"type\":\"order\",\"ts\":", "not JSON"),
        (r#"{"type":"order","seller":"a"}"#, "no time"),
        (r#"{"ts":1700000000000,"seller":"a"}"#, "missing event type"),
        (r#"{"type":"order","ts":"yesterday"}"#, "unparseable time"),
        (
            r#"{"events":[{"type":"order","ts":1},{"type":"order"}]}"#,
            "event 1: ",
        ),
    ];
    for (bad, why) in cases {
        let text = format!("{}\n{}\n\n{}\n{}\n", good(0), good(1), bad, good(2));
        let f = dir.path().join("bad.ndjson");
        std::fs::write(&f, &text).unwrap();
        let out = replay(&["-s", qs, f.to_str().unwrap()], None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad}");
        assert!(
            err.contains("line 4: ") && err.contains(why),
            "{bad}: {err}"
        );
        // --skip-bad: counted and reported, the rest replayed (on one thread or two).
        for threads in ["1", "2"] {
            let args = [
                "-s",
                qs,
                f.to_str().unwrap(),
                "--skip-bad",
                "--threads",
                threads,
            ];
            let out = replay(&args, None);
            let err = String::from_utf8_lossy(&out.stderr).to_string();
            let rows = ok(&out);
            assert!(
                err.contains("skipped 1 bad line(s); the first: line 4: "),
                "{err}"
            );
            let all = rows.iter().find(|r| r["query"] == "all_time").unwrap();
            assert_eq!(all["values"]["n"], 3, "{err}");
        }
        let out = replay(&["-s", qs, f.to_str().unwrap(), "--threads", "1"], None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("line 4: "), "{err}");
    }
    // CSV: a short row and an empty time, with their line numbers.
    let f = dir.path().join("bad.csv");
    std::fs::write(
        &f,
        "type,ts,seller\norder,1700000000000,a\norder,1700000001000\norder,,b\n",
    )
    .unwrap();
    let out = replay(&["-s", qs, f.to_str().unwrap()], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 3: 2 cells, but the header has 3 columns"),
        "{err}"
    );
    let out = replay(&["-s", qs, f.to_str().unwrap(), "--skip-bad"], None);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    ok(&out);
    assert!(
        err.contains("skipped 2 bad line(s); the first: line 3"),
        "{err}"
    );
    // A CSV without the type column says which flag names it.
    std::fs::write(&f, "kind,ts\norder,1\n").unwrap();
    let out = replay(&["-s", qs, f.to_str().unwrap()], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 1: ") && err.contains("--type-column"),
        "{err}"
    );
    // A statement error names its line in the statements file.
    std::fs::write(
        &q,
        "CREATE QUERY a AS SELECT count(*) AS n FROM t;\nCREATE QUERY b AS SELEC 1;",
    )
    .unwrap();
    let out = replay(&["-s", qs, f.to_str().unwrap()], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("line 2"), "{err}");
}

#[test]
fn decisions_equal_a_sequential_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("q.wql");
    let limit = 6;
    std::fs::write(
        &q,
        format!(
            "CREATE QUERY hop AS SELECT count(*) AS n, sum(amount) AS total FROM order GROUP BY seller, timeseries(time, 10s, 60s);\n\
             CREATE RULE cap AS SELECT count(*) AS orders FROM order GROUP BY seller, timeseries(time, 10s, 60s) \
             DENY WHEN orders > {limit};"
        ),
    )
    .unwrap();
    let evs = events(5, 4000, 5, 15_000);
    let f = dir.path().join("ev.ndjson");
    write_ndjson(&f, &evs);
    let rows = ok(&replay(
        &[
            "-s",
            q.to_str().unwrap(),
            f.to_str().unwrap(),
            "--decisions",
            "--emit",
            "windows",
        ],
        None,
    ));
    let decisions: Vec<&Value> = rows.iter().filter(|r| r["kind"] == "decision").collect();
    assert_eq!(decisions.len(), evs.len(), "one decision per event");
    // The oracle: one event at a time, counted only if admitted.
    let mut admitted: Vec<&Ev> = Vec::new();
    let mut counted: Vec<bool> = Vec::new();
    let mut denied = 0;
    for (i, (e, d)) in evs.iter().zip(&decisions).enumerate() {
        assert_eq!(d["line"], i as u64 + 1);
        if e.kind != "order" {
            assert_eq!(d["allowed"], true);
            assert_eq!(d["rules"], json!([]), "line {}", i + 1);
            admitted.push(e);
            counted.push(true);
            continue;
        }
        let end = e.ts.div_euclid(G) * G + G;
        let n = 1 + admitted
            .iter()
            .filter(|a| a.kind == "order" && a.key == e.key && a.ts >= end - W && a.ts < end)
            .count() as i64;
        let allow = n <= limit;
        let r = &d["rules"][0];
        assert_eq!(
            (
                r["value"].as_i64(),
                r["window_end"].as_i64(),
                d["allowed"].as_bool()
            ),
            (Some(n), Some(end), Some(allow)),
            "line {}: {d}",
            i + 1
        );
        assert_eq!(r["key"], json!({"seller": e.key}));
        assert_eq!(r["decision"], if allow { "allow" } else { "deny" });
        if allow {
            admitted.push(e);
        } else {
            denied += 1;
        }
        counted.push(allow);
    }
    assert!(
        denied > 100,
        "the limit is reached often ({denied} denials)"
    );
    // A denied event is counted in no query: the windows are those of the admitted events.
    let want: Table = oracle_windows_of(&evs, &counted)
        .into_iter()
        .filter(|(k, _)| k.0 == "hop")
        .collect();
    same(&table(&rows, "window"), &want, "windows with denials");

    // CSV: one row per decision of a matching rule, or one for an event no rule matches.
    let out = replay(
        &[
            "-s",
            q.to_str().unwrap(),
            f.to_str().unwrap(),
            "--decisions",
            "--output-format",
            "csv",
        ],
        None,
    );
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let header = text.lines().next().unwrap();
    assert_eq!(
        header,
        "kind,name,line,window_start,window_end,bucket_start,key.seller,n,total,allowed,value,threshold,decision"
    );
    let csv_denials = text.lines().filter(|l| l.ends_with(",deny")).count();
    assert_eq!(csv_denials, denied);
}
