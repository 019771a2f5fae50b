//! Merging the rows of one query read from several partitions.
//!
//! A query grouped by every routing field has each group in one partition only: its rows
//! are simply put together. Any other query's groups may have rows in several partitions;
//! they merge exactly when every column is a group field, the window's bounds, or a
//! `count`, `sum`, `min` or `max` (counts and sums add, minima and maxima take the extreme),
//! and there is no HAVING or LIMIT (both would have been applied to one partition's part).
//! Anything else (an average, a distinct count, a percentile, an expression over
//! aggregates) is refused with the reason, never approximated.

use std::collections::BTreeMap;

use serde_json::Value;
use weir_engine::agg::AggKind;
use weir_engine::expr::RowExpr;
use weir_engine::{Plan, Row};

/// How one column of rows from several partitions combines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// The same in every part (a group field, a window bound).
    Same,
    /// Added.
    Add,
    /// The least.
    Min,
    /// The greatest.
    Max,
}

/// Each column's merge, or why the query's rows cannot be merged exactly.
pub fn ops(name: &str, plan: &Plan) -> Result<BTreeMap<String, Op>, String> {
    let refuse = |what: String| {
        Err(format!(
            "query '{name}' is not grouped by the cluster's routing fields, so its groups span partitions, and {what} cannot be merged exactly across partitions; group it by the routing fields, or use count, sum, min and max"
        ))
    };
    if plan.having.is_some() {
        return refuse("its HAVING (applied to each partition's part)".into());
    }
    if plan.limit.is_some() {
        return refuse("its LIMIT (applied to each partition's part)".into());
    }
    let mut out = BTreeMap::new();
    for (col, expr) in &plan.columns {
        let op = match expr {
            RowExpr::Key(_) | RowExpr::Start | RowExpr::End | RowExpr::Lit(_) => Op::Same,
            RowExpr::Agg(i) => match plan.aggs.get(*i).map(|a| a.kind) {
                Some(AggKind::Count | AggKind::Sum) => Op::Add,
                Some(AggKind::Min) => Op::Min,
                Some(AggKind::Max) => Op::Max,
                Some(other) => return refuse(format!("column '{col}' ({other:?})")),
                None => return refuse(format!("column '{col}'")),
            },
            _ => return refuse(format!("column '{col}' (an expression)")),
        };
        out.insert(col.clone(), op);
    }
    Ok(out)
}

/// The identity of a row: its group key and window (or bucket).
fn identity(r: &Row) -> (Option<i64>, Option<i64>, Option<i64>, String) {
    (
        r.bucket_start,
        r.window_end,
        r.window_start,
        serde_json::to_string(&r.key).unwrap_or_default(),
    )
}

/// Merge the rows of every part: rows of one identity combine by `ops` (when the rows of a
/// group can be in several parts), in the order of their window and key.
pub fn merge(
    parts: Vec<Vec<Row>>,
    ops: &Result<BTreeMap<String, Op>, String>,
) -> Result<Vec<Row>, String> {
    let mut by_id: BTreeMap<_, Row> = BTreeMap::new();
    for row in parts.into_iter().flatten() {
        let id = identity(&row);
        match by_id.get_mut(&id) {
            None => {
                by_id.insert(id, row);
            }
            Some(acc) => {
                let ops = ops.as_ref().map_err(|e| e.clone())?;
                for (col, v) in row.values {
                    let op = ops.get(&col).copied().unwrap_or(Op::Same);
                    let merged = combine(op, acc.values.get(&col), &v);
                    acc.values.insert(col, merged);
                }
            }
        }
    }
    Ok(by_id.into_values().collect())
}

fn combine(op: Op, a: Option<&Value>, b: &Value) -> Value {
    let Some(a) = a else { return b.clone() };
    if a.is_null() {
        return b.clone();
    }
    if b.is_null() {
        return a.clone();
    }
    match op {
        Op::Same => a.clone(),
        Op::Add => match (a.as_i64(), b.as_i64()) {
            (Some(x), Some(y)) => Value::from(x + y),
            _ => num(a.as_f64().unwrap_or(0.0) + b.as_f64().unwrap_or(0.0)),
        },
        Op::Min | Op::Max => {
            let (x, y) = (a.as_f64(), b.as_f64());
            let take_b = match (x, y) {
                (Some(x), Some(y)) => (op == Op::Min && y < x) || (op == Op::Max && y > x),
                _ => false,
            };
            if take_b {
                b.clone()
            } else {
                a.clone()
            }
        }
    }
}

fn num(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(key: &str, n: i64, m: f64) -> Row {
        Row {
            key: json!({ "region": key }).as_object().unwrap().clone(),
            values: json!({ "region": key, "n": n, "hi": m })
                .as_object()
                .unwrap()
                .clone(),
            window_start: Some(0),
            window_end: Some(60_000),
            bucket_start: None,
        }
    }

    #[test]
    fn groups_in_several_parts_add_and_take_extremes() {
        let ops: BTreeMap<String, Op> = [
            ("region".to_string(), Op::Same),
            ("n".to_string(), Op::Add),
            ("hi".to_string(), Op::Max),
        ]
        .into();
        let merged = merge(
            vec![
                vec![row("eu", 2, 5.0), row("us", 1, 1.0)],
                vec![row("eu", 3, 7.5)],
            ],
            &Ok(ops),
        )
        .unwrap();
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].values["n"], json!(5));
        assert_eq!(merged[0].values["hi"], json!(7.5));
        assert_eq!(merged[1].values["n"], json!(1));
    }

    #[test]
    fn unmergeable_only_refused_when_a_group_spans_parts() {
        let refused: Result<BTreeMap<String, Op>, String> = Err("avg".into());
        assert!(merge(
            vec![vec![row("eu", 1, 1.0)], vec![row("us", 1, 1.0)]],
            &refused
        )
        .is_ok());
        assert!(merge(
            vec![vec![row("eu", 1, 1.0)], vec![row("eu", 1, 1.0)]],
            &refused
        )
        .is_err());
    }
}
