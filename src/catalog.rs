//! Applying DSL statements: the engine, the rules and the stored catalogue change together,
//! and on start the catalogue is replayed into a fresh engine.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use weir_query_lang::ast::{Ident, RuleSource, Source, Statement};
use weir_query_lang::{parse, parse_and_analyze, AnalyzerConfig, Catalog, QueryShape};
use weir_storage::CatalogKind;

use crate::api::error::{ApiError, ApiResult};
use crate::app::App;

/// The engine's queries as the analyzer sees them.
pub struct EngineCatalog<'a>(pub &'a App);

impl Catalog for EngineCatalog<'_> {
    fn query(&self, name: &str) -> Option<QueryShape> {
        self.0.engine.query_shape(name)
    }
}

fn analyzer_config(app: &App) -> AnalyzerConfig {
    AnalyzerConfig {
        max_buckets_per_window: app.cfg.max_buckets_per_window,
    }
}

/// Apply a DSL text: everything is parsed and checked first, so an error applies nothing.
pub fn apply_text(app: &App, text: &str) -> ApiResult<Vec<Value>> {
    let statements = parse_and_analyze(text, &EngineCatalog(app), &analyzer_config(app))?;
    precheck(app, statements.iter().map(|(s, _)| s))?;
    let mut results = Vec::with_capacity(statements.len());
    for (stmt, _analysis) in &statements {
        results.push(apply_one(app, stmt, true)?);
    }
    if statements.iter().any(|(s, _)| changes_state(s)) {
        // Queries are built from a backfill range, not from the whole log: a checkpoint now
        // keeps a restart from rebuilding them any other way.
        crate::recovery::checkpoint(app).map_err(ApiError::internal)?;
    }
    Ok(results)
}

fn changes_state(s: &Statement) -> bool {
    matches!(s, Statement::CreateQuery(_) | Statement::CreateRule(_))
}

/// Names that exist or not, checked before anything is applied.
fn precheck<'a>(app: &App, statements: impl Iterator<Item = &'a Statement>) -> ApiResult<()> {
    let mut queries: BTreeSet<String> = app.engine.query_names().into_iter().collect();
    let mut rules: BTreeSet<String> = app.rules.rule_names().into_iter().collect();
    // A name that exists (or not) is a semantic error: 400 with the name's position.
    let at = |name: &Ident, message: String| {
        ApiError::bad_request(message)
            .with("line", json!(name.span.line))
            .with("column", json!(name.span.column))
    };
    for stmt in statements {
        match stmt {
            Statement::CreateQuery(q) if !q.or_replace() && queries.contains(&q.name.name) => {
                let msg = format!(
                    "query '{}' exists; use CREATE OR REPLACE QUERY to replace it",
                    q.name
                );
                return Err(at(&q.name, msg));
            }
            Statement::CreateQuery(q) => {
                queries.insert(q.name.name.clone());
            }
            Statement::DropQuery(n) if !queries.remove(&n.name) => {
                return Err(at(n, format!("no query named '{n}'")));
            }
            Statement::CreateRule(r) if !r.or_replace && rules.contains(&r.name.name) => {
                let msg = format!(
                    "rule '{}' exists; use CREATE OR REPLACE RULE to replace it",
                    r.name
                );
                return Err(at(&r.name, msg));
            }
            Statement::CreateRule(r) => {
                rules.insert(r.name.name.clone());
            }
            Statement::DropRule(n) if !rules.remove(&n.name) => {
                return Err(at(n, format!("no rule named '{n}'")));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Apply one checked statement; `persist` writes the catalogue (off while restoring it).
fn apply_one(app: &App, stmt: &Statement, persist: bool) -> ApiResult<Value> {
    let bad = |e: &dyn std::fmt::Display| ApiError::bad_request(e.to_string());
    Ok(match stmt {
        Statement::CreateQuery(q) => {
            let replaced = app.engine.query_names().contains(&q.name.name);
            let mut backfilled = 0;
            if persist {
                let name = &q.name.name;
                let shadow = app
                    .engine
                    .create_shadow(name, &q.select, &[], false, || app.next_seq())
                    .map_err(|e| bad(&e))?;
                let (shadow, n) =
                    crate::backfill::run(app, shadow, q.backfill, name, &stmt.to_string())
                        .map_err(ApiError::internal)?;
                backfilled = n;
                app.engine.promote(shadow).map_err(|e| bad(&e))?;
            } else {
                app.engine
                    .create_query(&q.name.name, &q.select)
                    .map_err(|e| bad(&e))?;
            }
            if persist {
                app.store
                    .catalog_put(CatalogKind::Query, &q.name.name, &stmt.to_string())
                    .map_err(ApiError::internal)?;
            }
            json!({ "statement": "create_query", "name": q.name.name, "replaced": replaced, "status": "running", "backfilled": backfilled })
        }
        Statement::DropQuery(n) => {
            drop_query(app, &n.name)?;
            json!({ "statement": "drop_query", "name": n.name })
        }
        Statement::CreateRule(r) => {
            let replaced = app.rules.rule_names().contains(&r.name.name);
            let name = &r.name.name;
            let mut backfilled = 0;
            match (&r.source, persist) {
                (RuleSource::As(_), true) => {
                    let shadow = app
                        .rules
                        .prepare_owned(name, r, || app.next_seq())
                        .map_err(|e| bad(&e))?;
                    let (shadow, n) =
                        crate::backfill::run(app, shadow, r.backfill, name, &stmt.to_string())
                            .map_err(ApiError::internal)?;
                    backfilled = n;
                    app.rules
                        .commit_rule(name, r, shadow)
                        .map_err(|e| bad(&e))?;
                }
                _ => app.rules.create_rule(name, r).map_err(|e| bad(&e))?,
            }
            if persist {
                app.store
                    .catalog_put(CatalogKind::Rule, &r.name.name, &stmt.to_string())
                    .map_err(ApiError::internal)?;
            }
            json!({ "statement": "create_rule", "name": r.name.name, "replaced": replaced, "backfilled": backfilled })
        }
        Statement::DropRule(n) => {
            drop_rule(app, &n.name)?;
            json!({ "statement": "drop_rule", "name": n.name })
        }
        Statement::ShowQueries => {
            json!({ "statement": "show_queries", "queries": query_definitions(app).map_err(ApiError::internal)? })
        }
        Statement::ShowRules => {
            json!({ "statement": "show_rules", "rules": rule_definitions(app).map_err(ApiError::internal)? })
        }
        Statement::Select(select) => {
            let rows = crate::oneshot::run(app, select)?;
            json!({ "statement": "select", "rows": rows })
        }
    })
}

/// Drop a query from the engine and the catalogue.
pub fn drop_query(app: &App, name: &str) -> ApiResult<()> {
    app.engine
        .drop_query(name)
        .map_err(|e| ApiError::not_found(e.to_string()))?;
    app.store
        .catalog_delete(CatalogKind::Query, name)
        .map_err(ApiError::internal)?;
    Ok(())
}

/// Drop a rule (and the query it owns) from the engine and the catalogue.
pub fn drop_rule(app: &App, name: &str) -> ApiResult<()> {
    app.rules
        .drop_rule(name)
        .map_err(|e| ApiError::not_found(e.to_string()))?;
    app.store
        .catalog_delete(CatalogKind::Rule, name)
        .map_err(ApiError::internal)?;
    Ok(())
}

/// Every query's definition: name, DSL text, status.
pub fn query_definitions(app: &App) -> anyhow::Result<Vec<Value>> {
    let stored = app.store.catalog_list(CatalogKind::Query)?;
    let backfills = app.backfills.lock().clone();
    let mut list: Vec<Value> = stored
        .into_iter()
        .map(|(name, text)| match backfills.get(&name) {
            // During a replace the new definition shows as backfilling; results still come
            // from the old one until it takes over.
            Some(p) => with_progress(json!({ "name": name, "text": p.text }), p),
            None => json!({ "name": name, "text": text, "status": "running" }),
        })
        .collect();
    let rules = app.rules.rule_names();
    for (name, p) in backfills {
        if !rules.contains(&name) && !list.iter().any(|q| q["name"] == name.as_str()) {
            list.push(with_progress(json!({ "name": name, "text": p.text }), &p));
        }
    }
    Ok(list)
}

fn with_progress(mut v: Value, p: &crate::backfill::Progress) -> Value {
    if let (Value::Object(o), Value::Object(extra)) = (&mut v, p.json()) {
        o.extend(extra);
    }
    v
}

/// Every rule's definition.
pub fn rule_definitions(app: &App) -> anyhow::Result<Vec<Value>> {
    let stored = app.store.catalog_list(CatalogKind::Rule)?;
    Ok(stored
        .into_iter()
        .map(|(name, text)| json!({ "name": name, "text": text }))
        .collect())
}

/// Recreate the stored queries and rules in a fresh engine: queries first, a query over
/// another query after its source, then rules.
pub fn restore(app: &App) -> anyhow::Result<Vec<Statement>> {
    let mut pending: Vec<Statement> = Vec::new();
    for kind in [CatalogKind::Query, CatalogKind::Rule] {
        for (name, text) in app.store.catalog_list(kind)? {
            let mut stmts =
                parse(&text).map_err(|e| anyhow::anyhow!("stored definition of '{name}': {e}"))?;
            pending.append(&mut stmts);
        }
    }
    pending.sort_by_key(|s| matches!(s, Statement::CreateRule(_)));
    let all = pending.clone();
    while !pending.is_empty() {
        let before = pending.len();
        let mut failed = Vec::new();
        let mut last_err = None;
        for stmt in pending {
            let ready = match &stmt {
                Statement::CreateQuery(q) => match &q.select.from {
                    Source::Named {
                        name,
                        window: Some(_),
                    } => app.engine.query_names().contains(&name.name),
                    _ => true,
                },
                _ => true,
            };
            if !ready {
                failed.push(stmt);
                continue;
            }
            if let Err(e) = apply_one(app, &stmt, false) {
                last_err = Some(format!("{stmt}: {}", e.body["error"]));
                failed.push(stmt);
            }
        }
        if failed.len() == before {
            anyhow::bail!(
                "cannot restore the catalogue: {}",
                last_err.unwrap_or_else(|| "circular query references".into())
            );
        }
        pending = failed;
    }
    Ok(all)
}
