//! Recovery: rebuild the state of a freshly opened store (catalogue, persisted query state,
//! replay of the log after it), and flush the query state periodically.

use std::sync::Arc;

use weir_query_lang::ast::{RuleSource, Statement};

use crate::app::{App, Cx};

/// Rebuild the state of a freshly opened store: schemas, the catalogue (an entry that cannot
/// be restored is reported, never fatal), the persisted query state, and the log after it.
/// Returns the events replayed.
pub fn restore(app: &Cx<'_>) -> anyhow::Result<u64> {
    app.load_schemas()?;
    let definitions = crate::catalog::restore(app)?;
    restore_state(app, &definitions)
}

/// Restore the persisted state and replay the log after it; returns the events replayed.
fn restore_state(app: &Cx<'_>, definitions: &[Statement]) -> anyhow::Result<u64> {
    let restored = app.restore_state()?;
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
    // The analytics count an event of type T only if the stored rows of T do not include
    // it already (per type: a flush that did not finish may have written some types).
    let mut insights = app.insights().replay();
    for record in app.store().scan_seq(restored.from)? {
        let record = record?;
        if !record.denied {
            app.engine().replay(&record.event, record.seq);
            if !restored.insights.includes(&record.event.kind, record.seq) {
                insights.push(record);
            }
            replayed += 1;
        }
    }
    insights.finish();
    app.engine().end_replay();
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

/// Flush the query state every `checkpoint_interval`, on a blocking thread.
pub async fn flush_loop(app: Arc<App>) {
    let mut tick = tokio::time::interval(app.cfg().checkpoint_interval);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = app.blocking(|cx| cx.flush_state()).await {
            tracing::warn!(error = %e, "state flush failed; will retry");
        }
    }
}
