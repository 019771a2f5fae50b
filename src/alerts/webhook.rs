//! The webhook sink: a POST of each alert change as JSON (the alert's fields plus
//! `"change": "fired" | "resolved"`) with an `Idempotency-Key` header stable per change
//! (`{account}-{id}-{change}`): a receiver that saw the key already can drop the repeat.
//! Any 2xx is a delivery; anything else (or no answer) is retried by the sink's task.

use super::config::WebhookSinkConfig;
use super::record::OutboxEntry;

/// The sink.
pub struct WebhookSink {
    cfg: WebhookSinkConfig,
    client: reqwest::Client,
}

impl WebhookSink {
    /// A client with the configured timeout.
    pub fn new(cfg: WebhookSinkConfig) -> Self {
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .unwrap_or_default();
        Self { cfg, client }
    }

    /// POST one change.
    pub async fn deliver(&mut self, entry: &OutboxEntry) -> Result<(), String> {
        let mut body = serde_json::to_value(&entry.alert).map_err(|e| e.to_string())?;
        if let Some(o) = body.as_object_mut() {
            o.insert("change".into(), entry.change.as_str().into());
        }
        let res = self
            .client
            .post(&self.cfg.url)
            .header("Idempotency-Key", entry.idempotency_key())
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("POST: {e}"))?;
        let status = res.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("POST answered {status}"))
        }
    }
}
