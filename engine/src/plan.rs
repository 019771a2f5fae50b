//! Compiling a select into a plan, once, when the query is created.
//!
//! The plan holds everything the per-event path needs already resolved: the source test,
//! the WHERE predicate, the group-key field paths, the time shape and the aggregate kernels
//! with their slots. Result columns, HAVING and rule conditions are compiled to
//! [`RowExpr`]s over the finalised aggregate values.

use weir_query_lang::ast::{
    AggFunc, Aggregate, Expr, ExprKind, GroupItem, Ident, Select, SelectItem, Span,
};
use weir_query_lang::{Analysis, ColumnKind, ErrorKind, QueryError, QueryShape, ResolvedSource};

use crate::agg::{AggKind, AggSpec, Other};
use crate::error::{EngineError, Result};
use crate::expr::{EventExpr, Lit, RowExpr, Test};
use crate::window::HEAD_WORDS;

/// How events are bucketed in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeShape {
    /// No timeseries: one bucket since the query was created.
    Unbounded,
    /// `timeseries(time, g)`.
    Tumbling {
        /// Bucket width.
        g: i64,
    },
    /// `timeseries(time, g, w)`.
    Sliding {
        /// Bucket width.
        g: i64,
        /// Window width (a multiple of g).
        w: i64,
    },
}

impl TimeShape {
    /// Start of the bucket holding `ts`.
    #[inline]
    pub fn bucket(self, ts: i64) -> i64 {
        match self {
            TimeShape::Unbounded => 0,
            TimeShape::Tumbling { g } | TimeShape::Sliding { g, .. } => ts.div_euclid(g) * g,
        }
    }

    /// Bucket width (None when unbounded).
    pub fn granularity(self) -> Option<i64> {
        match self {
            TimeShape::Unbounded => None,
            TimeShape::Tumbling { g } | TimeShape::Sliding { g, .. } => Some(g),
        }
    }

    /// The window (bounds) a decision or `at` read uses for reference time `ts`:
    /// the sliding window ending with the bucket of `ts`, or that bucket itself.
    pub fn window_at(self, ts: i64) -> (i64, i64) {
        match self {
            TimeShape::Unbounded => (i64::MIN, i64::MAX),
            TimeShape::Tumbling { g } => (self.bucket(ts), self.bucket(ts) + g),
            TimeShape::Sliding { g, w } => (self.bucket(ts) + g - w, self.bucket(ts) + g),
        }
    }
}

/// What a query reads.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    /// Every event type.
    All,
    /// One event type.
    Type(String),
    /// The rows of another query (`q(30min)`), evaluated when read.
    Query {
        /// Upstream query.
        name: String,
        /// How far back from its watermark (None: all retained).
        window: Option<i64>,
    },
}

/// A compiled query.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The select it came from.
    pub select: Select,
    /// Source.
    pub source: SourceKind,
    /// WHERE.
    pub filter: Option<EventExpr>,
    /// GROUP BY field paths.
    pub group: Vec<String>,
    /// Time bucketing.
    pub time: TimeShape,
    /// Retention span from the watermark (0 when unbounded).
    pub retention: i64,
    /// Aggregates.
    pub aggs: Vec<AggSpec>,
    /// Words per bucket entry: start, event count, numeric components.
    pub stride: usize,
    /// Fresh non-invertible states of one bucket.
    pub template: Vec<Other>,
    /// Result columns (name, expression), in select order.
    pub columns: Vec<(String, RowExpr)>,
    /// Whether the select had `*`.
    pub wildcard: bool,
    /// HAVING.
    pub having: Option<RowExpr>,
    /// LIMIT.
    pub limit: Option<u64>,
    /// The definition as text (the select, then any extra conditions), to tell on restore
    /// whether a checkpointed state belongs to this definition.
    pub shape: String,
    /// The query this one reads, if any (a view evaluated when read, or derived from it).
    pub upstream: Option<String>,
    agg_ast: Vec<(AggKind, Option<Expr>)>,
    /// The analyzer's description of the compiled select.
    pub analysis: Analysis,
}

/// A compile error at a node: the analyzer's line and column with the engine's reason.
fn at(span: Span, e: EngineError) -> EngineError {
    match e {
        EngineError::Query(q) => EngineError::Query(q),
        other => {
            let msg = match other {
                EngineError::Unsupported(m) => format!("not supported: {m}"),
                EngineError::Invalid(m) => m,
                o => o.to_string(),
            };
            EngineError::Query(QueryError::at_span(span, ErrorKind::Semantic, msg))
        }
    }
}

/// Retention settings a plan is compiled with.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Grace after a sliding window.
    pub grace_ms: i64,
    /// Retention of a tumbling series.
    pub series_ms: i64,
}

fn kind_of(f: AggFunc) -> AggKind {
    match f {
        AggFunc::Count => AggKind::Count,
        AggFunc::CountDistinct => AggKind::Distinct,
        AggFunc::ApproxCountDistinct => AggKind::ApproxDistinct,
        AggFunc::Sum => AggKind::Sum,
        AggFunc::Avg => AggKind::Avg,
        AggFunc::Min => AggKind::Min,
        AggFunc::Max => AggKind::Max,
        AggFunc::First => AggKind::First,
        AggFunc::Last => AggKind::Last,
        AggFunc::Percentile(q) => AggKind::Percentile(q),
    }
}

fn unsupported(what: &str) -> EngineError {
    EngineError::Unsupported(what.to_string())
}

/// Compile an expression evaluated per event.
pub fn event_expr(e: &Expr) -> Result<EventExpr> {
    Ok(match &e.kind {
        ExprKind::Field(f) => EventExpr::Field(f.dotted()),
        ExprKind::Literal(l) => EventExpr::Lit(Lit::from_ast(l)),
        ExprKind::Binary { op, left, right } => EventExpr::Bin(
            *op,
            Box::new(event_expr(left)?),
            Box::new(event_expr(right)?),
        ),
        ExprKind::Unary { op, expr } => EventExpr::Un(*op, Box::new(event_expr(expr)?)),
        ExprKind::Regex { expr, pattern } => {
            EventExpr::Test(Box::new(event_expr(expr)?), Test::Regex(regex(pattern)?))
        }
        ExprKind::In {
            expr,
            list,
            negated,
        } => EventExpr::Test(Box::new(event_expr(expr)?), Test::In(lits(list)?, *negated)),
        ExprKind::IsNull { expr, negated } => {
            EventExpr::Test(Box::new(event_expr(expr)?), Test::IsNull(*negated))
        }
        ExprKind::Aggregate(_) => {
            return Err(unsupported("an aggregate inside a per-event expression"))
        }
        ExprKind::Start | ExprKind::End => {
            return Err(unsupported(
                "start(time)/end(time) inside a per-event expression",
            ))
        }
    })
}

fn regex(p: &str) -> Result<regex::Regex> {
    regex::Regex::new(p).map_err(|e| EngineError::Invalid(format!("bad regex {p:?}: {e}")))
}

fn lits(list: &[Expr]) -> Result<Vec<Lit>> {
    list.iter()
        .map(|e| match &e.kind {
            ExprKind::Literal(l) => Ok(Lit::from_ast(l)),
            _ => Err(unsupported("IN lists hold literals only")),
        })
        .collect()
}

impl Plan {
    /// Compile an analysed select: the analyzer's [`Analysis`] says what it reads, how it
    /// is grouped and bucketed and what each column is, so the engine never re-derives a
    /// query's meaning. `extra` are further row expressions (a rule's DENY WHEN) whose
    /// aggregates get slots too. `upstream` is the query a view derived from its source
    /// reads (see [`derive_view`]); a select reading a query names it in its source.
    pub fn compile(
        select: &Select,
        analysis: &Analysis,
        extra: &[&Expr],
        ret: Retention,
        upstream: Option<String>,
    ) -> Result<Plan> {
        let source = match analysis.source.as_ref() {
            Some(ResolvedSource::AllEvents) | None => SourceKind::All,
            Some(ResolvedSource::EventType(t)) => SourceKind::Type(t.clone()),
            Some(ResolvedSource::Query { name, window }) => SourceKind::Query {
                name: name.clone(),
                window: *window,
            },
        };
        let view = matches!(source, SourceKind::Query { .. });
        let upstream = upstream.or_else(|| match &source {
            SourceKind::Query { name, .. } => Some(name.clone()),
            _ => None,
        });
        let filter = select
            .where_clause
            .as_ref()
            .map(|w| event_expr(w).map_err(|e| at(w.span, e)))
            .transpose()?;
        // A view evaluated when read groups and buckets the upstream's rows by its own
        // GROUP BY only; the source's keys and buckets come with those rows.
        let group = if view && !analysis.aggregated {
            Vec::new()
        } else {
            analysis.group_fields.clone()
        };
        let time = match &analysis.timeseries {
            Some(t) if !(view && t.from_source) => match t.window {
                None => TimeShape::Tumbling { g: t.granularity },
                Some(w) => TimeShape::Sliding {
                    g: t.granularity,
                    w,
                },
            },
            _ => TimeShape::Unbounded,
        };
        let retention = match time {
            TimeShape::Unbounded => 0,
            TimeShape::Tumbling { .. } => ret.series_ms,
            TimeShape::Sliding { w, .. } => w + ret.grace_ms,
        };
        let mut plan = Plan {
            select: select.clone(),
            source,
            upstream,
            filter,
            group,
            time,
            retention,
            aggs: Vec::new(),
            stride: HEAD_WORDS,
            template: Vec::new(),
            columns: Vec::new(),
            wildcard: false,
            having: None,
            limit: select.limit,
            shape: std::iter::once(select.to_string())
                .chain(extra.iter().map(|e| format!("EXTRA {e}")))
                .collect::<Vec<_>>()
                .join("; "),
            agg_ast: Vec::new(),
            analysis: analysis.clone(),
        };
        for col in &analysis.columns {
            match (&col.kind, &col.expr) {
                (ColumnKind::FromSource, _) => plan.wildcard = true,
                (ColumnKind::AllFields, _) => {
                    return Err(at(
                        select.span,
                        unsupported(
                            "SELECT * over events in a continuous query (name the fields, \
                             or run it once as a bare SELECT)",
                        ),
                    ))
                }
                (_, Some(expr)) => {
                    let e = plan
                        .row_expr(expr, true, false)
                        .map_err(|e| at(expr.span, e))?;
                    plan.columns.push((col.name.clone(), e));
                }
                (_, None) => {}
            }
        }
        if let Some(h) = &select.having {
            plan.having = Some(plan.row_expr(h, true, true).map_err(|e| at(h.span, e))?);
        }
        for e in extra {
            plan.row_expr(e, true, true)
                .map_err(|err| at(e.span, err))?;
        }
        Ok(plan)
    }

    /// What other statements see when they read this query (from the analysis).
    pub fn reader_shape(&self) -> QueryShape {
        self.analysis.shape()
    }

    /// Compile a condition over this plan's rows (no new aggregates may be needed).
    pub fn condition(&self, e: &Expr) -> Result<RowExpr> {
        let mut p = self.clone();
        let r = p.row_expr(e, false, true)?;
        Ok(r)
    }

    /// The query this plan reads (evaluated when read, or derived from it), if any.
    pub fn reads(&self) -> Option<&str> {
        self.upstream.as_deref()
    }

    /// Whether the event is of this query's source and passes WHERE.
    #[inline]
    pub fn accepts(&self, ev: &weir_core::Event) -> bool {
        match &self.source {
            SourceKind::All => {}
            SourceKind::Type(t) if *t == ev.kind => {}
            _ => return false,
        }
        self.filter.as_ref().is_none_or(|f| f.eval(ev).truthy())
    }

    fn slot(&mut self, kind: AggKind, arg: Option<&Expr>, add: bool) -> Result<usize> {
        let key = (kind, arg.cloned());
        if let Some(i) = self.agg_ast.iter().position(|k| *k == key) {
            return Ok(i);
        }
        if !add {
            return Err(EngineError::Invalid(format!(
                "the condition needs an aggregate the query does not compute ({})",
                arg.map(|a| a.to_string()).unwrap_or_else(|| "*".into())
            )));
        }
        let spec = AggSpec {
            kind,
            arg: arg.map(event_expr).transpose()?,
            comp: self.stride - 1,
            other: self.template.len(),
        };
        self.stride += kind.comps();
        if let Some(o) = kind.new_other() {
            self.template.push(o);
        }
        self.aggs.push(spec);
        self.agg_ast.push(key);
        Ok(self.aggs.len() - 1)
    }

    fn row_expr(&mut self, e: &Expr, add: bool, cols: bool) -> Result<RowExpr> {
        Ok(match &e.kind {
            ExprKind::Aggregate(Aggregate { func, arg }) => {
                RowExpr::Agg(self.slot(kind_of(*func), arg.as_deref(), add)?)
            }
            ExprKind::Field(f) => {
                let dotted = f.dotted();
                if cols {
                    if let Some(i) = self.columns.iter().position(|(n, _)| *n == dotted) {
                        return Ok(RowExpr::Col(i));
                    }
                }
                if let Some(i) = self.group.iter().position(|g| *g == dotted) {
                    RowExpr::Key(i)
                } else {
                    // A bare non-grouped field: its last value in the bucket.
                    RowExpr::Agg(self.slot(AggKind::Last, Some(e), add)?)
                }
            }
            ExprKind::Literal(l) => RowExpr::Lit(Lit::from_ast(l)),
            ExprKind::Start => RowExpr::Start,
            ExprKind::End => RowExpr::End,
            ExprKind::Binary { op, left, right } => RowExpr::Bin(
                *op,
                Box::new(self.row_expr(left, add, cols)?),
                Box::new(self.row_expr(right, add, cols)?),
            ),
            ExprKind::Unary { op, expr } => {
                RowExpr::Un(*op, Box::new(self.row_expr(expr, add, cols)?))
            }
            ExprKind::Regex { expr, pattern } => RowExpr::Test(
                Box::new(self.row_expr(expr, add, cols)?),
                Test::Regex(regex(pattern)?),
            ),
            ExprKind::In {
                expr,
                list,
                negated,
            } => RowExpr::Test(
                Box::new(self.row_expr(expr, add, cols)?),
                Test::In(lits(list)?, *negated),
            ),
            ExprKind::IsNull { expr, negated } => RowExpr::Test(
                Box::new(self.row_expr(expr, add, cols)?),
                Test::IsNull(*negated),
            ),
        })
    }
}

/// A view that only passes its source's columns through (`select * from series_5min(30min)`,
/// or a projection of them, with WHERE on them) means the source's select run over the
/// view's window: the same aggregates, grouped by the same keys, bucketed by the source's
/// granularity, sliding over the view's window (SPEC section 3). Returns that select,
/// reading the source's events, so the view is kept incrementally like any sliding query,
/// reads are O(log) and every row is exact; the view's WHERE becomes HAVING (it tests the
/// source's columns). None when the view aggregates the source's rows again, or the source
/// is not a grouped query over events without HAVING: such a view is evaluated when read.
pub fn derive_view(view: &Select, a: &Analysis, up: &Plan) -> Option<Select> {
    let Some(ResolvedSource::Query { window, .. }) = &a.source else {
        return None;
    };
    let ua = &up.analysis;
    if a.aggregated
        || !view.group_by.is_empty()
        || up.upstream.is_some()
        || !ua.aggregated
        || up.select.having.is_some()
        || up.wildcard
    {
        return None;
    }
    let columns: Vec<(String, Expr)> = ua
        .columns
        .iter()
        .filter_map(|c| c.expr.clone().map(|e| (c.name.clone(), e)))
        .collect();
    let subst = |e: &Expr| substitute(e, &columns, &ua.group_fields);
    let mut items = Vec::new();
    for item in &view.items {
        match item {
            SelectItem::Wildcard(_) => items.extend(up.select.items.iter().cloned()),
            SelectItem::Expr { expr, .. } => {
                let name = item.column_name()?;
                items.push(SelectItem::Expr {
                    expr: subst(expr),
                    alias: Some(Ident {
                        name,
                        span: expr.span,
                    }),
                });
            }
        }
    }
    let mut group_by = up.select.group_by.clone();
    if let Some(w) = window {
        for g in &mut group_by {
            if let GroupItem::Timeseries { window: gw, .. } = g {
                *gw = Some(*w);
            }
        }
    }
    Some(Select {
        span: view.span,
        items,
        from: up.select.from.clone(),
        where_clause: up.select.where_clause.clone(),
        group_by,
        having: view.where_clause.as_ref().map(subst),
        limit: view.limit,
    })
}

/// `e` with each reference to a source column replaced by the expression computing it.
fn substitute(e: &Expr, columns: &[(String, Expr)], groups: &[String]) -> Expr {
    let sub = |x: &Expr| Box::new(substitute(x, columns, groups));
    let kind = match &e.kind {
        ExprKind::Field(f) => {
            let name = f.dotted();
            match columns.iter().find(|(n, _)| *n == name) {
                Some((_, expr)) if !groups.contains(&name) => return expr.clone(),
                _ => return e.clone(),
            }
        }
        ExprKind::Binary { op, left, right } => ExprKind::Binary {
            op: *op,
            left: sub(left),
            right: sub(right),
        },
        ExprKind::Unary { op, expr } => ExprKind::Unary {
            op: *op,
            expr: sub(expr),
        },
        ExprKind::Regex { expr, pattern } => ExprKind::Regex {
            expr: sub(expr),
            pattern: pattern.clone(),
        },
        ExprKind::In {
            expr,
            list,
            negated,
        } => ExprKind::In {
            expr: sub(expr),
            list: list.clone(),
            negated: *negated,
        },
        ExprKind::IsNull { expr, negated } => ExprKind::IsNull {
            expr: sub(expr),
            negated: *negated,
        },
        other => other.clone(),
    };
    Expr { kind, span: e.span }
}
