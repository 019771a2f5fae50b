//! # weir-client
//!
//! A typed async client for Weir's HTTP API (docs/api.md): statements, events (single, batch,
//! durable), `check` and `add_and_check` (single and batch), query results (`at`,
//! `from`/`to`, `step`, keys), query and rule definitions, the event store and analytics,
//! schemas, health and metrics.
//!
//! Every request has a timeout. Connection failures (the request never reached the server)
//! and `503` answers (the server applied nothing) are retried with exponential backoff; any
//! other error answer is returned at once as [`ClientError::Api`] with Weir's message and, for
//! query-language errors, the line and column.
//!
//! ```no_run
//! # async fn demo() -> Result<(), weir_client::ClientError> {
//! use serde_json::json;
//! let weir = weir_client::Client::new("http://127.0.0.1:8080")?;
//! weir.apply("CREATE RULE cap AS SELECT count(*) AS n FROM neworder \
//!             GROUP BY seller, timeseries(time, 1s, 1min) DENY WHEN n > 100").await?;
//! let d = weir.add_and_check(&json!({"type": "neworder", "seller": "x"})).await?;
//! assert!(d.allowed());
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`error`]: [`ClientError`] and the `Result` alias.
//! - [`types`]: the typed answers ([`Accepted`], [`Decision`], [`ResultSet`], …) and
//!   request parameters ([`ResultParams`], [`EventFilter`]).
//! - this file: [`Client`], its configuration and the routes.

pub mod error;
pub mod types;

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

pub use error::{ClientError, Result};
pub use types::{Accepted, Decision, EventFilter, ResultParams, ResultSet, Row, RuleDecision};

/// How a [`Client`] times out and retries.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Timeout of one request (default 30 s).
    pub timeout: Duration,
    /// Retries after the first attempt on a connection failure or a 503 (default 3).
    pub retries: u32,
    /// The first retry's delay; each further one doubles it (default 100 ms).
    pub backoff: Duration,
    /// An API key, sent as `Authorization: Bearer …`.
    pub api_key: Option<String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            retries: 3,
            backoff: Duration::from_millis(100),
            api_key: None,
        }
    }
}

/// A client of one Weir server. Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    cfg: ClientConfig,
}

/// One request before it is sent: method, path, query parameters, body.
struct Call {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: Body,
}

enum Body {
    None,
    Json(Value),
    Text(String),
}

impl Call {
    fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            query: Vec::new(),
            body: Body::None,
        }
    }
    fn json(mut self, v: Value) -> Self {
        self.body = Body::Json(v);
        self
    }
    fn query(mut self, q: Vec<(String, String)>) -> Self {
        self.query = q;
        self
    }
}

impl Client {
    /// A client of the server at `url` (e.g. `http://127.0.0.1:8080`) with default settings.
    pub fn new(url: &str) -> Result<Self> {
        Self::with_config(url, ClientConfig::default())
    }

    /// A client with explicit timeouts, retries and API key.
    pub fn with_config(url: &str, cfg: ClientConfig) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| ClientError::Transport {
                url: url.to_string(),
                message: e.to_string(),
            })?;
        Ok(Self {
            base: url.trim_end_matches('/').to_string(),
            http,
            cfg,
        })
    }

    /// The server's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn build(&self, call: &Call) -> RequestBuilder {
        let mut rb = self
            .http
            .request(call.method.clone(), format!("{}{}", self.base, call.path))
            .query(&call.query);
        if let Some(key) = &self.cfg.api_key {
            rb = rb.bearer_auth(key);
        }
        match &call.body {
            Body::None => rb,
            Body::Json(v) => rb.json(v),
            Body::Text(t) => rb.header("content-type", "text/plain").body(t.clone()),
        }
    }

    /// Send a call, retrying connection failures and 503s; the raw answer on success.
    async fn send(&self, call: &Call) -> Result<reqwest::Response> {
        let mut attempt = 0;
        loop {
            let retryable = match self.build(call).send().await {
                Ok(resp) if resp.status() == StatusCode::SERVICE_UNAVAILABLE => {
                    if attempt >= self.cfg.retries {
                        return Err(ClientError::from_answer(resp).await);
                    }
                    true
                }
                Ok(resp) if resp.status().is_client_error() || resp.status().is_server_error() => {
                    return Err(ClientError::from_answer(resp).await)
                }
                Ok(resp) => return Ok(resp),
                // Only failures to connect are retried: the request never reached the server,
                // so a retried add cannot be counted twice.
                Err(e) if e.is_connect() && attempt < self.cfg.retries => true,
                Err(e) => {
                    return Err(ClientError::Transport {
                        url: self.base.clone(),
                        message: e.to_string(),
                    })
                }
            };
            debug_assert!(retryable);
            tokio::time::sleep(self.cfg.backoff * 2u32.saturating_pow(attempt)).await;
            attempt += 1;
        }
    }

    async fn run<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        let resp = self.send(&call).await?;
        let bytes = resp.bytes().await.map_err(|e| ClientError::Transport {
            url: self.base.clone(),
            message: e.to_string(),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            path: call.path.clone(),
            message: e.to_string(),
        })
    }

    // --- statements, definitions, results ---------------------------------------------

    /// `GET /healthz`: true once the server is ready.
    pub async fn health(&self) -> Result<bool> {
        Ok(self
            .send(&Call::new(Method::GET, "/healthz"))
            .await?
            .status()
            .is_success())
    }

    /// `POST /api/statements`: apply DSL text; the result of each statement.
    pub async fn apply(&self, dsl: &str) -> Result<Vec<Value>> {
        let mut call = Call::new(Method::POST, "/api/statements");
        call.body = Body::Text(dsl.to_string());
        let v: Value = self.run(call).await?;
        Ok(array(&v, "results"))
    }

    /// `GET /api/queries`: every query's definition and status.
    pub async fn queries(&self) -> Result<Vec<Value>> {
        let v: Value = self.run(Call::new(Method::GET, "/api/queries")).await?;
        Ok(array(&v, "queries"))
    }

    /// `GET /api/queries/{name}`.
    pub async fn query(&self, name: &str) -> Result<Value> {
        self.run(Call::new(Method::GET, format!("/api/queries/{name}")))
            .await
    }

    /// `DELETE /api/queries/{name}` (`cascade` also drops what reads it).
    pub async fn drop_query(&self, name: &str, cascade: bool) -> Result<Value> {
        let q = if cascade {
            vec![("cascade".into(), "true".into())]
        } else {
            Vec::new()
        };
        self.run(Call::new(Method::DELETE, format!("/api/queries/{name}")).query(q))
            .await
    }

    /// `GET /api/rules`.
    pub async fn rules(&self) -> Result<Vec<Value>> {
        let v: Value = self.run(Call::new(Method::GET, "/api/rules")).await?;
        Ok(array(&v, "rules"))
    }

    /// `GET /api/rules/{name}`.
    pub async fn rule(&self, name: &str) -> Result<Value> {
        self.run(Call::new(Method::GET, format!("/api/rules/{name}")))
            .await
    }

    /// `DELETE /api/rules/{name}`.
    pub async fn drop_rule(&self, name: &str) -> Result<Value> {
        self.run(Call::new(Method::DELETE, format!("/api/rules/{name}")))
            .await
    }

    /// `GET /api/queries/{name}/result`.
    pub async fn result(&self, name: &str, params: &ResultParams) -> Result<ResultSet> {
        let call =
            Call::new(Method::GET, format!("/api/queries/{name}/result")).query(params.to_query());
        self.run(call).await
    }

    // --- events and decisions -----------------------------------------------------------

    /// `POST /api/events[?wait=durable]` with a batch.
    pub async fn add_events(&self, events: &[Value], durable: bool) -> Result<Accepted> {
        let q = if durable {
            vec![("wait".into(), "durable".into())]
        } else {
            Vec::new()
        };
        let call = Call::new(Method::POST, "/api/events")
            .query(q)
            .json(json!({ "events": events }));
        self.run(call).await
    }

    /// `POST /api/events[?wait=durable]` with one event.
    pub async fn add_event(&self, event: &Value, durable: bool) -> Result<Accepted> {
        self.add_events(std::slice::from_ref(event), durable).await
    }

    /// `POST /api/check`: decide without adding.
    pub async fn check(&self, event: &Value) -> Result<Decision> {
        self.run(Call::new(Method::POST, "/api/check").json(event.clone()))
            .await
    }

    /// `POST /api/check` with an array: one decision per event.
    pub async fn check_many(&self, events: &[Value]) -> Result<Vec<Decision>> {
        self.run(Call::new(Method::POST, "/api/check").json(json!(events)))
            .await
    }

    /// `POST /api/add_and_check`: decide on the state including the event; add it if allowed.
    pub async fn add_and_check(&self, event: &Value) -> Result<Decision> {
        self.run(Call::new(Method::POST, "/api/add_and_check").json(event.clone()))
            .await
    }

    /// `POST /api/add_and_check` with an array: each event decided atomically on its own.
    pub async fn add_and_check_many(&self, events: &[Value]) -> Result<Vec<Decision>> {
        self.run(Call::new(Method::POST, "/api/add_and_check").json(json!(events)))
            .await
    }

    // --- event store and analytics ------------------------------------------------------

    /// `GET /api/events` with filters and paging.
    pub async fn events(&self, filter: &EventFilter) -> Result<Value> {
        self.run(Call::new(Method::GET, "/api/events").query(filter.to_query()))
            .await
    }

    /// `POST /api/query`: the seed 001 JSON query.
    pub async fn json_query(&self, query: &Value) -> Result<Value> {
        self.run(Call::new(Method::POST, "/api/query").json(query.clone()))
            .await
    }

    /// `GET /api/stats[/{type}]`: 48 h counts.
    pub async fn stats(&self, event_type: Option<&str>) -> Result<Value> {
        let path = match event_type {
            Some(t) => format!("/api/stats/{t}"),
            None => "/api/stats".into(),
        };
        self.run(Call::new(Method::GET, path)).await
    }

    /// `GET /api/keys[?type=…]`: field names and values seen.
    pub async fn keys(&self, event_type: Option<&str>) -> Result<Value> {
        let q = event_type
            .map(|t| vec![("type".to_string(), t.to_string())])
            .unwrap_or_default();
        self.run(Call::new(Method::GET, "/api/keys").query(q)).await
    }

    /// `PUT /api/schemas/{type}`: a JSON Schema the type's events must satisfy.
    pub async fn put_schema(&self, event_type: &str, schema: &Value) -> Result<Value> {
        let call =
            Call::new(Method::PUT, format!("/api/schemas/{event_type}")).json(schema.clone());
        self.run(call).await
    }

    /// `GET /api/schemas`.
    pub async fn schemas(&self) -> Result<Value> {
        self.run(Call::new(Method::GET, "/api/schemas")).await
    }

    /// `DELETE /api/schemas/{type}`.
    pub async fn delete_schema(&self, event_type: &str) -> Result<Value> {
        self.run(Call::new(
            Method::DELETE,
            format!("/api/schemas/{event_type}"),
        ))
        .await
    }

    /// `GET /metrics`: the Prometheus text.
    pub async fn metrics(&self) -> Result<String> {
        let resp = self.send(&Call::new(Method::GET, "/metrics")).await?;
        resp.text().await.map_err(|e| ClientError::Transport {
            url: self.base.clone(),
            message: e.to_string(),
        })
    }
}

fn array(v: &Value, field: &str) -> Vec<Value> {
    v[field].as_array().cloned().unwrap_or_default()
}
