//! The client subcommands: `apply`, `send`, `check`, on the `weir-client` crate.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::Value;
use weir_client::{Client, ClientError};

use crate::progress::Progress;

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

/// An error answer as the CLI prints it: the message with its caret when there is one.
fn explain(e: ClientError) -> anyhow::Error {
    match &e {
        ClientError::Api { status, body, .. } => match body.get("detail") {
            Some(Value::String(d)) => anyhow::anyhow!("{status}: {d}"),
            _ => e.into(),
        },
        _ => e.into(),
    }
}

/// The key the client commands send: `WEIR_API_KEY`.
pub fn api_key() -> Option<String> {
    std::env::var("WEIR_API_KEY").ok().filter(|k| !k.is_empty())
}

/// A client of `url`, with the API key of `WEIR_API_KEY` if set.
pub fn connect(url: &str) -> anyhow::Result<Client> {
    Ok(Client::with_config(
        url,
        weir_client::ClientConfig {
            api_key: api_key(),
            ..Default::default()
        },
    )?)
}

/// `weir apply`: send DSL text to `POST /api/statements` and print the results.
pub async fn apply(url: &str, file: Option<PathBuf>, text: Option<String>) -> anyhow::Result<()> {
    let text = match text {
        Some(t) => t,
        None => read_input(file)?,
    };
    let client = connect(url)?;
    let request = client.apply(&text);
    tokio::pin!(request);
    // While the statements apply, show the progress of any backfill.
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
    let mut bars: HashMap<String, Progress> = HashMap::new();
    let results = loop {
        tokio::select! {
            r = &mut request => break r.map_err(explain)?,
            _ = tick.tick() => show_backfills(&client, &mut bars).await,
        }
    };
    for bar in bars.values_mut() {
        bar.finish();
    }
    println!("{}", serde_json::to_string_pretty(&results)?);
    Ok(())
}

/// Update one progress bar per backfilling query.
async fn show_backfills(client: &Client, bars: &mut HashMap<String, Progress>) {
    let Ok(list) = client.queries().await else {
        return;
    };
    for q in list {
        if q["status"] != "backfilling" {
            continue;
        }
        let name = q["name"].as_str().unwrap_or("?").to_string();
        let total = q["total"].as_u64().unwrap_or(0);
        let bar = bars.entry(name.clone()).or_insert_with(|| {
            let b = Progress::new(total, &format!("events replayed into {name}"));
            b.prefix(&name);
            b
        });
        bar.set_total(total);
        bar.set(q["replayed"].as_u64().unwrap_or(0));
    }
}

/// Parse events: JSON lines, a JSON array, a `{"events":[…]}` batch, or one event.
pub fn parse_events(text: &str) -> anyhow::Result<Vec<Value>> {
    Ok(match serde_json::from_str::<Value>(text) {
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
    })
}

/// `weir send`: events to `POST /api/events?wait=durable` in batches, with progress.
pub async fn send(url: &str, file: Option<PathBuf>, batch: usize) -> anyhow::Result<()> {
    let events = parse_events(&read_input(file)?)?;
    let client = connect(url)?;
    let mut progress = Progress::new(events.len() as u64, "events sent");
    let mut sent = 0;
    for chunk in events.chunks(batch.max(1)) {
        client
            .add_events(chunk, true)
            .await
            .map_err(explain)
            .with_context(|| format!("after {sent} events were accepted"))?;
        sent += chunk.len();
        progress.set(sent as u64);
    }
    progress.finish();
    Ok(())
}

/// `weir check`: one event to `POST /api/check` (or add_and_check with `--add`).
pub async fn check(url: &str, event: &str, add: bool) -> anyhow::Result<()> {
    let event: Value = serde_json::from_str(event).context("the event is not JSON")?;
    let client = connect(url)?;
    let decision = if add {
        client.add_and_check(&event).await
    } else {
        client.check(&event).await
    }
    .map_err(explain)?;
    println!("{}", serde_json::to_string_pretty(&decision)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_events;

    #[test]
    fn every_events_file_shape_is_read() {
        assert_eq!(
            parse_events("{\"type\":\"a\"}\n\n{\"type\":\"b\"}\n")
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            parse_events("[{\"type\":\"a\"},{\"type\":\"b\"}]")
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            parse_events("{\"events\":[{\"type\":\"a\"}]}")
                .unwrap()
                .len(),
            1
        );
        assert_eq!(parse_events("{\"type\":\"a\"}").unwrap().len(), 1);
        let err = parse_events("{\"type\":\"a\"}\nnot json\n").unwrap_err();
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
    }
}
