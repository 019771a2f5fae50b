//! Malformed queries are refused with the path and problem; the schema is published.

use serde_json::{json, Value};
use weir_analytics::{query_schema, AnalyticsError, JsonQuery};

fn err(q: Value) -> String {
    match JsonQuery::compile(&q) {
        Ok(_) => panic!("accepted a malformed query: {q}"),
        Err(e @ AnalyticsError::InvalidQuery { .. }) => e.to_string(),
        Err(other) => panic!("wrong error kind: {other:?}"),
    }
}

fn set(name: &str) -> Value {
    json!({"name": name, "filters": [{"type": "eq", "key": "type", "value": name}]})
}

#[test]
fn malformed_queries_name_the_path_and_the_problem() {
    let cases: Vec<(Value, &str)> = vec![
        (json!([1]), "query: expected an object, got an array"),
        (json!({}), "data: is required"),
        (json!({"data": []}), "data: expected at least 1 item(s)"),
        (json!({"data": [set("a")], "limit": 3}), "limit: unknown property"),
        (json!({"start": 1.5, "data": [set("a")]}), "start: expected an integer"),
        (json!({"end": "yesterday", "data": [set("a")]}), "end: unparseable time"),
        (json!({"start": 10, "end": 5, "data": [set("a")]}), "end: must not be before start"),
        (json!({"data": [set("a"), {"name": 3}]}), "data[1].name: expected a string, got a number"),
        (json!({"data": [set("a"), {"filters": []}]}), "data[1].name: is required"),
        (json!({"data": [set("a"), set("a")]}), "data[1].name: duplicate data set name \"a\""),
        (
            json!({"data": [set("a"), {"name": "b", "filters": [{"type": "like", "key": "x"}]}]}),
            "data[1].filters[0].type: expected one of eq, regex, all",
        ),
        (
            json!({"data": [{"name": "b", "filters": [{"type": "eq", "key": "x"}]}]}),
            "data[0].filters[0].value: is required",
        ),
        (
            json!({"data": [{"name": "b", "filters": [{"type": "eq", "key": "x", "value": [1]}]}]}),
            "data[0].filters[0].value: expected a string, number, boolean or null, got an array",
        ),
        (
            json!({"data": [{"name": "b", "filters": [{"type": "all", "key": "x"}, {"type": "regex", "key": "s", "value": "5(."}]}]}),
            "data[0].filters[1].value: invalid regular expression",
        ),
        (
            json!({"data": [{"name": "b", "filters": [{"type": "all", "key": "x", "value": 1}]}]}),
            "data[0].filters[0].value: not allowed for type all",
        ),
        (
            json!({"data": [{"name": "b", "filters": [{"type": "all", "key": ""}]}]}),
            "data[0].filters[0].key: must not be empty",
        ),
        (
            json!({"data": [{"name": "b", "filters": {"type": "all"}}]}),
            "data[0].filters: expected an array, got an object",
        ),
        (
            json!({"data": [{"name": "b", "colour": 1}]}),
            "data[0].colour: unknown property; expected one of name, filters, unique, keys, operations",
        ),
        (
            json!({"data": [{"name": "b", "operations": [{"type": "sum", "key": "x"}]}]}),
            "data[0].operations[0].type: expected one of unique",
        ),
        (json!({"data": [{"name": "b", "unique": ["u", 1]}]}), "data[0].unique[1]: expected a string"),
        (json!({"data": [set("a")], "funnel": {"order": ["a"]}}), "funnel.type: is required"),
        (
            json!({"data": [set("a")], "funnel": {"type": "any_order", "order": ["a"]}}),
            "funnel.type: expected one of exact_order",
        ),
        (
            json!({"data": [set("a")], "funnel": {"type": "exact_order"}}),
            "funnel.order: is required (or funnel.data)",
        ),
        (
            json!({"data": [set("a")], "funnel": {"type": "exact_order", "order": ["a"], "data": ["a"]}}),
            "funnel: give either order or data",
        ),
        (
            json!({"data": [set("a"), set("b")], "funnel": {"type": "exact_order", "order": ["a", "c"]}}),
            "funnel.order[1]: unknown data set \"c\"; known: a, b",
        ),
        (
            json!({"data": [set("a")], "funnel": {"type": "exact_order", "data": []}}),
            "funnel.data: expected at least 1 item(s)",
        ),
        (
            json!({"data": [set("a")], "funnel": {"type": "exact_order", "data": ["a"], "match": "u"}}),
            "funnel.match: expected an array, got a string",
        ),
    ];
    for (q, want) in cases {
        let got = err(q.clone());
        assert!(
            got.starts_with(want),
            "query {q}\n  got:  {got}\n  want: {want}…"
        );
    }
}

#[test]
fn schema_mirrors_the_checks() {
    let s = query_schema();
    let defs = &s["$defs"];
    // Every property the checks accept is in the schema, and nothing more.
    let props = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        k.sort();
        k
    };
    assert_eq!(props(&s), ["data", "end", "funnel", "start"]);
    assert_eq!(
        props(&defs["dataSet"]),
        ["filters", "keys", "name", "operations", "unique"]
    );
    assert_eq!(props(&defs["filter"]), ["key", "type", "value"]);
    assert_eq!(props(&defs["funnel"]), ["data", "match", "order", "type"]);
    for def in [
        &s,
        &defs["dataSet"],
        &defs["filter"],
        &defs["operation"],
        &defs["funnel"],
    ] {
        assert_eq!(def["additionalProperties"], json!(false));
    }
    assert_eq!(defs["dataSet"]["required"], json!(["name"]));
    assert_eq!(defs["filter"]["required"], json!(["type", "key"]));
    assert_eq!(s["properties"]["data"]["minItems"], json!(1));
    // Every "$ref" points at a definition that exists.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&s, &mut all);
    assert!(all.len() >= 8);
    for r in all {
        let name = r.strip_prefix("#/$defs/").expect("local ref");
        assert!(defs.get(name).is_some(), "dangling {r}");
    }
}

mod never_panics {
    use proptest::prelude::*;
    use serde_json::{json, Value};
    use weir_analytics::{AnalyticsError, JsonQuery};

    /// JSON values built from the query's own vocabulary, so many are nearly valid.
    fn arb_json() -> impl Strategy<Value = Value> {
        let word = prop::sample::select(vec![
            "data",
            "name",
            "filters",
            "type",
            "key",
            "value",
            "eq",
            "regex",
            "all",
            "unique",
            "funnel",
            "order",
            "match",
            "exact_order",
            "start",
            "end",
            "operations",
            "a",
            "(",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            word.clone().prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 40, 5, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((word.clone(), inner), 0..5).prop_map(|kv| Value::Object(
                    kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                )),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn compile_never_panics_and_errors_name_a_path(v in arb_json()) {
            if let Err(AnalyticsError::InvalidQuery { path, problem }) = JsonQuery::compile(&v) {
                prop_assert!(!path.is_empty() && !problem.is_empty());
            }
            let wrapped = json!({"data": [{"name": "x", "filters": [v]}]});
            let _ = JsonQuery::compile(&wrapped);
        }
    }
}
