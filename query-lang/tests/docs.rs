//! Every ```sql block of docs/query-language.md parses and passes the analyzer.

use weir_query_lang::{parse_and_analyze, AnalyzerConfig, EmptyCatalog};

#[test]
fn every_sql_example_in_the_user_docs_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/query-language.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let blocks: Vec<&str> = doc
        .split("```sql")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert!(blocks.len() >= 4, "sql examples missing from the docs");
    for block in blocks {
        let out = parse_and_analyze(block, &EmptyCatalog, &AnalyzerConfig::default())
            .unwrap_or_else(|e| panic!("{e}\nin:\n{block}"));
        assert!(!out.is_empty());
    }
}
