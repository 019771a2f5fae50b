//! Statements: CREATE / DROP / SHOW, the seed shorthands `name = select` and
//! `name@5min = select`, a bare select, and lists of them.

use super::expr::expr;
use super::lexical::{duration, ident, kw, peek_kw, sym, ws};
use super::select::select;
use super::{expect, failure, Input, PResult};
use crate::ast::{
    Backfill, CreateQuery, CreateRule, DropQuery, Ident, QueryForm, RuleSource, Statement,
};

const STATEMENT_EXPECTED: &str =
    "expected a statement: CREATE, DROP, SHOW, SELECT, or name = SELECT …";

/// A whole text: statements separated by `;` or by starting on a new line.
pub fn statements(i: Input<'_>) -> PResult<'_, Vec<Statement>> {
    let (mut i, ()) = ws(i)?;
    let mut out = Vec::new();
    loop {
        while let Ok((rest, _)) = sym(";")(i) {
            i = rest;
        }
        if i.fragment().is_empty() {
            return Ok((i, out));
        }
        super::reset_budget();
        let (rest, stmt) = expect(STATEMENT_EXPECTED, statement)(i)?;
        out.push(stmt);
        i = rest;
        if i.fragment().is_empty() || i.fragment().starts_with(';') {
            continue;
        }
        if !(after_line_break(&i) && starts_statement(i)) {
            return Err(failure(i, "expected ';' or the end of the statement here"));
        }
    }
}

/// Whether only blanks separate `i` from the line break before it (comments end in one).
fn after_line_break(i: &Input<'_>) -> bool {
    let line_start = i.get_utf8_column() == 1;
    line_start
        || i.get_line_beginning()
            .iter()
            .take(i.get_column() - 1)
            .all(|b| b.is_ascii_whitespace())
}

/// Whether `i` looks like the start of a statement (for newline-separated statements).
fn starts_statement(i: Input<'_>) -> bool {
    ["create", "drop", "show", "select"]
        .iter()
        .any(|k| peek_kw(&i, k))
        || ident(i).is_ok_and(|(rest, _)| {
            rest.fragment().starts_with('=') || rest.fragment().starts_with('@')
        })
}

/// One statement.
pub fn statement(i: Input<'_>) -> PResult<'_, Statement> {
    if let Ok((rest, _)) = kw("create")(i) {
        return create(rest);
    }
    if let Ok((rest, _)) = kw("drop")(i) {
        if let Ok((rest, _)) = kw("query")(rest) {
            let (rest, name) = expect("expected a query name after DROP QUERY", ident)(rest)?;
            let (rest, cascade) = match kw("cascade")(rest) {
                Ok((rest, _)) => (rest, true),
                Err(_) => (rest, false),
            };
            return Ok((rest, Statement::DropQuery(DropQuery { name, cascade })));
        }
        let (rest, _) = expect("expected QUERY or RULE after DROP", kw("rule"))(rest)?;
        let (rest, name) = expect("expected a rule name after DROP RULE", ident)(rest)?;
        return Ok((rest, Statement::DropRule(name)));
    }
    if let Ok((rest, _)) = kw("show")(i) {
        if let Ok((rest, _)) = kw("queries")(rest) {
            return Ok((rest, Statement::ShowQueries));
        }
        let (rest, _) = expect("expected QUERIES or RULES after SHOW", kw("rules"))(rest)?;
        return Ok((rest, Statement::ShowRules));
    }
    if peek_kw(&i, "select") {
        let (rest, s) = select(i)?;
        return Ok((rest, Statement::Select(s)));
    }
    shorthand(i)
}

/// `CREATE [OR REPLACE] (QUERY … | RULE …)`, after `CREATE`.
fn create(i: Input<'_>) -> PResult<'_, Statement> {
    let (i, or_replace) = match kw("or")(i) {
        Ok((rest, _)) => {
            let (rest, _) = expect("expected REPLACE after CREATE OR", kw("replace"))(rest)?;
            (rest, true)
        }
        Err(_) => (i, false),
    };
    if let Ok((rest, _)) = kw("query")(i) {
        let (rest, name) = expect("expected a query name after QUERY", ident)(rest)?;
        let (rest, _) = expect("expected AS after the query name", kw("as"))(rest)?;
        let (rest, sel) = expect("expected SELECT after AS", select)(rest)?;
        let (rest, backfill) = backfill(rest)?;
        return Ok((
            rest,
            Statement::CreateQuery(CreateQuery {
                written_name: name.clone(),
                name,
                form: QueryForm::Create { or_replace },
                select: sel,
                backfill,
            }),
        ));
    }
    let (i, _) = expect("expected QUERY or RULE after CREATE", kw("rule"))(i)?;
    let (i, name) = expect("expected a rule name after RULE", ident)(i)?;
    let (i, source) = if let Ok((rest, _)) = kw("on")(i) {
        let (rest, q) = expect("expected a query name after ON", ident)(rest)?;
        (rest, RuleSource::On(q))
    } else {
        let (rest, _) = expect(
            "expected ON query_name or AS SELECT … after the rule name",
            kw("as"),
        )(i)?;
        let (rest, sel) = expect("expected SELECT after AS", select)(rest)?;
        (rest, RuleSource::As(Box::new(sel)))
    };
    let (i, _) = expect("expected DENY WHEN after the rule's source", kw("deny"))(i)?;
    let (i, _) = expect("expected WHEN after DENY", kw("when"))(i)?;
    let (i, deny_when) = expect("expected a condition after DENY WHEN", expr)(i)?;
    let (i, backfill) = backfill(i)?;
    Ok((
        i,
        Statement::CreateRule(CreateRule {
            name,
            or_replace,
            source,
            deny_when,
            backfill,
        }),
    ))
}

/// `[BACKFILL duration | NO BACKFILL]`.
fn backfill(i: Input<'_>) -> PResult<'_, Backfill> {
    if let Ok((rest, _)) = kw("backfill")(i) {
        let (rest, d) = expect("expected a duration such as 1h after BACKFILL", duration)(rest)?;
        return Ok((rest, Backfill::For(d)));
    }
    if let Ok((rest, _)) = kw("no")(i) {
        let (rest, _) = expect("expected BACKFILL after NO", kw("backfill"))(rest)?;
        return Ok((rest, Backfill::None));
    }
    Ok((i, Backfill::Default))
}

/// `name = select` or `name@5min = select` (both mean CREATE OR REPLACE QUERY).
fn shorthand(i: Input<'_>) -> PResult<'_, Statement> {
    let (rest, written) = ident(i)?;
    if !rest.fragment().starts_with(['=', '@']) {
        // Not a shorthand either: let the caller say what a statement looks like.
        return Err(super::backtrack(i));
    }
    let (rest, at) = if rest.fragment().starts_with('@') {
        let (rest, _) = sym("@")(rest)?;
        let (rest, d) = expect("expected a duration such as 5min after '@'", duration)(rest)?;
        (rest, Some(d))
    } else {
        (rest, None)
    };
    let (rest, _) = expect("expected '=' after the query name", sym("="))(rest)?;
    let (rest, sel) = expect("expected SELECT after '='", select)(rest)?;
    let (rest, backfill) = backfill(rest)?;
    let (name, form) = match at {
        Some(at) => (
            Ident {
                name: format!("{}_{}", written.name, weir_core::format_duration(at)),
                span: written.span,
            },
            QueryForm::ShorthandAt { at },
        ),
        None => (written.clone(), QueryForm::Shorthand),
    };
    Ok((
        rest,
        Statement::CreateQuery(CreateQuery {
            name,
            written_name: written,
            form,
            select: sel,
            backfill,
        }),
    ))
}
