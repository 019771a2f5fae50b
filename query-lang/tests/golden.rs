//! Golden tests: every `tests/queries/*.wql` file is parsed and analysed, and the outcome —
//! canonical text and analysis of each statement, or the positioned error — is compared
//! with its insta snapshot in `tests/snapshots/`. Every statement that parses must also
//! print and re-parse to itself.

use std::fmt::Write;
use std::path::Path;

use weir_core::format_duration;
use weir_query_lang::{parse, parse_and_analyze, Analysis, AnalyzerConfig, EmptyCatalog};

fn describe(a: &Analysis) -> String {
    let mut out = String::new();
    if let Some(src) = &a.source {
        writeln!(out, "  source: {src:?}").unwrap();
    }
    if !a.columns.is_empty() {
        let cols: Vec<String> = a
            .columns
            .iter()
            .map(|c| match &c.expr {
                Some(e) if e.to_string() != c.name => format!("{} [{:?}: {e}]", c.name, c.kind),
                _ => format!("{} [{:?}]", c.name, c.kind),
            })
            .collect();
        writeln!(out, "  columns: {}", cols.join(", ")).unwrap();
    }
    if !a.group_fields.is_empty() {
        writeln!(out, "  group by: {}", a.group_fields.join(", ")).unwrap();
    }
    if let Some(t) = &a.timeseries {
        writeln!(
            out,
            "  timeseries: field {}, every {}{}{}",
            t.time_field,
            format_duration(t.granularity),
            t.window
                .map(|w| format!(", window {}", format_duration(w)))
                .unwrap_or_default(),
            if t.from_source {
                " (from the source query)"
            } else {
                ""
            }
        )
        .unwrap();
    }
    if let Some(r) = &a.rule {
        writeln!(
            out,
            "  rule on {:?} reads: {}",
            r.query,
            r.columns.join(", ")
        )
        .unwrap();
    }
    out
}

fn run_case(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match parse_and_analyze(&text, &EmptyCatalog, &AnalyzerConfig::default()) {
        Ok(stmts) => {
            let mut out = String::new();
            for (stmt, analysis) in stmts {
                let printed = stmt.to_string();
                let reparsed = parse(&printed).unwrap_or_else(|e| {
                    panic!(
                        "{}: printed text does not parse: {e}\n{printed}",
                        path.display()
                    )
                });
                assert_eq!(
                    reparsed,
                    vec![stmt.clone()],
                    "{}: round trip",
                    path.display()
                );
                writeln!(out, "{printed}").unwrap();
                out.push_str(&describe(&analysis));
            }
            out
        }
        Err(e) => format!(
            "{:?} error at line {}, column {}:\n{e}\n",
            e.kind, e.line, e.column
        ),
    }
}

#[test]
fn golden_queries() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/queries");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wql"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "golden files missing");
    for path in files {
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let out = run_case(&path);
        insta::with_settings!({
            snapshot_path => "snapshots",
            prepend_module_to_snapshot => false,
            description => std::fs::read_to_string(&path).unwrap(),
            omit_expression => true,
        }, {
            insta::assert_snapshot!(name, out);
        });
    }
}
