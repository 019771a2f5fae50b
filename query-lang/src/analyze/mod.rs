//! The analyzer: checks a parsed statement's meaning against the catalogue of queries, and
//! says what it reads, which columns it produces and how it is bucketed.
//!
//! - [`select`](self): the checks on one select (source, columns, WHERE, GROUP BY, HAVING).
//! - this module: the public types, rules, and [`parse_and_analyze`].

use std::collections::HashMap;

use crate::ast::{Backfill, Expr, ExprKind, Millis, RuleSource, Statement};
use crate::error::{ErrorKind, QueryError, Result};

mod select;

pub use select::analyze_select;

/// What the analyzer needs to know about an existing query.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueryShape {
    /// Its output column names, in order.
    pub columns: Vec<String>,
    /// Its group-by fields (dotted paths), in order.
    pub group_fields: Vec<String>,
    /// Its bucket width, if it is a time series or a sliding window.
    pub granularity: Option<Millis>,
    /// Its sliding-window width, if it is a sliding window.
    pub window: Option<Millis>,
}

/// The catalogue of existing queries, by name.
pub trait Catalog {
    /// The query of that name, if there is one.
    fn query(&self, name: &str) -> Option<QueryShape>;
}

/// A catalogue with no queries (every name is an event type).
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyCatalog;

impl Catalog for EmptyCatalog {
    fn query(&self, _: &str) -> Option<QueryShape> {
        None
    }
}

impl Catalog for HashMap<String, QueryShape> {
    fn query(&self, name: &str) -> Option<QueryShape> {
        self.get(name).cloned()
    }
}

/// Limits the analyzer enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnalyzerConfig {
    /// Largest window / granularity ratio accepted (default 100 000).
    pub max_buckets_per_window: u64,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        Self {
            max_buckets_per_window: 100_000,
        }
    }
}

/// What a select reads, once names are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedSource {
    /// `events`: every event type.
    AllEvents,
    /// Events of one type.
    EventType(String),
    /// The results of another query, optionally read over a sliding window.
    Query {
        /// The query's name.
        name: String,
        /// `(30min)` after the name.
        window: Option<Millis>,
    },
}

/// How a query is bucketed in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeseriesSpec {
    /// The time field named in `timeseries(time, …)` (`time` is the event time).
    pub time_field: String,
    /// Bucket width.
    pub granularity: Millis,
    /// Sliding-window width, a whole multiple of the granularity.
    pub window: Option<Millis>,
    /// True when the spec comes from a query source (`series_5min(30min)`), not GROUP BY.
    pub from_source: bool,
}

/// What an output column is.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnKind {
    /// A group-by field.
    GroupKey,
    /// An expression over aggregates (and group keys, start/end).
    Aggregate,
    /// A bare field or expression in a grouped query: its last value in the bucket. The
    /// column's `expr` is already wrapped in `last(…)`.
    ImplicitLast,
    /// `start(time)`: bucket or window start.
    Start,
    /// `end(time)`: bucket or window end.
    End,
    /// A value of each event (a query without grouping or aggregates).
    PerEvent,
    /// `*` over events: every field of each event.
    AllFields,
    /// A column of the source query, passed through (`SELECT *` from a query).
    FromSource,
}

/// One output column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Its name in results: the alias, else the printed expression.
    pub name: String,
    /// What it is.
    pub kind: ColumnKind,
    /// The expression that computes it (`None` for `*` columns).
    pub expr: Option<Expr>,
}

/// Which query a rule watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleQuery {
    /// `ON name`: an existing query.
    On(String),
    /// `AS select`: its own query (described by the rest of the [`Analysis`]).
    Own,
}

/// What a rule's DENY WHEN refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleAnalysis {
    /// The query it watches.
    pub query: RuleQuery,
    /// The columns (or group fields) the condition reads, in order of first use.
    pub columns: Vec<String>,
}

/// The result of analysing one statement. Statements without a select (DROP, SHOW) leave
/// everything empty.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Analysis {
    /// What the select reads (for `ON` rules: the watched query).
    pub source: Option<ResolvedSource>,
    /// Output columns, in order.
    pub columns: Vec<Column>,
    /// Group-by fields (dotted paths), in order.
    pub group_fields: Vec<String>,
    /// Time bucketing, if any.
    pub timeseries: Option<TimeseriesSpec>,
    /// Whether rows are aggregated per bucket and key (GROUP BY or an aggregate is used).
    pub aggregated: bool,
    /// For rules: what the condition refers to.
    pub rule: Option<RuleAnalysis>,
}

impl Analysis {
    /// Output column names, in order.
    pub fn column_names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }

    /// The shape other statements see when they read this query.
    pub fn shape(&self) -> QueryShape {
        QueryShape {
            columns: self.column_names(),
            group_fields: self.group_fields.clone(),
            granularity: self.timeseries.as_ref().map(|t| t.granularity),
            window: self.timeseries.as_ref().and_then(|t| t.window),
        }
    }
}

/// Check one statement against the catalogue.
pub fn analyze(stmt: &Statement, catalog: &dyn Catalog, cfg: &AnalyzerConfig) -> Result<Analysis> {
    match stmt {
        Statement::CreateQuery(q) => {
            if let crate::ast::Source::Named { name, .. } = &q.select.from {
                if name.name == q.name.name {
                    return Err(QueryError::at_span(
                        name.span,
                        ErrorKind::Semantic,
                        format!("query '{}' cannot read from itself", q.name.name),
                    ));
                }
            }
            analyze_select(&q.select, catalog, cfg)
        }
        Statement::Select(s) => analyze_select(s, catalog, cfg),
        Statement::CreateRule(r) => {
            let (mut analysis, query, own_items) = match &r.source {
                RuleSource::On(name) => {
                    let Some(shape) = catalog.query(&name.name) else {
                        return Err(QueryError::at_span(
                            name.span,
                            ErrorKind::Semantic,
                            format!("unknown query '{}'", name.name),
                        ));
                    };
                    if r.backfill != Backfill::Default {
                        return Err(QueryError::at_span(
                            name.span,
                            ErrorKind::Semantic,
                            "BACKFILL applies only to a rule with its own AS SELECT; \
                             an ON rule uses its query's state",
                        ));
                    }
                    (
                        on_query_analysis(&name.name, &shape),
                        RuleQuery::On(name.name.clone()),
                        None,
                    )
                }
                RuleSource::As(sel) => (
                    analyze_select(sel, catalog, cfg)?,
                    RuleQuery::Own,
                    Some(sel),
                ),
            };
            let mut columns = Vec::new();
            deny_refs(
                &r.deny_when,
                &analysis,
                own_items.map(|s| &s.items[..]),
                &mut columns,
            )?;
            analysis.rule = Some(RuleAnalysis { query, columns });
            Ok(analysis)
        }
        Statement::DropQuery(_)
        | Statement::DropRule(_)
        | Statement::ShowQueries
        | Statement::ShowRules => Ok(Analysis::default()),
    }
}

/// The analysis of `ON name`: the watched query's shape.
fn on_query_analysis(name: &str, shape: &QueryShape) -> Analysis {
    Analysis {
        source: Some(ResolvedSource::Query {
            name: name.to_string(),
            window: None,
        }),
        columns: shape
            .columns
            .iter()
            .map(|c| Column {
                name: c.clone(),
                kind: ColumnKind::FromSource,
                expr: None,
            })
            .collect(),
        group_fields: shape.group_fields.clone(),
        timeseries: shape.granularity.map(|g| TimeseriesSpec {
            time_field: "time".to_string(),
            granularity: g,
            window: shape.window,
            from_source: true,
        }),
        aggregated: true,
        rule: None,
    }
}

/// Check what a DENY WHEN condition refers to and collect the columns it reads.
fn deny_refs(
    e: &Expr,
    a: &Analysis,
    items: Option<&[crate::ast::SelectItem]>,
    out: &mut Vec<String>,
) -> Result<()> {
    let push = |name: String, out: &mut Vec<String>| {
        if !out.contains(&name) {
            out.push(name);
        }
    };
    match &e.kind {
        ExprKind::Field(f) => {
            let name = f.dotted();
            if a.columns.iter().any(|c| c.name == name) || a.group_fields.contains(&name) {
                push(name, out);
                Ok(())
            } else {
                Err(unknown_column(e, &name, "DENY WHEN", a))
            }
        }
        ExprKind::Aggregate(_) => {
            let printed = e.to_string();
            let by_expr = items.and_then(|items| {
                items.iter().find_map(|it| match it {
                    crate::ast::SelectItem::Expr { expr, .. } if expr == e => it.column_name(),
                    _ => None,
                })
            });
            match by_expr.or_else(|| a.columns.iter().find(|c| c.name == printed).map(|c| c.name.clone())) {
                Some(name) => {
                    push(name, out);
                    Ok(())
                }
                None => Err(QueryError::at_span(
                    e.span,
                    ErrorKind::Semantic,
                    format!("'{printed}' is not a column of the rule's query; add it to the select list"),
                )),
            }
        }
        _ => {
            let mut result = Ok(());
            select::for_each_child(e, |c| {
                if result.is_ok() {
                    result = deny_refs(c, a, items, out);
                }
            });
            result
        }
    }
}

/// `unknown column 'x' in CLAUSE (columns: …)`.
pub(crate) fn unknown_column(e: &Expr, name: &str, clause: &str, a: &Analysis) -> QueryError {
    let mut known: Vec<&str> = a.columns.iter().map(|c| c.name.as_str()).collect();
    for g in &a.group_fields {
        if !known.contains(&g.as_str()) {
            known.push(g);
        }
    }
    QueryError::at_span(
        e.span,
        ErrorKind::Semantic,
        format!(
            "unknown column '{name}' in {clause} (known: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ),
    )
}

/// A catalogue seen through the statements of one text: queries created earlier in it are
/// visible, dropped ones are gone.
struct Overlay<'a> {
    base: &'a dyn Catalog,
    changes: HashMap<String, Option<QueryShape>>,
}

impl Catalog for Overlay<'_> {
    fn query(&self, name: &str) -> Option<QueryShape> {
        match self.changes.get(name) {
            Some(change) => change.clone(),
            None => self.base.query(name),
        }
    }
}

/// Parse a text and analyse each statement in order; later statements see the queries that
/// earlier ones create or drop. Errors carry the quoted source line.
pub fn parse_and_analyze(
    text: &str,
    catalog: &dyn Catalog,
    cfg: &AnalyzerConfig,
) -> Result<Vec<(Statement, Analysis)>> {
    let stmts = crate::parser::parse(text)?;
    let mut overlay = Overlay {
        base: catalog,
        changes: HashMap::new(),
    };
    let mut out = Vec::with_capacity(stmts.len());
    for stmt in stmts {
        let analysis = analyze(&stmt, &overlay, cfg).map_err(|e| e.with_source(text))?;
        match &stmt {
            Statement::CreateQuery(q) => {
                overlay
                    .changes
                    .insert(q.name.name.clone(), Some(analysis.shape()));
            }
            Statement::DropQuery(d) => {
                overlay.changes.insert(d.name.name.clone(), None);
            }
            _ => {}
        }
        out.push((stmt, analysis));
    }
    Ok(out)
}
