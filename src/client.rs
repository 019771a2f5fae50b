//! The client subcommands: `apply`, `send`, `check`.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::Value;

fn read_input(file: Option<PathBuf>) -> anyhow::Result<String> {
    match file {
        Some(p) if p.as_os_str() != "-" => {
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
        }
        _ => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            Ok(s)
        }
    }
}

async fn answer(resp: reqwest::Response) -> anyhow::Result<Value> {
    let status = resp.status();
    let body: Value = resp.json().await.context("reading the server's answer")?;
    if !status.is_success() {
        match (body.get("detail"), body.get("error")) {
            (Some(Value::String(d)), _) => bail!("{status}: {d}"),
            (_, Some(e)) => bail!("{status}: {e}"),
            _ => bail!("{status}: {body}"),
        }
    }
    Ok(body)
}

/// `weir apply`: send DSL text to `POST /api/statements` and print the results.
pub async fn apply(url: &str, file: Option<PathBuf>, text: Option<String>) -> anyhow::Result<()> {
    let text = match text {
        Some(t) => t,
        None => read_input(file)?,
    };
    let client = reqwest::Client::new();
    let request = client
        .post(format!("{url}/api/statements"))
        .header("content-type", "text/plain")
        .body(text)
        .send();
    tokio::pin!(request);
    // While the statements apply, show the progress of any backfill.
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
    let mut shown = false;
    let resp = loop {
        tokio::select! {
            r = &mut request => break r.with_context(|| format!("connecting to {url}"))?,
            _ = tick.tick() => shown |= show_backfills(&client, url).await,
        }
    };
    if shown {
        eprintln!();
    }
    let body = answer(resp).await?;
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(())
}

/// Print one progress bar line per backfilling query; true if any was shown.
async fn show_backfills(client: &reqwest::Client, url: &str) -> bool {
    let Ok(resp) = client.get(format!("{url}/api/queries")).send().await else {
        return false;
    };
    let Ok(list) = resp.json::<Value>().await else {
        return false;
    };
    let mut shown = false;
    for q in list["queries"].as_array().into_iter().flatten() {
        if q["status"] != "backfilling" {
            continue;
        }
        let p = q["progress"].as_f64().unwrap_or(0.0).clamp(0.0, 1.0);
        let filled = (p * 30.0).round() as usize;
        let eta = q["eta_seconds"]
            .as_f64()
            .map(|s| format!(", about {s:.0} s left"))
            .unwrap_or_default();
        eprint!(
            "\r{:<20} [{}{}] {:>3.0}%  {}/{} events{eta}   ",
            q["name"].as_str().unwrap_or("?"),
            "#".repeat(filled),
            " ".repeat(30 - filled),
            p * 100.0,
            q["replayed"],
            q["total"]
        );
        shown = true;
    }
    shown
}

/// `weir send`: JSON lines (or one JSON document) to `POST /api/events?wait=durable` in batches.
pub async fn send(url: &str, file: Option<PathBuf>, batch: usize) -> anyhow::Result<()> {
    let text = read_input(file)?;
    let events: Vec<Value> = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(o)) if o.contains_key("events") => match o.get("events") {
            Some(Value::Array(a)) => a.clone(),
            _ => bail!("'events' must be an array"),
        },
        Ok(Value::Array(a)) => a,
        Ok(v @ Value::Object(_)) => vec![v],
        _ => text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l).with_context(|| format!("line {}: not JSON", i + 1))
            })
            .collect::<anyhow::Result<_>>()?,
    };
    let client = reqwest::Client::new();
    let mut sent = 0;
    for chunk in events.chunks(batch.max(1)) {
        let resp = client
            .post(format!("{url}/api/events?wait=durable"))
            .json(&serde_json::json!({ "events": chunk }))
            .send()
            .await
            .with_context(|| format!("connecting to {url}"))?;
        answer(resp)
            .await
            .with_context(|| format!("after {sent} events were accepted"))?;
        sent += chunk.len();
        eprintln!("sent {sent}/{}", events.len());
    }
    Ok(())
}

/// `weir check`: one event to `POST /api/check` (or add_and_check with `--add`).
pub async fn check(url: &str, event: &str, add: bool) -> anyhow::Result<()> {
    let event: Value = serde_json::from_str(event).context("the event is not JSON")?;
    let path = if add { "add_and_check" } else { "check" };
    let resp = reqwest::Client::new()
        .post(format!("{url}/api/{path}"))
        .json(&event)
        .send()
        .await
        .with_context(|| format!("connecting to {url}"))?;
    println!("{}", serde_json::to_string_pretty(&answer(resp).await?)?);
    Ok(())
}
