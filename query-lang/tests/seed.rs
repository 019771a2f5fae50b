//! The seed examples (SPEC section 2) and the rate-limit rules (SPEC section 4) parse and
//! mean what the seed means.

use weir_query_lang::analyze::{ColumnKind, ResolvedSource, RuleQuery};
use weir_query_lang::ast::{QueryForm, Statement};
use weir_query_lang::{parse, parse_and_analyze, AnalyzerConfig, EmptyCatalog};

const SEED: &str = "\
series@5min = select start(time), symbol, price from raw group by timeseries(time, 5min), symbol
last30min@5min = select * from series_5min(30min)
";

#[test]
fn seed_example_one_names_and_reads_series_5min() {
    let out = parse_and_analyze(SEED, &EmptyCatalog, &AnalyzerConfig::default()).unwrap();
    assert_eq!(out.len(), 2);
    let Statement::CreateQuery(q) = &out[0].0 else {
        panic!("not a query")
    };
    assert_eq!(q.name.name, "series_5min");
    assert_eq!(q.written_name.name, "series");
    assert_eq!(q.form, QueryForm::ShorthandAt { at: 300_000 });
    let a = &out[0].1;
    assert_eq!(a.source, Some(ResolvedSource::EventType("raw".into())));
    assert_eq!(a.column_names(), ["start(time)", "symbol", "price"]);
    let kinds: Vec<_> = a.columns.iter().map(|c| c.kind.clone()).collect();
    assert_eq!(
        kinds,
        [
            ColumnKind::Start,
            ColumnKind::GroupKey,
            ColumnKind::ImplicitLast
        ]
    );
    assert_eq!(
        a.columns[2].expr.as_ref().unwrap().to_string(),
        "last(price)"
    );
    assert_eq!(a.group_fields, ["symbol"]);
    let ts = a.timeseries.as_ref().unwrap();
    assert_eq!((ts.granularity, ts.window), (300_000, None));

    let b = &out[1].1;
    assert_eq!(
        b.source,
        Some(ResolvedSource::Query {
            name: "series_5min".into(),
            window: Some(1_800_000)
        })
    );
    assert_eq!(b.column_names(), ["start(time)", "symbol", "price"]);
    assert_eq!(b.group_fields, ["symbol"]);
    let ts = b.timeseries.as_ref().unwrap();
    assert_eq!(
        (ts.granularity, ts.window, ts.from_source),
        (300_000, Some(1_800_000), true)
    );
}

#[test]
fn seed_example_two_is_a_sliding_window() {
    let text = "last30min@5min = select start(time), symbol, price from raw group by timeseries(time,5min, 30min), symbol";
    let out = parse_and_analyze(text, &EmptyCatalog, &AnalyzerConfig::default()).unwrap();
    let Statement::CreateQuery(q) = &out[0].0 else {
        panic!("not a query")
    };
    assert_eq!(q.name.name, "last30min_5min");
    let ts = out[0].1.timeseries.as_ref().unwrap();
    assert_eq!(
        (ts.granularity, ts.window, ts.from_source),
        (300_000, Some(1_800_000), false)
    );
}

#[test]
fn the_two_rate_limit_rules() {
    let text = "
CREATE RULE seller_orders AS SELECT count(*) AS orders FROM neworder WHERE seller = 'usedcardealer' GROUP BY seller, timeseries(time, 1s, 1min) DENY WHEN orders > 100;
CREATE RULE daily_sales AS SELECT sum(amount) AS sales FROM neworder GROUP BY seller, timeseries(time, 1min, 1d) DENY WHEN sales > 10000;
";
    let out = parse_and_analyze(text, &EmptyCatalog, &AnalyzerConfig::default()).unwrap();
    assert_eq!(out.len(), 2);
    let r = out[0].1.rule.as_ref().unwrap();
    assert_eq!(
        (r.query.clone(), r.columns.clone()),
        (RuleQuery::Own, vec!["orders".to_string()])
    );
    let ts = out[0].1.timeseries.as_ref().unwrap();
    assert_eq!((ts.granularity, ts.window), (1_000, Some(60_000)));
    let r = out[1].1.rule.as_ref().unwrap();
    assert_eq!(r.columns, ["sales"]);
    assert_eq!(out[1].1.group_fields, ["seller"]);
    let ts = out[1].1.timeseries.as_ref().unwrap();
    assert_eq!((ts.granularity, ts.window), (60_000, Some(86_400_000)));
}

#[test]
fn a_rule_may_name_the_aggregate_directly() {
    let text = "CREATE RULE r AS SELECT count(*) AS orders FROM neworder GROUP BY seller, timeseries(time, 1s, 1min) DENY WHEN count(*) > 100";
    let out = parse_and_analyze(text, &EmptyCatalog, &AnalyzerConfig::default()).unwrap();
    assert_eq!(out[0].1.rule.as_ref().unwrap().columns, ["orders"]);
}

#[test]
fn an_on_rule_reads_a_query_created_earlier_in_the_text() {
    let text = "CREATE QUERY per_seller AS SELECT count(*) AS orders FROM neworder GROUP BY seller, timeseries(time, 1s, 1min);
CREATE RULE cap ON per_seller DENY WHEN orders > 100 AND seller = 'x'";
    let out = parse_and_analyze(text, &EmptyCatalog, &AnalyzerConfig::default()).unwrap();
    let r = out[1].1.rule.as_ref().unwrap();
    assert_eq!(r.query, RuleQuery::On("per_seller".into()));
    assert_eq!(r.columns, ["orders", "seller"]);
}

#[test]
fn parse_alone_accepts_all_statement_forms() {
    let text = "CREATE OR REPLACE QUERY q AS SELECT count(*) FROM events BACKFILL 1h;
q2 = SELECT a FROM b NO BACKFILL; DROP QUERY q; DROP RULE r; SHOW QUERIES; show rules;
CREATE RULE r ON q DENY WHEN x > 1; SELECT * FROM events LIMIT 10;";
    let stmts = parse(text).unwrap();
    assert_eq!(stmts.len(), 8);
    assert!(matches!(stmts[5], Statement::ShowRules));
}

#[test]
fn keywords_and_functions_in_any_case_mean_the_same() {
    let lower = parse("select count(distinct u), start(time) from t where a is not null group by timeseries(time, 5min) having count(distinct u) > 1 limit 3").unwrap();
    let mixed = parse("SeLeCt COUNT(DISTINCT u), START(time) FROM t WHERE a IS NOT NULL GROUP BY TimeSeries(time, 5MIN) HAVING Count(Distinct u) > 1 LIMIT 3;").unwrap();
    assert_eq!(lower, mixed);
    assert_eq!(
        mixed[0].to_string(),
        "SELECT count(distinct u), start(time) FROM t WHERE a IS NOT NULL GROUP BY timeseries(time, 5min) HAVING count(distinct u) > 1 LIMIT 3"
    );
}

#[test]
fn comments_and_blank_statements_are_ignored() {
    let stmts = parse("-- leading\n;; SHOW QUERIES -- trailing\n;\n-- only a comment").unwrap();
    assert_eq!(stmts, vec![Statement::ShowQueries]);
    assert!(parse("").unwrap().is_empty());
}
