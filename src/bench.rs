//! `weir bench`: an open-loop load generator against a running server.
//!
//! Requests are scheduled at a fixed rate; each one's latency is measured from its *intended*
//! send time, so a stalled server shows up in the tail instead of slowing the generator down
//! (no coordinated omission). With `--rate 0` it runs closed-loop, as fast as the connections
//! allow, to find the maximum throughput. `--hello` measures a hello-world axum server on
//! the same machine in the same run first: the ceiling any HTTP call can reach.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::progress::Progress;

/// What to send.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Workload {
    /// Single `POST /api/add_and_check` calls, each a new event of one of `--keys` sellers.
    AddAndCheck,
    /// Single `POST /api/check` calls.
    Check,
    /// `POST /api/events?wait=durable` with `--batch` events per request.
    Ingest,
}

/// Options of `weir bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The workload.
    #[arg(long, value_enum, default_value = "add-and-check")]
    pub workload: Workload,
    /// Server address.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "WEIR_URL")]
    pub url: String,
    /// Requests per second; 0 = closed loop, as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// How long to run, seconds.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Events per request for `ingest`.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Distinct group keys (sellers) the events spread over.
    #[arg(long, default_value_t = 1000)]
    pub keys: u64,
    /// Also measure a hello-world axum server in this run (the ceiling).
    #[arg(long)]
    pub hello: bool,
}

/// Results of one measured run.
#[derive(Debug)]
pub struct Report {
    /// Requests that got a 2xx answer.
    pub ok: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Events carried by the successful requests.
    pub events: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Latency in microseconds from the intended send time.
    pub latency_us: Histogram<u64>,
    /// Latency in microseconds from the actual send time (the server's part, without the
    /// generator's own scheduling delay).
    pub service_us: Histogram<u64>,
}

impl Report {
    fn print(&self, label: &str) {
        let secs = self.elapsed.as_secs_f64();
        println!(
            "{label}: {:.0} requests/s, {:.0} events/s, {} errors",
            self.ok as f64 / secs,
            self.events as f64 / secs,
            self.errors,
        );
        for (what, h) in [
            ("from intended send", &self.latency_us),
            ("from actual send", &self.service_us),
        ] {
            println!(
                "    latency µs {what:<18}: p50 {} p90 {} p99 {} p99.9 {} max {}",
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.9),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max()
            );
        }
    }
}

/// Run the benchmark as configured, showing progress and printing a summary.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    println!(
        "weir bench: workload {:?}, rate {}, {} s, {} connections, batch {}, {} keys; machine: {} cores",
        args.workload,
        if args.rate == 0 { "max".to_string() } else { format!("{}/s", args.rate) },
        args.duration,
        args.connections,
        args.batch,
        args.keys,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    if args.hello {
        let addr = start_hello().await?;
        let report = measure(
            &BenchArgs {
                url: format!("http://{addr}"),
                ..args.clone()
            },
            &Throwaway::new(),
            "hello-world",
        )
        .await?;
        report.print("hello-world axum (ceiling)");
    }
    let run = Throwaway::new();
    println!(
        "weir bench: events go to the throwaway event type '{}' of the key's tenant \
         (they stay in the server's log; your queries do not read that type){}",
        run.kind,
        if needs_rule(args.workload) {
            format!("; rule '{}' is dropped afterwards", run.rule)
        } else {
            String::new()
        }
    );
    if needs_rule(args.workload) {
        run.create_rule(&args.url).await?;
    }
    let measured = measure(&args, &run, "weir").await;
    // Clean up whatever the measurement did.
    let dropped = if needs_rule(args.workload) {
        run.drop_rule(&args.url).await
    } else {
        Ok(())
    };
    let report = measured?;
    report.print("weir");
    dropped
}

/// The account every bench event belongs to, so the bench never mixes with a user's events.
fn needs_rule(w: Workload) -> bool {
    matches!(w, Workload::AddAndCheck | Workload::Check)
}

/// The names one bench run uses: its own event type and rule, unique per run.
pub struct Throwaway {
    /// Event type of every event sent.
    pub kind: String,
    /// The rule over them (add-and-check and check workloads).
    pub rule: String,
}

impl Throwaway {
    fn new() -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let tag = format!("{ms}_{}", std::process::id());
        Self {
            kind: format!("weir_bench_{tag}"),
            rule: format!("weir_bench_{tag}"),
        }
    }

    async fn create_rule(&self, url: &str) -> anyhow::Result<()> {
        let text = format!(
            "CREATE OR REPLACE RULE {} AS SELECT count(*) AS orders FROM {} GROUP BY seller, timeseries(time, 1s, 1min) DENY WHEN orders > 1000000000",
            self.rule, self.kind
        );
        let resp = http()?
            .post(format!("{url}/api/statements"))
            .body(text)
            .send()
            .await
            .with_context(|| format!("connecting to {url}"))?;
        anyhow::ensure!(
            resp.status().is_success(),
            "creating the bench rule: {}",
            resp.text().await?
        );
        Ok(())
    }

    async fn drop_rule(&self, url: &str) -> anyhow::Result<()> {
        let resp = http()?
            .delete(format!("{url}/api/rules/{}", self.rule))
            .send()
            .await
            .with_context(|| format!("connecting to {url} to drop the bench rule"))?;
        anyhow::ensure!(
            resp.status().is_success(),
            "dropping the bench rule '{}': {}",
            self.rule,
            resp.text().await?
        );
        Ok(())
    }
}

/// A builder sending the key of `WEIR_API_KEY`, if set, with every request.
fn with_key(b: reqwest::ClientBuilder) -> anyhow::Result<reqwest::ClientBuilder> {
    let Some(key) = crate::client::api_key() else {
        return Ok(b);
    };
    let mut headers = reqwest::header::HeaderMap::new();
    let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
        .context("WEIR_API_KEY is not a valid header value")?;
    v.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, v);
    Ok(b.default_headers(headers))
}

fn http() -> anyhow::Result<reqwest::Client> {
    Ok(with_key(reqwest::Client::builder())?.build()?)
}

fn body(workload: Workload, i: u64, args: &BenchArgs, run: &Throwaway) -> (String, Value) {
    let event = |j: u64| json!({"type": run.kind, "seller": format!("s{}", j % args.keys), "amount": j % 100});
    match workload {
        Workload::AddAndCheck => ("/api/add_and_check".into(), event(i)),
        Workload::Check => ("/api/check".into(), event(i)),
        Workload::Ingest => {
            let events: Vec<Value> = (0..args.batch as u64)
                .map(|j| event(i * args.batch as u64 + j))
                .collect();
            (
                "/api/events?wait=durable".into(),
                json!({ "events": events }),
            )
        }
    }
}

/// Send the workload for `args.duration`, showing progress under `label` (a bar on a
/// terminal, a line a second otherwise): time elapsed, requests so far, the current rate.
async fn measure(args: &BenchArgs, run: &Throwaway, label: &str) -> anyhow::Result<Report> {
    let client = with_key(reqwest::Client::builder())?
        .pool_max_idle_per_host(args.connections)
        .build()?;
    let start = Instant::now() + Duration::from_millis(100);
    let end = start + Duration::from_secs(args.duration);
    let next = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let new_hist = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3);
    let hist = Arc::new(Mutex::new((new_hist()?, new_hist()?)));
    let per_event = if matches!(args.workload, Workload::Ingest) {
        args.batch as u64
    } else {
        1
    };
    let mut workers = Vec::new();
    for _ in 0..args.connections {
        let (client, next, ok, errors, hist, args) = (
            client.clone(),
            next.clone(),
            ok.clone(),
            errors.clone(),
            hist.clone(),
            args.clone(),
        );
        let run = Throwaway {
            kind: run.kind.clone(),
            rule: run.rule.clone(),
        };
        workers.push(tokio::spawn(async move {
            let mut local =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            let mut service = local.clone();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let intended = match (i * 1_000_000_000).checked_div(args.rate) {
                    Some(ns) => start + Duration::from_nanos(ns),
                    None => Instant::now(),
                };
                if intended >= end || Instant::now() >= end {
                    break;
                }
                tokio::time::sleep_until(intended.into()).await;
                let (path, b) = body(args.workload, i, &args, &run);
                let sent = Instant::now();
                let r = client
                    .post(format!("{}{path}", args.url))
                    .json(&b)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let _ = local.record(intended.elapsed().as_micros().max(1) as u64);
                let _ = service.record(sent.elapsed().as_micros().max(1) as u64);
            }
            let mut h = hist.lock();
            h.0.add(&local).expect("same bounds");
            h.1.add(&service).expect("same bounds");
        }));
    }
    let progress = {
        let (ok, errors) = (ok.clone(), errors.clone());
        let mut bar = Progress::timed(end - start, label);
        bar.prefix(label);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            let (mut last, mut last_at) = (0, Instant::now());
            loop {
                tick.tick().await;
                // Nothing is sent after `end`: the last interval stops there.
                let now = Instant::now().min(end);
                let done = ok.load(Ordering::Relaxed);
                let failed = errors.load(Ordering::Relaxed);
                let dt = now.saturating_duration_since(last_at).as_secs_f64();
                let rate = if dt > 0.0 {
                    (done - last) as f64 / dt
                } else {
                    0.0
                };
                (last, last_at) = (done, now);
                bar.message(format!(
                    "{done} requests, {rate:.0}/s{}",
                    if failed > 0 {
                        format!(", {failed} errors")
                    } else {
                        String::new()
                    }
                ));
                bar.set(now.saturating_duration_since(start).as_millis() as u64);
                if now >= end {
                    break;
                }
            }
            bar.finish();
        })
    };
    for w in workers {
        w.await?;
    }
    let elapsed = start.elapsed();
    progress.await?;
    let ok = ok.load(Ordering::Relaxed);
    let (latency_us, service_us) = hist.lock().clone();
    Ok(Report {
        ok,
        errors: errors.load(Ordering::Relaxed),
        events: ok * per_event,
        elapsed,
        latency_us,
        service_us,
    })
}

/// A hello-world axum server on a free loopback port, on its own runtime thread so it does
/// not share the generator's workers.
async fn start_hello() -> anyhow::Result<SocketAddr> {
    use axum::routing::post;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async move {
            let app = axum::Router::new()
                .fallback(post(|| async { axum::Json(json!({"decision": "allow"})) }));
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await.expect("hello server");
        });
    });
    Ok(addr)
}
