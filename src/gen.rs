//! `weir gen`: random events between two times (seed 003's generator), sent in batches by
//! several concurrent connections, with progress.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use serde_json::{json, Value};

/// Options of `weir gen`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenArgs {
    /// Server address.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "WEIR_URL")]
    pub url: String,
    /// How many events to send.
    #[arg(long, default_value_t = 100)]
    pub total: u64,
    /// Earliest event time (any accepted time format; default: a day ago).
    #[arg(long)]
    pub start: Option<String>,
    /// Latest event time (default: now).
    #[arg(long)]
    pub end: Option<String>,
    /// Concurrent requests.
    #[arg(long, default_value_t = 4)]
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
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let began = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (client, next, sent, args) = (client.clone(), next.clone(), sent.clone(), args.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let from = next.fetch_add(args.batch, Ordering::Relaxed);
                if from >= args.total {
                    return Ok::<_, anyhow::Error>(());
                }
                let to = (from + args.batch).min(args.total);
                let events: Vec<Value> = (from..to).map(|i| event(&args, i, start, span)).collect();
                let resp = client
                    .post(format!("{}/api/events?wait=durable", args.url))
                    .json(&json!({ "events": events }))
                    .send()
                    .await
                    .with_context(|| format!("connecting to {}", args.url))?;
                anyhow::ensure!(
                    resp.status().is_success(),
                    "the server answered {}: {}",
                    resp.status(),
                    resp.text().await?
                );
                let done = sent.fetch_add(to - from, Ordering::Relaxed) + (to - from);
                eprint!("\rsent {done}/{} events", args.total);
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = began.elapsed().as_secs_f64();
    eprintln!();
    println!(
        "sent {} events in {secs:.1} s ({:.0} events/s)",
        args.total,
        args.total as f64 / secs
    );
    Ok(())
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
