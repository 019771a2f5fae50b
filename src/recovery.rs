//! Starting and stopping the server: open the store, rebuild state (catalogue, persisted
//! query state, replay of the log after it), serve, flush state periodically, and on
//! SIGTERM/ctrl-c drain and flush once more.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::net::TcpListener;
use weir_core::SystemClock;
use weir_engine::{Engine, EngineConfig};
use weir_rules::RuleSet;
use weir_storage::{EmbeddedConfig, EmbeddedStore, GroupCommit, Storage};

use weir_query_lang::ast::{RuleSource, Statement};

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
    app.load_schemas()?;
    let definitions = crate::catalog::restore(&app)?;
    let replayed = restore_state(&app, &definitions)?;
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
    let checkpointer = tokio::spawn(checkpoint_loop(app.clone()));
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
    tokio::task::spawn_blocking(move || checkpoint(&app2)).await??;
    Ok(())
}

/// Restore the persisted state and replay the log after it; returns the events replayed.
fn restore_state(app: &App, definitions: &[Statement]) -> anyhow::Result<u64> {
    let restored = app.persist.restore(app)?;
    tracing::info!(
        keys = restored.keys,
        from = restored.from,
        rebuilt = restored.missing.len(),
        "persisted state loaded"
    );
    for name in &restored.missing {
        rebuild(app, definitions, name, restored.from + 1)?;
    }
    let mut replayed = 0;
    for record in app.store.scan_seq(restored.from)? {
        let record = record?;
        if !record.denied {
            app.engine.replay(&record.event, record.seq);
            if record.seq > restored.insights_seq {
                app.insights.lock().observe(&record.event);
            }
            replayed += 1;
        }
    }
    app.engine.end_replay();
    Ok(replayed)
}

/// Rebuild query `name`, whose persisted state could not be used, from the events before
/// `boundary` (the log after the checkpoint is replayed into it afterwards).
fn rebuild(app: &App, definitions: &[Statement], name: &str, boundary: u64) -> anyhow::Result<()> {
    for stmt in definitions {
        match stmt {
            Statement::CreateQuery(q) if q.name.name == name => {
                let shadow = app
                    .engine
                    .create_shadow(name, &q.select, &[], false, || boundary)?;
                let n = crate::backfill::rebuild(app, &shadow, q.backfill, &stmt.to_string())?;
                app.engine.promote(shadow)?;
                tracing::info!(query = name, replayed = n, "query rebuilt from the log");
                return Ok(());
            }
            Statement::CreateRule(r)
                if weir_rules::owned_query_name(&r.name.name) == name
                    && matches!(r.source, RuleSource::As(_)) =>
            {
                // The rule exists already (from the catalogue); this replaces its query.
                let mut r = r.clone();
                r.or_replace = true;
                let shadow = app.rules.prepare_owned(&r.name.name, &r, || boundary)?;
                let n = crate::backfill::rebuild(app, &shadow, r.backfill, &stmt.to_string())?;
                app.rules.commit_rule(&r.name.name, &r, shadow)?;
                tracing::info!(rule = %r.name, replayed = n, "rule rebuilt from the log");
                return Ok(());
            }
            _ => {}
        }
    }
    tracing::warn!(query = name, "a query to rebuild has no stored definition");
    Ok(())
}

/// Flush the query state that changed since the last flush (see [`crate::state`]).
pub fn checkpoint(app: &App) -> anyhow::Result<()> {
    app.persist.flush(app).map(|_| ())
}

async fn checkpoint_loop(app: Arc<App>) {
    let mut tick = tokio::time::interval(app.cfg.checkpoint_interval);
    tick.tick().await;
    loop {
        tick.tick().await;
        let a = app.clone();
        match tokio::task::spawn_blocking(move || checkpoint(&a)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "state flush failed; will retry"),
            Err(e) => tracing::warn!(error = %e, "state flush task failed"),
        }
    }
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
