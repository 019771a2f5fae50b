//! One assertion per error message: the message and where it points (1-based line, column).

use weir_query_lang::{parse_and_analyze, AnalyzerConfig, EmptyCatalog, ErrorKind, QueryError};

fn error(text: &str) -> QueryError {
    let cfg = AnalyzerConfig {
        max_buckets_per_window: 1000,
    };
    match parse_and_analyze(text, &EmptyCatalog, &cfg) {
        Ok(_) => panic!("expected an error for {text:?}"),
        Err(e) => e,
    }
}

#[track_caller]
fn check(text: &str, message: &str, line: u32, column: u32) {
    let e = error(text);
    assert_eq!(
        (e.message.as_str(), e.line, e.column),
        (message, line, column),
        "{text:?}"
    );
}

#[test]
fn syntax_errors() {
    let cases: &[(&str, &str, u32, u32)] = &[
        ("SELECT count(* FROM t", "expected ')' after count(*", 1, 16),
        ("SELECT a FROM t GROUP BY timeseries(time, 5parsecs)", "unknown duration unit 'parsecs'", 1, 44),
        ("SELECT a FROM t GROUP BY timeseries(time, 5)", "expected a duration unit after 5 (ms, s, min, h, d, w)", 1, 44),
        ("SELECT a FROM t GROUP BY timeseries(time 5min)", "expected ',' and a granularity in timeseries(time, granularity[, window])", 1, 42),
        ("SELECT a FROM t GROUP BY timeseries(time, 5min", "expected ')' to close timeseries(…)", 1, 47),
        ("SELECT a FROM t GROUP seller", "expected BY after GROUP", 1, 23),
        ("SELECT FROM t", "expected '*' or an expression after SELECT", 1, 8),
        ("SELECT a\nWHERE a > 1", "expected ',', AS or FROM after the select list", 2, 1),
        ("SELECT a FROM", "expected an event type, 'events' or a query name after FROM", 1, 14),
        ("SELECT a FROM events(5min)", "'events' cannot have a window; only a query source can", 1, 21),
        ("SELECT a FROM t WHERE", "expected a condition after WHERE", 1, 22),
        ("SELECT a FROM t WHERE a >", "expected an expression after the comparison", 1, 26),
        ("SELECT a FROM t WHERE a = 1 AND", "expected a condition after AND", 1, 32),
        ("SELECT a FROM t WHERE a = 1 OR", "expected a condition after OR", 1, 31),
        ("SELECT a FROM t WHERE NOT", "expected a condition after NOT", 1, 26),
        ("SELECT a FROM t WHERE 1 < a < 3", "comparisons do not chain; combine them with AND, or add parentheses", 1, 29),
        ("SELECT a FROM t WHERE a IS 1", "expected NULL after IS", 1, 28),
        ("SELECT a FROM t WHERE a NOT 1", "expected IN after NOT", 1, 29),
        ("SELECT a FROM t WHERE a IN 1", "expected '(' after IN", 1, 28),
        ("SELECT a FROM t WHERE a IN (1 2)", "expected ',' or ')' in the IN list", 1, 31),
        ("SELECT a FROM t WHERE a =~ b", "expected a quoted regular expression after =~", 1, 28),
        ("SELECT a FROM t WHERE (a = 1", "expected ')' to close '('", 1, 29),
        ("SELECT a FROM t WHERE b = 'x", "unterminated string: expected a closing '", 1, 27),
        ("SELECT \"a FROM t", "unterminated quoted name: expected a closing '\"'", 1, 8),
        ("SELECT a + FROM t", "expected an expression after the operator", 1, 12),
        ("SELECT 5min FROM t", "unexpected 'min' after the number 5", 1, 9),
        ("SELECT median(x) FROM t", "unknown function 'median' (expected count, approx_count_distinct, sum, avg, min, max, first, last, percentile, start or end)", 1, 8),
        ("SELECT start(ts) FROM t", "expected 'time' in start(time)", 1, 14),
        ("SELECT percentile(x) FROM t", "expected ',' and a quantile between 0 and 1 in percentile(e, q)", 1, 20),
        ("SELECT sum(x FROM t", "expected ')' to close the call", 1, 14),
        ("SELECT a AS FROM t", "expected a name after AS", 1, 13),
        ("SELECT a FROM t LIMIT x", "expected a whole number after LIMIT", 1, 23),
        ("SELECT a FROM t LIMIT 1.5", "expected a whole number", 1, 23),
        ("SELECT count(*) FROM t GROUP BY s WHERE x = 1", "WHERE is out of place: clauses go in the order WHERE, GROUP BY, HAVING, LIMIT", 1, 35),
        ("SELECT a FROM t SELECT b FROM u", "expected ';' or the end of the statement here", 1, 17),
        ("CRATE QUERY q AS SELECT a FROM t", "expected a statement: CREATE, DROP, SHOW, SELECT, or name = SELECT …", 1, 1),
        ("CREATE TABLE x", "expected QUERY or RULE after CREATE", 1, 8),
        ("CREATE OR QUERY q", "expected REPLACE after CREATE OR", 1, 11),
        ("CREATE QUERY q SELECT a FROM t", "expected AS after the query name", 1, 16),
        ("CREATE QUERY q AS a", "expected SELECT after AS", 1, 19),
        ("CREATE RULE r SELECT", "expected ON query_name or AS SELECT … after the rule name", 1, 15),
        ("CREATE RULE r ON q WHEN x > 1", "expected DENY WHEN after the rule's source", 1, 20),
        ("CREATE RULE r ON q DENY x > 1", "expected WHEN after DENY", 1, 25),
        ("CREATE QUERY q AS SELECT a FROM t BACKFILL", "expected a duration such as 1h after BACKFILL", 1, 43),
        ("CREATE QUERY q AS SELECT a FROM t NO", "expected BACKFILL after NO", 1, 37),
        ("DROP TABLE x", "expected QUERY or RULE after DROP", 1, 6),
        ("SHOW TABLES", "expected QUERIES or RULES after SHOW", 1, 6),
        ("q@ = SELECT a FROM t", "expected a duration such as 5min after '@'", 1, 4),
        ("q SELECT a FROM t", "expected a statement: CREATE, DROP, SHOW, SELECT, or name = SELECT …", 1, 1),
        ("SELECT a FROM t WHERE x = 1e999", "number too large", 1, 27),
        ("SELECT a FROM t GROUP BY timeseries(time, 99999999999999999w)", "duration too large", 1, 43),
        ("SELECT a FROM t GROUP BY sum(x)", "only fields and timeseries(time, g[, w]) can be grouped by", 1, 26),
    ];
    for &(text, message, line, column) in cases {
        let e = error(text);
        assert_eq!(e.kind, ErrorKind::Syntax, "{text:?}");
        check(text, message, line, column);
    }
}

#[test]
fn semantic_errors() {
    let cases: &[(&str, &str, u32, u32)] = &[
        ("SELECT count(*) FROM t WHERE sum(x) > 1", "aggregates are not allowed in WHERE; filter on them with HAVING", 1, 30),
        ("SELECT a FROM t WHERE start(time) > 1", "start(time) and end(time) are not allowed in WHERE", 1, 23),
        ("SELECT count(*) AS n FROM t GROUP BY s HAVING m > 1", "unknown column 'm' in HAVING (known: n, s)", 1, 47),
        ("SELECT a FROM t HAVING a > 1", "HAVING needs GROUP BY or an aggregate in the select list", 1, 24),
        (
            "CREATE RULE r AS SELECT count(*) AS n FROM t GROUP BY s\nDENY WHEN m > 1",
            "unknown column 'm' in DENY WHEN (known: n, s)",
            2,
            11,
        ),
        (
            "CREATE RULE r AS SELECT count(*) AS n FROM t DENY WHEN sum(x) > 1",
            "'sum(x)' is not a column of the rule's query; add it to the select list",
            1,
            56,
        ),
        ("CREATE RULE r ON nope DENY WHEN n > 1", "unknown query 'nope'", 1, 18),
        (
            "q = SELECT count(*) AS n FROM t GROUP BY timeseries(time, 1s); CREATE RULE r ON q DENY WHEN n > 1 BACKFILL 1h",
            "BACKFILL applies only to a rule with its own AS SELECT; an ON rule uses its query's state",
            1,
            81,
        ),
        ("SELECT count(*) FROM t GROUP BY timeseries(time, 5min, 12min)", "window 12min is not a whole multiple of the granularity 5min", 1, 33),
        ("SELECT count(*) FROM t GROUP BY timeseries(time, 1s, 1h)", "window 1h holds 3600 buckets of 1s; the limit is 1000", 1, 33),
        ("SELECT count(*) FROM t GROUP BY timeseries(time, 0s)", "the granularity must be longer than 0ms", 1, 33),
        (
            "SELECT count(*) FROM t GROUP BY timeseries(time, 1s), timeseries(time, 1min)",
            "only one timeseries(…) is allowed in GROUP BY",
            1,
            55,
        ),
        ("SELECT count(*) FROM t GROUP BY s, s", "'s' is grouped by twice", 1, 36),
        ("SELECT count(*) AS n, sum(x) AS n FROM t", "duplicate column name 'n'; give it another name with AS", 1, 23),
        ("SELECT a, a FROM t", "duplicate column name 'a'; give it another name with AS", 1, 11),
        (
            "SELECT sum(x) / qty FROM t GROUP BY s",
            "field 'qty' must be in GROUP BY or inside an aggregate here (only a select item without aggregates means its last value)",
            1,
            17,
        ),
        ("SELECT sum(count(*)) FROM t", "aggregates cannot be nested", 1, 12),
        ("SELECT percentile(x, 1.5) FROM t", "percentile quantile 1.5 is not between 0 and 1", 1, 8),
        ("SELECT * , count(*) FROM t", "'*' cannot be used in a grouped query over events; name the fields", 1, 8),
        ("SELECT start(time) FROM t", "start(time) and end(time) need GROUP BY timeseries(…) or a query source with a timeseries", 1, 8),
        ("SELECT * FROM nope(30min)", "unknown query 'nope': only a query can be read over a window", 1, 15),
        (
            "q = SELECT count(*) AS n FROM t; SELECT * FROM q(5min)",
            "query 'q' has no timeseries, so it cannot be read over a window",
            1,
            48,
        ),
        (
            "q = SELECT count(*) AS n FROM t GROUP BY timeseries(time, 1s, 1min); SELECT * FROM q(5min)",
            "query 'q' is already a sliding window; read it without a window",
            1,
            84,
        ),
        (
            "q = SELECT count(*) AS n FROM t GROUP BY timeseries(time, 1min); SELECT * FROM q(90s)",
            "window 90s is not a whole multiple of the granularity 1min",
            1,
            80,
        ),
        (
            "q = SELECT count(*) AS n FROM t GROUP BY timeseries(time, 1min); SELECT m FROM q",
            "the source query has no column 'm' (columns: n)",
            1,
            73,
        ),
        ("q = SELECT a FROM q", "query 'q' cannot read from itself", 1, 19),
        (
            "q = SELECT count(*) AS n FROM t GROUP BY timeseries(time, 1min); DROP QUERY q; SELECT * FROM q(1h)",
            "unknown query 'q': only a query can be read over a window",
            1,
            94,
        ),
    ];
    for &(text, message, line, column) in cases {
        let e = error(text);
        assert_eq!(e.kind, ErrorKind::Semantic, "{text:?}");
        check(text, message, line, column);
    }
}

#[test]
fn display_shows_position_source_line_and_caret() {
    let e = error("SELECT a\n  FROM t WHERE count(*) > 1");
    assert_eq!(
        e.to_string(),
        "line 2, column 16: aggregates are not allowed in WHERE; filter on them with HAVING\n  | \
         \x20 FROM t WHERE count(*) > 1\n  |                ^"
    );
}

#[test]
fn deep_or_huge_expressions_are_refused_before_the_stack_runs_out() {
    let deep_parens = format!(
        "SELECT {}a{} FROM t",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    assert_eq!(
        error(&deep_parens).message,
        "expression nested too deeply (more than 64 levels)"
    );
    let deep_not = format!("SELECT a FROM t WHERE {}a", "NOT ".repeat(10_000));
    assert_eq!(
        error(&deep_not).message,
        "expression nested too deeply (more than 64 levels)"
    );
    let deep_neg = format!("SELECT {}a FROM t", "- ".repeat(10_000));
    assert_eq!(
        error(&deep_neg).message,
        "expression nested too deeply (more than 64 levels)"
    );
    let long_chain = format!("SELECT {}a FROM t", "a + ".repeat(5_000));
    assert_eq!(
        error(&long_chain).message,
        "statement too complex (more than 1000 operators)"
    );
}

#[test]
fn the_largest_accepted_expression_prints_analyses_and_drops() {
    // 999 additions plus one aggregate call: at the operator limit, in a test thread's small stack.
    let text = format!("SELECT sum({}a) FROM t", "a + ".repeat(999));
    let stmts = weir_query_lang::parse(&text).unwrap();
    let printed = stmts[0].to_string();
    assert_eq!(weir_query_lang::parse(&printed).unwrap(), stmts);
    weir_query_lang::analyze(&stmts[0], &EmptyCatalog, &AnalyzerConfig::default()).unwrap();
    let nested = format!("SELECT {}a{} FROM t", "(NOT ".repeat(31), ")".repeat(31));
    assert!(weir_query_lang::parse(&nested).is_ok());
}

#[test]
fn text_after_not_may_start_with_any_character() {
    // Found by fuzzing: looking for `NOT IN` sliced the text at a byte inside a character.
    let e = error("SELECT a FROM t WHERE a NOT 棋 IN ('x')");
    assert!(e.line == 1 && e.column >= 1, "{e:?}");
}
