//! The composition root of `weir serve`: configuration → storage → engine and rules → the
//! app (restored from the store) → inputs → HTTP → shutdown (drain, flush).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::net::TcpListener;
use weir_core::SystemClock;
use weir_storage::{CassandraStore, EmbeddedConfig, EmbeddedStore, Storage};

use crate::app::Node;
use crate::config::{ServeConfig, StorageKind};
use crate::store::Store;
use crate::tenants::Hub;

/// Run `weir serve` until a shutdown signal.
pub async fn serve(cfg: ServeConfig) -> anyhow::Result<()> {
    let keys = crate::access::KeyRing::from_config(&cfg.auth.all_keys()?)?;
    crate::api::metrics::install();
    let store = Store::new(open_store(&cfg).await?);
    let last_seq = store.run(|s| s.last_seq()).await?;
    let log = store.start_log(cfg.durable);
    let node = Arc::new(Node::new(
        cfg.clone(),
        store,
        log,
        last_seq,
        Arc::new(SystemClock),
    ));
    let hub = Arc::new(Hub::new(node, keys));
    hub.load_keys().await?;
    if !cfg.http.ip().is_loopback() && !cfg.insecure && !hub.keys().enabled() {
        anyhow::bail!(
            "refusing to listen on {} without API keys: configure keys ([[auth.keys]] or WEIR_API_KEYS), or pass --insecure to accept unauthenticated calls from the network",
            cfg.http
        );
    }
    let started = Instant::now();
    let tenants = hub.known_tenants().await?;
    let replayed = hub.restore(tenants).await?;
    tracing::info!(
        replayed,
        last_seq,
        tenants = hub.apps().len(),
        keys = hub.keys().list().len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "state restored"
    );

    let alert_tasks = crate::alerts::start(hub.node()).await?;

    let (stop_inputs, inputs_shutdown) = weir_inputs::shutdown_channel();
    let mut cluster_tasks = Vec::new();
    if let Some(c) = cfg.cluster.clone() {
        let cluster =
            crate::cluster::Cluster::new(c, cfg.clone(), &hub, Arc::new(SystemClock)).await?;
        hub.set_cluster(cluster.clone());
        cluster.note_front_applied().await?;
        cluster.join().await;
        cluster_tasks.push(tokio::spawn(cluster.clone().heartbeat()));
        cluster_tasks.push(tokio::spawn(cluster.clone().renew_leases()));
        cluster_tasks.push(tokio::spawn(cluster.clone().probe_kafka()));
        let tenant = cfg.auth.input_tenant("kafka")?;
        cluster_tasks.push(crate::cluster::sink::start(
            &cluster,
            tenant,
            &inputs_shutdown,
        )?);
    }

    let listener = TcpListener::bind(cfg.http)
        .await
        .with_context(|| format!("binding {}", cfg.http))?;
    tracing::info!(addr = %cfg.http, storage = ?cfg.storage, auth = hub.keys().enabled(), "weir is listening");
    let checkpointer = tokio::spawn(crate::recovery::flush_loop(hub.clone()));
    let inputs = crate::sink::start_inputs(&hub, &inputs_shutdown)?;
    axum::serve(listener, crate::api::router(hub.clone()))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    let _ = stop_inputs.send(true);
    for input in inputs {
        let _ = input.await;
    }
    if let Some(cluster) = hub.cluster() {
        // The consumer has left the group; give the partitions back, flushed.
        if let Some(consumer) = cluster_tasks.pop() {
            let _ = consumer.await;
        }
        cluster_tasks.iter().for_each(|t| t.abort());
        cluster.close_all().await;
    }
    checkpointer.abort();
    alert_tasks.iter().for_each(|t| t.abort());
    tracing::info!("shutting down: flushing the log and the query state");
    crate::recovery::flush_all(&hub).await?;
    Ok(())
}

/// Open the configured backend (on a blocking thread: it reads files or talks to a cluster).
async fn open_store(cfg: &ServeConfig) -> anyhow::Result<Arc<dyn Storage>> {
    let cfg = cfg.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Arc<dyn Storage>> {
        Ok(match cfg.storage {
            StorageKind::Embedded => {
                std::fs::create_dir_all(&cfg.data_dir)
                    .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
                let store = EmbeddedStore::open(&cfg.data_dir, &EmbeddedConfig::default())
                    .with_context(|| format!("opening the store in {}", cfg.data_dir.display()))?;
                tracing::info!(data_dir = %cfg.data_dir.display(), "embedded store opened");
                Arc::new(store)
            }
            StorageKind::Cassandra => {
                let c = &cfg.cassandra;
                let store = CassandraStore::connect(c).with_context(|| {
                    format!(
                        "connecting to Cassandra/Scylla at {} (keyspace {})",
                        c.nodes.join(","),
                        c.keyspace
                    )
                })?;
                tracing::info!(nodes = %c.nodes.join(","), keyspace = %c.keyspace,
                    consistency = ?c.consistency, "Cassandra/Scylla store connected");
                Arc::new(store)
            }
        })
    })
    .await?
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
