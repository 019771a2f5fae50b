//! Applying DSL statements: the engine, the rules and the stored catalogue change together,
//! and on start the catalogue is replayed into a fresh engine.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{json, Value};
use weir_query_lang::ast::{Ident, RuleSource, Source, Statement};
use weir_query_lang::{
    analyze, parse, parse_and_analyze, Analysis, AnalyzerConfig, Catalog, QueryShape,
    ResolvedSource,
};
use weir_storage::CatalogKind;

use crate::app::{App, Cx};
use crate::ddl::{DdlError, DdlResult};

/// The engine's queries as the analyzer sees them.
pub struct EngineCatalog<'a>(pub &'a App);

impl Catalog for EngineCatalog<'_> {
    fn query(&self, name: &str) -> Option<QueryShape> {
        self.0.engine().query_shape(name)
    }
}

fn analyzer_config(app: &App) -> AnalyzerConfig {
    AnalyzerConfig {
        max_buckets_per_window: app.cfg().max_buckets_per_window,
    }
}

/// Something that reads a query: another query, or a rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dependent {
    /// A rule (`ON q`, or `AS SELECT … FROM q(…)`).
    Rule(String),
    /// A query over the query.
    Query(String),
}

impl Dependent {
    /// `{"kind": "rule"|"query", "name": …}`.
    pub fn json(&self) -> Value {
        match self {
            Dependent::Rule(n) => json!({ "kind": "rule", "name": n }),
            Dependent::Query(n) => json!({ "kind": "query", "name": n }),
        }
    }

    fn describe(&self) -> String {
        match self {
            Dependent::Rule(n) => format!("rule '{n}'"),
            Dependent::Query(n) => format!("query '{n}'"),
        }
    }
}

fn dependents_json(deps: &[Dependent]) -> Value {
    Value::Array(deps.iter().map(Dependent::json).collect())
}

/// Who reads whom: every query that reads a query, every rule and the query it reads.
#[derive(Debug, Clone, Default)]
struct Graph {
    /// Query → the query it reads.
    queries: BTreeMap<String, String>,
    /// Rule → the query it reads.
    rules: BTreeMap<String, String>,
}

impl Graph {
    /// The running catalogue.
    fn live(app: &App) -> Graph {
        let mut g = Graph::default();
        for q in app.engine().query_names() {
            if let Some(up) = app.engine().upstream_of(&q) {
                g.queries.insert(q, up);
            }
        }
        for r in app.rules().rules() {
            let reads = if r.owns_query {
                app.engine().upstream_of(&r.query)
            } else {
                Some(r.query.clone())
            };
            if let Some(up) = reads {
                g.rules.insert(r.name, up);
            }
        }
        g
    }

    /// What reads `name` directly.
    fn direct(&self, name: &str) -> Vec<Dependent> {
        let rules = self.rules.iter().filter(|(_, up)| *up == name);
        let queries = self.queries.iter().filter(|(_, up)| *up == name);
        rules
            .map(|(r, _)| Dependent::Rule(r.clone()))
            .chain(queries.map(|(q, _)| Dependent::Query(q.clone())))
            .collect()
    }

    /// Everything that reads `name`, directly or through other queries, in an order that
    /// can be dropped one by one: rules first, then each query after whatever reads it.
    fn closure(&self, name: &str) -> Vec<Dependent> {
        let mut queries: Vec<String> = Vec::new();
        let mut rules: BTreeSet<String> = BTreeSet::new();
        let mut todo = vec![name.to_string()];
        while let Some(q) = todo.pop() {
            for d in self.direct(&q) {
                match d {
                    Dependent::Rule(r) => {
                        rules.insert(r);
                    }
                    Dependent::Query(v) if v != name && !queries.contains(&v) => {
                        queries.push(v.clone());
                        todo.push(v);
                    }
                    Dependent::Query(_) => {}
                }
            }
        }
        // A query found later reads one found earlier: drop in reverse discovery order.
        rules
            .into_iter()
            .map(Dependent::Rule)
            .chain(queries.into_iter().rev().map(Dependent::Query))
            .collect()
    }

    /// The chain of queries from `start` following what each reads, if it comes back to
    /// `target` (so making `target` read `start` would close a cycle).
    fn path_to(&self, start: &str, target: &str) -> Option<Vec<String>> {
        let mut path = vec![start.to_string()];
        let mut cur = start;
        while let Some(up) = self.queries.get(cur) {
            if path.len() > self.queries.len() + 1 {
                return None;
            }
            path.push(up.clone());
            if up == target {
                return Some(path);
            }
            cur = up;
        }
        (start == target).then_some(path)
    }

    fn forget(&mut self, d: &Dependent) {
        match d {
            Dependent::Rule(r) => {
                self.rules.remove(r);
            }
            Dependent::Query(q) => {
                self.queries.remove(q);
            }
        }
    }
}

/// The query a statement's select reads, from its analysis.
fn reads_query(analysis: &Analysis) -> Option<String> {
    match &analysis.source {
        Some(ResolvedSource::Query { name, .. }) => Some(name.clone()),
        _ => None,
    }
}

/// `409 Conflict`: `name` is read by `deps`.
fn conflict(name: &str, deps: &[Dependent]) -> DdlError {
    let list: Vec<String> = deps.iter().map(Dependent::describe).collect();
    DdlError::Conflict {
        message: format!(
            "query '{name}' is read by {}; drop them first, or use DROP QUERY {name} CASCADE \
             (DELETE /api/queries/{name}?cascade=true) to drop them too",
            list.join(", ")
        ),
        dependents: dependents_json(deps),
    }
}

fn errored(app: &App, kind: CatalogKind, name: &str) -> bool {
    app.catalog_errors()
        .lock()
        .contains_key(&(kind, name.to_string()))
}

fn errored_names(app: &App, kind: CatalogKind) -> Vec<String> {
    app.catalog_errors()
        .lock()
        .keys()
        .filter(|(k, _)| *k == kind)
        .map(|(_, n)| n.clone())
        .collect()
}

/// Apply a DSL text under the statement lock (statements apply one at a time, so the
/// catalogue and the engine change together), on a blocking thread.
pub async fn apply(app: &Arc<App>, text: String) -> DdlResult<Vec<Value>> {
    let _guard = app.lock_statements().await;
    app.blocking(move |cx| apply_text(cx, &text)).await
}

/// `DROP QUERY name [CASCADE]` under the statement lock: what was dropped with it.
pub async fn drop_query(app: &Arc<App>, name: &str, cascade: bool) -> DdlResult<Vec<Dependent>> {
    let _guard = app.lock_statements().await;
    let name = name.to_string();
    app.blocking(move |cx| drop_query_now(cx, &name, cascade))
        .await
}

/// `DROP RULE name` under the statement lock.
pub async fn drop_rule(app: &Arc<App>, name: &str) -> DdlResult<()> {
    let _guard = app.lock_statements().await;
    let name = name.to_string();
    app.blocking(move |cx| drop_rule_now(cx, &name)).await
}

/// Apply a DSL text: everything is parsed and checked first, so an error applies nothing.
/// The caller holds the statement lock (see [`apply`]).
pub fn apply_text(app: &Cx<'_>, text: &str) -> DdlResult<Vec<Value>> {
    let statements = parse_and_analyze(text, &EngineCatalog(app), &analyzer_config(app))?;
    precheck(app, &statements)?;
    compile_check(app, &statements)?;
    let mut results = Vec::with_capacity(statements.len());
    for (stmt, analysis) in &statements {
        results.push(apply_one(app, stmt, Some(analysis))?);
    }
    if statements.iter().any(|(s, _)| changes_state(s)) {
        // Queries are built from a backfill range, not from the whole log: a checkpoint now
        // keeps a restart from rebuilding them any other way.
        app.flush_state().map_err(DdlError::internal)?;
    }
    Ok(results)
}

/// Compile every created query against the engine before anything applies, so an error the
/// compiler finds (with its position) refuses the whole text. A query reading a query that the
/// same text creates is compiled when it is applied, after its source exists.
fn compile_check(app: &Cx<'_>, statements: &[(Statement, Analysis)]) -> DdlResult<()> {
    let mut created: BTreeSet<&str> = BTreeSet::new();
    for (stmt, _) in statements {
        if let Statement::CreateQuery(q) = stmt {
            let reads_new = match &q.select.from {
                Source::Named { name, .. } => created.contains(name.name.as_str()),
                _ => false,
            };
            if !reads_new {
                app.engine()
                    .check_query(&q.name.name, &q.select)
                    .map_err(DdlError::from)?;
            }
            created.insert(&q.name.name);
        }
    }
    Ok(())
}

fn changes_state(s: &Statement) -> bool {
    matches!(s, Statement::CreateQuery(_) | Statement::CreateRule(_))
}

/// A catalogue where some queries have a new shape (what a replacement would make them).
struct Replaced<'a> {
    base: EngineCatalog<'a>,
    changes: HashMap<String, QueryShape>,
}

impl Catalog for Replaced<'_> {
    fn query(&self, name: &str) -> Option<QueryShape> {
        self.changes
            .get(name)
            .cloned()
            .or_else(|| self.base.query(name))
    }
}

/// Names that exist or not, and what reads what, checked before anything is applied: a
/// drop of a query something reads (without CASCADE), a replacement that would break what
/// reads it, and a query that would read itself through others are refused.
fn precheck(app: &Cx<'_>, statements: &[(Statement, Analysis)]) -> DdlResult<()> {
    let mut queries: BTreeSet<String> = app.engine().query_names().into_iter().collect();
    queries.extend(errored_names(app, CatalogKind::Query));
    let mut rules: BTreeSet<String> = app.rules().rule_names().into_iter().collect();
    rules.extend(errored_names(app, CatalogKind::Rule));
    let mut graph = Graph::live(app);
    let mut shapes: HashMap<String, QueryShape> = HashMap::new();
    // A name that exists (or not) is a semantic error: 400 with the name's position.
    let at = |name: &Ident, message: String| DdlError::at(message, name.span);
    for (stmt, analysis) in statements {
        match stmt {
            Statement::CreateQuery(q) if !q.or_replace() && queries.contains(&q.name.name) => {
                let msg = format!(
                    "query '{}' exists; use CREATE OR REPLACE QUERY to replace it",
                    q.name
                );
                return Err(at(&q.name, msg));
            }
            Statement::CreateQuery(q) => {
                let name = &q.name.name;
                let up = reads_query(analysis);
                if let Some(up) = &up {
                    if let Some(path) = graph.path_to(up, name) {
                        let msg = format!(
                            "query '{name}' would read itself: {name} → {}",
                            path.join(" → ")
                        );
                        let span = match &q.select.from {
                            Source::Named { name, .. } => name,
                            Source::AllEvents(_) => &q.name,
                        };
                        return Err(at(span, msg));
                    }
                }
                shapes.insert(name.clone(), analysis.shape());
                if queries.contains(name) {
                    check_replacement(app, name, &graph, &shapes)?;
                }
                graph.queries.remove(name);
                if let Some(up) = up {
                    graph.queries.insert(name.clone(), up);
                }
                queries.insert(name.clone());
            }
            Statement::DropQuery(d) if !queries.remove(&d.name.name) => {
                return Err(at(&d.name, format!("no query named '{}'", d.name)));
            }
            Statement::DropQuery(d) => {
                let deps = graph.closure(&d.name.name);
                if !deps.is_empty() && !d.cascade {
                    return Err(conflict(&d.name.name, &deps));
                }
                for dep in &deps {
                    graph.forget(dep);
                    match dep {
                        Dependent::Rule(r) => rules.remove(r),
                        Dependent::Query(q) => queries.remove(q),
                    };
                }
                graph.queries.remove(&d.name.name);
                shapes.remove(&d.name.name);
            }
            Statement::CreateRule(r) if !r.or_replace && rules.contains(&r.name.name) => {
                let msg = format!(
                    "rule '{}' exists; use CREATE OR REPLACE RULE to replace it",
                    r.name
                );
                return Err(at(&r.name, msg));
            }
            Statement::CreateRule(r) => {
                let reads = match &r.source {
                    RuleSource::On(q) => Some(q.name.clone()),
                    RuleSource::As(_) => reads_query(analysis),
                };
                graph.rules.remove(&r.name.name);
                if let Some(up) = reads {
                    graph.rules.insert(r.name.name.clone(), up);
                }
                rules.insert(r.name.name.clone());
            }
            Statement::DropRule(n) if !rules.remove(&n.name) => {
                return Err(at(n, format!("no rule named '{n}'")));
            }
            Statement::DropRule(n) => {
                graph.rules.remove(&n.name);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Refuse (409) replacing query `name` when something that reads it, directly or through
/// other queries, would no longer be valid against its new shape (a rule's condition on a
/// column that is gone, a view selecting it, …).
fn check_replacement(
    app: &Cx<'_>,
    name: &str,
    graph: &Graph,
    shapes: &HashMap<String, QueryShape>,
) -> DdlResult<()> {
    if graph.direct(name).is_empty() {
        return Ok(());
    }
    let mut catalog = Replaced {
        base: EngineCatalog(app),
        changes: shapes.clone(),
    };
    let mut stored: HashMap<(CatalogKind, String), String> = HashMap::new();
    for kind in [CatalogKind::Query, CatalogKind::Rule] {
        for (n, text) in app.store().catalog_list(kind).map_err(DdlError::internal)? {
            stored.insert((kind, n), text);
        }
    }
    let mut broken = Vec::new();
    let mut reasons = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut todo = vec![name.to_string()];
    while let Some(q) = todo.pop() {
        for d in graph.direct(&q) {
            let key = match &d {
                Dependent::Rule(r) => (CatalogKind::Rule, r.clone()),
                Dependent::Query(v) => (CatalogKind::Query, v.clone()),
            };
            let Some(text) = stored.get(&key) else {
                continue;
            };
            let analysed = match parse(text) {
                Ok(stmts) => stmts
                    .iter()
                    .map(|s| analyze(s, &catalog, &analyzer_config(app)))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.message),
                Err(e) => Err(e.message),
            };
            match analysed {
                Err(p) => {
                    reasons.push(format!("{}: {p}", d.describe()));
                    broken.push(d.clone());
                }
                Ok(analyses) => {
                    if let Dependent::Query(v) = &d {
                        if let Some(a) = analyses.first() {
                            catalog.changes.insert(v.clone(), a.shape());
                        }
                        if seen.insert(v.clone()) {
                            todo.push(v.clone());
                        }
                    }
                }
            }
        }
    }
    if broken.is_empty() {
        return Ok(());
    }
    Err(DdlError::Conflict {
        message: format!(
            "replacing query '{name}' would break what reads it: {}; replace or drop them first",
            reasons.join("; ")
        ),
        dependents: dependents_json(&broken),
    })
}

/// After query `name` was replaced, rebuild what reads it from its stored definition: a
/// view compiled from its source's select, or a rule's own query over it, would otherwise
/// keep the old meaning. (A rule `ON name` recompiles its condition by itself.)
fn refresh_dependents(app: &Cx<'_>, name: &str) -> DdlResult<()> {
    let deps = Graph::live(app).direct(name);
    if deps.is_empty() {
        return Ok(());
    }
    let on_rules: BTreeSet<String> = app
        .rules()
        .rules()
        .into_iter()
        .filter(|r| !r.owns_query)
        .map(|r| r.name)
        .collect();
    for d in deps {
        let (kind, n) = match &d {
            Dependent::Rule(r) if on_rules.contains(r) => continue,
            Dependent::Rule(r) => (CatalogKind::Rule, r.clone()),
            Dependent::Query(q) => (CatalogKind::Query, q.clone()),
        };
        let Some(text) = app
            .store()
            .catalog_list(kind)
            .map_err(DdlError::internal)?
            .into_iter()
            .find_map(|(k, t)| (k == n).then_some(t))
        else {
            continue;
        };
        let statements = parse_and_analyze(&text, &EngineCatalog(app), &analyzer_config(app))?;
        for (mut stmt, analysis) in statements {
            if let Statement::CreateRule(r) = &mut stmt {
                r.or_replace = true;
            }
            apply_one(app, &stmt, Some(&analysis))?;
        }
        tracing::info!(query = name, dependent = ?d, "rebuilt after its source was replaced");
    }
    Ok(())
}

/// Apply one checked statement. `analysis` is the analyzer's result when the statement
/// comes from a user (it is applied and persisted); None while restoring the catalogue
/// (applied only).
fn apply_one(app: &Cx<'_>, stmt: &Statement, analysis: Option<&Analysis>) -> DdlResult<Value> {
    let persist = analysis.is_some();
    Ok(match stmt {
        Statement::CreateQuery(q) => {
            let replaced = app.engine().query_names().contains(&q.name.name);
            let mut backfilled = 0;
            if persist {
                let name = &q.name.name;
                let shadow = app
                    .engine()
                    .create_shadow(name, &q.select, &[], false, || app.next_seq())
                    .map_err(DdlError::from)?;
                let (shadow, n) =
                    crate::backfill::run(app, shadow, q.backfill, name, &stmt.to_string())
                        .map_err(DdlError::internal)?;
                backfilled = n;
                app.engine().promote(shadow).map_err(DdlError::from)?;
            } else {
                app.engine()
                    .create_query(&q.name.name, &q.select)
                    .map_err(DdlError::from)?;
            }
            if persist {
                app.store()
                    .catalog_put(CatalogKind::Query, &q.name.name, &stmt.to_string())
                    .map_err(DdlError::internal)?;
                app.catalog_errors()
                    .lock()
                    .remove(&(CatalogKind::Query, q.name.name.clone()));
                if replaced {
                    refresh_dependents(app, &q.name.name)?;
                }
            }
            json!({ "statement": "create_query", "name": q.name.name, "replaced": replaced, "status": "running", "backfilled": backfilled })
        }
        Statement::DropQuery(d) => {
            let dropped = drop_query_now(app, &d.name.name, d.cascade)?;
            json!({ "statement": "drop_query", "name": d.name.name, "dropped": dependents_json(&dropped) })
        }
        Statement::CreateRule(r) => {
            let replaced = app.rules().rule_names().contains(&r.name.name);
            let name = &r.name.name;
            let mut backfilled = 0;
            match (&r.source, persist) {
                (RuleSource::As(_), true) => {
                    let shadow = app
                        .rules()
                        .prepare_owned(name, r, || app.next_seq())
                        .map_err(DdlError::from)?;
                    let (shadow, n) =
                        crate::backfill::run(app, shadow, r.backfill, name, &stmt.to_string())
                            .map_err(DdlError::internal)?;
                    backfilled = n;
                    app.rules()
                        .commit_rule(name, r, shadow)
                        .map_err(DdlError::from)?;
                }
                _ => app.rules().create_rule(name, r).map_err(DdlError::from)?,
            }
            if persist {
                app.store()
                    .catalog_put(CatalogKind::Rule, &r.name.name, &stmt.to_string())
                    .map_err(DdlError::internal)?;
                app.catalog_errors()
                    .lock()
                    .remove(&(CatalogKind::Rule, r.name.name.clone()));
            }
            json!({ "statement": "create_rule", "name": r.name.name, "replaced": replaced, "backfilled": backfilled })
        }
        Statement::DropRule(n) => {
            drop_rule_now(app, &n.name)?;
            json!({ "statement": "drop_rule", "name": n.name })
        }
        Statement::ShowQueries => {
            json!({ "statement": "show_queries", "queries": query_definitions(app).map_err(DdlError::internal)? })
        }
        Statement::ShowRules => {
            json!({ "statement": "show_rules", "rules": rule_definitions(app).map_err(DdlError::internal)? })
        }
        Statement::Select(select) => {
            let rows = crate::oneshot::run(app, select, analysis)?;
            json!({ "statement": "select", "rows": rows })
        }
    })
}

/// Drop a query from the engine and the catalogue. If other queries or rules read it, the
/// drop is refused (409 naming every one of them) unless `cascade`, which drops them first;
/// returns what was dropped besides the query. A stored definition in error is just deleted.
fn drop_query_now(app: &Cx<'_>, name: &str, cascade: bool) -> DdlResult<Vec<Dependent>> {
    if app.engine().query(name).is_none() && errored(app, CatalogKind::Query, name) {
        delete_stored(app, CatalogKind::Query, name)?;
        return Ok(Vec::new());
    }
    if !app.engine().query_names().iter().any(|q| q == name) {
        return Err(DdlError::NotFound(format!("no query named '{name}'")));
    }
    let deps = Graph::live(app).closure(name);
    if !deps.is_empty() && !cascade {
        return Err(conflict(name, &deps));
    }
    for d in &deps {
        match d {
            Dependent::Rule(r) => drop_rule_now(app, r)?,
            Dependent::Query(q) => {
                app.engine()
                    .drop_query(q)
                    .map_err(|e| DdlError::NotFound(e.to_string()))?;
                delete_stored(app, CatalogKind::Query, q)?;
            }
        }
    }
    app.engine()
        .drop_query(name)
        .map_err(|e| DdlError::NotFound(e.to_string()))?;
    delete_stored(app, CatalogKind::Query, name)?;
    if !deps.is_empty() {
        tracing::info!(query = name, dropped = ?deps, "query dropped with what read it (CASCADE)");
    }
    Ok(deps)
}

fn delete_stored(app: &Cx<'_>, kind: CatalogKind, name: &str) -> DdlResult<()> {
    app.store()
        .catalog_delete(kind, name)
        .map_err(DdlError::internal)?;
    app.catalog_errors()
        .lock()
        .remove(&(kind, name.to_string()));
    Ok(())
}

/// Drop a rule (and the query it owns) from the engine and the catalogue.
fn drop_rule_now(app: &Cx<'_>, name: &str) -> DdlResult<()> {
    if !app.rules().rule_names().iter().any(|r| r == name) && errored(app, CatalogKind::Rule, name)
    {
        return delete_stored(app, CatalogKind::Rule, name);
    }
    app.rules()
        .drop_rule(name)
        .map_err(|e| DdlError::NotFound(e.to_string()))?;
    delete_stored(app, CatalogKind::Rule, name)
}

/// Every query's definition: name, DSL text, status (`running`, `backfilling`, or `error`
/// with the reason when the stored definition could not be restored).
pub fn query_definitions(app: &Cx<'_>) -> anyhow::Result<Vec<Value>> {
    let stored = app.store().catalog_list(CatalogKind::Query)?;
    let backfills = app.backfills().lock().clone();
    let errors = app.catalog_errors().lock().clone();
    let mut list: Vec<Value> = stored
        .into_iter()
        .map(|(name, text)| {
            if let Some(reason) = errors.get(&(CatalogKind::Query, name.clone())) {
                return json!({ "name": name, "text": text, "status": "error", "error": reason });
            }
            match backfills.get(&name) {
                // During a replace the new definition shows as backfilling; results still
                // come from the old one until it takes over.
                Some(p) => with_progress(json!({ "name": name, "text": p.text }), p),
                None => json!({ "name": name, "text": text, "status": "running" }),
            }
        })
        .collect();
    let rules = app.rules().rule_names();
    for (name, p) in backfills {
        if !rules.contains(&name) && !list.iter().any(|q| q["name"] == name.as_str()) {
            list.push(with_progress(json!({ "name": name, "text": p.text }), &p));
        }
    }
    Ok(list)
}

fn with_progress(mut v: Value, p: &crate::backfills::Progress) -> Value {
    if let (Value::Object(o), Value::Object(extra)) = (&mut v, p.json()) {
        o.extend(extra);
    }
    v
}

/// Every rule's definition, with its status (`running`, or `error` and the reason).
pub fn rule_definitions(app: &Cx<'_>) -> anyhow::Result<Vec<Value>> {
    let stored = app.store().catalog_list(CatalogKind::Rule)?;
    let errors = app.catalog_errors().lock().clone();
    Ok(stored
        .into_iter()
        .map(
            |(name, text)| match errors.get(&(CatalogKind::Rule, name.clone())) {
                Some(reason) => {
                    json!({ "name": name, "text": text, "status": "error", "error": reason })
                }
                None => json!({ "name": name, "text": text, "status": "running" }),
            },
        )
        .collect())
}

/// How many stored definitions are in error (the `weir_catalog_errors` gauge).
pub fn error_count(app: &App) -> usize {
    app.catalog_errors().lock().len()
}

/// The query a stored statement must wait for (one that is stored and not yet restored).
fn waits_for(stmt: &Statement) -> Option<&str> {
    match stmt {
        Statement::CreateQuery(q) => match &q.select.from {
            Source::Named { name, .. } if name.name != q.name.name => Some(&name.name),
            _ => None,
        },
        Statement::CreateRule(r) => match &r.source {
            RuleSource::On(q) => Some(&q.name),
            RuleSource::As(s) => match &s.from {
                Source::Named { name, .. } => Some(&name.name),
                Source::AllEvents(_) => None,
            },
        },
        _ => None,
    }
}

fn kind_name(stmt: &Statement) -> Option<(CatalogKind, &str)> {
    match stmt {
        Statement::CreateQuery(q) => Some((CatalogKind::Query, &q.name.name)),
        Statement::CreateRule(r) => Some((CatalogKind::Rule, &r.name.name)),
        _ => None,
    }
}

/// Recreate the stored queries and rules in a fresh engine: a query over another query
/// after its source, rules after their queries. This never fails because of what is
/// stored: a definition that cannot be restored (it no longer parses, its query is gone,
/// it is part of a cycle, …) is recorded in [`App::catalog_errors`], logged, and listed
/// with status `error` until it is replaced or dropped; everything else is restored.
/// Returns the statements restored.
pub fn restore(app: &Cx<'_>) -> anyhow::Result<Vec<Statement>> {
    let mut pending: Vec<Statement> = Vec::new();
    let mut errors: Vec<((CatalogKind, String), String)> = Vec::new();
    let mut stored_queries: BTreeSet<String> = BTreeSet::new();
    for kind in [CatalogKind::Query, CatalogKind::Rule] {
        for (name, text) in app.store().catalog_list(kind)? {
            if kind == CatalogKind::Query {
                stored_queries.insert(name.clone());
            }
            match parse(&text) {
                Ok(stmts) => match stmts
                    .into_iter()
                    .find(|s| kind_name(s) == Some((kind, &name)))
                {
                    Some(s) => pending.push(s),
                    None => errors.push((
                        (kind, name.clone()),
                        format!("the stored text does not define {} '{name}'", kind.as_str()),
                    )),
                },
                Err(e) => errors.push((
                    (kind, name.clone()),
                    format!("the stored definition does not parse: {e}"),
                )),
            }
        }
    }
    // Queries first: rules only ever wait for queries.
    pending.sort_by_key(|s| matches!(s, Statement::CreateRule(_)));
    let mut restored = Vec::new();
    loop {
        let before = pending.len();
        let mut waiting = Vec::new();
        for stmt in pending {
            let Some((kind, name)) = kind_name(&stmt) else {
                continue;
            };
            let key = (kind, name.to_string());
            if let Some(up) = waits_for(&stmt) {
                let failed = |errors: &[((CatalogKind, String), String)]| {
                    errors
                        .iter()
                        .any(|((k, n), _)| *k == CatalogKind::Query && n == up)
                };
                if stored_queries.contains(up) && app.engine().query(up).is_none() {
                    if failed(&errors) {
                        errors.push((
                            key,
                            format!("it reads query '{up}', which could not be restored"),
                        ));
                    } else {
                        waiting.push(stmt);
                    }
                    continue;
                }
            }
            match apply_one(app, &stmt, None) {
                Ok(_) => restored.push(stmt),
                Err(e) => {
                    errors.push((key, e.to_string()));
                }
            }
        }
        pending = waiting;
        if pending.is_empty() || pending.len() == before {
            break;
        }
    }
    // What still waits is on a cycle of queries reading each other, or reads one that is.
    let waiting_on = |name: &str| {
        pending
            .iter()
            .find(|s| kind_name(s) == Some((CatalogKind::Query, name)))
            .and_then(waits_for)
    };
    for stmt in &pending {
        let Some((kind, name)) = kind_name(stmt) else {
            continue;
        };
        let first = waits_for(stmt).unwrap_or_default();
        let mut path = vec![name.to_string()];
        let mut cur = Some(first);
        let mut on_cycle = false;
        while let Some(up) = cur {
            path.push(up.to_string());
            if kind == CatalogKind::Query && up == name {
                on_cycle = true;
                break;
            }
            if path.len() > pending.len() + 1 {
                break;
            }
            cur = waiting_on(up);
        }
        let reason = if on_cycle {
            format!("queries read each other in a cycle: {}", path.join(" → "))
        } else {
            format!("it reads query '{first}', which could not be restored (it is on a cycle)")
        };
        errors.push(((kind, name.to_string()), reason));
    }
    let mut map = app.catalog_errors().lock();
    map.clear();
    for ((kind, name), reason) in errors {
        tracing::error!(
            kind = kind.as_str(),
            name = %name,
            reason = %reason,
            "a stored definition cannot be restored; it is listed with status error until replaced or dropped"
        );
        map.insert((kind, name), reason);
    }
    metrics::gauge!("weir_catalog_errors").set(map.len() as f64);
    Ok(restored)
}
