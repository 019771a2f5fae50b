//! # weir
//!
//! The `weir` binary: `serve` runs the engine behind its HTTP API; `apply`, `send` and `check`
//! talk to a running server; `replay` runs statements over an events file with no server.
//!
//! # Layout
//! - [`config`]: the configuration tree and its layers.
//! - [`app`]: shared state and the path every event takes.
//! - [`api`]: the HTTP routes.
//! - [`catalog`]: applying DSL statements, and restoring them on start.
//! - [`server`]: `weir serve`, the composition root: config → storage → engine → inputs → HTTP.
//! - [`recovery`]: restore the persisted state and replay the log after it; periodic flushes.
//! - [`state`]: query state flushed incrementally as key-bucket rows, and restored.
//! - [`store`]: the only way to the storage, on blocking threads.
//! - [`backfill`]: rebuilding created or replaced queries from stored events.
//! - [`oneshot`]: bare SELECTs over stored events.
//! - [`ddl`]: what statements fail with, apart from HTTP.
//! - [`shapes`]: JSON shapes shared by the API and statement results.
//! - [`insights`], [`backfills`], [`decisions`]: what the app keeps besides the engine.
//! - [`alerts`]: alerts, their sinks (Redis, webhook) and the decision log.
//! - [`sink`]: the inputs (UDP, AMQP, Kafka) feeding the app.
//! - [`client`]: the client subcommands (on the `weir-client` crate).
//! - [`progress`]: progress bars of the client subcommands.
//! - [`gen`]: random events between two times.
//! - [`bench`]: the open-loop load generator.
//! - [`replay`]: `weir replay`, statements over an events file with no storage.

mod access;
mod alerts;
mod api;
mod app;
mod backfill;
mod backfills;
mod bench;
mod catalog;
mod client;
mod cluster;
mod config;
mod ddl;
mod decisions;
mod gen;
mod insights;
mod oneshot;
mod progress;
mod recovery;
mod replay;
mod server;
mod shapes;
mod sink;
mod state;
mod store;
mod tenant_store;
mod tenants;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// mimalloc: the event path allocates many small objects (JSON maps, strings) and frees some
/// on other threads (the log writer); glibc's allocator is markedly slower at both.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Weir: continuous queries and allow/deny rules over event streams.
#[derive(Debug, Parser)]
#[command(name = "weir", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (HTTP API on 127.0.0.1:8080, data in ./weir-data unless told otherwise).
    Serve(Box<ServeArgs>),
    /// Apply a DSL file (or `-` for stdin, or `--text`) to a running server.
    Apply {
        /// The DSL file; `-` reads stdin.
        file: Option<PathBuf>,
        /// DSL text given inline.
        #[arg(long, conflicts_with = "file")]
        text: Option<String>,
        /// Server address.
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "WEIR_URL")]
        url: String,
    },
    /// Send events (JSON lines, or one JSON document) from a file or stdin.
    Send {
        /// The events file; `-` or nothing reads stdin.
        file: Option<PathBuf>,
        /// Events per request.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Server address.
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "WEIR_URL")]
        url: String,
    },
    /// Send random events between two times (seed 003's generator).
    Gen(gen::GenArgs),
    /// Measure a running server with an open-loop load generator.
    Bench(bench::BenchArgs),
    /// Run DSL statements over an events file (NDJSON or CSV) with no storage and write the
    /// results, every closing window (`--emit windows`) or every decision (`--decisions`).
    Replay(Box<replay::ReplayArgs>),
    /// Check or show the configuration `weir serve` would run with.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Make a new random API key and print it with its SHA-256 (for `[[auth.keys]]`).
    Key {
        /// The account the key is for.
        #[arg(long, default_value = "default")]
        account: String,
        /// The project.
        #[arg(long, default_value = "default")]
        project: String,
        /// Make it an admin key.
        #[arg(long)]
        admin: bool,
    },
    /// Check one event (JSON) against the rules; `--add` uses add_and_check.
    Check {
        /// The event as JSON.
        event: String,
        /// Add the event if allowed.
        #[arg(long)]
        add: bool,
        /// Server address.
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "WEIR_URL")]
        url: String,
    },
}

/// `weir config …`.
#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a TOML config file (with the `WEIR_*` environment on top); exit 1 on errors.
    Check {
        /// The config file.
        file: PathBuf,
    },
    /// Print the effective configuration (defaults < file < environment), passwords redacted.
    Print {
        /// The config file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Flags of `weir serve`; they override the config file and the environment.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address for the HTTP API.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Data directory of the embedded store.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where the data lives: `embedded` (files under the data dir) or `cassandra`.
    #[arg(long, value_enum)]
    storage: Option<config::StorageKind>,
    /// Cassandra/Scylla contact points (implies `--storage cassandra`). The password is set
    /// only in the config file or `WEIR_CASSANDRA__PASSWORD`, never as a flag.
    #[arg(long, value_name = "HOST:PORT,…", value_delimiter = ',')]
    cassandra_nodes: Option<Vec<String>>,
    /// Cassandra keyspace (created if missing).
    #[arg(long, value_name = "NAME")]
    cassandra_keyspace: Option<String>,
    /// Replication of a keyspace Weir creates: `simple:3`, or `dc1:3,dc2:2` per data centre.
    #[arg(long, value_name = "SPEC")]
    cassandra_replication: Option<weir_storage::Replication>,
    /// Consistency of every read and write (default LOCAL_QUORUM).
    #[arg(long, value_name = "LEVEL")]
    cassandra_consistency: Option<weir_storage::Consistency>,
    /// The local data centre (for data-centre-aware load balancing).
    #[arg(long, value_name = "DC")]
    cassandra_local_dc: Option<String>,
    /// Cassandra user name (with the password from the config or the environment).
    #[arg(long, value_name = "USER")]
    cassandra_username: Option<String>,
    /// Connect with TLS, trusting this CA certificate (PEM).
    #[arg(long, value_name = "PEM")]
    cassandra_tls_ca: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Allow listening on a non-loopback address without API keys.
    #[arg(long)]
    insecure: bool,
    /// Read events from UDP datagrams on this address.
    #[arg(long, value_name = "ADDR")]
    udp: Option<SocketAddr>,
    /// Read events from this AMQP broker (with --amqp-queue).
    #[arg(long, value_name = "URL", requires = "amqp_queue")]
    amqp: Option<String>,
    /// The AMQP queue to consume.
    #[arg(long, value_name = "QUEUE", requires = "amqp")]
    amqp_queue: Option<String>,
    /// Unacknowledged AMQP deliveries at once.
    #[arg(long, requires = "amqp")]
    amqp_prefetch: Option<u16>,
    /// Read events from these Kafka brokers (with --kafka-topic and --kafka-group).
    #[arg(long, value_name = "HOST:PORT,…", requires_all = ["kafka_topic", "kafka_group"])]
    kafka_brokers: Option<String>,
    /// The Kafka topic to consume.
    #[arg(long, requires = "kafka_brokers")]
    kafka_topic: Option<String>,
    /// The Kafka consumer group.
    #[arg(long, requires = "kafka_brokers")]
    kafka_group: Option<String>,
    /// Cluster mode: join the cluster on these Kafka brokers (with --cluster-topic and
    /// --cluster-route; needs the Cassandra/Scylla backend).
    #[arg(long, value_name = "HOST:PORT,…", requires = "cluster_topic")]
    cluster_brokers: Option<String>,
    /// The cluster's events topic (created with 6 partitions if missing).
    #[arg(long, requires = "cluster_brokers")]
    cluster_topic: Option<String>,
    /// The cluster's consumer group (default weir-cluster).
    #[arg(long, requires = "cluster_brokers")]
    cluster_group: Option<String>,
    /// This node's id in the cluster (default: its HTTP address).
    #[arg(long, requires = "cluster_brokers")]
    cluster_node: Option<String>,
    /// The URL the other nodes reach this one at (default http:// and the HTTP address).
    #[arg(long, value_name = "URL", requires = "cluster_brokers")]
    cluster_advertise: Option<String>,
    /// The routing fields of every event type (comma-separated).
    #[arg(
        long,
        value_name = "FIELD,…",
        value_delimiter = ',',
        requires = "cluster_brokers"
    )]
    cluster_route: Option<Vec<String>>,
    /// How long a partition's lease lasts unrenewed (default 10s): a dead node's partitions
    /// move after about this long.
    #[arg(long, value_name = "DURATION", requires = "cluster_brokers")]
    cluster_lease: Option<String>,
}

/// The `--cluster-*` flags over the loaded configuration, and the defaults that depend on
/// the HTTP address.
fn apply_cluster_flags(cfg: &mut config::ServeConfig, args: &ServeArgs) {
    if let (Some(b), Some(t)) = (&args.cluster_brokers, &args.cluster_topic) {
        let c = cfg
            .cluster
            .get_or_insert_with(|| cluster::ClusterConfig::new(b.clone(), t.clone()));
        c.brokers.clone_from(b);
        c.topic.clone_from(t);
    }
    let http = cfg.http;
    let Some(c) = cfg.cluster.as_mut() else {
        return;
    };
    if let Some(g) = &args.cluster_group {
        c.group.clone_from(g);
    }
    if let Some(n) = &args.cluster_node {
        c.node.clone_from(n);
    }
    if let Some(a) = &args.cluster_advertise {
        c.advertise.clone_from(a);
    }
    if let Some(r) = &args.cluster_route {
        c.route.clone_from(r);
    }
    if let Some(l) = &args.cluster_lease {
        match weir_core::parse_duration(l) {
            Ok(ms) if ms > 0 => c.lease = std::time::Duration::from_millis(ms as u64),
            _ => {
                tracing::warn!(lease = %l, "--cluster-lease is not a duration; keeping the default")
            }
        }
    }
    if c.node.is_empty() {
        c.node = http.to_string();
    }
    if c.advertise.is_empty() {
        c.advertise = format!("http://{http}");
    }
}

/// The `--storage` and `--cassandra-*` flags over the loaded configuration.
fn apply_cassandra_flags(cfg: &mut config::ServeConfig, args: &ServeArgs) {
    let c = &mut cfg.cassandra;
    if let Some(n) = &args.cassandra_nodes {
        c.nodes = n.clone();
        cfg.storage = config::StorageKind::Cassandra;
    }
    if let Some(k) = &args.cassandra_keyspace {
        c.keyspace = k.clone();
    }
    if let Some(r) = &args.cassandra_replication {
        c.replication = r.clone();
    }
    if let Some(l) = &args.cassandra_consistency {
        c.consistency = *l;
    }
    if let Some(dc) = &args.cassandra_local_dc {
        c.local_dc = Some(dc.clone());
    }
    if let Some(u) = &args.cassandra_username {
        c.username = Some(u.clone());
    }
    if let Some(ca) = &args.cassandra_tls_ca {
        match &mut c.tls {
            Some(tls) => tls.ca_file = ca.clone(),
            None => {
                c.tls = Some(weir_storage::CassandraTls {
                    ca_file: ca.clone(),
                    cert_file: None,
                    key_file: None,
                    server_name: None,
                })
            }
        }
    }
    if let Some(s) = args.storage {
        cfg.storage = s;
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Serve(args) => {
            let mut cfg = config::ServeConfig::load(args.config.as_deref())?;
            if let Some(h) = args.http {
                cfg.http = h;
            }
            apply_cassandra_flags(&mut cfg, &args);
            apply_cluster_flags(&mut cfg, &args);
            if let Some(d) = args.data_dir {
                cfg.data_dir = d;
            }
            cfg.insecure |= args.insecure;
            if let Some(addr) = args.udp {
                cfg.udp = Some(weir_inputs::UdpConfig::new(addr));
            }
            if let (Some(url), Some(queue)) = (args.amqp, args.amqp_queue) {
                let mut amqp = weir_inputs::AmqpConfig::new(url, queue);
                if let Some(p) = args.amqp_prefetch {
                    amqp.prefetch = p;
                }
                cfg.amqp = Some(amqp);
            }
            if let (Some(b), Some(t), Some(g)) =
                (args.kafka_brokers, args.kafka_topic, args.kafka_group)
            {
                cfg.kafka = Some(weir_inputs::KafkaConfig::new(b, t, g));
            }
            rt.block_on(server::serve(cfg))
        }
        Command::Apply { file, text, url } => rt.block_on(client::apply(&url, file, text)),
        Command::Send { file, batch, url } => rt.block_on(client::send(&url, file, batch)),
        Command::Gen(args) => rt.block_on(gen::run(args)),
        Command::Bench(args) => rt.block_on(bench::run(args)),
        Command::Replay(args) => replay::run(*args),
        Command::Key {
            account,
            project,
            admin,
        } => {
            access::check_name("account", &account)?;
            access::check_name("project", &project)?;
            let key = access::new_key()?;
            println!("# the key (give it to the client; it is not stored anywhere):\n# {key}");
            println!("[[auth.keys]]\nname = \"{account}-{project}\"\naccount = \"{account}\"\nproject = \"{project}\"\nsha256 = \"{}\"\nadmin = {admin}", access::hash(&key));
            Ok(())
        }
        Command::Check { event, add, url } => rt.block_on(client::check(&url, &event, add)),
        Command::Config(ConfigCommand::Check { file }) => {
            config::ServeConfig::load(Some(&file))?;
            println!("{}: valid", file.display());
            Ok(())
        }
        Command::Config(ConfigCommand::Print { config }) => {
            print!("{}", config::print(config.as_deref())?);
            Ok(())
        }
    }
}
