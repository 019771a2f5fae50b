//! Every JSON query in docs/analytics.md compiles, and each example with events and an
//! answer gives exactly that answer.

use serde_json::Value;
use weir_analytics::JsonQuery;
use weir_core::{parse_body, ShapeOptions};

const DOC: &str = include_str!("../../docs/analytics.md");

/// The fenced blocks as (info string, body).
fn blocks() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(String, String)> = None;
    for line in DOC.lines() {
        match (&mut cur, line.strip_prefix("```")) {
            (None, Some(info)) => cur = Some((info.trim().to_string(), String::new())),
            (Some(_), Some(_)) => out.extend(cur.take()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(cur.is_none(), "unclosed code block");
    out
}

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("bad JSON in docs: {e}\n{body}"))
}

#[test]
fn every_documented_query_compiles_and_answers_as_documented() {
    let blocks = blocks();
    let mut queries = 0;
    let mut answered = 0;
    for (i, (info, body)) in blocks.iter().enumerate() {
        if info != "json query" {
            continue;
        }
        queries += 1;
        let mut q = JsonQuery::compile(&parse(body))
            .unwrap_or_else(|e| panic!("documented query does not compile: {e}\n{body}"));
        let follow = |k: usize, tag: &str| blocks.get(i + k).filter(|(t, _)| t == tag);
        if let (Some((_, events)), Some((_, answer))) =
            (follow(1, "json events"), follow(2, "json answer"))
        {
            let events = parse_body(&parse(events), &ShapeOptions::at(i64::MAX / 2))
                .expect("documented events are valid");
            let mut stored: Vec<(u64, _)> = (1..).zip(events).collect();
            stored.sort_by_key(|(id, e)| (e.ts, *id));
            for (id, e) in &stored {
                q.push(*id, e);
            }
            assert_eq!(q.finish(), parse(answer), "documented answer differs");
            answered += 1;
        }
    }
    assert!(queries >= 3, "found {queries} documented queries");
    assert_eq!(answered, 1);
}

#[test]
fn every_json_block_in_the_docs_is_valid_json() {
    for (info, body) in blocks() {
        if info.starts_with("json") {
            parse(&body);
        }
    }
}
