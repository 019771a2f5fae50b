//! PromQL evaluation over a [`SeriesSource`], at a list of evaluation times at once (one for
//! an instant query, every step of a range query). Each step is evaluated as Prometheus
//! evaluates an instant query; the values of all steps travel together so that a selector
//! reads its query once per request, not once per step.
//!
//! Supported: vector selectors (`=`, `!=`, `=~`, `!~`) with `offset`; number and string
//! literals; unary minus; `sum`, `min`, `max`, `avg`, `count`, `group`, `stddev`, `stdvar`,
//! `topk`, `bottomk` with `by`/`without`; arithmetic (`+ - * / % ^ atan2`), comparisons
//! (with and without `bool`) and `and`/`or`/`unless` between scalars and vectors, with
//! one-to-one vector matching (`on`/`ignoring`). Anything else — functions, range vectors,
//! subqueries, `@`, `group_left`/`group_right`, other aggregations — is refused with an
//! `unsupported: …` error naming it ([`PromError::unsupported`]), never evaluated wrongly.

use std::collections::{BTreeMap, HashMap, HashSet};

use promql_parser::label::Matcher;
use promql_parser::parser::token::{self, TokenType};
use promql_parser::parser::{
    AggregateExpr, BinaryExpr, Expr, LabelModifier, Offset, VectorMatchCardinality, VectorSelector,
};

use super::render::PromError;
use super::source::{Labels, Series, SeriesSource};

/// The value of an expression at every evaluation time.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// One number per time.
    Scalar(Vec<f64>),
    /// Series, each with a value or none per time.
    Vector(Vec<Series>),
    /// A string literal.
    Str(String),
}

/// Parse PromQL text, as Prometheus's `bad_data` error when it does not parse.
pub fn parse(text: &str) -> Result<Expr, PromError> {
    promql_parser::parser::parse(text)
        .map_err(|e| PromError::bad_data(format!("invalid parameter \"query\": {e}")))
}

/// Evaluate `expr` at `times` (unix ms).
pub fn eval(expr: &Expr, src: &dyn SeriesSource, times: &[i64]) -> Result<Value, PromError> {
    Evaluator { src, times }.eval(expr)
}

struct Evaluator<'a> {
    src: &'a dyn SeriesSource,
    times: &'a [i64],
}

fn drop_name(mut l: Labels) -> Labels {
    l.remove("__name__");
    l
}

fn op_name(op: TokenType) -> String {
    op.to_string()
}

impl Evaluator<'_> {
    fn n(&self) -> usize {
        self.times.len()
    }

    fn eval(&self, expr: &Expr) -> Result<Value, PromError> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(vec![n.val; self.n()])),
            Expr::StringLiteral(s) => Ok(Value::Str(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::Unary(u) => Ok(match self.eval(&u.expr)? {
                Value::Scalar(v) => Value::Scalar(v.into_iter().map(|x| -x).collect()),
                Value::Vector(vs) => Value::Vector(
                    vs.into_iter()
                        .map(|s| Series {
                            labels: drop_name(s.labels),
                            values: s.values.into_iter().map(|v| v.map(|x| -x)).collect(),
                        })
                        .collect(),
                ),
                Value::Str(_) => return Err(PromError::bad_data("unary minus on a string")),
            }),
            Expr::VectorSelector(vs) => self.select(vs).map(Value::Vector),
            Expr::Aggregate(a) => self.aggregate(a),
            Expr::Binary(b) => self.binary(b),
            Expr::Call(c) => Err(PromError::unsupported(format!(
                "function {}()",
                c.func.name
            ))),
            Expr::MatrixSelector(m) => Err(PromError::unsupported(format!(
                "the range vector selector {m} (Weir's series are already windowed: select \
                 the column itself)"
            ))),
            Expr::Subquery(s) => Err(PromError::unsupported(format!("the subquery {s}"))),
            Expr::Extension(_) => Err(PromError::unsupported("an extension expression")),
        }
    }

    fn select(&self, vs: &VectorSelector) -> Result<Vec<Series>, PromError> {
        if vs.at.is_some() {
            return Err(PromError::unsupported("the @ modifier"));
        }
        if !vs.matchers.or_matchers.is_empty() {
            return Err(PromError::unsupported("'or' inside a selector's braces"));
        }
        let mut matchers: Vec<Matcher> = vs.matchers.matchers.clone();
        if let Some(name) = &vs.name {
            if !matchers.iter().any(|m| m.name == "__name__") {
                matchers.push(Matcher::new(
                    promql_parser::label::MatchOp::Equal,
                    "__name__",
                    name,
                ));
            }
        }
        let shift = match &vs.offset {
            None => 0,
            Some(Offset::Pos(d)) => d.as_millis() as i64,
            Some(Offset::Neg(d)) => -(d.as_millis() as i64),
        };
        let times: Vec<i64> = self.times.iter().map(|t| t - shift).collect();
        self.src.select(&matchers, &times)
    }

    fn scalar_param(&self, e: &Expr, what: &str) -> Result<Vec<f64>, PromError> {
        match self.eval(e)? {
            Value::Scalar(v) => Ok(v),
            _ => Err(PromError::bad_data(format!(
                "expected a scalar as the parameter of {what}"
            ))),
        }
    }

    fn aggregate(&self, a: &AggregateExpr) -> Result<Value, PromError> {
        let op = a.op.id();
        let name = op_name(a.op);
        let Value::Vector(input) = self.eval(&a.expr)? else {
            return Err(PromError::bad_data(format!(
                "expected an instant vector in the aggregation {name}"
            )));
        };
        let group_of = |l: &Labels| -> Labels {
            match &a.modifier {
                Some(LabelModifier::Include(by)) => l
                    .iter()
                    .filter(|(k, _)| by.labels.contains(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                Some(LabelModifier::Exclude(without)) => l
                    .iter()
                    .filter(|(k, _)| *k != "__name__" && !without.labels.contains(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                None => Labels::new(),
            }
        };
        // Series indexes per group, in a stable order.
        let mut groups: BTreeMap<Labels, Vec<usize>> = BTreeMap::new();
        for (i, s) in input.iter().enumerate() {
            groups.entry(group_of(&s.labels)).or_default().push(i);
        }
        if op == token::T_TOPK || op == token::T_BOTTOMK {
            let k = match &a.param {
                Some(p) => self.scalar_param(p, &name)?,
                None => return Err(PromError::bad_data(format!("{name} needs a parameter k"))),
            };
            return Ok(Value::Vector(self.topk(
                &input,
                &groups,
                &k,
                op == token::T_TOPK,
            )));
        }
        let kind = match op {
            token::T_SUM => Agg::Sum,
            token::T_MIN => Agg::Min,
            token::T_MAX => Agg::Max,
            token::T_AVG => Agg::Avg,
            token::T_COUNT => Agg::Count,
            token::T_GROUP => Agg::Group,
            token::T_STDDEV => Agg::Stddev,
            token::T_STDVAR => Agg::Stdvar,
            _ => return Err(PromError::unsupported(format!("the aggregation {name}"))),
        };
        let out = groups
            .into_iter()
            .map(|(labels, members)| {
                let values = (0..self.n())
                    .map(|i| {
                        let xs: Vec<f64> =
                            members.iter().filter_map(|&m| input[m].values[i]).collect();
                        kind.apply(&xs)
                    })
                    .collect();
                Series { labels, values }
            })
            .filter(|s| s.values.iter().any(Option::is_some))
            .collect();
        Ok(Value::Vector(out))
    }

    fn topk(
        &self,
        input: &[Series],
        groups: &BTreeMap<Labels, Vec<usize>>,
        k: &[f64],
        top: bool,
    ) -> Vec<Series> {
        let mut values: Vec<Vec<Option<f64>>> = vec![vec![None; self.n()]; input.len()];
        for members in groups.values() {
            for (i, &ki) in k.iter().enumerate() {
                let ki = if ki.is_finite() && ki >= 1.0 {
                    ki as usize
                } else {
                    0
                };
                let mut present: Vec<(usize, f64)> = members
                    .iter()
                    .filter_map(|&m| input[m].values[i].map(|v| (m, v)))
                    .collect();
                // NaN sorts last either way, as in Prometheus.
                present.sort_by(|a, b| {
                    let (x, y) = if top { (b.1, a.1) } else { (a.1, b.1) };
                    match (x.is_nan(), y.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ => x.total_cmp(&y),
                    }
                    .then(a.0.cmp(&b.0))
                });
                for &(m, v) in present.iter().take(ki) {
                    values[m][i] = Some(v);
                }
            }
        }
        input
            .iter()
            .zip(values)
            .filter(|(_, v)| v.iter().any(Option::is_some))
            .map(|(s, values)| Series {
                labels: s.labels.clone(),
                values,
            })
            .collect()
    }

    fn binary(&self, b: &BinaryExpr) -> Result<Value, PromError> {
        let op = b.op;
        let comparison = op.is_comparison_operator();
        let set = op.is_set_operator();
        let return_bool = b.return_bool();
        let lhs = self.eval(&b.lhs)?;
        let rhs = self.eval(&b.rhs)?;
        let name = op_name(op);
        match (lhs, rhs) {
            (Value::Scalar(l), Value::Scalar(r)) => {
                let v = l
                    .iter()
                    .zip(&r)
                    .map(|(&x, &y)| arith(op, x, y).unwrap_or(f64::NAN))
                    .collect();
                Ok(Value::Scalar(v))
            }
            (Value::Vector(vs), Value::Scalar(sc)) | (Value::Scalar(sc), Value::Vector(vs))
                if set =>
            {
                let _ = (vs, sc);
                Err(PromError::bad_data(format!(
                    "set operator \"{name}\" not allowed in binary scalar expression"
                )))
            }
            (Value::Vector(vs), Value::Scalar(sc)) => Ok(Value::Vector(vector_scalar(
                op,
                vs,
                &sc,
                false,
                return_bool,
            ))),
            (Value::Scalar(sc), Value::Vector(vs)) => {
                Ok(Value::Vector(vector_scalar(op, vs, &sc, true, return_bool)))
            }
            (Value::Vector(l), Value::Vector(r)) => {
                let modifier = b.modifier.as_ref();
                let card = modifier.map(|m| &m.card);
                if matches!(
                    card,
                    Some(
                        VectorMatchCardinality::ManyToOne(_) | VectorMatchCardinality::OneToMany(_)
                    )
                ) {
                    return Err(PromError::unsupported("group_left/group_right matching"));
                }
                if modifier
                    .is_some_and(|m| m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some())
                {
                    return Err(PromError::unsupported("fill modifiers"));
                }
                let matching = modifier.and_then(|m| m.matching.clone());
                if set {
                    return Ok(Value::Vector(self.set_op(op, l, r, matching.as_ref())));
                }
                let drop = !comparison || return_bool;
                self.vector_vector(op, l, r, matching.as_ref(), drop, comparison, return_bool)
                    .map(Value::Vector)
            }
            _ => Err(PromError::bad_data(format!(
                "the operator {name} needs numbers or vectors on both sides, not a string"
            ))),
        }
    }

    fn set_op(
        &self,
        op: TokenType,
        l: Vec<Series>,
        r: Vec<Series>,
        matching: Option<&LabelModifier>,
    ) -> Vec<Series> {
        let n = self.n();
        let sig_l: Vec<Labels> = l.iter().map(|s| signature(&s.labels, matching)).collect();
        let sig_r: Vec<Labels> = r.iter().map(|s| signature(&s.labels, matching)).collect();
        let mut out_l: Vec<Series> = l.clone();
        let mut out_r: Vec<Series> = Vec::new();
        for i in 0..n {
            let right: HashSet<&Labels> = (0..r.len())
                .filter(|&j| r[j].values[i].is_some())
                .map(|j| &sig_r[j])
                .collect();
            match op.id() {
                token::T_LAND => {
                    for (j, s) in out_l.iter_mut().enumerate() {
                        if !right.contains(&sig_l[j]) {
                            s.values[i] = None;
                        }
                    }
                }
                token::T_LUNLESS => {
                    for (j, s) in out_l.iter_mut().enumerate() {
                        if right.contains(&sig_l[j]) {
                            s.values[i] = None;
                        }
                    }
                }
                _ => {}
            }
        }
        if op.id() == token::T_LOR {
            for (j, s) in r.iter().enumerate() {
                let values = (0..n)
                    .map(|i| {
                        let left =
                            (0..l.len()).any(|k| l[k].values[i].is_some() && sig_l[k] == sig_r[j]);
                        if left {
                            None
                        } else {
                            s.values[i]
                        }
                    })
                    .collect();
                out_r.push(Series {
                    labels: s.labels.clone(),
                    values,
                });
            }
        }
        out_l
            .into_iter()
            .chain(out_r)
            .filter(|s| s.values.iter().any(Option::is_some))
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn vector_vector(
        &self,
        op: TokenType,
        l: Vec<Series>,
        r: Vec<Series>,
        matching: Option<&LabelModifier>,
        drop: bool,
        comparison: bool,
        return_bool: bool,
    ) -> Result<Vec<Series>, PromError> {
        let n = self.n();
        let sig_r: Vec<Labels> = r.iter().map(|s| signature(&s.labels, matching)).collect();
        let mut out: HashMap<Labels, Vec<Option<f64>>> = HashMap::new();
        let mut order: Vec<Labels> = Vec::new();
        for i in 0..n {
            let mut right: HashMap<&Labels, f64> = HashMap::new();
            for (j, s) in r.iter().enumerate() {
                if let Some(v) = s.values[i] {
                    if right.insert(&sig_r[j], v).is_some() {
                        return Err(PromError::execution(format!(
                            "found duplicate series for the match group {} on the right \
                             hand-side of the operation: many-to-many matching not allowed: \
                             matching labels must be unique on one side",
                            super::render::labels_json(&sig_r[j])
                        )));
                    }
                }
            }
            let mut seen: HashSet<Labels> = HashSet::new();
            for s in &l {
                let Some(x) = s.values[i] else { continue };
                let sig = signature(&s.labels, matching);
                let Some(&y) = right.get(&sig) else { continue };
                if !seen.insert(sig.clone()) {
                    return Err(PromError::execution(format!(
                        "multiple matches for labels {}: many-to-one matching must be explicit \
                         (group_left/group_right)",
                        super::render::labels_json(&sig)
                    )));
                }
                let value = if comparison {
                    let holds = arith(op, x, y) == Some(1.0);
                    if return_bool {
                        Some(if holds { 1.0 } else { 0.0 })
                    } else {
                        holds.then_some(x)
                    }
                } else {
                    arith(op, x, y)
                };
                let Some(value) = value else { continue };
                let labels = result_labels(&s.labels, matching, drop);
                let slot = out.entry(labels.clone()).or_insert_with(|| {
                    order.push(labels);
                    vec![None; n]
                });
                if slot[i].is_some() {
                    return Err(PromError::execution(
                        "vector cannot contain metrics with the same labelset",
                    ));
                }
                slot[i] = Some(value);
            }
        }
        Ok(order
            .into_iter()
            .map(|labels| {
                let values = out.remove(&labels).unwrap_or_default();
                Series { labels, values }
            })
            .collect())
    }
}

/// The labels two series are matched on.
fn signature(l: &Labels, matching: Option<&LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(on)) => l
            .iter()
            .filter(|(k, _)| on.labels.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Some(LabelModifier::Exclude(ign)) => l
            .iter()
            .filter(|(k, _)| *k != "__name__" && !ign.labels.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        None => drop_name(l.clone()),
    }
}

/// The labels of a one-to-one result (Prometheus's resultMetric).
fn result_labels(l: &Labels, matching: Option<&LabelModifier>, drop: bool) -> Labels {
    let mut out = l.clone();
    if drop {
        out.remove("__name__");
    }
    match matching {
        Some(LabelModifier::Include(on)) => out.retain(|k, _| on.labels.contains(k)),
        Some(LabelModifier::Exclude(ign)) => out.retain(|k, _| !ign.labels.contains(k)),
        None => {}
    }
    out
}

fn vector_scalar(
    op: TokenType,
    vs: Vec<Series>,
    sc: &[f64],
    scalar_left: bool,
    return_bool: bool,
) -> Vec<Series> {
    let comparison = op.is_comparison_operator();
    vs.into_iter()
        .map(|s| {
            let values = s
                .values
                .iter()
                .zip(sc)
                .map(|(v, &c)| {
                    let v = (*v)?;
                    let (x, y) = if scalar_left { (c, v) } else { (v, c) };
                    let r = arith(op, x, y)?;
                    if comparison {
                        if return_bool {
                            Some(r)
                        } else {
                            (r == 1.0).then_some(v)
                        }
                    } else {
                        Some(r)
                    }
                })
                .collect();
            let labels = if !comparison || return_bool {
                drop_name(s.labels)
            } else {
                s.labels
            };
            Series { labels, values }
        })
        .filter(|s| s.values.iter().any(Option::is_some))
        .collect()
}

/// `x op y`; comparisons give 1 or 0.
fn arith(op: TokenType, x: f64, y: f64) -> Option<f64> {
    let b = |c: bool| Some(if c { 1.0 } else { 0.0 });
    match op.id() {
        token::T_ADD => Some(x + y),
        token::T_SUB => Some(x - y),
        token::T_MUL => Some(x * y),
        token::T_DIV => Some(x / y),
        token::T_MOD => Some(x % y),
        token::T_POW => Some(x.powf(y)),
        token::T_ATAN2 => Some(x.atan2(y)),
        token::T_EQLC => b(x == y),
        token::T_NEQ => b(x != y),
        token::T_GTR => b(x > y),
        token::T_LSS => b(x < y),
        token::T_GTE => b(x >= y),
        token::T_LTE => b(x <= y),
        _ => None,
    }
}

/// The aggregations computed from the values of a group at one time.
#[derive(Debug, Clone, Copy)]
enum Agg {
    Sum,
    Min,
    Max,
    Avg,
    Count,
    Group,
    Stddev,
    Stdvar,
}

impl Agg {
    fn apply(self, xs: &[f64]) -> Option<f64> {
        if xs.is_empty() {
            return None;
        }
        let n = xs.len() as f64;
        let sum: f64 = xs.iter().sum();
        let mean = sum / n;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        let nan_last = |a: f64, b: f64, pick_a: bool| if b.is_nan() || pick_a { a } else { b };
        Some(match self {
            Agg::Sum => sum,
            Agg::Avg => mean,
            Agg::Count => n,
            Agg::Group => 1.0,
            Agg::Min => xs
                .iter()
                .copied()
                .reduce(|a, b| nan_last(a, b, a <= b))
                .unwrap_or(f64::NAN),
            Agg::Max => xs
                .iter()
                .copied()
                .reduce(|a, b| nan_last(a, b, a >= b))
                .unwrap_or(f64::NAN),
            Agg::Stdvar => var,
            Agg::Stddev => var.sqrt(),
        })
    }
}

#[cfg(test)]
#[path = "eval_tests.rs"]
mod tests;
