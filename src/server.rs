//! The composition root of `weir serve`: configuration → storage → engine and rules → the
//! app (restored from the store) → inputs → HTTP → shutdown (drain, flush).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::net::TcpListener;
use weir_core::SystemClock;
use weir_engine::{Engine, EngineConfig};
use weir_rules::RuleSet;
use weir_storage::{CassandraStore, EmbeddedConfig, EmbeddedStore, Storage};

use crate::app::App;
use crate::config::{ServeConfig, StorageKind};
use crate::store::Store;

/// Run `weir serve` until a shutdown signal.
pub async fn serve(cfg: ServeConfig) -> anyhow::Result<()> {
    if !cfg.http.ip().is_loopback() && !cfg.insecure {
        anyhow::bail!(
            "refusing to listen on {} without API keys: pass --insecure to accept unauthenticated calls from the network",
            cfg.http
        );
    }
    crate::api::metrics::install();
    let store = Store::new(open_store(&cfg).await?);
    let last_seq = store.run(|s| s.last_seq()).await?;
    let log = store.start_log(cfg.durable);
    let engine = Arc::new(Engine::new(EngineConfig {
        shards: cfg.shards,
        default_grace_ms: cfg.grace.as_millis() as i64,
        default_retention_ms: cfg.retention.as_millis() as i64,
    }));
    let rules = RuleSet::new(engine.clone());
    let app = Arc::new(App::new(
        cfg.clone(),
        engine,
        rules,
        store,
        log,
        last_seq,
        Arc::new(SystemClock),
    ));
    let started = Instant::now();
    let replayed = app.blocking(crate::recovery::restore).await?;
    tracing::info!(
        replayed,
        last_seq,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "state restored"
    );

    let alert_tasks = crate::alerts::start(&app).await?;

    let listener = TcpListener::bind(cfg.http)
        .await
        .with_context(|| format!("binding {}", cfg.http))?;
    tracing::info!(addr = %cfg.http, storage = ?cfg.storage, "weir is listening");
    let checkpointer = tokio::spawn(crate::recovery::flush_loop(app.clone()));
    let (stop_inputs, inputs_shutdown) = weir_inputs::shutdown_channel();
    let inputs = crate::sink::start_inputs(&app, &inputs_shutdown)?;
    axum::serve(listener, crate::api::router(app.clone()))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    let _ = stop_inputs.send(true);
    for input in inputs {
        let _ = input.await;
    }
    checkpointer.abort();
    alert_tasks.iter().for_each(|t| t.abort());
    tracing::info!("shutting down: flushing the log and the query state");
    app.blocking(|cx| cx.flush_state()).await?;
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
