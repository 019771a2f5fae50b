//! Recovery: rebuild the state of a freshly opened store (catalogue, persisted query state,
//! replay of the log after it), and flush the query state periodically.

use std::sync::Arc;

use weir_query_lang::ast::{RuleSource, Statement};

use weir_storage::Storage;

use crate::app::Cx;
use crate::tenants::Hub;

/// Rebuild the state of the tenants `apps` from a freshly opened store: for each, schemas,
/// the catalogue (an entry that cannot be restored is reported, never fatal) and the
/// persisted query state; then one replay of the log after the oldest of those states, each
/// record into its own tenant's engine. `whole` is the node's store. Returns the events
/// replayed.
///
/// The node's analytics are restored (and fed the replay) only when the default tenant is
/// among `apps`: on start, when every known tenant is restored at once.
pub fn restore(apps: &[Cx<'_>], whole: &dyn Storage) -> anyhow::Result<u64> {
    let mut restored = Vec::with_capacity(apps.len());
    for app in apps {
        app.load_schemas()?;
        let definitions = crate::catalog::restore(app)?;
        let r = app.restore_state()?;
        tracing::info!(
            tenant = %app.tenant(),
            keys = r.keys,
            from = r.from,
            rebuilt = r.missing.len(),
            "persisted state loaded"
        );
        for name in &r.missing {
            rebuild(app, &definitions, name, r.from + 1)?;
        }
        restored.push(r);
    }
    let Some(from) = restored.iter().map(|r| r.from).min() else {
        return Ok(0);
    };
    // The analytics count an event of type T only if the stored rows of T do not include
    // it already (per type: a flush that did not finish may have written some types).
    let analytics = apps
        .iter()
        .zip(&restored)
        .find(|(app, _)| app.tenant().is_default())
        .map(|(app, r)| (app.insights().replay(), &r.insights));
    let (mut feed, loaded) = match analytics {
        Some((feed, loaded)) => (Some(feed), Some(loaded)),
        None => (None, None),
    };
    let mut replayed = 0;
    for record in whole.scan_seq(from)? {
        let record = record?;
        if record.denied {
            continue;
        }
        let owner = apps
            .iter()
            .zip(&restored)
            .find(|(app, _)| app.tenant().owns(&record.event));
        if let Some((app, r)) = owner {
            if record.seq > r.from {
                app.engine().replay(&record.event, record.seq);
                replayed += 1;
            }
        }
        if let (Some(feed), Some(loaded)) = (feed.as_mut(), loaded) {
            if !loaded.includes(&weir_analytics::type_key(&record.event), record.seq) {
                feed.push(record);
            }
        }
    }
    if let Some(feed) = feed {
        feed.finish();
    }
    for app in apps {
        app.engine().end_replay();
    }
    Ok(replayed)
}

/// Rebuild query `name`, whose persisted state could not be used, from the events before
/// `boundary` (the log after the checkpoint is replayed into it afterwards).
fn rebuild(
    app: &Cx<'_>,
    definitions: &[Statement],
    name: &str,
    boundary: u64,
) -> anyhow::Result<()> {
    for stmt in definitions {
        match stmt {
            Statement::CreateQuery(q) if q.name.name == name => {
                let shadow = app
                    .engine()
                    .create_shadow(name, &q.select, &[], false, || boundary)?;
                let n = crate::backfill::rebuild(app, &shadow, q.backfill, &stmt.to_string())?;
                app.engine().promote(shadow)?;
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
                let shadow = app.rules().prepare_owned(&r.name.name, &r, || boundary)?;
                let n = crate::backfill::rebuild(app, &shadow, r.backfill, &stmt.to_string())?;
                app.rules().commit_rule(&r.name.name, &r, shadow)?;
                tracing::info!(rule = %r.name, replayed = n, "rule rebuilt from the log");
                return Ok(());
            }
            _ => {}
        }
    }
    tracing::warn!(query = name, "a query to rebuild has no stored definition");
    Ok(())
}

/// Flush every tenant's query state every `checkpoint_interval`, on a blocking thread.
pub async fn flush_loop(hub: Arc<Hub>) {
    let mut tick = tokio::time::interval(hub.node().cfg().checkpoint_interval);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = flush_all(&hub).await {
            tracing::warn!(error = %e, "state flush failed; will retry");
        }
    }
}

/// Flush every tenant's query state (and the node's analytics, with the default tenant's).
pub async fn flush_all(hub: &Hub) -> anyhow::Result<()> {
    for app in hub.apps() {
        let tenant = app.tenant().clone();
        app.blocking(|cx| cx.flush_state())
            .await
            .map_err(|e| e.context(format!("flushing the state of {tenant}")))?;
    }
    Ok(())
}
