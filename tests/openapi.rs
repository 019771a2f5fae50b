//! `GET /api/openapi.json` against the real binary: a valid OpenAPI 3.1 document that lists
//! exactly the routes the server answers, method by method, and whose schemas describe the
//! answers it gives.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::Server;
use serde_json::{json, Value};

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

async fn document(s: &Server) -> Value {
    let (st, doc) = s.get("/api/openapi.json").await;
    assert_eq!(st, 200, "GET /api/openapi.json: {doc}");
    doc
}

/// Every `(METHOD, path)` of the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for m in METHODS {
            if item.get(m).is_some() {
                ops.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// Every `$ref` anywhere in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// Keywords that make a schema more than "any value".
const SCHEMA_KEYWORDS: [&str; 8] = [
    "type", "$ref", "oneOf", "allOf", "anyOf", "not", "const", "enum",
];

/// Give every schema without a type-restricting keyword the explicit list of all JSON types
/// (the same set of values), walking the places of an OpenAPI document that hold schemas.
fn any_value_types(v: &mut Value) {
    fn schema(s: &mut Value) {
        let Value::Object(o) = s else { return };
        if !SCHEMA_KEYWORDS.iter().any(|k| o.contains_key(*k)) {
            o.insert(
                "type".into(),
                json!(["null", "boolean", "object", "array", "number", "string"]),
            );
        }
        for (k, v) in o.iter_mut() {
            match k.as_str() {
                "properties" => v
                    .as_object_mut()
                    .into_iter()
                    .flat_map(|m| m.values_mut())
                    .for_each(schema),
                "items" | "additionalProperties" | "propertyNames" | "not" => schema(v),
                "oneOf" | "allOf" | "anyOf" => {
                    v.as_array_mut().into_iter().flatten().for_each(schema)
                }
                _ => {}
            }
        }
    }
    fn walk(v: &mut Value) {
        match v {
            Value::Object(o) => {
                for (k, v) in o.iter_mut() {
                    match k.as_str() {
                        "schema" => schema(v),
                        "schemas" => v
                            .as_object_mut()
                            .into_iter()
                            .flat_map(|m| m.values_mut())
                            .for_each(schema),
                        _ => walk(v),
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(v)
}

#[tokio::test]
async fn document_is_valid_openapi_3_1() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let doc = document(&s).await;

    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "openapi is {version:?}");
    assert_eq!(doc["info"]["title"], "Weir", "{}", doc["info"]);
    assert!(doc["info"]["version"].is_string(), "{}", doc["info"]);
    // It reads back with utoipa's own types, part by part (so a failure names the part).
    // utoipa 5 writes a schema for any JSON value as one without `type`, which it cannot
    // read back; the equivalent explicit list of every type is given to it instead.
    let mut readable = doc.clone();
    any_value_types(&mut readable);
    let doc_for_utoipa = readable;
    for (name, schema) in doc_for_utoipa["components"]["schemas"].as_object().unwrap() {
        serde_json::from_value::<utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>>(
            schema.clone(),
        )
        .unwrap_or_else(|e| panic!("components.schemas.{name} does not parse: {e}: {schema}"));
    }
    for (path, item) in doc_for_utoipa["paths"].as_object().unwrap() {
        serde_json::from_value::<utoipa::openapi::path::PathItem>(item.clone())
            .unwrap_or_else(|e| panic!("paths.{path} does not parse: {e}"));
    }
    let parsed: utoipa::openapi::OpenApi =
        serde_json::from_value(doc_for_utoipa).expect("the document parses as OpenAPI");
    assert!(!parsed.paths.paths.is_empty());

    let schemas = doc["components"]["schemas"]
        .as_object()
        .expect("components.schemas");
    for name in [
        "ErrorBody",
        "DecisionAnswer",
        "Accepted",
        "ResultAnswer",
        "QueryDefinition",
    ] {
        assert!(
            schemas.contains_key(name),
            "components.schemas lacks {name}"
        );
    }
    // Every reference resolves.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty(), "the document has no $ref at all");
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r} does not point into components.schemas"));
        assert!(schemas.contains_key(name), "{r} does not resolve");
    }

    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let declared: BTreeSet<&str> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for m in METHODS {
            let Some(op) = item.get(m) else { continue };
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(!id.is_empty(), "{m} {path} has no operationId");
            assert!(ids.insert(id.to_string()), "operationId {id} is not unique");
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|k| k.starts_with('2')),
                "{m} {path} documents no success answer"
            );
            let in_path: BTreeSet<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(in_path, declared, "{m} {path}: path parameters");
        }
    }
}

#[tokio::test]
async fn document_lists_exactly_the_routes_the_server_answers() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let doc = document(&s).await;
    let ops = operations(&doc);

    // /help is built from the route table the router is built from.
    let (st, help) = s.get("/help").await;
    assert_eq!(st, 200);
    let listed: BTreeSet<(String, String)> = common::help_routes(&help).into_iter().collect();
    let missing: Vec<_> = listed.difference(&ops).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the OpenAPI document: {missing:?}"
    );
    let extra: Vec<_> = ops.difference(&listed).collect();
    assert!(
        extra.is_empty(),
        "documented but not in the route table: {extra:?}"
    );
    assert!(listed.contains(&("GET".into(), "/api/openapi.json".into())));

    // The router itself: on every documented path, a documented method is routed and any
    // other method is answered 405.
    let paths: BTreeSet<&String> = ops.iter().map(|(_, p)| p).collect();
    for path in paths {
        let concrete = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for m in METHODS {
            let method = m.to_uppercase();
            let r = s
                .client()
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                    format!("{}{concrete}", s.url),
                )
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            let documented = ops.contains(&(method.clone(), path.clone()));
            if documented {
                assert_ne!(status, 405, "{method} {path} is documented but not routed");
                let unrouted = body["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("no route"));
                assert!(
                    !unrouted,
                    "{method} {path} is documented but falls through: {body}"
                );
            } else {
                assert_eq!(status, 405, "{method} {path} is routed but not documented");
            }
        }
    }
}

/// A few real answers, checked against their documented schemas by hand (schemathesis
/// checks all of them in `scripts/schemathesis.sh`).
#[tokio::test]
async fn answers_have_the_documented_fields() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let doc = document(&s).await;
    let schemas = &doc["components"]["schemas"];
    let required = |name: &str| -> BTreeSet<String> {
        schemas[name]["required"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no required fields: {}", schemas[name]))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let properties = |name: &str| -> BTreeSet<String> {
        schemas[name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name} has no properties"))
            .keys()
            .cloned()
            .collect()
    };
    let keys = |v: &Value| -> BTreeSet<String> { v.as_object().unwrap().keys().cloned().collect() };

    let (st, body) = s
        .statements("CREATE QUERY n AS SELECT count(*) AS n FROM t GROUP BY k; CREATE RULE r AS SELECT count(*) AS c FROM t GROUP BY k, timeseries(time, 1s, 1min) DENY WHEN c > 5")
        .await;
    assert_eq!(st, 200, "{body}");
    let (st, accepted) = s
        .post("/api/events?wait=durable", &json!({"type": "t", "k": "a"}))
        .await;
    assert_eq!(st, 200, "{accepted}");
    assert_eq!(keys(&accepted), properties("Accepted"));
    let (st, decision) = s
        .post("/api/add_and_check", &json!({"type": "t", "k": "a"}))
        .await;
    assert_eq!(st, 200, "{decision}");
    assert!(
        required("DecisionAnswer").is_subset(&keys(&decision)),
        "{decision}"
    );
    assert!(
        keys(&decision).is_subset(&properties("DecisionAnswer")),
        "{decision}"
    );
    let rule = &decision["rules"][0];
    assert!(keys(rule).is_subset(&properties("RuleOutcome")), "{rule}");
    let (st, result) = s.get("/api/queries/n/result").await;
    assert_eq!(st, 200, "{result}");
    assert_eq!(keys(&result), properties("ResultAnswer"));
    let (st, q) = s.get("/api/queries/n").await;
    assert_eq!(st, 200, "{q}");
    assert!(required("QueryDefinition").is_subset(&keys(&q)), "{q}");
    assert!(keys(&q).is_subset(&properties("QueryDefinition")), "{q}");
    let (st, err) = s.get("/api/queries/nosuch").await;
    assert_eq!(st, 404);
    assert!(keys(&err).is_subset(&properties("ErrorBody")), "{err}");
    let documented: BTreeMap<&str, &Value> = doc["paths"]["/api/queries/{name}"]["get"]
        ["responses"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    assert!(documented.contains_key("404"), "{documented:?}");
}
