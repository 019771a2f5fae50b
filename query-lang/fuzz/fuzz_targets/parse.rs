//! Fuzz the parser and analyzer: no input may panic, and whatever parses must print and
//! re-parse to the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_query_lang::{analyze, parse, AnalyzerConfig, EmptyCatalog};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(stmts) = parse(text) {
        for stmt in &stmts {
            let _ = analyze(stmt, &EmptyCatalog, &AnalyzerConfig::default());
            let printed = stmt.to_string();
            let again = parse(&printed).expect("printed statement parses");
            assert_eq!(again, vec![stmt.clone()], "round trip of {printed}");
        }
    }
});
