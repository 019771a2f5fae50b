//! The checks on one select: source, GROUP BY and windows, WHERE, the select list, HAVING.

use weir_core::format_duration;

use super::{
    unknown_column, Analysis, AnalyzerConfig, Catalog, Column, ColumnKind, QueryShape,
    ResolvedSource, TimeseriesSpec,
};
use crate::ast::{
    AggFunc, Aggregate, Expr, ExprKind, GroupItem, Millis, Select, SelectItem, Source, Span,
};
use crate::error::{ErrorKind, QueryError, Result};

fn err(span: Span, message: impl Into<String>) -> QueryError {
    QueryError::at_span(span, ErrorKind::Semantic, message)
}

/// Call `f` on each direct sub-expression of `e`.
pub(crate) fn for_each_child<'a>(e: &'a Expr, mut f: impl FnMut(&'a Expr)) {
    match &e.kind {
        ExprKind::Field(_) | ExprKind::Literal(_) | ExprKind::Start | ExprKind::End => {}
        ExprKind::Aggregate(Aggregate { arg, .. }) => {
            if let Some(a) = arg {
                f(a);
            }
        }
        ExprKind::Binary { left, right, .. } => {
            f(left);
            f(right);
        }
        ExprKind::Unary { expr, .. }
        | ExprKind::Regex { expr, .. }
        | ExprKind::IsNull { expr, .. } => f(expr),
        ExprKind::In { expr, list, .. } => {
            f(expr);
            list.iter().for_each(f);
        }
    }
}

/// Visit `e` and every sub-expression, depth first, with whether it is inside an aggregate.
fn walk<'a>(
    e: &'a Expr,
    in_agg: bool,
    f: &mut dyn FnMut(&'a Expr, bool) -> Result<()>,
) -> Result<()> {
    f(e, in_agg)?;
    let inner = in_agg || matches!(e.kind, ExprKind::Aggregate(_));
    let mut r = Ok(());
    for_each_child(e, |c| {
        if r.is_ok() {
            r = walk(c, inner, f);
        }
    });
    r
}

fn contains(e: &Expr, pred: &dyn Fn(&ExprKind) -> bool) -> bool {
    let mut found = false;
    let _ = walk(e, false, &mut |x, _| {
        found |= pred(&x.kind);
        Ok(())
    });
    found
}

fn is_agg(k: &ExprKind) -> bool {
    matches!(k, ExprKind::Aggregate(_))
}

fn is_time_bound(k: &ExprKind) -> bool {
    matches!(k, ExprKind::Start | ExprKind::End)
}

/// Checks every expression needs wherever it is: nesting, quantiles, regexes.
fn check_expr(e: &Expr) -> Result<()> {
    walk(e, false, &mut |x, in_agg| match &x.kind {
        ExprKind::Aggregate(a) => {
            if in_agg {
                return Err(err(x.span, "aggregates cannot be nested"));
            }
            if let AggFunc::Percentile(q) = a.func {
                if !(0.0..=1.0).contains(&q) {
                    return Err(err(
                        x.span,
                        format!("percentile quantile {q} is not between 0 and 1"),
                    ));
                }
            }
            Ok(())
        }
        ExprKind::Regex { pattern, .. } => regex::Regex::new(pattern).map(|_| ()).map_err(|e| {
            err(
                x.span,
                format!("invalid regular expression: {}", first_line(&e.to_string())),
            )
        }),
        _ => Ok(()),
    })
}

fn first_line(s: &str) -> String {
    s.lines().last().unwrap_or(s).trim().to_string()
}

/// Check a window against its granularity and the bucket cap.
fn check_window(span: Span, g: Millis, w: Millis, cfg: &AnalyzerConfig) -> Result<()> {
    if w <= 0 || w % g != 0 {
        return Err(err(
            span,
            format!(
                "window {} is not a whole multiple of the granularity {}",
                format_duration(w),
                format_duration(g)
            ),
        ));
    }
    let buckets = (w / g) as u64;
    if buckets > cfg.max_buckets_per_window {
        return Err(err(
            span,
            format!(
                "window {} holds {buckets} buckets of {}; the limit is {}",
                format_duration(w),
                format_duration(g),
                cfg.max_buckets_per_window
            ),
        ));
    }
    Ok(())
}

/// Resolve the source; for a query source, also return its shape.
fn resolve_source(
    sel: &Select,
    catalog: &dyn Catalog,
    cfg: &AnalyzerConfig,
) -> Result<(ResolvedSource, Option<QueryShape>)> {
    match &sel.from {
        Source::AllEvents(_) => Ok((ResolvedSource::AllEvents, None)),
        Source::Named { name, window } => {
            match (catalog.query(&name.name), window) {
                (Some(shape), w) => {
                    if let Some(w) = *w {
                        if shape.window.is_some() {
                            return Err(err(
                            name.span,
                            format!("query '{}' is already a sliding window; read it without a window", name.name),
                        ));
                        }
                        let Some(g) = shape.granularity else {
                            return Err(err(
                            name.span,
                            format!("query '{}' has no timeseries, so it cannot be read over a window", name.name),
                        ));
                        };
                        check_window(name.span, g, w, cfg)?;
                    }
                    let src = ResolvedSource::Query {
                        name: name.name.clone(),
                        window: *w,
                    };
                    Ok((src, Some(shape)))
                }
                (None, Some(_)) => Err(err(
                    name.span,
                    format!(
                        "unknown query '{}': only a query can be read over a window",
                        name.name
                    ),
                )),
                (None, None) => Ok((ResolvedSource::EventType(name.name.clone()), None)),
            }
        }
    }
}

/// Check one select and describe it.
pub fn analyze_select(
    sel: &Select,
    catalog: &dyn Catalog,
    cfg: &AnalyzerConfig,
) -> Result<Analysis> {
    let (source, shape) = resolve_source(sel, catalog, cfg)?;

    // GROUP BY.
    let mut group_fields: Vec<String> = Vec::new();
    let mut timeseries = None;
    for g in &sel.group_by {
        match g {
            GroupItem::Field(f) => {
                let name = f.dotted();
                if group_fields.contains(&name) {
                    return Err(err(f.span, format!("'{name}' is grouped by twice")));
                }
                group_fields.push(name);
            }
            GroupItem::Timeseries {
                span,
                time_field,
                granularity,
                window,
            } => {
                if timeseries.is_some() {
                    return Err(err(*span, "only one timeseries(…) is allowed in GROUP BY"));
                }
                if *granularity <= 0 {
                    return Err(err(*span, "the granularity must be longer than 0ms"));
                }
                if let Some(w) = window {
                    check_window(*span, *granularity, *w, cfg)?;
                }
                timeseries = Some(TimeseriesSpec {
                    time_field: time_field.name.clone(),
                    granularity: *granularity,
                    window: *window,
                    from_source: false,
                });
            }
        }
    }
    if let Some(shape) = &shape {
        let windowed = matches!(
            source,
            ResolvedSource::Query {
                window: Some(_),
                ..
            }
        );
        if timeseries.is_some() && windowed {
            return Err(err(
                sel.source_span(),
                "a query source read over a window cannot be combined with GROUP BY timeseries(…)",
            ));
        }
        if timeseries.is_none() {
            if let Some(g) = shape.granularity {
                let window = match &source {
                    ResolvedSource::Query {
                        window: Some(w), ..
                    } => Some(*w),
                    _ => shape.window,
                };
                timeseries = Some(TimeseriesSpec {
                    time_field: "time".to_string(),
                    granularity: g,
                    window,
                    from_source: true,
                });
            }
        }
    }

    // Fields of a query source must be its columns.
    let source_names: Option<Vec<&str>> = shape.as_ref().map(|s| {
        s.columns
            .iter()
            .chain(&s.group_fields)
            .map(String::as_str)
            .collect()
    });
    let check_source_fields = |e: &Expr| -> Result<()> {
        let Some(names) = &source_names else {
            return Ok(());
        };
        walk(e, false, &mut |x, _| match &x.kind {
            ExprKind::Field(f) if !names.contains(&f.dotted().as_str()) => Err(err(
                x.span,
                format!(
                    "the source query has no column '{}' (columns: {})",
                    f.dotted(),
                    names.join(", ")
                ),
            )),
            _ => Ok(()),
        })
    };

    // WHERE.
    if let Some(w) = &sel.where_clause {
        check_expr(w)?;
        check_source_fields(w)?;
        walk(w, false, &mut |x, _| match x.kind {
            ExprKind::Aggregate(_) => Err(err(
                x.span,
                "aggregates are not allowed in WHERE; filter on them with HAVING",
            )),
            ExprKind::Start | ExprKind::End => Err(err(
                x.span,
                "start(time) and end(time) are not allowed in WHERE",
            )),
            _ => Ok(()),
        })?;
    }

    let aggregated = !sel.group_by.is_empty()
        || sel
            .items
            .iter()
            .any(|it| matches!(it, SelectItem::Expr { expr, .. } if contains(expr, &is_agg)));

    // The select list.
    let mut columns: Vec<Column> = Vec::new();
    let push = |col: Column, span: Span, columns: &mut Vec<Column>| -> Result<()> {
        if columns.iter().any(|c| c.name == col.name) {
            return Err(err(
                span,
                format!(
                    "duplicate column name '{}'; give it another name with AS",
                    col.name
                ),
            ));
        }
        columns.push(col);
        Ok(())
    };
    for item in &sel.items {
        match item {
            SelectItem::Wildcard(span) => match &shape {
                Some(s) => {
                    for c in &s.columns {
                        let col = Column {
                            name: c.clone(),
                            kind: ColumnKind::FromSource,
                            expr: None,
                        };
                        push(col, *span, &mut columns)?;
                    }
                }
                None if aggregated => {
                    return Err(err(
                        *span,
                        "'*' cannot be used in a grouped query over events; name the fields",
                    ))
                }
                None => push(
                    Column {
                        name: "*".into(),
                        kind: ColumnKind::AllFields,
                        expr: None,
                    },
                    *span,
                    &mut columns,
                )?,
            },
            SelectItem::Expr { expr, .. } => {
                check_expr(expr)?;
                check_source_fields(expr)?;
                if contains(expr, &is_time_bound) && timeseries.is_none() {
                    return Err(err(
                        expr.span,
                        "start(time) and end(time) need GROUP BY timeseries(…) or a query source with a timeseries",
                    ));
                }
                let name = item.column_name().unwrap_or_default();
                let (kind, value) = column_kind(expr, aggregated, &group_fields)?;
                push(
                    Column {
                        name,
                        kind,
                        expr: Some(value),
                    },
                    expr.span,
                    &mut columns,
                )?;
            }
        }
    }

    let mut analysis = Analysis {
        source: Some(source),
        columns,
        group_fields,
        timeseries,
        aggregated,
        rule: None,
    };
    if shape.is_some() && analysis.group_fields.is_empty() && !aggregated {
        analysis.group_fields = shape.map(|s| s.group_fields).unwrap_or_default();
    }

    // HAVING.
    if let Some(h) = &sel.having {
        if !aggregated {
            return Err(err(
                h.span,
                "HAVING needs GROUP BY or an aggregate in the select list",
            ));
        }
        check_expr(h)?;
        walk(h, false, &mut |x, in_agg| match &x.kind {
            ExprKind::Field(f) if !in_agg => {
                let name = f.dotted();
                if analysis.columns.iter().any(|c| c.name == name)
                    || analysis.group_fields.contains(&name)
                {
                    Ok(())
                } else {
                    Err(unknown_column(x, &name, "HAVING", &analysis))
                }
            }
            _ => Ok(()),
        })?;
    }
    Ok(analysis)
}

/// Classify a select-list expression; returns the expression that computes it (bare values
/// in a grouped query become `last(…)`).
fn column_kind(e: &Expr, aggregated: bool, groups: &[String]) -> Result<(ColumnKind, Expr)> {
    match &e.kind {
        ExprKind::Start => return Ok((ColumnKind::Start, e.clone())),
        ExprKind::End => return Ok((ColumnKind::End, e.clone())),
        _ => {}
    }
    if !aggregated {
        return Ok((ColumnKind::PerEvent, e.clone()));
    }
    let mut ungrouped: Option<(Span, String)> = None;
    let _ = walk(e, false, &mut |x, in_agg| {
        if let ExprKind::Field(f) = &x.kind {
            if !in_agg && ungrouped.is_none() && !groups.contains(&f.dotted()) {
                ungrouped = Some((x.span, f.dotted()));
            }
        }
        Ok(())
    });
    let has_agg = contains(e, &is_agg);
    match ungrouped {
        None if has_agg => Ok((ColumnKind::Aggregate, e.clone())),
        None if matches!(e.kind, ExprKind::Field(_)) => Ok((ColumnKind::GroupKey, e.clone())),
        None => Ok((ColumnKind::Aggregate, e.clone())),
        Some((span, name)) if has_agg || contains(e, &is_time_bound) => Err(err(
            span,
            format!(
                "field '{name}' must be in GROUP BY or inside an aggregate here \
                 (only a select item without aggregates means its last value)"
            ),
        )),
        Some(_) => Ok((
            ColumnKind::ImplicitLast,
            Expr {
                span: e.span,
                kind: ExprKind::Aggregate(Aggregate {
                    func: AggFunc::Last,
                    arg: Some(Box::new(e.clone())),
                }),
            },
        )),
    }
}

impl Select {
    /// Where the FROM source was written.
    fn source_span(&self) -> Span {
        match &self.from {
            Source::AllEvents(s) => *s,
            Source::Named { name, .. } => name.span,
        }
    }
}
