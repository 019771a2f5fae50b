//! A bare `SELECT` (one-shot query) over the stored events of its source.
//!
//! - Without GROUP BY or aggregates, it returns the matching events themselves, oldest
//!   first, at most LIMIT of them: `SELECT * FROM t WHERE … LIMIT n` gives each event's
//!   `event_id`, `type`, `ts` and its fields (or the selected expressions) in `values`. The
//!   scan stops at the LIMIT-th match.
//! - With them, it runs the select over every stored event in a throwaway engine and
//!   returns its rows, like a continuous query read over all time.

use serde_json::{json, Map, Value};
use weir_engine::expr::EventExpr;
use weir_engine::{Engine, EngineConfig, ReadRequest};
use weir_query_lang::ast::{Select, Source};
use weir_query_lang::{Analysis, ColumnKind};
use weir_storage::RangeQuery;

use crate::app::Cx;
use crate::ddl::{DdlError, DdlResult};

/// Run `select` (analysed as `analysis`) over the stored events of its source.
pub fn run(app: &Cx<'_>, select: &Select, analysis: Option<&Analysis>) -> DdlResult<Vec<Value>> {
    let types: Vec<String> = match &select.from {
        Source::AllEvents(_) => Vec::new(),
        Source::Named { name, window } => {
            if window.is_some() || app.engine().query(&name.name).is_some() {
                return Err(DdlError::at(
                    format!(
                        "a one-shot query reads stored events; read query '{name}' through GET /api/queries/{name}/result"
                    ),
                    name.span,
                ));
            }
            vec![name.name.clone()]
        }
    };
    let scan = RangeQuery {
        account: app.tenant().account.clone(),
        project: app.tenant().project.clone(),
        types,
        from_ts: i64::MIN,
        to_ts: i64::MAX,
    };
    match analysis {
        Some(a) if !a.aggregated => events(app, select, a, &scan),
        _ => aggregated(app, select, &scan),
    }
}

/// The matching events themselves (a select without grouping or aggregates).
fn events(app: &Cx<'_>, select: &Select, a: &Analysis, scan: &RangeQuery) -> DdlResult<Vec<Value>> {
    let compile = |e: &weir_query_lang::ast::Expr| {
        weir_engine::plan::event_expr(e).map_err(|err| DdlError::at(err.to_string(), e.span))
    };
    let filter = select.where_clause.as_ref().map(compile).transpose()?;
    let mut columns: Vec<(String, Option<EventExpr>)> = Vec::new();
    for c in &a.columns {
        match (&c.kind, &c.expr) {
            (ColumnKind::AllFields, _) => columns.push((c.name.clone(), None)),
            (_, Some(e)) => columns.push((c.name.clone(), Some(compile(e)?))),
            (_, None) => {}
        }
    }
    let limit = select.limit.map_or(usize::MAX, |l| l as usize);
    let mut rows = Vec::new();
    if limit == 0 {
        return Ok(rows);
    }
    for record in app.store().scan_range(scan).map_err(DdlError::internal)? {
        let record = record.map_err(DdlError::internal)?;
        let ev = &record.event;
        if !filter.as_ref().is_none_or(|f| f.eval(ev).truthy()) {
            continue;
        }
        let mut values = Map::new();
        for (name, e) in &columns {
            match e {
                None => values.extend(ev.fields.clone()),
                Some(e) => {
                    values.insert(name.clone(), e.eval(ev).to_json());
                }
            }
        }
        rows.push(json!({
            "event_id": record.seq,
            "type": ev.kind,
            "ts": ev.ts,
            "values": values,
        }));
        if rows.len() >= limit {
            break;
        }
    }
    Ok(rows)
}

/// A grouped or aggregated select, run in a throwaway engine over every stored event.
fn aggregated(app: &Cx<'_>, select: &Select, scan: &RangeQuery) -> DdlResult<Vec<Value>> {
    let engine = Engine::new(EngineConfig {
        shards: 1,
        default_grace_ms: i64::MAX / 4,
        default_retention_ms: i64::MAX / 4,
    });
    engine
        .create_query("oneshot", select)
        .map_err(DdlError::from)?;
    let events = app.store().scan_range(scan).map_err(DdlError::internal)?;
    for record in events {
        let record = record.map_err(DdlError::internal)?;
        engine.apply(&record.event, || record.seq);
    }
    let rows = engine
        .result(
            "oneshot",
            &ReadRequest {
                from: Some(i64::MIN),
                to: Some(i64::MAX),
                ..Default::default()
            },
        )
        .map_err(DdlError::from)?;
    Ok(rows.into_iter().map(crate::shapes::row_json).collect())
}
