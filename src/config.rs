//! The server's configuration: one tree of serde structs, layered with `figment`:
//! defaults < TOML file (`--config`) < `WEIR_*` environment < command-line flags. Every key
//! has a variable: `WEIR_<KEY>` at the top level, `WEIR_<SECTION>__<KEY>` in `[udp]`,
//! `[amqp]`, `[kafka]` and `[cassandra]` (`WEIR_CASSANDRA__PASSWORD=…`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use weir_inputs::{AmqpConfig, KafkaConfig, UdpConfig};
use weir_storage::CassandraConfig;

/// Which backend keeps the events, the catalogue and the persisted state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// Files under `data_dir` (fjall): nothing else to run.
    #[default]
    Embedded,
    /// A Cassandra or ScyllaDB cluster, configured in `[cassandra]`.
    Cassandra,
}

/// Everything `weir serve` can be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Address of the HTTP API.
    pub http: SocketAddr,
    /// Which backend keeps the data: `embedded` (default) or `cassandra`.
    pub storage: StorageKind,
    /// Where the embedded store keeps its files.
    pub data_dir: PathBuf,
    /// The Cassandra/Scylla backend (`[cassandra]`), used with `storage = "cassandra"`.
    pub cassandra: CassandraConfig,
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
    /// Longest wait for a synchronous answer's events to become durable (default 5 s). When
    /// the store does not answer in time, the call gets 503 (its events stay queued).
    #[serde(with = "humantime_ms")]
    pub durable_timeout: Duration,
    /// Bind to a non-loopback address without API keys.
    pub insecure: bool,
    /// API keys, and the tenants of the inputs (`[auth]`; more keys in `WEIR_API_KEYS`).
    pub auth: AuthConfig,
    /// The UDP input (`[udp]`, or `--udp ADDR`).
    #[serde(skip_serializing)]
    pub udp: Option<UdpConfig>,
    /// The AMQP input (`[amqp]`, or `--amqp URL --amqp-queue Q`).
    #[serde(skip_serializing)]
    pub amqp: Option<AmqpConfig>,
    /// The Kafka input (`[kafka]`, or `--kafka-brokers … --kafka-topic … --kafka-group …`).
    #[serde(skip_serializing)]
    pub kafka: Option<KafkaConfig>,
    /// Alert sinks and the decision log (`[alerts]`, see `crate::alerts::config`).
    pub alerts: crate::alerts::AlertsConfig,
    /// Cluster mode (`[cluster]`, or `--cluster-brokers …`): several nodes share the
    /// partitions of one events topic, each partition's state in Cassandra/Scylla.
    #[serde(skip_serializing)]
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            http: "127.0.0.1:8080".parse().expect("valid default address"),
            storage: StorageKind::Embedded,
            data_dir: PathBuf::from("weir-data"),
            cassandra: CassandraConfig::default(),
            max_body_bytes: 16 * 1024 * 1024,
            max_future_skew: Duration::from_secs(300),
            checkpoint_interval: Duration::from_secs(30),
            grace: Duration::from_secs(600),
            retention: Duration::from_secs(48 * 3600),
            stats_granularity: Duration::from_secs(60),
            max_buckets_per_window: 100_000,
            shards: 64,
            durable: true,
            durable_timeout: Duration::from_secs(5),
            insecure: false,
            auth: AuthConfig::default(),
            udp: None,
            amqp: None,
            kafka: None,
            alerts: Default::default(),
            cluster: None,
        }
    }
}

/// API keys and tenants (`[auth]`, SPEC section 10).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The keys (`[[auth.keys]]`: name, account, project, key or sha256, admin). With any key
    /// configured (here, in `WEIR_API_KEYS`, or created over the API), every call but
    /// `/healthz` needs one.
    pub keys: Vec<crate::access::KeyConfig>,
    /// Serve `/metrics` without a key (for a Prometheus scraper); otherwise it needs an
    /// admin key once keys are on.
    pub metrics_public: bool,
    /// The tenant of each input's events, as `account/project` by input name (`udp`,
    /// `amqp`, `kafka`); the default tenant otherwise.
    pub inputs: std::collections::BTreeMap<String, String>,
}

impl AuthConfig {
    /// The tenant of input `name`'s events.
    pub fn input_tenant(&self, name: &str) -> anyhow::Result<weir_core::Tenant> {
        let Some(v) = self.inputs.get(name) else {
            return Ok(weir_core::Tenant::default());
        };
        let (account, project) = v.split_once('/').ok_or_else(|| {
            anyhow::anyhow!("auth.inputs.{name} = {v:?}: expected \"account/project\"")
        })?;
        crate::access::check_name("account", account)?;
        crate::access::check_name("project", project)?;
        Ok(weir_core::Tenant::new(account, project))
    }

    /// The configured keys and those of `WEIR_API_KEYS`.
    pub fn all_keys(&self) -> anyhow::Result<Vec<crate::access::KeyConfig>> {
        let mut keys = self.keys.clone();
        if let Ok(v) = std::env::var("WEIR_API_KEYS") {
            keys.extend(crate::access::parse_env(&v)?);
        }
        Ok(keys)
    }
}

/// The input sections; their keys come from the `weir-inputs` config types.
const SECTIONS: [&str; 7] = [
    "udp",
    "amqp",
    "kafka",
    "cassandra",
    "auth",
    "alerts",
    "cluster",
];

impl ServeConfig {
    /// Load the layers: defaults, then the TOML file if given, then `WEIR_*` variables.
    /// Flags are applied by the caller on top.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        Self::layers(file)?
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {}", explain(e)))
    }

    /// Defaults < TOML file < environment, not yet extracted (also what `weir config print`
    /// shows).
    pub fn layers(file: Option<&Path>) -> anyhow::Result<Figment> {
        let mut fig = Figment::from(Serialized::defaults(ServeConfig::default()));
        if let Some(path) = file {
            anyhow::ensure!(
                path.is_file(),
                "config file {} does not exist",
                path.display()
            );
            fig = fig.merge(Toml::file_exact(path));
        }
        Ok(fig.merge(env_layer()))
    }
}

/// `WEIR_<KEY>` for every top-level key (`WEIR_MAX_FUTURE_SKEW=1min`), and
/// `WEIR_<SECTION>__<KEY>` inside the input sections (`WEIR_AMQP__URL=amqp://…`). Other
/// `WEIR_*` variables (the client commands' `WEIR_URL`, test settings) are not configuration
/// and are left alone, so they never trip the unknown-key check.
fn env_layer() -> Env {
    let top: Vec<String> = match serde_json::to_value(ServeConfig::default()) {
        Ok(serde_json::Value::Object(o)) => o.keys().cloned().collect(),
        _ => Vec::new(),
    };
    Env::prefixed("WEIR_")
        .filter(move |k| {
            let k = k.as_str().to_ascii_lowercase();
            let first = k.split("__").next().unwrap_or(&k);
            let first = first.split('.').next().unwrap_or(first);
            top.iter().any(|t| t == first) || SECTIONS.contains(&first)
        })
        .split("__")
}

/// A figment error with where the bad value came from (file, variable, default).
fn explain(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| {
            let place = match &e.metadata {
                Some(m) if m.name.contains("environment") => {
                    format!(
                        " (environment variable WEIR_{})",
                        e.path.join("__").to_uppercase()
                    )
                }
                Some(m) => match &m.source {
                    Some(src) => format!(" ({} {src})", m.name),
                    None => format!(" ({})", m.name),
                },
                None => String::new(),
            };
            let key = if e.path.is_empty() {
                String::new()
            } else {
                format!("{}: ", e.path.join("."))
            };
            format!("{key}{}{place}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The effective configuration as TOML, with passwords in URLs replaced by `***`.
pub fn print(file: Option<&Path>) -> anyhow::Result<String> {
    let fig = ServeConfig::layers(file)?;
    // Check it first: `print` shows only a configuration `serve` would accept.
    fig.extract::<ServeConfig>()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {}", explain(e)))?;
    let mut value: toml::Value = fig
        .extract()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {}", explain(e)))?;
    redact(&mut value);
    Ok(toml::to_string(&value)?)
}

/// Replace the password of every URL-like string (`scheme://user:password@host`) and every
/// value of a key that names a secret.
fn redact(v: &mut toml::Value) {
    match v {
        toml::Value::Table(t) => {
            for (k, x) in t.iter_mut() {
                let k = k.to_ascii_lowercase();
                if k.contains("password")
                    || k.contains("secret")
                    || k.ends_with("api_key")
                    || k == "key"
                {
                    *x = toml::Value::String("***".into());
                } else {
                    redact(x);
                }
            }
        }
        toml::Value::Array(a) => a.iter_mut().for_each(redact),
        toml::Value::String(s) => *s = redact_url(s),
        _ => {}
    }
}

/// `amqp://user:pw@host/` → `amqp://user:***@host/`.
pub fn redact_url(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else {
        return s.to_string();
    };
    let (auth, host) = match rest.split_once('@') {
        Some(p) => p,
        None => return s.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => s.to_string(),
    }
}

/// Durations written like the query language's: `"10s"`, `"5min"`, `"500ms"`.
pub(crate) mod humantime_ms {
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
// figment's test `Jail` returns its own (large) error type from every closure.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn layers_defaults_file_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "weir.toml",
                "http = \"127.0.0.1:9000\"\ngrace = \"1min\"\nshards = 8\n[udp]\naddr = \"127.0.0.1:9999\"\n",
            )?;
            let cfg = ServeConfig::load(Some(Path::new("weir.toml"))).unwrap();
            assert_eq!(cfg.http.port(), 9000);
            assert_eq!(cfg.grace, Duration::from_secs(60));
            assert_eq!(
                cfg.retention,
                ServeConfig::default().retention,
                "default kept"
            );
            jail.set_env("WEIR_HTTP", "127.0.0.1:9001");
            jail.set_env("WEIR_MAX_FUTURE_SKEW", "30s");
            jail.set_env("WEIR_SHARDS", "4");
            jail.set_env("WEIR_DURABLE", "false");
            jail.set_env("WEIR_URL", "http://not-config:1"); // the client's variable
            jail.set_env("WEIR_AMQP__URL", "amqp://u:p@h:5672/%2f");
            jail.set_env("WEIR_AMQP__QUEUE", "events");
            let cfg = ServeConfig::load(Some(Path::new("weir.toml"))).unwrap();
            assert_eq!(cfg.http.port(), 9001, "environment over file");
            assert_eq!(cfg.max_future_skew, Duration::from_secs(30));
            assert_eq!(cfg.shards, 4);
            assert!(!cfg.durable);
            assert!(cfg.udp.is_some(), "file section kept");
            let amqp = cfg.amqp.expect("section from the environment");
            assert_eq!(amqp.queue, "events");
            Ok(())
        });
    }

    #[test]
    fn bad_values_and_unknown_keys_say_where() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "htp = 1\n")?;
            let e = ServeConfig::load(Some(Path::new("bad.toml"))).unwrap_err();
            assert!(e.to_string().contains("htp"), "{e}");
            assert!(e.to_string().contains("bad.toml"), "{e}");
            jail.create_file("ok.toml", "")?;
            jail.set_env("WEIR_GRACE", "ten minutes");
            let e = ServeConfig::load(Some(Path::new("ok.toml"))).unwrap_err();
            assert!(e.to_string().contains("grace"), "{e}");
            assert!(e.to_string().contains("WEIR_GRACE"), "{e}");
            let missing = ServeConfig::load(Some(Path::new("nope.toml"))).unwrap_err();
            assert!(missing.to_string().contains("does not exist"), "{missing}");
            Ok(())
        });
    }

    #[test]
    fn print_redacts_passwords() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "w.toml",
                "storage = \"cassandra\"\n[amqp]\nurl = \"amqp://guest:hunter2@rabbit:5672/%2f\"\nqueue = \"q\"\n\
                 [cassandra]\nusername = \"weir\"\npassword = \"s3cret\"\nreplication = { class = \"NetworkTopologyStrategy\", dc1 = 3 }\n",
            )?;
            let out = print(Some(Path::new("w.toml"))).unwrap();
            assert!(!out.contains("hunter2"), "{out}");
            assert!(!out.contains("s3cret"), "{out}");
            assert!(out.contains("storage = \"cassandra\""), "{out}");
            jail.set_env("WEIR_CASSANDRA__PASSWORD", "envsecret");
            let cfg = ServeConfig::load(Some(Path::new("w.toml"))).unwrap();
            assert_eq!(cfg.cassandra.password.as_deref(), Some("envsecret"));
            assert_eq!(cfg.cassandra.username.as_deref(), Some("weir"));
            assert!(!format!("{cfg:?}").contains("envsecret"), "Debug redacts");
            assert!(!print(Some(Path::new("w.toml")))
                .unwrap()
                .contains("envsecret"));
            assert!(out.contains("amqp://guest:***@rabbit:5672/%2f"), "{out}");
            assert!(
                out.contains("max_future_skew = \"5min\""),
                "defaults shown: {out}"
            );
            Ok(())
        });
        assert_eq!(redact_url("http://h:1/x"), "http://h:1/x");
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
