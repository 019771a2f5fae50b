//! Property tests: random trees print and re-parse to themselves; random input never panics.

use proptest::prelude::*;
use weir_query_lang::ast::*;
use weir_query_lang::{analyze, parse, AnalyzerConfig, EmptyCatalog};

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z_][a-z0-9_]{0,6}",
        1 => Just("from".to_string()),
        1 => Just("user-agent".to_string()),
        1 => Just("events".to_string()),
        1 => Just("say \"hi\"".to_string()),
    ]
}

fn ident() -> impl Strategy<Value = Ident> {
    name().prop_map(Ident::new)
}

fn field() -> impl Strategy<Value = FieldRef> {
    prop::collection::vec(name(), 1..3).prop_map(|path| FieldRef {
        path,
        span: Span::default(),
    })
}

fn e(kind: ExprKind) -> Expr {
    Expr {
        kind,
        span: Span::default(),
    }
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        (-1e6f64..1e6).prop_map(Literal::Number),
        (-1000i64..1000).prop_map(|n| Literal::Number(n as f64)),
        "[ -~\n\t']{0,8}".prop_map(Literal::String),
        any::<bool>().prop_map(Literal::Bool),
        Just(Literal::Null),
    ]
}

fn duration() -> impl Strategy<Value = Millis> {
    prop_oneof![1i64..5000, (1i64..100).prop_map(|m| m * 60_000)]
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        field().prop_map(|f| e(ExprKind::Field(f))),
        literal().prop_map(|l| e(ExprKind::Literal(l))),
        Just(e(ExprKind::Start)),
        Just(e(ExprKind::End)),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        let ops = prop::sample::select(vec![
            BinaryOp::Or,
            BinaryOp::And,
            BinaryOp::Eq,
            BinaryOp::NotEq,
            BinaryOp::Lt,
            BinaryOp::LtEq,
            BinaryOp::Gt,
            BinaryOp::GtEq,
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Mul,
            BinaryOp::Div,
        ]);
        let funcs = prop::sample::select(vec![
            AggFunc::Count,
            AggFunc::CountDistinct,
            AggFunc::ApproxCountDistinct,
            AggFunc::Sum,
            AggFunc::Avg,
            AggFunc::Min,
            AggFunc::Max,
            AggFunc::First,
            AggFunc::Last,
            AggFunc::Percentile(0.99),
        ]);
        prop_oneof![
            (ops, inner.clone(), inner.clone()).prop_map(|(op, l, r)| e(ExprKind::Binary {
                op,
                left: Box::new(l),
                right: Box::new(r)
            })),
            (any::<bool>(), inner.clone()).prop_map(|(not, x)| e(ExprKind::Unary {
                op: if not { UnaryOp::Not } else { UnaryOp::Neg },
                expr: Box::new(x)
            })),
            (inner.clone(), "[a-z.*+\\\\']{0,6}").prop_map(|(x, pattern)| e(ExprKind::Regex {
                expr: Box::new(x),
                pattern
            })),
            (
                inner.clone(),
                prop::collection::vec(inner.clone(), 1..3),
                any::<bool>()
            )
                .prop_map(|(x, list, negated)| e(ExprKind::In {
                    expr: Box::new(x),
                    list,
                    negated
                })),
            (inner.clone(), any::<bool>()).prop_map(|(x, negated)| e(ExprKind::IsNull {
                expr: Box::new(x),
                negated
            })),
            (funcs, prop::option::of(inner)).prop_map(|(func, arg)| {
                let arg = match func {
                    AggFunc::Count => arg,
                    _ => Some(arg.unwrap_or_else(|| e(ExprKind::Literal(Literal::Null)))),
                };
                e(ExprKind::Aggregate(Aggregate {
                    func,
                    arg: arg.map(Box::new),
                }))
            }),
        ]
    })
}

fn select() -> impl Strategy<Value = Select> {
    let item = prop_oneof![
        1 => Just(SelectItem::Wildcard(Span::default())),
        5 => (expr(), prop::option::of(ident())).prop_map(|(expr, alias)| SelectItem::Expr { expr, alias }),
    ];
    let source = prop_oneof![
        Just(Source::AllEvents(Span::default())),
        (ident(), prop::option::of(duration()))
            .prop_map(|(name, window)| Source::Named { name, window }),
    ];
    let group = prop_oneof![
        field().prop_map(GroupItem::Field),
        (ident(), duration(), prop::option::of(duration())).prop_map(
            |(time_field, granularity, window)| {
                GroupItem::Timeseries {
                    span: Span::default(),
                    time_field,
                    granularity,
                    window,
                }
            }
        ),
    ];
    (
        prop::collection::vec(item, 1..4),
        source,
        prop::option::of(expr()),
        prop::collection::vec(group, 0..3),
        prop::option::of(expr()),
        prop::option::of(any::<u64>()),
    )
        .prop_map(
            |(items, from, where_clause, group_by, having, limit)| Select {
                span: Span::default(),
                items,
                from,
                where_clause,
                group_by,
                having,
                limit,
            },
        )
}

fn backfill() -> impl Strategy<Value = Backfill> {
    prop_oneof![
        Just(Backfill::Default),
        Just(Backfill::None),
        duration().prop_map(Backfill::For)
    ]
}

fn statement() -> impl Strategy<Value = Statement> {
    let form = prop_oneof![
        any::<bool>().prop_map(|or_replace| QueryForm::Create { or_replace }),
        Just(QueryForm::Shorthand),
        duration().prop_map(|at| QueryForm::ShorthandAt { at }),
    ];
    let query =
        (ident(), form, select(), backfill()).prop_map(|(written, form, select, backfill)| {
            let name = match form {
                QueryForm::ShorthandAt { at } => Ident::new(format!(
                    "{}_{}",
                    written.name,
                    weir_core::format_duration(at)
                )),
                _ => written.clone(),
            };
            Statement::CreateQuery(CreateQuery {
                name,
                written_name: written,
                form,
                select,
                backfill,
            })
        });
    let rule_source = prop_oneof![
        ident().prop_map(RuleSource::On),
        select().prop_map(|s| RuleSource::As(Box::new(s))),
    ];
    let rule = (ident(), any::<bool>(), rule_source, expr(), backfill()).prop_map(
        |(name, or_replace, source, deny_when, backfill)| {
            Statement::CreateRule(CreateRule {
                name,
                or_replace,
                source,
                deny_when,
                backfill,
            })
        },
    );
    prop_oneof![
        3 => query,
        3 => rule,
        3 => select().prop_map(Statement::Select),
        1 => (ident(), any::<bool>())
            .prop_map(|(name, cascade)| Statement::DropQuery(DropQuery { name, cascade })),
        1 => ident().prop_map(Statement::DropRule),
        1 => Just(Statement::ShowQueries),
        1 => Just(Statement::ShowRules),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn printed_trees_parse_back_to_themselves(stmt in statement()) {
        let printed = stmt.to_string();
        if std::env::var("SHOW_CASES").is_ok() { eprintln!("{printed}"); }
        let parsed = parse(&printed);
        prop_assert!(parsed.is_ok(), "{printed}\n{}", parsed.unwrap_err());
        prop_assert_eq!(parsed.unwrap(), vec![stmt], "{}", printed);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(stmts) = parse(&text) {
            for s in &stmts {
                let _ = analyze(s, &EmptyCatalog, &AnalyzerConfig::default());
            }
        }
    }

    #[test]
    fn mangled_queries_never_panic(cut in 0usize..200, insert in "[ -~é棋]{0,3}", stmt in statement()) {
        let mut text = stmt.to_string();
        let mut at = cut.min(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.insert_str(at, &insert);
        match parse(&text) {
            Ok(stmts) => {
                for s in &stmts {
                    let _ = analyze(s, &EmptyCatalog, &AnalyzerConfig::default());
                }
            }
            Err(e) => {
                prop_assert!(e.line >= 1 && e.column >= 1);
                prop_assert!(e.offset <= text.len());
            }
        }
    }
}
