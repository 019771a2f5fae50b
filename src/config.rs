//! The server's configuration: one tree of serde structs, layered
//! defaults < TOML file (`--config`) < `WEIR_*` environment < command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use weir_inputs::{AmqpConfig, KafkaConfig, UdpConfig};

/// Everything `weir serve` can be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Address of the HTTP API.
    pub http: SocketAddr,
    /// Where the embedded store keeps its files.
    pub data_dir: PathBuf,
    /// Largest accepted request body, bytes (default 16 MiB).
    pub max_body_bytes: usize,
    /// How far in the future an event's time may be (default 5 min).
    #[serde(with = "humantime_ms")]
    pub max_future_skew: Duration,
    /// How often engine state is checkpointed (default 30 s).
    #[serde(with = "humantime_ms")]
    pub checkpoint_interval: Duration,
    /// Sliding windows keep their window plus this grace for late events (default 10 min).
    #[serde(with = "humantime_ms")]
    pub grace: Duration,
    /// Tumbling series keep buckets this long (default 48 h).
    #[serde(with = "humantime_ms")]
    pub retention: Duration,
    /// Bucket width of the 48 h event counts of `GET /api/stats` (default 1 min).
    #[serde(with = "humantime_ms")]
    pub stats_granularity: Duration,
    /// Largest number of buckets one window may span.
    pub max_buckets_per_window: u64,
    /// Engine shards per query (fixed for the life of a data dir).
    pub shards: usize,
    /// Reply to synchronous calls only after fsync (default true). Turning it off trades
    /// durability of acknowledged events for speed.
    pub durable: bool,
    /// Bind to a non-loopback address without API keys.
    pub insecure: bool,
    /// The UDP input (`[udp]`, or `--udp ADDR`).
    #[serde(skip_serializing)]
    pub udp: Option<UdpConfig>,
    /// The AMQP input (`[amqp]`, or `--amqp URL --amqp-queue Q`).
    #[serde(skip_serializing)]
    pub amqp: Option<AmqpConfig>,
    /// The Kafka input (`[kafka]`, or `--kafka-brokers … --kafka-topic … --kafka-group …`).
    #[serde(skip_serializing)]
    pub kafka: Option<KafkaConfig>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            http: "127.0.0.1:8080".parse().expect("valid default address"),
            data_dir: PathBuf::from("weir-data"),
            max_body_bytes: 16 * 1024 * 1024,
            max_future_skew: Duration::from_secs(300),
            checkpoint_interval: Duration::from_secs(30),
            grace: Duration::from_secs(600),
            retention: Duration::from_secs(48 * 3600),
            stats_granularity: Duration::from_secs(60),
            max_buckets_per_window: 100_000,
            shards: 64,
            durable: true,
            insecure: false,
            udp: None,
            amqp: None,
            kafka: None,
        }
    }
}

impl ServeConfig {
    /// Load the layers: defaults, then the TOML file if given, then `WEIR_*` variables.
    /// Flags are applied by the caller on top.
    pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let mut cfg = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("in config file {}", path.display()))?
            }
            None => Self::default(),
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        Ok(cfg)
    }

    /// Override fields from `WEIR_HTTP`, `WEIR_DATA_DIR`, `WEIR_MAX_BODY_BYTES`,
    /// `WEIR_CHECKPOINT_INTERVAL`, `WEIR_DURABLE`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        if let Some(v) = get("WEIR_HTTP") {
            self.http = v
                .parse()
                .with_context(|| format!("WEIR_HTTP={v:?} is not an address"))?;
        }
        if let Some(v) = get("WEIR_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = get("WEIR_MAX_BODY_BYTES") {
            self.max_body_bytes = v
                .parse()
                .with_context(|| format!("WEIR_MAX_BODY_BYTES={v:?}"))?;
        }
        if let Some(v) = get("WEIR_CHECKPOINT_INTERVAL") {
            self.checkpoint_interval = humantime_ms::parse(&v)?;
        }
        if let Some(v) = get("WEIR_DURABLE") {
            self.durable = matches!(v.as_str(), "1" | "true" | "yes");
        }
        Ok(())
    }
}

/// Durations written like the query language's: `"10s"`, `"5min"`, `"500ms"`.
mod humantime_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn parse(s: &str) -> anyhow::Result<Duration> {
        let ms = weir_core::parse_duration(s)?;
        Ok(Duration::from_millis(ms.max(0) as u64))
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&weir_core::format_duration(d.as_millis() as i64))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_file_then_env() {
        let mut cfg: ServeConfig =
            toml::from_str("http = \"127.0.0.1:9000\"\ngrace = \"1min\"").unwrap();
        assert_eq!(cfg.http.port(), 9000);
        assert_eq!(cfg.grace, Duration::from_secs(60));
        cfg.apply_env(|k| (k == "WEIR_HTTP").then(|| "127.0.0.1:9001".to_string()))
            .unwrap();
        assert_eq!(cfg.http.port(), 9001);
        assert!(
            toml::from_str::<ServeConfig>("htp = 1").is_err(),
            "unknown keys are refused"
        );
    }

    #[test]
    fn the_example_config_is_valid_and_says_the_defaults() {
        let example: ServeConfig = toml::from_str(include_str!("../examples/weir.toml")).unwrap();
        assert_eq!(
            toml::to_string(&example).unwrap(),
            toml::to_string(&ServeConfig::default()).unwrap()
        );
    }
}
