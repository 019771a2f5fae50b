//! `weir gen`: random events between two times (seed 003's generator), sent in batches by
//! several concurrent connections, with progress.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::progress::Progress;

/// Options of `weir gen`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenArgs {
    /// Server address (seed 003's `-u`/`--uri`: the full URI to the API is accepted too,
    /// e.g. `http://host:8080/api/events`).
    #[arg(
        short = 'u',
        long,
        visible_alias = "uri",
        default_value = "http://127.0.0.1:8080",
        env = "WEIR_URL"
    )]
    pub url: String,
    /// How many events to send.
    #[arg(long, default_value_t = 100)]
    pub total: u64,
    /// Earliest event time (any accepted time format; default: a day ago).
    #[arg(long, visible_alias = "startTime")]
    pub start: Option<String>,
    /// Latest event time (default: now).
    #[arg(long, visible_alias = "endTime")]
    pub end: Option<String>,
    /// Concurrent requests (seed 003's default, 100).
    #[arg(long, default_value_t = 100)]
    pub concurrency: u64,
    /// Events per request.
    #[arg(long, default_value_t = 500)]
    pub batch: u64,
    /// Event types to draw from.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "page_view,click,signup,purchase"
    )]
    pub types: Vec<String>,
    /// Seed of the pseudo-random sequence (the same seed sends the same events).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// A small deterministic generator (splitmix64), so runs are reproducible.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn event(args: &GenArgs, i: u64, start: i64, span: u64) -> Value {
    let r = mix(args.seed ^ mix(i));
    let kind = &args.types[(r % args.types.len() as u64) as usize];
    json!({
        "type": kind,
        "ts": start + (mix(r) % span.max(1)) as i64,
        "user_id": format!("u{}", (r >> 8) % 1000),
        "session_id": format!("s{}", (r >> 20) % 5000),
        "amount": (r >> 32) % 500,
        "page": format!("/p{}", (r >> 40) % 50),
    })
}

/// Send the events and report the rate.
pub async fn run(args: GenArgs) -> anyhow::Result<()> {
    anyhow::ensure!(!args.types.is_empty(), "give at least one event type");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let parse = |s: &Option<String>, default: i64| -> anyhow::Result<i64> {
        s.as_deref().map_or(Ok(default), |t| {
            weir_core::parse_time(t).with_context(|| format!("time {t:?}"))
        })
    };
    let start = parse(&args.start, now - 86_400_000)?;
    let end = parse(&args.end, now)?;
    anyhow::ensure!(end > start, "--end must be after --start");
    let span = (end - start) as u64;
    let client = crate::client::connect(&server_url(&args.url))?;
    let next = Arc::new(AtomicU64::new(0));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<u64>();
    let began = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (client, next, done, args) =
            (client.clone(), next.clone(), done_tx.clone(), args.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let from = next.fetch_add(args.batch, Ordering::Relaxed);
                if from >= args.total {
                    return Ok::<_, anyhow::Error>(());
                }
                let to = (from + args.batch).min(args.total);
                let events: Vec<Value> = (from..to).map(|i| event(&args, i, start, span)).collect();
                client
                    .add_events(&events, true)
                    .await
                    .with_context(|| format!("sending events {from}..{to}"))?;
                let _ = done.send(to - from);
            }
        }));
    }
    drop(done_tx);
    let mut progress = Progress::new(args.total, "events sent");
    while let Some(n) = done_rx.recv().await {
        progress.inc(n);
    }
    progress.finish();
    for t in tasks {
        t.await??;
    }
    let secs = began.elapsed().as_secs_f64();
    println!(
        "sent {} events in {secs:.1} s ({:.0} events/s)",
        args.total,
        args.total as f64 / secs
    );
    Ok(())
}

/// The server's base URL from seed 003's "full URI to the API": a trailing event route
/// (`/api/events`, `/event`) or slash is dropped.
fn server_url(uri: &str) -> String {
    let uri = uri.trim_end_matches('/');
    for route in ["/api/events", "/event"] {
        if let Some(base) = uri.strip_suffix(route) {
            return base.to_string();
        }
    }
    uri.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        gen: GenArgs,
    }

    #[test]
    fn seed_003_spellings_are_accepted() {
        let args = Cli::parse_from([
            "gen",
            "-u",
            "http://h:1/api/events",
            "--startTime",
            "1456606932",
            "--endTime",
            "1456693332",
        ])
        .gen;
        assert_eq!(server_url(&args.url), "http://h:1");
        assert_eq!(args.start.as_deref(), Some("1456606932"));
        assert_eq!(args.end.as_deref(), Some("1456693332"));
        assert_eq!(args.concurrency, 100, "seed 003's default");
        assert_eq!(args.total, 100);
        let args = Cli::parse_from(["gen", "--uri", "http://h:1/"]).gen;
        assert_eq!(server_url(&args.url), "http://h:1");
    }

    #[test]
    fn events_are_reproducible_and_inside_the_range() {
        let args = Cli::parse_from(["gen", "--types", "a,b", "--seed", "7"]).gen;
        let (start, span) = (1_000_000, 60_000);
        let mut kinds = std::collections::HashSet::new();
        for i in 0..500 {
            let e = event(&args, i, start, span);
            assert_eq!(e, event(&args, i, start, span), "same seed, same event");
            let ts = e["ts"].as_i64().unwrap();
            assert!((start..start + span as i64).contains(&ts));
            kinds.insert(e["type"].as_str().unwrap().to_string());
        }
        assert_eq!(kinds.len(), 2, "both types drawn");
        let other = Cli::parse_from(["gen", "--types", "a,b", "--seed", "8"]).gen;
        assert_ne!(event(&args, 1, start, span), event(&other, 1, start, span));
    }
}
