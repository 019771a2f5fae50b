//! The composition root of `weir serve`: configuration → storage → engine and rules → the
//! app (restored from the store) → inputs → HTTP → shutdown (drain, flush).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::net::TcpListener;
use weir_core::SystemClock;
use weir_engine::{Engine, EngineConfig};
use weir_rules::RuleSet;
use weir_storage::{EmbeddedConfig, EmbeddedStore, GroupCommit, Storage};

use crate::app::App;
use crate::config::ServeConfig;

/// Run `weir serve` until a shutdown signal.
pub async fn serve(cfg: ServeConfig) -> anyhow::Result<()> {
    if !cfg.http.ip().is_loopback() && !cfg.insecure {
        anyhow::bail!(
            "refusing to listen on {} without API keys: pass --insecure to accept unauthenticated calls from the network",
            cfg.http
        );
    }
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    crate::api::metrics::install();
    let store: Arc<dyn Storage> = Arc::new(
        EmbeddedStore::open(&cfg.data_dir, &EmbeddedConfig::default())
            .with_context(|| format!("opening the store in {}", cfg.data_dir.display()))?,
    );
    let log = GroupCommit::start(store.clone(), cfg.durable);
    let engine = Arc::new(Engine::new(EngineConfig {
        shards: cfg.shards,
        default_grace_ms: cfg.grace.as_millis() as i64,
        default_retention_ms: cfg.retention.as_millis() as i64,
    }));
    let rules = RuleSet::new(engine.clone());
    let last_seq = store.last_seq()?;
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
    let replayed = crate::recovery::restore(&app)?;
    tracing::info!(
        replayed,
        last_seq,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "state restored"
    );

    let listener = TcpListener::bind(cfg.http)
        .await
        .with_context(|| format!("binding {}", cfg.http))?;
    tracing::info!(addr = %cfg.http, data_dir = %cfg.data_dir.display(), "weir is listening");
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
    tracing::info!("shutting down: flushing the log and the query state");
    let app2 = app.clone();
    tokio::task::spawn_blocking(move || app2.flush_state()).await??;
    Ok(())
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
