//! The evaluator against hand-computed answers, and the table of unsupported PromQL.

use std::collections::BTreeMap;

use super::*;
use crate::api::prometheus::source::MemSource;

const G: i64 = 60_000;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Three sellers' orders and amounts at buckets 0, 1, 2 (minute buckets); `z` has no
/// sample in bucket 1.
fn source() -> MemSource {
    let s = |name: &str, seller: &str, region: &str, vals: &[(i64, f64)]| {
        (
            labels(&[
                ("__name__", name),
                ("query", "q"),
                ("seller", seller),
                ("region", region),
            ]),
            vals.iter()
                .map(|&(b, v)| (b * G, v))
                .collect::<BTreeMap<_, _>>(),
        )
    };
    MemSource {
        g: G,
        series: vec![
            s("q_orders", "x", "eu", &[(0, 1.0), (1, 4.0), (2, 2.0)]),
            s("q_orders", "y", "eu", &[(0, 3.0), (1, 2.0), (2, 5.0)]),
            s("q_orders", "z", "us", &[(0, 7.0), (2, 1.0)]),
            s("q_amount", "x", "eu", &[(0, 10.0), (1, 40.0), (2, 20.0)]),
            s("q_amount", "y", "eu", &[(0, 30.0), (1, 20.0), (2, 50.0)]),
            s("q_amount", "z", "us", &[(0, 70.0), (2, 10.0)]),
        ],
    }
}

/// Evaluate at the three buckets (mid-bucket times).
fn run(q: &str) -> Result<Value, PromError> {
    let times = [G / 2, G + G / 2, 2 * G + G / 2];
    eval(&parse(q)?, &source(), &times)
}

/// The vector answer as (labels as `k=v,…`, values), sorted.
fn vec_of(q: &str) -> Vec<(String, Vec<Option<f64>>)> {
    let Value::Vector(vs) = run(q).unwrap_or_else(|e| panic!("{q}: {e}")) else {
        panic!("{q}: not a vector")
    };
    let mut out: Vec<_> = vs
        .into_iter()
        .map(|s| {
            let l: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            (l.join(","), s.values)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn s(v: f64) -> Option<f64> {
    Some(v)
}

#[test]
fn selectors_with_every_matcher() {
    let names = |q: &str| -> Vec<String> { vec_of(q).into_iter().map(|(l, _)| l).collect() };
    assert_eq!(names(r#"q_orders{seller="x"}"#).len(), 1);
    assert_eq!(names(r#"q_orders{seller!="x"}"#).len(), 2);
    assert_eq!(names(r#"q_orders{seller=~"x|z"}"#).len(), 2);
    assert_eq!(names(r#"q_orders{seller!~"x|z"}"#).len(), 1);
    assert_eq!(names(r#"{__name__=~"q_.*", region="us"}"#).len(), 2);
    assert_eq!(
        vec_of(r#"q_orders{seller="z"}"#)[0].1,
        vec![s(7.0), None, s(1.0)]
    );
}

#[test]
fn aggregations_by_and_without() {
    assert_eq!(
        vec_of("sum(q_orders)"),
        vec![(String::new(), vec![s(11.0), s(6.0), s(8.0)])]
    );
    assert_eq!(
        vec_of("sum by (region) (q_orders)"),
        vec![
            ("region=eu".into(), vec![s(4.0), s(6.0), s(7.0)]),
            ("region=us".into(), vec![s(7.0), None, s(1.0)]),
        ]
    );
    // without drops the listed labels and the metric name.
    assert_eq!(
        vec_of("max without (seller) (q_orders)"),
        vec![
            ("query=q,region=eu".into(), vec![s(3.0), s(4.0), s(5.0)]),
            ("query=q,region=us".into(), vec![s(7.0), None, s(1.0)]),
        ]
    );
    assert_eq!(vec_of("min(q_orders)")[0].1, vec![s(1.0), s(2.0), s(1.0)]);
    assert_eq!(
        vec_of("avg(q_orders)")[0].1,
        vec![s(11.0 / 3.0), s(3.0), s(8.0 / 3.0)]
    );
    assert_eq!(vec_of("count(q_orders)")[0].1, vec![s(3.0), s(2.0), s(3.0)]);
    assert_eq!(vec_of("group(q_orders)")[0].1, vec![s(1.0), s(1.0), s(1.0)]);
    // stdvar of {1, 3, 7}: mean 11/3, squares (64 + 4 + 100)/9 / 3 = 168/27.
    let v = vec_of("stdvar(q_orders)")[0].1[0].unwrap();
    assert!((v - 168.0 / 27.0).abs() < 1e-12, "{v}");
    let d = vec_of("stddev(q_orders)")[0].1[0].unwrap();
    assert!((d - (168.0f64 / 27.0).sqrt()).abs() < 1e-12, "{d}");
}

#[test]
fn topk_and_bottomk_per_step() {
    // Bucket 0: z=7 y=3 x=1; bucket 1: x=4 y=2; bucket 2: y=5 x=2 z=1.
    assert_eq!(
        vec_of("topk(1, q_orders)"),
        vec![
            (
                "__name__=q_orders,query=q,region=eu,seller=x".into(),
                vec![None, s(4.0), None]
            ),
            (
                "__name__=q_orders,query=q,region=eu,seller=y".into(),
                vec![None, None, s(5.0)]
            ),
            (
                "__name__=q_orders,query=q,region=us,seller=z".into(),
                vec![s(7.0), None, None]
            ),
        ]
    );
    assert_eq!(
        vec_of("bottomk by (region) (1, q_orders)"),
        vec![
            (
                "__name__=q_orders,query=q,region=eu,seller=x".into(),
                vec![s(1.0), None, s(2.0)]
            ),
            (
                "__name__=q_orders,query=q,region=eu,seller=y".into(),
                vec![None, s(2.0), None]
            ),
            (
                "__name__=q_orders,query=q,region=us,seller=z".into(),
                vec![s(7.0), None, s(1.0)]
            ),
        ]
    );
    assert_eq!(vec_of("topk(2, q_orders)").len(), 3);
    assert!(vec_of("topk(0, q_orders)").is_empty());
}

#[test]
fn arithmetic_with_scalars() {
    assert_eq!(
        vec_of(r#"q_orders{seller="x"} * 2 + 1"#),
        vec![(
            "query=q,region=eu,seller=x".into(),
            vec![s(3.0), s(9.0), s(5.0)]
        )]
    );
    assert_eq!(
        vec_of(r#"10 - q_orders{seller="x"}"#)[0].1,
        vec![s(9.0), s(6.0), s(8.0)]
    );
    assert_eq!(
        vec_of(r#"2 ^ q_orders{seller="x"}"#)[0].1,
        vec![s(2.0), s(16.0), s(4.0)]
    );
    assert_eq!(
        vec_of(r#"-q_orders{seller="x"} % 3"#)[0].1,
        vec![s(-1.0), s(-1.0), s(-2.0)]
    );
    let Value::Scalar(v) = run("1 + 2 * 3").unwrap() else {
        panic!("scalar")
    };
    assert_eq!(v, vec![7.0; 3]);
}

#[test]
fn comparisons_filter_or_give_bool() {
    // Filtering keeps the metric name and the left value.
    assert_eq!(
        vec_of("q_orders > 3"),
        vec![
            (
                "__name__=q_orders,query=q,region=eu,seller=x".into(),
                vec![None, s(4.0), None]
            ),
            (
                "__name__=q_orders,query=q,region=eu,seller=y".into(),
                vec![None, None, s(5.0)]
            ),
            (
                "__name__=q_orders,query=q,region=us,seller=z".into(),
                vec![s(7.0), None, None]
            ),
        ]
    );
    assert_eq!(
        vec_of(r#"q_orders{seller="x"} > bool 3"#),
        vec![(
            "query=q,region=eu,seller=x".into(),
            vec![s(0.0), s(1.0), s(0.0)]
        )]
    );
    // Scalar on the left: the vector's value is kept.
    assert_eq!(
        vec_of(r#"3 < q_orders{seller="y"}"#)[0].1,
        vec![None, None, s(5.0)]
    );
}

#[test]
fn vector_matching_between_series() {
    // Matched on every label but the name: amount / orders per seller.
    assert_eq!(
        vec_of("q_amount / q_orders"),
        vec![
            ("query=q,region=eu,seller=x".into(), vec![s(10.0); 3]),
            ("query=q,region=eu,seller=y".into(), vec![s(10.0); 3]),
            (
                "query=q,region=us,seller=z".into(),
                vec![s(10.0), None, s(10.0)]
            ),
        ]
    );
    // on(region) against a per-region sum: each seller's share.
    assert_eq!(
        vec_of(r#"q_orders{region="us"} / on (region) sum by (region) (q_orders)"#),
        vec![("region=us".into(), vec![s(1.0), None, s(1.0)])]
    );
    assert_eq!(
        vec_of(r#"q_orders{region="us"} - ignoring (seller) q_orders{seller="x"}"#),
        vec![]
    );
    // Many on the left matched to one on the right needs group_left: an error.
    let e = run(r#"q_orders / on (region) sum by (region) (q_orders)"#).unwrap_err();
    assert_eq!(e.kind, "execution");
    assert!(
        e.message.contains("many-to-one matching must be explicit"),
        "{e}"
    );
    let e = run(r#"sum by (region) (q_orders) / on (region) q_orders"#).unwrap_err();
    assert!(
        e.message.contains("many-to-many matching not allowed"),
        "{e}"
    );
    // Comparison between vectors filters.
    assert_eq!(
        vec_of(r#"q_amount > on (seller, region, query) (q_orders + 60)"#),
        vec![(
            "query=q,region=us,seller=z".into(),
            vec![s(70.0), None, None]
        )]
    );
}

#[test]
fn set_operators() {
    assert_eq!(
        vec_of(r#"q_orders and on (seller) q_amount{seller="z"}"#),
        vec![(
            "__name__=q_orders,query=q,region=us,seller=z".into(),
            vec![s(7.0), None, s(1.0)]
        )]
    );
    assert_eq!(
        vec_of(r#"q_orders unless on (region) q_orders{region="us"}"#).len(),
        2
    );
    let or = vec_of(r#"q_orders{seller="x"} or q_amount{seller="x"}"#);
    // Same signature (name aside): the right side only fills in where the left is empty.
    assert_eq!(or.len(), 1);
    let or = vec_of(r#"q_orders{seller="z"} or on (seller) q_orders{seller="z"} * 100"#);
    assert_eq!(or.len(), 1, "{or:?}");
}

#[test]
fn offset_shifts_the_selector() {
    assert_eq!(
        vec_of(r#"q_orders{seller="x"} offset 1m"#)[0].1,
        vec![None, s(1.0), s(4.0)]
    );
    assert_eq!(
        vec_of(r#"q_orders{seller="x"} - q_orders{seller="x"} offset 1m"#)[0].1,
        vec![None, s(3.0), s(-2.0)]
    );
    assert_eq!(
        vec_of(r#"q_orders{seller="x"} offset -1m"#)[0].1,
        vec![s(4.0), s(2.0), None]
    );
}

/// The unsupported-table of docs/grafana.md: each query and the start of its error.
pub const UNSUPPORTED: &[(&str, &str)] = &[
    ("rate(q_orders[5m])", "unsupported: function rate()"),
    ("abs(q_orders)", "unsupported: function abs()"),
    ("q_orders[5m]", "unsupported: the range vector selector"),
    (
        "max_over_time(q_orders[5m:1m])",
        "unsupported: function max_over_time()",
    ),
    ("q_orders[5m:1m]", "unsupported: the subquery"),
    ("q_orders @ 100", "unsupported: the @ modifier"),
    (
        "quantile(0.9, q_orders)",
        "unsupported: the aggregation quantile",
    ),
    (
        r#"count_values("v", q_orders)"#,
        "unsupported: the aggregation count_values",
    ),
    (
        "q_orders / on (region) group_left sum by (region) (q_orders)",
        "unsupported: group_left/group_right matching",
    ),
    (
        "sum by (region) (q_orders) / on (region) group_right q_orders",
        "unsupported: group_left/group_right matching",
    ),
];

#[test]
fn unsupported_table() {
    for (q, start) in UNSUPPORTED {
        let e = run(q).expect_err(q);
        assert_eq!(e.kind, "bad_data", "{q}");
        assert!(e.message.starts_with(start), "{q}: {}", e.message);
    }
}

#[test]
fn parse_errors_are_bad_data() {
    let e = run("sum(").unwrap_err();
    assert_eq!(e.kind, "bad_data");
    assert!(e.message.starts_with("invalid parameter \"query\""), "{e}");
}
